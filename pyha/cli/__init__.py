"""The `pyha` command."""
