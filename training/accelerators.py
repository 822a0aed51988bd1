"""`cotenant accelerators fit`: device profiles fitted from measured traces, tracked and registered in MLflow.

Every fit is an MLflow run in the ``cotenant-accelerators`` experiment: its parameters (the traces, their
digest, the training load levels, the variant chosen on them), its metrics (the held-out relative error, and
Ibis's formula with Ibis's profiles on the same points) and its artifacts (the catalogue, the report). The
catalogue is registered as ``cotenant-accelerators``; it becomes ``champion`` only when its held-out error
beats the current champion's, re-scored now on the same traces and points (``apply_alias_rules``).
"""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer
from cotenant.models.accelerators.cli import REPORT_DIR
from cotenant.models.accelerators.fitting import Trace, catalogue_of, fit_traces, read_trace
from cotenant.models.accelerators.profiles import (
    CATALOGUE_FILE,
    ProfileCatalogue,
    catalogue_in,
    load_catalogue,
)
from cotenant.models.accelerators.validation import (
    FIT_VARIANTS,
    FitValidation,
    catalogue_points,
    summarise,
    validate_fit,
    without_moments,
)
from cotenant.training.tracking import REGISTERED, apply_alias_rules, download_registered, use_experiment

MODEL_NAME = REGISTERED["accelerators"]


@dataclass
class AcceleratorFit:
    catalogue: ProfileCatalogue
    validation: FitValidation | None
    traces: list[Trace]
    digest: str


def trace_files(location: Path) -> list[Path]:
    files = sorted(location.glob("*.csv")) if location.is_dir() else [location]
    if not files:
        raise ValueError(f"{location}: no *.csv trace")
    return files


def fit(location: Path, base: ProfileCatalogue | None = None) -> AcceleratorFit:
    """Fit every trace under ``location``, choose the wait variant on the training levels, keep its terms."""
    files = trace_files(location)
    traces = [read_trace(path) for path in files]
    digest = hashlib.sha256(b"".join(path.read_bytes() for path in files)).hexdigest()[:16]
    catalogue = catalogue_of(fit_traces(traces), base or load_catalogue(), source=str(location))
    validation = validate_fit(traces, catalogue)
    variant = validation.variant if validation else "measured_moments"
    _, keep_moments = FIT_VARIANTS[variant]
    chosen = catalogue if keep_moments else without_moments(catalogue)
    return AcceleratorFit(chosen.model_copy(update={"fit_variant": variant}), validation, traces, digest)


def held_out_error(catalogue: ProfileCatalogue, traces: list[Trace]) -> float:
    """Mean absolute relative error of ``catalogue`` on the held-out levels of ``traces`` (inf: it lacks a
    model of theirs)."""
    queueing = [trace for trace in traces if trace.form == "queueing"]
    variant = catalogue.fit_variant or "ibis_form"
    try:
        points = [p for trace in queueing for p in catalogue_points(trace, catalogue, variant)]
    except ValueError:
        return float("inf")
    held_out = [p.relative_error for p in points if p.held_out]
    return summarise(held_out).mean if held_out else float("inf")


def report_lines(result: AcceleratorFit) -> list[str]:
    lines = [
        "# Accelerator profiles fitted from traces",
        "",
        f"Traces ({result.digest}): {', '.join(trace.path.name for trace in result.traces)}.",
        "",
        "| model | kind | service ms | switch ms | client ms | E[S^2] same | E[S^2] switch | memory MB |",
        "|---|---|---|---|---|---|---|---|",
    ]

    def shown(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f}"

    for model, kinds in sorted(result.catalogue.models.items()):
        for kind, p in kinds.items():
            lines.append(
                f"| {model} | {kind} | {p.service_ms:.2f} | {shown(p.switch_overhead_ms)} | "
                f"{p.client_overhead_ms:.2f} | {shown(p.second_moment_ms2)} | "
                f"{shown(p.switch_second_moment_ms2)} | {p.memory_mb:.0f} |"
            )
    check = result.validation
    if check is None:
        return [*lines, "", "No queueing trace with a held-out load level: nothing validated."]
    ibis = (
        "n/a (a model Ibis did not profile)"
        if check.ibis_held_out is None
        else (f"{100 * check.ibis_held_out.mean:.2f}%")
    )
    lines += [
        "",
        "Fitted on each queueing trace's lowest load level; the other levels are held out.",
        "",
        "| variant | training-level mean abs error | standard error | points |",
        "|---|---|---|---|",
        *(
            f"| {name} | {100 * summary.mean:.2f}% | {100 * summary.stderr:.2f}% | {summary.n} |"
            for name, summary in check.training.items()
        ),
        "",
        "Chosen on the training levels by the one-standard-error rule (the first variant, in the table's "
        "order of what it assumes beyond Ibis's formula, within one standard error of the lowest training "
        "error): "
        f"`{check.variant}`. On the held-out levels: mean "
        f"{100 * check.held_out.mean:.2f}%, max {100 * check.held_out.max:.2f}% "
        f"over {check.held_out.n} points; "
        f"Ibis's formula with Ibis's profiles on the same points: {ibis}.",
        "",
        "| trace | level | model | measured ms | predicted ms | error | held out |",
        "|---|---|---|---|---|---|---|",
        *(
            f"| {p.trace} | {p.load_level:g} | {p.model} | {p.measured_ms:.1f} | {p.predicted_ms:.1f} | "
            f"{100 * p.relative_error:.1f}% | {'yes' if p.held_out else 'no'} |"
            for p in check.points
        ),
    ]
    return lines


