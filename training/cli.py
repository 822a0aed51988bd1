"""Scaffold: replaced by the train and evaluate commands."""

import typer


def train() -> None:
    """Not built yet."""
    raise typer.Exit(code=2)


def evaluate() -> None:
    """Not built yet."""
    raise typer.Exit(code=2)
