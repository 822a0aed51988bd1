"""The ``cotenant`` command.

``cotenant collect`` is the per-node agent, so it starts with the collectors alone: composing the whole
command line (``cotenant.cli``) imports Polars, the accelerator models and the training stack's configs, which
a node running only the agent should not hold in memory (``cotenant.cli`` alone is about 140 MiB of RSS, the
collectors' command line about 20). Every other subcommand goes through the full command line.
"""

from __future__ import annotations

import sys


def main() -> None:
    if sys.argv[1:2] == ["collect"]:
        import typer

        from cotenant.collectors.cli import collect

        agent = typer.Typer(add_completion=False, pretty_exceptions_show_locals=False)
        agent.command()(collect)
        agent(args=sys.argv[2:], prog_name="cotenant collect")
        return
    from cotenant.cli import app

    app()
