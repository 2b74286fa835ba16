"""`python -m curator` is the `curator` command."""

from curator.cli import main

main()
