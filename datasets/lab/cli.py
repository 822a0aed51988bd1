"""``cotenant lab``: run a plan, describe a plan, label a lab directory, clean leftovers."""

from __future__ import annotations

from pathlib import Path

import typer
from cotenant.datasets.lab.canary import STEADY_WAIT_S, describe_spread
from cotenant.datasets.lab.limits import Limits
from cotenant.datasets.lab.plan import RUN_OVERHEAD_S, Plan, PlanPart
from cotenant.datasets.lab.quiet import QuietSpec
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

app = typer.Typer(no_args_is_help=True, help="Run the interference lab.")
console = Console(stderr=True)


def _run_with_progress(plan: Path, out: Path, **options: object) -> None:
    """Runs (or resumes) a plan with a progress bar; exits 2 on a plan or lab error, 130 on Ctrl-C."""
    from cotenant.datasets.lab.plan import PlanError
    from cotenant.datasets.lab.session import LabError, run_lab

    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
    ) as progress:
        task = progress.add_task("starting", total=None)

        def report(index: int, total: int, spec: object, state: str) -> None:
            label = getattr(spec, "run_id", "") + " " + getattr(getattr(spec, "target", None), "workload", "")
            progress.update(task, completed=index, total=total, description=f"{label} {state}".strip())

        try:
            result = run_lab(plan, out, on_progress=report, **options)
        except (LabError, PlanError) as error:
            console.print(f"[red]error:[/red] {error}")
            raise typer.Exit(code=2) from error
        except KeyboardInterrupt:
            console.print("[yellow]interrupted; cgroups cleaned up; run the same command to resume[/yellow]")
            raise typer.Exit(code=130) from None
    console.print(
        f"{result.done} runs done, {result.skipped} already done before, {len(result.failed)} failed; "
        f"telemetry {'on' if result.telemetry else 'off (--no-telemetry)'}; {result.noise}"
    )
    if result.steadiness is not None:
        console.print(f"canary spread before the first run: {describe_spread(result.steadiness)}")
    for failure in result.failed:
        console.print(f"[red]failed[/red] {failure}")
    if result.stopped is not None:
        console.print(f"[yellow]stopped:[/yellow] {result.stopped}")
        raise typer.Exit(code=3)


@app.command("run")
def run(
    plan: Path = typer.Argument(..., exists=True, dir_okay=False, help="YAML plan"),
    out: Path = typer.Option(..., "--out", help="lab output directory (resumed if it exists)"),
    clean_stale: bool = typer.Option(False, help="kill and remove leftover lab cgroups of dead runs first"),
    allow_concurrent: bool = typer.Option(False, help="start even if another lab run is active"),
    telemetry: bool = typer.Option(True, help="run `cotenant collect` over the lab's cgroups"),
    max_runs: int | None = typer.Option(None, help="stop after this many new runs (pilot)"),
    part: str | None = typer.Option(
        None,
        help="measure part INDEX/COUNT of the plan (every solo reference, a share of the co-runs and "
        "probes): one sitting on one machine; pack the parts together",
    ),
    max_noise_pp: float | None = typer.Option(
        None,
        min=0,
        help="stop (resumable, exit code 3) once the median |1 - P| of the last solos against the earlier "
        "ones of their configuration passes this many pp: the machine has become too noisy to label",
    ),
    max_speed_spread: float | None = typer.Option(
        None,
        min=0,
        help="before the first run, sample the canary (sysbench cpu and memory) a few times and start only "
        "once each spreads no more than this many % (fastest - slowest over the median); waits up to "
        f"{STEADY_WAIT_S / 60:g} min, then stops (exit code 2) with nothing measured: the quiet gate "
        "cannot see a machine whose speed wanders under the guest",
    ),
) -> None:
    """Run (or resume) PLAN into OUT, with progress and ETA; Ctrl-C stops cleanly and can be resumed."""
    _run_with_progress(
        plan,
        out,
        allow_concurrent=allow_concurrent,
        clean_stale=clean_stale,
        telemetry=telemetry,
        max_runs=max_runs,
        part=_parse_part(part),
        max_noise_pp=max_noise_pp,
        max_speed_spread_pct=max_speed_spread,
    )


def _parse_part(text: str | None) -> PlanPart | None:
    """``--part INDEX/COUNT`` as a PlanPart; a bad one is a usage error naming the option."""
    if text is None:
        return None
    try:
        return PlanPart.parse(text)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--part") from error


