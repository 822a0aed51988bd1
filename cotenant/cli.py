"""The one command-line entry point, ``cotenant``.

Each area owns its subcommands in its own ``cli`` module; this file only composes them. Area CLI modules keep
heavy imports (torch, mlflow, bentoml) inside their command functions so that ``cotenant --help`` stays fast.
"""

from __future__ import annotations

import typer

from cotenant.collectors.cli import collect
from cotenant.datasets.cli import app as datasets_app
from cotenant.datasets.lab.cli import app as lab_app
from cotenant.models.accelerators.cli import app as accelerators_app
from cotenant.serving.cli import serve
from cotenant.training.accelerators import fit_command as fit_accelerators
from cotenant.training.cli import evaluate, train
from cotenant.up import up

app = typer.Typer(
    name="cotenant",
    help="Predict how much co-located workloads slow each other down.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
app.command("up")(up)
app.command("collect")(collect)
app.add_typer(lab_app, name="lab")
app.add_typer(datasets_app, name="datasets")
app.command("train")(train)
app.command("evaluate")(evaluate)
# fitting tracks in MLflow (training), so its command joins the accelerator commands here
accelerators_app.command("fit")(fit_accelerators)
app.add_typer(accelerators_app, name="accelerators")
app.command("serve")(serve)


if __name__ == "__main__":
    app()
