"""Scaffold: replaced by the serve command."""

import typer


def serve() -> None:
    """Not built yet."""
    raise typer.Exit(code=2)