@app.command("probe")
def probe(
    workload: str = typer.Argument(..., help="a catalogue workload, or a command defined in --commands"),
    out: Path = typer.Option(..., "--out", help="output directory (resumed if it exists)"),
    level: int = typer.Option(1, min=1, help="the workload's level (threads, clients, workers)"),
    cpus: float = typer.Option(
        Limits.model_fields["cpus"].default, help="CPU limit of the workload's cgroup, in cores"
    ),
    memory_mib: int = typer.Option(
        Limits.model_fields["memory_mib"].default, help="memory limit of the workload's cgroup"
    ),
    duration_s: int = typer.Option(12, min=2, help="length of each execution (the v2 plan's)"),
    solo_repeats: int = typer.Option(
        Plan.model_fields["solo_repeats"].default, min=2, help="solo references (the noise floor needs >= 2)"
    ),
    pressure: bool = typer.Option(True, help="also measure its pressure on the fixed victims"),
    commands: Path | None = typer.Option(
        None, exists=True, dir_okay=False, help="a plan whose `commands` section defines WORKLOAD"
    ),
    clean_stale: bool = typer.Option(False, help="kill and remove leftover lab cgroups of dead runs first"),
    allow_concurrent: bool = typer.Option(False, help="start even if another lab run is active"),
    telemetry: bool = typer.Option(True, help="record its telemetry (its solo profile)"),
    max_wait_s: float = typer.Option(
        QuietSpec.model_fields["max_wait_s"].default,
        min=0,
        help="longest wait for a quiet host before each run (0: measure the background, never wait)",
    ),
) -> None:
    """Onboard WORKLOAD: solo references, its sensitivity to each calibrated aggressor at two intensities,
    and its pressure on fixed victims, in a few minutes; writes OUT/probes.json and prints the vectors."""
    import json

    from cotenant.datasets.lab.plan import PlanError, load_plan, write_plan
    from cotenant.datasets.lab.probing import probe_plan, probe_vectors
    from cotenant.datasets.lab.records import read_journal
    from pydantic import ValidationError

    try:
        defined = load_plan(commands).commands if commands is not None else {}
        plan = probe_plan(
            workload,
            level,
            Limits(cpus=cpus, memory_mib=memory_mib),
            duration_s=duration_s,
            solo_repeats=solo_repeats,
            pressure=pressure,
            commands=defined,
            quiet=QuietSpec(max_wait_s=max_wait_s),
        )
    except (PlanError, ValidationError) as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(code=2) from error
    out.mkdir(parents=True, exist_ok=True)
    source = write_plan(plan, out / "probe-plan.yaml")
    _run_with_progress(
        source, out, allow_concurrent=allow_concurrent, clean_stale=clean_stale, telemetry=telemetry
    )
    sensitivity, pressing = probe_vectors(read_journal(out / "runs.jsonl"), plan)
    result = {"sensitivity": sensitivity.to_dicts(), "pressure": pressing.to_dicts()}
    (out / "probes.json").write_text(json.dumps(result, indent=2))
    Console().print(sensitivity)
    Console().print(pressing)


@app.command("plan-info")
def plan_info(
    plan: Path = typer.Argument(..., exists=True, dir_okay=False),
    overhead_s: float = typer.Option(RUN_OVERHEAD_S, help="measured per-run overhead used in the estimate"),
    part: str | None = typer.Option(None, help="count only part INDEX/COUNT of the plan"),
) -> None:
    """Counts of a plan and its estimated duration."""
    from cotenant.datasets.lab.plan import PlanError, load_plan, summarise

    chosen = _parse_part(part)
    try:
        loaded = load_plan(plan)
        summary = summarise(
            loaded if chosen is None else loaded.model_copy(update={"part": chosen}), overhead_s
        )
    except PlanError as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(code=2) from error
    table = Table(title=str(plan))
    table.add_column("item")
    table.add_column("value", justify="right")
    for name, value in vars(summary).items():
        shown = f"{value / 60:.1f} min" if name == "estimated_s" else str(value)
        table.add_row(name, shown)
    Console().print(table)


