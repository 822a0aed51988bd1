"""Scaffold: replaced by the main job."""

import typer


def up() -> None:
    """Not built yet."""
    raise typer.Exit(code=2)
