from pgshift.cli.main import main

main()