@app.command("labels")
def labels(out: Path = typer.Argument(..., exists=True, file_okay=False)) -> None:
    """Label distribution and noise floor of a lab output directory."""
    import polars as pl
    from cotenant.datasets.lab.labels import (
        label_runs,
        noise_floor,
        noise_floor_alternatives,
        noise_floor_by_application,
    )
    from cotenant.datasets.lab.records import read_journal

    records = read_journal(out / "runs.jsonl")
    table = label_runs(records)
    coruns = table.filter(pl.col("kind") == "corun")
    Console().print(
        coruns.group_by("application")
        .agg(
            pl.len().alias("coruns"),
            pl.col("label").median().alias("median_P"),
            pl.col("label").min().alias("min_P"),
        )
        .sort("application")
    )
    histogram = coruns["label"].hist(bins=[0.0, 0.3, 0.5, 0.7, 0.9, 0.95, 1.0])
    Console().print(histogram)
    Console().print(noise_floor(table).describe())
    for alternative, floor in noise_floor_alternatives(records).items():
        Console().print(f"{alternative} instead, {floor.describe()}")
    per_application = Table(title="noise floor per application (solo vs the other solos, pp)")
    for column in ("application", "solo runs", "median |1-P|", "p90 |1-P|"):
        per_application.add_column(column, justify="left" if column == "application" else "right")
    for application, floor in sorted(noise_floor_by_application(table).items()):
        per_application.add_row(
            application,
            str(floor.n_solo_pairs),
            f"{100 * floor.median_abs_deviation:.2f}",
            f"{100 * floor.p90_abs_deviation:.2f}",
        )
    Console().print(per_application)
    backgrounds = [record.background for record in records if record.background is not None]
    if backgrounds:
        busy = sorted(background.busy_cpus for background in backgrounds)
        waited = sum(background.waited_s for background in backgrounds)
        not_quiet = sum(not background.quiet for background in backgrounds)
        Console().print(
            f"background before {len(backgrounds)} runs: busy CPU median {busy[len(busy) // 2]:.3f} cores, "
            f"max {busy[-1]:.3f}; waited {waited / 60:.1f} min in all; {not_quiet} runs on a busy host"
        )
    from cotenant.datasets.sources.lab_records import overrun_text, records_frame

    Console().print(f"measurement windows: {overrun_text(records_frame(records))}")


@app.command("abtest")
def abtest(
    plan: Path = typer.Argument(
        ..., exists=True, dir_okay=False, help="an A/B test plan (plans/abtest.yaml)"
    ),
    out: Path = typer.Option(..., "--out", help="directory for the journal, logs and the report"),
    tracking_uri: str | None = typer.Option(
        None, help="MLflow registry with the placement champion (default: the local sqlite store)"
    ),
    probes_from: str = typer.Option(
        "bundled", help="dataset whose probe results are registered with each tenant's profile ('' for none)"
    ),
) -> None:
    """Closed loop: place a stream of real tenants on cpuset hosts by cotenant's extender, bin packing,
    spreading and random; run each placement for real; report measured P (and cotenant's predictions)."""
    import yaml
    from cotenant.datasets.lab.abtest import AbTestPlan
    from cotenant.datasets.lab.abtest_run import AbTestError, role_config, run_abtest, write_report
    from cotenant.datasets.lab.session import LabInterrupted
    from pydantic import ValidationError

    from cotenant.paths import default_tracking_uri

    try:
        parsed = AbTestPlan.model_validate(yaml.safe_load(plan.read_text()))
    except ValidationError as error:
        console.print(f"[red]error:[/red] {plan}: {error}")
        raise typer.Exit(code=2) from error
    probes: dict[str, dict[str, float]] = {}
    if probes_from:
        from cotenant.datasets import load_source
        from cotenant.datasets.tensors import probe_results

        table = load_source(probes_from)
        for tenant in parsed.tenants:
            if found := probe_results(table, role_config(parsed, tenant).config_key):
                probes[tenant.name] = found
    try:
        report = run_abtest(parsed, out, tracking_uri or default_tracking_uri(), probes, console.print)
    except (AbTestError, ValueError) as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(code=2) from error
    except (KeyboardInterrupt, LabInterrupted):
        console.print(
            "interrupted: every process stopped, every cgroup removed; measured runs in the journal"
        )
        raise typer.Exit(code=130) from None
    console.print(f"report: {write_report(report, out)}")


@app.command("timing")
def timing(out: Path = typer.Argument(..., exists=True, file_okay=False)) -> None:
    """Measured windows, per-run overhead and wall time per run of a lab directory (to size plans)."""
    from cotenant.datasets.lab.records import read_journal
    from cotenant.datasets.lab.timing import lab_timing

    Console().print(lab_timing(read_journal(out / "runs.jsonl")).describe())


@app.command("clean")
def clean() -> None:
    """Kill and remove leftover lab cgroups whose owning lab process is gone."""
    from cotenant.datasets.lab.session import clean_all

    removed = clean_all()
    console.print(f"removed {len(removed)} leftover lab cgroups: {', '.join(removed) or '-'}")


if (
    __name__ == "__main__"
):  # ``python -m cotenant.datasets.lab.cli``: the lab without the other areas' imports
    app()
