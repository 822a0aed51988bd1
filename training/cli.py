"""``cotenant train`` and ``cotenant evaluate``: thin typer commands over typed configs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from cotenant.training.config import OptimConfig, TrainConfig

TRAIN = TrainConfig.model_fields  # every option's default is the config's

DEFAULT_MODELS = (
    "linear,gamma-glm,decision-tree,random-forest,hist-gradient-boosting,lstm,"
    "temporal-only,system-only,cloudformer,placement,placement-forest,placement-probes"
)


def train(
    model: Annotated[
        str,
        typer.Option(
            help="registered model name, optionally with options as `cotenant evaluate` writes them: "
            "cloudformer[solo_prior=true,members=5]"
        ),
    ] = TRAIN["model"].default,
    data: Annotated[str, typer.Option(help="source name, name:PATH, or a directory")] = TRAIN[
        "source"
    ].default,
    epochs: Annotated[int, typer.Option(help="epochs for neural models")] = TRAIN["epochs"].default,
    batch_size: Annotated[int, typer.Option()] = TRAIN["batch_size"].default,
    max_steps: Annotated[int, typer.Option(help="seconds kept per run")] = TRAIN["max_steps"].default,
    lr: Annotated[float, typer.Option()] = OptimConfig.model_fields["lr"].default,
    seed: Annotated[int, typer.Option(help="weights and data order")] = TRAIN["seed"].default,
    split: Annotated[
        str, typer.Option(help="programs (leave-programs-out fold) | apps | time | none")
    ] = TRAIN["split"].default,
    fold: Annotated[int, typer.Option(help="which leave-programs-out fold is held out")] = TRAIN[
        "fold"
    ].default,
    folds: Annotated[int, typer.Option(help="number of leave-programs-out folds")] = TRAIN["folds"].default,
    devices: Annotated[int, typer.Option(help="devices (processes) per node")] = TRAIN["devices"].default,
    num_nodes: Annotated[int, typer.Option(help="machines taking part in DDP")] = TRAIN["num_nodes"].default,
    strategy: Annotated[str, typer.Option(help="auto | ddp | ...")] = TRAIN["strategy"].default,
    accelerator: Annotated[str, typer.Option()] = TRAIN["accelerator"].default,
    tracking_uri: Annotated[
        str | None, typer.Option(help="MLflow URI; default: the local sqlite store")
    ] = None,
    register: Annotated[bool, typer.Option(help="register in the MLflow model registry")] = TRAIN[
        "register_model"
    ].default,
    model_options: Annotated[str, typer.Option(help="JSON overrides of the model config")] = "{}",
    enforce_gate: Annotated[
        bool,
        typer.Option(
            help="refuse champion to a version that fails the promotion gate (off: judged and tagged only)"
        ),
    ] = TRAIN["enforce_gate"].default,
) -> None:
    """Train one model, log it to MLflow and register its predictor (champion only if it wins)."""
    from cotenant.training.config import ModelChoice, OptimConfig, TrainConfig
    from cotenant.training.run import train as run_training
    from rich.console import Console
    from rich.markup import escape

    console = Console()
    try:
        # The form reports and `cotenant up` name variants in, so that a variant chosen there trains here.
        choice = ModelChoice.parse(model)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--model") from error
    base = TrainConfig(
        model=choice.model,
        source=data,
        epochs=epochs,
        batch_size=batch_size,
        max_steps=max_steps,
        seed=seed,
        split=split,
        fold=fold,
        folds=folds,
        devices=devices,
        num_nodes=num_nodes,
        strategy=strategy,
        accelerator=accelerator,
        tracking_uri=tracking_uri,
        register_model=register,
        optim=OptimConfig(lr=lr),
        model_options=json.loads(model_options),
        enforce_gate=enforce_gate,
    )
    from cotenant.models.base import UnsuitableData

    try:
        result = run_training(choice.config(base))
    except UnsuitableData as error:
        raise typer.BadParameter(f"{escape(model)}: {error}", param_hint="--data") from error
    from cotenant.training.run import is_global_zero

    if not is_global_zero():
        return  # the other DDP processes trained the same weights; rank 0 reports and registers
    m = result.metrics
    console.print(
        f"[bold]{escape(model)}[/] on {data}: test MAE {m['mae']:.2f} pp, RMSE {m['rmse']:.2f} pp, "
        f"train {m['train_seconds']:.1f} s ({m['runs_per_second']:.0f} runs/s)"
    )
    if result.registered:
        console.print(f"registered {result.registered[0]} v{result.registered[1]} as [bold]{result.alias}[/]")
        if result.gate is not None:
            console.print(f"{result.registered[0]} v{result.registered[1]} {result.gate.reason}")


def evaluate(
    data: Annotated[str, typer.Option(help="source name, name:PATH, or a directory")] = "bundled",
    models: Annotated[
        str,
        typer.Option(
            help="comma-separated model names, each optionally with options: cloudformer[members=3]"
        ),
    ] = DEFAULT_MODELS,
    folds: Annotated[int, typer.Option(help="leave-programs-out folds (each program held out once)")] = 5,
    partitions: Annotated[
        int,
        typer.Option(
            min=1,
            help="groupings of the programs into those folds (seeds 0..N-1), every model and reference on "
            "each: how much of a margin is one grouping's luck",
        ),
    ] = 1,
    # 20, not train's 40: every fold x every model must stay within an hour on 2 cores.
    epochs: Annotated[int, typer.Option(help="epochs for neural models")] = 20,
    out: Annotated[Path, typer.Option(help="report folder")] = Path("reports/evaluation"),
    tracking_uri: Annotated[str | None, typer.Option(help="MLflow URI, 'none' to skip logging")] = None,
    curve_models: Annotated[
        str, typer.Option(help="models for learning curves ('best-baseline' allowed; 'none' skips)")
    ] = "cloudformer,best-baseline",
    curve_folds: Annotated[int, typer.Option(help="folds (the first N) for the learning curves")] = 3,
    curve_apps: Annotated[str, typer.Option(help="training-application counts to try")] = "2,4",
    curve_fractions: Annotated[
        str, typer.Option(help="shares of each application's runs to try")
    ] = "0.25,0.5",
    curve_seen: Annotated[
        bool,
        typer.Option(
            help="also answer the curves' held-out runs with their programs seen (half of each held-out "
            "program's configurations in training): what the inputs say of a known program"
        ),
    ] = True,
    answers: Annotated[
        bool,
        typer.Option(
            help="also write answers.parquet: every run each fold's model answered (test and validation), "
            "its label and quantiles, for error analysis and run-by-run comparisons"
        ),
    ] = False,
) -> None:
    """Tables IV and V on any source: every model, leave-programs-out folds; MD + JSON + PNG."""
    import polars as pl
    from cotenant.datasets import load_source
    from cotenant.datasets.splits import repeated_leave_programs_out
    from cotenant.training.config import TrainConfig, parse_model_choices
    from cotenant.training.evaluate import evaluate_models, log_report, write_report
    from rich.console import Console

    from cotenant.paths import default_tracking_uri

    console = Console()
    table = load_source(data)
    base = TrainConfig(source=data, epochs=epochs, progress=False, tracking_uri="none")
    try:
        names = [choice.label for choice in parse_model_choices(models)]
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--models") from error
    splits = repeated_leave_programs_out(table, folds, partitions)

    def log(message: str) -> None:
        console.print(message, markup=False)  # model labels are bracketed: cloudformer[members=3]

    # The curves' programs-seen comparison reads each fold's answers unseen rather than fitting it again.
    keep_answers = answers or (curve_models != "none" and curve_seen)
    answered: list[pl.DataFrame] | None = [] if keep_answers else None
    report = evaluate_models(table, names, splits, base, log=log, answers=answered)
    answer_table = pl.concat(answered) if answered else None
    if curve_models != "none":
        from cotenant.training.learning_curve import learning_curves

        report["learning_curves"] = learning_curves(
            table,
            report,
            [m.strip() for m in curve_models.split(",") if m.strip()],
            splits[:curve_folds],
            [int(k) for k in curve_apps.split(",") if k.strip()],
            [float(f) for f in curve_fractions.split(",") if f.strip()],
            base,
            log=log,
            seen=curve_seen,
            answers=answer_table,
        )
    paths = write_report(report, out)
    if answers and answer_table is not None:
        paths.append(out / "answers.parquet")
        answer_table.write_parquet(paths[-1])
    if tracking_uri != "none":
        log_report(paths, report, tracking_uri or default_tracking_uri(), "cotenant-evaluation")
    console.print(f"wrote {', '.join(str(p) for p in paths)}")
