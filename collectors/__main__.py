"""``python -m cotenant.collectors``: the collect command alone (what the lab runs as a subprocess)."""

import typer
from cotenant.collectors.cli import collect

if __name__ == "__main__":
    typer.run(collect)
