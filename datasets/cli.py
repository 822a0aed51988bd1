"""``cotenant datasets``: pack a lab directory into the bundled dataset, and describe any source."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(no_args_is_help=True, help="Inspect and convert datasets.")
console = Console()


@app.command("pack")
def pack_command(
    lab_dirs: list[Path] = typer.Argument(
        ...,
        exists=True,
        file_okay=False,
        help="`cotenant lab run` output dir(s) or datasets packed from them (a campaign whose lab directory "
        "is gone): several campaigns are packed as one dataset, each labelled against its own solo runs.",
    ),
    out: Path = typer.Option(
        Path("datasets/bundled"), "--out", help="Where the packed RunTable and CARD.md go."
    ),
) -> None:
    """Pack lab output directories into the compact bundled dataset (zstd Parquet + CARD.md)."""
    from cotenant.datasets.pack import pack

    # Recorded in the card as typed for a relative --out; never with this machine's absolute paths.
    def shown(path: Path) -> str:
        return str(path if not path.is_absolute() else Path(path.name))

    command = f"cotenant datasets pack {' '.join(map(shown, lab_dirs))} --out {shown(out)}"
    try:
        table, sizes = pack(lab_dirs, out, command=command)
    except ValueError as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(code=2) from error
    console.print(
        f"packed {table.runs.height} co-runs, {table.profiles['profile_id'].n_unique()} profiles into {out} "
        f"({sum(sizes.values()) / 2**20:.2f} MiB); card: {out / 'CARD.md'}"
    )


@app.command("info")
def info_command(
    source: str = typer.Argument(
        ..., help="bundled | synthetic | a lab dir | a CloudPerfTrace tree | a RunTable dir"
    ),
) -> None:
    """Print applications, runs, label distribution and noise floor of a source."""
    from cotenant.datasets import load_source
    from cotenant.datasets.lab.labels import noise_text
    from cotenant.datasets.pack import summary

    try:
        table = load_source(source)
    except (FileNotFoundError, ValueError) as error:
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(code=1) from error
    facts = summary(table)
    console.print(
        f"[bold]{source}[/bold]: {facts['n_runs']} labelled runs, {facts['apps'].height} applications",
        soft_wrap=True,
    )
    apps = Table(title="applications")
    for column in ("application", "runs", "mean P", "min P"):
        apps.add_column(column, justify="left" if column == "application" else "right")
    for app_name, n, mean_p, min_p in facts["apps"].iter_rows():
        apps.add_row(app_name, str(n), f"{mean_p:.3f}", f"{min_p:.3f}")
    console.print(apps)
    runs = Table(title="runs")
    runs.add_column("by")
    runs.add_column("counts")
    runs.add_row("scenario", ", ".join(f"{k}: {v}" for k, v in facts["scenarios"].items()))
    runs.add_row("neighbours", ", ".join(f"{k}: {v}" for k, v in facts["neighbour_counts"].items()))
    runs.add_row("node cores", ", ".join(f"{k}: {v}" for k, v in facts["node_cores"].items()))
    if facts["runs_by_kind"]:
        runs.add_row("lab kind", ", ".join(f"{k}: {v}" for k, v in facts["runs_by_kind"].items()))
    runs.add_row("run-seconds", str(facts["seconds"]))
    runs.add_row("solo profiles", str(facts["profiles"]))
    runs.add_row("co-runs with an unprofiled neighbour", str(facts["unprofiled_neighbours"]))
    console.print(runs)
    labels = Table(title=f"label P (mean {facts['label_mean']:.3f})")
    labels.add_column("P")
    labels.add_column("runs", justify="right")
    labels.add_column("")
    peak = max((n for _, n in facts["label_histogram"]), default=1) or 1
    for bucket, n in facts["label_histogram"]:
        labels.add_row(bucket, str(n), "#" * round(30 * n / peak))
    console.print(labels)
    console.print(f"noise floor: {noise_text(facts['noise_floor'])}", soft_wrap=True)
    noise = facts["noise_floor"]
    for campaign, floor in (noise.get("by_campaign", {}) if isinstance(noise, dict) else {}).items():
        console.print(f"  campaign {campaign}: {noise_text(floor)}", soft_wrap=True)
