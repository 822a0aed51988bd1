"""Scaffold: replaced by the real commands of this area."""

import typer

app = typer.Typer(no_args_is_help=True, help="Run the interference lab.")


@app.command("todo")
def todo() -> None:
    """Not built yet."""
    raise typer.Exit(code=2)
