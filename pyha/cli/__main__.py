"""`python -m pyha.cli` runs the `pyha` command."""

from pyha.cli.main import main

main()
