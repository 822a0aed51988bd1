"""`cotenant accelerators validate | place | report`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from cotenant.models.accelerators.simulator import SimulatedApp

app = typer.Typer(no_args_is_help=True, help="Shared-accelerator models: validate, place, report.")

REPORT_DIR = Path("reports/accelerators")


def simulation(name: str) -> Any:
    """A simulation setting's default, for the command line (``SimulationConfig`` owns them)."""
    from cotenant.models.accelerators.simulator import SimulationConfig

    return SimulationConfig.model_fields[name].default


@app.command("validate")
def validate_command(
    out: Path = typer.Option(REPORT_DIR, help="where validation.md and validation.json go"),
    variant: str = typer.Option(
        "client_overhead", help="ibis | client_overhead | measured_moments | switch_variance"
    ),
    trace: list[Path] = typer.Option(
        [], exists=True, dir_okay=False, help="your own queueing trace(s) instead of the shipped ones"
    ),
    profiles: Path | None = typer.Option(
        None, exists=True, dir_okay=False, help="a profile catalogue YAML (default: Ibis's edgeTPU profiles)"
    ),
) -> None:
    """Models against measured traces: by default the shipped Ibis traces (GPU PS, edgeTPU FCFS, Poisson-load
    queueing); with --trace, your own queueing traces, with --profiles for the models they run."""
    from cotenant.models.accelerators.profiles import load_catalogue
    from cotenant.models.accelerators.validation import validate, write_report
    from rich.console import Console

    try:
        result = validate(variant=variant, traces=trace or None, profiles=load_catalogue(profiles))
    except ValueError as error:
        Console(stderr=True).print(f"[red]error:[/red] {error}")
        raise typer.Exit(code=2) from error
    path = write_report(result, out)
    console = Console()
    console.print(path.read_text())
    console.print(
        f"overall mean {100 * result.overall.mean:.2f}%, max {100 * result.overall.max:.2f}% -> {path}"
    )


@app.command("place")
def place_command(
    cluster: Path = typer.Option(..., exists=True, help="cluster YAML"),
    apps: Path = typer.Option(..., exists=True, help="app YAML (ours or an Ibis workload file)"),
    policy: str = typer.Option("depth_first", help="placement policy"),
    horizon_s: float = typer.Option(simulation("horizon_s"), help="first simulated run per node, seconds"),
    max_horizon_s: float = typer.Option(
        simulation("max_horizon_s"), help="longest run while a mean is not yet precise"
    ),
    precision: float = typer.Option(
        simulation("precision"), help="target 95% half-width of each mean, fraction of its SLO"
    ),
    seed: int = typer.Option(simulation("seed")),
    migration: bool = typer.Option(simulation("migration"), help="reactive migration of apps over SLO"),
) -> None:
    """Place apps on a cluster, then print predicted and simulated latencies and violations."""
    from cotenant.models.accelerators.api import place
    from cotenant.models.accelerators.profiles import load_apps, load_cluster
    from cotenant.models.accelerators.simulator import SimulationConfig
    from rich.console import Console
    from rich.table import Table

    config = SimulationConfig(
        horizon_s=horizon_s,
        max_horizon_s=max_horizon_s,
        precision=precision,
        seed=seed,
        migration=migration,
    )
    result = place(load_cluster(cluster), load_apps(apps).apps, policy, config)
    predicted = {latency.app: latency for latency in result.predicted}
    simulated = {sim.app: sim for sim in result.simulated}
    table = Table(title=f"policy {policy}")
    for column in ("app", "node", "SLO ms", "predicted ms", "simulated ms", "+- ms", "run s", "p95 ms"):
        table.add_column(column)
    table.add_column("violated")
    for name, node in result.assignment.items():
        pred, sim = predicted.get(name), simulated.get(name)
        table.add_row(
            name,
            sim.node if sim else (node or "rejected"),
            f"{pred.slo_ms:.0f}" if pred else "-",
            f"{pred.total_ms:.1f}" if pred else "-",
            f"{sim.mean_ms:.1f}" if sim else "-",
            f"{sim.mean_halfwidth_ms:.1f}" if sim else "-",
            f"{sim.simulated_s:.0f}" if sim else "-",
            f"{sim.p95_ms:.1f}" if sim else "-",
            verdict(sim) if sim else "-",
        )
    console = Console()
    console.print(table)
    utilisation = ", ".join(f"{n} {u:.2f}" for n, u in result.utilisation.items())
    console.print(f"utilisation: {utilisation}")
    console.print(
        f"hosted {len(result.assignment) - len(result.rejected)}, rejected {len(result.rejected)}, "
        f"violations {result.violations}, migrations {result.migrations}"
    )
    unsettled = [sim.app for sim in result.simulated if not sim.settled]
    if unsettled:
        console.print(
            f"judged on a point estimate short of the asked precision (run hit {max_horizon_s:.0f} s):"
            f" {', '.join(unsettled)}"
        )


def verdict(sim: SimulatedApp) -> str:
    """The point verdict; `?` marks one whose mean never got precise enough to settle it."""
    return ("yes" if sim.violated else "no") + ("" if sim.settled else " ?")


@app.command("report")
def report_command(
    out: Path = typer.Option(REPORT_DIR, help="where placement.md/.png/.json go"),
    n_apps: int = typer.Option(40, help="apps per stream"),
) -> None:
    """Apps hosted with zero simulated SLO violations per policy (GPU, TPU, mixed) and the optimum gap."""
    from cotenant.models.accelerators.report import write_report

    path = write_report(out, n_apps)
    typer.echo(path.read_text())
