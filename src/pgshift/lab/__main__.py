"""``python -m pgshift.lab 10 11 …``: provision lab server binaries ahead of a test run."""

from pgshift.lab.binaries import main

main()
