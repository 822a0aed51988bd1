"""Scaffold: replaced by the collector command."""

import typer


def collect() -> None:
    """Not built yet."""
    raise typer.Exit(code=2)
