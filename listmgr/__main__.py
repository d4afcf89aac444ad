"""`python -m listmgr` runs the CLI."""

from listmgr.cli import main

main()