def plot_fit(check: FitValidation, path: Path) -> None:
    """Predicted against measured mean response per model and load level, held-out points marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(5, 4.5))
    for held_out, marker, label in ((False, "o", "fitted level"), (True, "^", "held-out level")):
        points = [p for p in check.points if p.held_out == held_out]
        axes.scatter(
            [p.measured_ms for p in points], [p.predicted_ms for p in points], marker=marker, label=label
        )
    top = max(max(p.measured_ms, p.predicted_ms) for p in check.points) * 1.05
    axes.plot([0, top], [0, top], color="black", linewidth=0.8)
    axes.set(
        xlabel="measured mean response (ms)",
        ylabel="predicted (ms)",
        title=f"{check.variant}: held-out mean error {100 * check.held_out.mean:.2f}%",
    )
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def load_registered_catalogue(client: Any, version: str, tracking_uri: str) -> ProfileCatalogue:
    return catalogue_in(download_registered(client, MODEL_NAME, version, tracking_uri))


def track(result: AcceleratorFit, report: str, tracking_uri: str) -> tuple[str, str]:
    """Log the fit as a run, register its catalogue, apply the alias rule; -> (version, alias)."""
    import mlflow
    from mlflow import MlflowClient

    use_experiment(MODEL_NAME, tracking_uri)
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    error = held_out_error(result.catalogue, result.traces)
    with mlflow.start_run(run_name=f"fit-{result.digest}") as run, tempfile.TemporaryDirectory() as scratch:
        mlflow.log_params(
            {
                "traces": ",".join(trace.path.name for trace in result.traces),
                "traces_digest": result.digest,
                "fit_variant": result.catalogue.fit_variant,
                "training_levels": "lowest load level of each queueing trace",
                "models": ",".join(sorted(result.catalogue.models)),
            }
        )
        check = result.validation
        if check is not None:
            mlflow.log_metrics(
                {"held_out_mean_error": check.held_out.mean, "held_out_max_error": check.held_out.max}
            )
            if check.ibis_held_out is not None:
                mlflow.log_metric("ibis_held_out_mean_error", check.ibis_held_out.mean)
        folder = Path(scratch) / "catalogue"
        folder.mkdir()
        (folder / CATALOGUE_FILE).write_text(result.catalogue.to_yaml())
        (folder / "fit.md").write_text(report)
        if check is not None:
            plot_fit(check, folder / "fit.png")
        mlflow.log_artifacts(str(folder), artifact_path="catalogue")
        source = f"{run.info.artifact_uri}/catalogue"
    try:
        client.get_registered_model(MODEL_NAME)
    except Exception:  # MLflow raises its own RestException for an unknown name
        client.create_registered_model(MODEL_NAME)
    version = str(client.create_model_version(MODEL_NAME, source, run_id=run.info.run_id).version)

    def score_champion(champion: Any) -> float:
        return held_out_error(
            load_registered_catalogue(client, champion.version, tracking_uri), result.traces
        )

    alias = apply_alias_rules(client, MODEL_NAME, version, f"traces:{result.digest}", error, score_champion)
    return version, alias


def fit_command(
    traces: Path = typer.Option(..., exists=True, help="a folder of CSV traces, or one trace"),
    profiles: Path | None = typer.Option(
        None, exists=True, dir_okay=False, help="catalogue giving the memory of models whose traces lack it"
    ),
    out: Path = typer.Option(REPORT_DIR, help="where fit.md and catalogue.yaml go"),
    tracking_uri: str | None = typer.Option(None, help="MLflow store (default: the local one)"),
    register: bool = typer.Option(True, help="log the fit in MLflow and register its catalogue"),
) -> None:
    """Device profiles from measured request traces (Ibis's queueing and closed-loop formats, or a CSV with
    model, start_time and end_time in seconds, optional load_level, device_kind and memory_mb), validated on
    held-out load levels, logged in MLflow and registered as cotenant-accelerators."""
    from cotenant.models.accelerators.fitting import TraceError
    from rich.console import Console

    from cotenant.paths import default_tracking_uri

    try:
        result = fit(traces, load_catalogue(profiles) if profiles else None)
    except (TraceError, ValueError) as error:
        Console(stderr=True).print(f"[red]error:[/red] {error}")
        raise typer.Exit(code=2) from error
    report = "\n".join(report_lines(result)) + "\n"
    out.mkdir(parents=True, exist_ok=True)
    (out / "fit.md").write_text(report)
    (out / CATALOGUE_FILE).write_text(result.catalogue.to_yaml())
    if result.validation is not None:
        plot_fit(result.validation, out / "fit.png")
    console = Console()
    console.print(report)
    if register:
        uri = tracking_uri or default_tracking_uri()
        version, alias = track(result, report, uri)
        console.print(f"registered {MODEL_NAME} version {version} ({alias}) in {uri}")
