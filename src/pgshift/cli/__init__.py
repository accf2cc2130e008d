"""The command line: parsing arguments and rendering results, nothing else."""
