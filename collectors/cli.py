"""``cotenant collect``: sample the host, cgroups and processes into hive-partitioned Parquet.

Heavy imports (polars, the sources) happen inside the command so that ``cotenant --help`` stays fast.
"""

from __future__ import annotations

import gc
import logging
import signal
import socket
import threading
from pathlib import Path
from typing import Annotated

import typer
from cotenant.collectors.config import default


def _print_catalogue() -> None:
    from cotenant.collectors import catalogue
    from cotenant.collectors.selfstats import collector_specs
    from rich.console import Console
    from rich.table import Table

    table = Table("name", "unit", "source", "kind", "group", "description", title="cotenant metric catalogue")
    specs = catalogue()
    for spec in [*specs, *collector_specs([])]:
        table.add_row(
            spec.derived_name, spec.unit, spec.source, str(spec.kind), str(spec.group), spec.description
        )
    Console(width=200).print(table)
    Console(stderr=True).print(f"{len(specs)} metrics")


def profile_links(given: list[str]) -> dict[str, str]:
    """``--profile TARGET=PROFILE_ID`` options as target -> profile id (a bad one named in the error)."""
    links: dict[str, str] = {}
    for text in given:
        target, sep, profile_id = text.partition("=")
        if not sep or not target.strip() or not profile_id.strip():
            raise typer.BadParameter(f"{text!r} is not TARGET=PROFILE_ID", param_hint="--profile")
        links[target.strip().strip("/")] = profile_id.strip()
    return links


def collect(
    out: Annotated[
        Path | None, typer.Option("--out", help="output directory (hive-partitioned Parquet)")
    ] = None,
    cgroup: Annotated[
        list[str] | None, typer.Option("--cgroup", help="cgroup path relative to the root")
    ] = None,
    cgroup_glob: Annotated[
        list[str] | None, typer.Option("--cgroup-glob", help="glob of cgroups, re-evaluated every tick")
    ] = None,
    pid: Annotated[list[int] | None, typer.Option("--pid", help="process to sample (target pid:<n>)")] = None,
    interval: Annotated[float, typer.Option(help="seconds between samples")] = default("interval"),
    duration: Annotated[float | None, typer.Option(help="stop after this many seconds")] = None,
    segment_seconds: Annotated[
        float, typer.Option(help="seconds of samples per Parquet segment (kill -9 loses at most one)")
    ] = default("segment_seconds"),
    process_interval: Annotated[
        float, typer.Option(help="seconds between reads of per-process sources (tasks, task_sched)")
    ] = default("process_interval"),
    list_metrics: Annotated[bool, typer.Option("--list-metrics", help="print the metric catalogue")] = False,
    prometheus_port: Annotated[int | None, typer.Option(help="serve the latest sample on this port")] = None,
    push: Annotated[str | None, typer.Option("--push", help="service URL to push samples to")] = None,
    token: Annotated[str | None, typer.Option("--token", help="bearer token for --push")] = None,
    host_name: Annotated[str | None, typer.Option(help="host name sent with --push")] = None,
    compact: Annotated[
        bool,
        typer.Option(
            "--compact",
            help="with --push: every 5 s, per workload, the summaries the placement champion needs "
            "(about 2 KB) instead of a row a second; raw when the service has no schema to give",
        ),
    ] = False,
    profile: Annotated[
        list[str] | None,
        typer.Option(
            "--profile",
            help="with --push: TARGET=PROFILE_ID, the registered solo profile of a target as the collector "
            "names it (kubepods/pod1; repeatable): the service's host monitoring reads the target against it",
        ),
    ] = None,
    cgroup_root: Annotated[Path, typer.Option(help="cgroup filesystem root")] = Path("/sys/fs/cgroup"),
    procfs_root: Annotated[Path, typer.Option(help="procfs root")] = Path("/proc"),
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Sample host, cgroup and process telemetry every INTERVAL seconds into OUT, to the service (--push)
    and/or for Prometheus."""
    if list_metrics:
        _print_catalogue()
        return
    if out is None and push is None and prometheus_port is None:
        raise typer.BadParameter(
            "give at least one of --out (Parquet), --push (the service) or --prometheus-port",
            param_hint="--out",
        )
    if push and not token:
        raise typer.BadParameter("--push needs --token", param_hint="--token")
    if compact and not push:
        raise typer.BadParameter("--compact needs --push", param_hint="--compact")
    if profile and not push:
        raise typer.BadParameter("--profile needs --push", param_hint="--profile")
    profiles = profile_links(profile or [])
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(message)s"
    )

    from cotenant.collectors.base import Roots
    from cotenant.collectors.config import CollectorConfig
    from cotenant.collectors.rows import OutputError
    from cotenant.collectors.runner import Collector, Sink
    from cotenant.collectors.targets import TargetError
    from rich.console import Console

    console = Console(stderr=True, soft_wrap=True)
    try:
        config = CollectorConfig(
            out=out,
            cgroups=tuple(cgroup or ()),
            cgroup_globs=tuple(cgroup_glob or ()),
            pids=tuple(pid or ()),
            interval=interval,
            duration=duration,
            segment_seconds=segment_seconds,
            process_interval=process_interval,
            roots=Roots(procfs=procfs_root, cgroup=cgroup_root),
        )
        sinks: list[Sink] = []
        closers = []
        if prometheus_port is not None:
            from cotenant.collectors.prometheus import PrometheusSink

            prometheus = PrometheusSink(prometheus_port)
            sinks.append(prometheus)
            closers.append(prometheus.close)
        if push:
            from cotenant.collectors.push import Pusher

            pusher = Pusher(
                push, token or "", host_name or socket.gethostname(), compact=compact, profiles=profiles
            )
            sinks.append(pusher)
            closers.append(pusher.close)
        collector = Collector(config, sinks)
    except (TargetError, OutputError, ValueError) as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(code=2) from None
    for name, reason in collector.unavailable.items():
        console.print(f"[yellow]source {name} unavailable:[/yellow] {reason}")

    stop = threading.Event()

    def request_stop(signum: int, _frame: object) -> None:
        stop.set()  # the loop flushes what it has and returns; the exit status stays 0

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    targets = len(config.cgroups) + len(config.cgroup_globs) + len(config.pids)
    where = ", ".join(
        part
        for part in (
            f"into {out}" if out else "",
            f"pushing to {push}" if push else "",
            f"Prometheus on port {prometheus_port}" if prometheus_port is not None else "",
        )
        if part
    )
    console.print(f"collecting host + {targets} target selector(s) every {interval:g} s {where}")
    # Start-up objects (modules, specs, Polars) live as long as the process: keep them out of every
    # garbage collection the sampling loop's short-lived dicts trigger.
    gc.freeze()
    try:
        ticks = collector.run(stop)
    except OutputError as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(code=1) from None
    finally:
        for close in closers:
            close()
    written = f", {collector.writer.files_written} segment files in {out}" if collector.writer else ""
    console.print(f"done: {ticks} ticks{written}")
