"""Collector overhead, side by side with Debian's prometheus-node-exporter in the same run.

Creates N cgroups (default 20) each running a light real load (``stress-ng --cpu 1 --cpu-load 3``), starts
``cotenant collect`` on host + those cgroups at 1 Hz and node_exporter on 127.0.0.1 (scraped at 1 Hz by this
script), and after start-up measures, per process, CPU seconds per second from /proc/<pid>/stat (utime +
stime), CPU per metric value, and RSS growth. The collector's tick lateness p99 comes from its ``collector``
table.
Prints a table with medians over windows (the machine may be shared: medians resist bursts); never asserts.
With ``--push`` the collector runs as a node's agent does: it pushes each tick to an ingest endpoint (a sink
in this script that counts the values it receives) instead of writing Parquet, which is the lab's path.
Tick lateness is then not reported (the collector keeps its own table local). With ``--compact`` too, the
agent pushes per cgroup the summaries of a feature schema (every per-cgroup metric it sent raw, over 120 s),
as to a champion that reads them all; the sink reports the bytes per target per push, raw and compact. The
agent asks for the schema once a minute while it has none, so compact runs warm up past that minute.

    python benchmarks/collector_overhead.py [--duration 600] [--cgroups 20] [--window 10] [--push [--compact]]

Every process and cgroup it creates is removed on exit, Ctrl-C and SIGTERM included.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

GOALS = {"cpu": "<= 1% of one core", "per_value": "<= node_exporter", "rss": "< 5%", "jitter": "<= 50 ms"}
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
READY_LINE = "collecting host"  # printed by `cotenant collect` once its sources are open
LATENESS_COLUMN = "collector_tick_lateness_seconds"  # the collector's self-observation (selfstats.py)
SEGMENT_S = 30.0  # ``cotenant collect --segment-seconds`` default


@dataclass
class BenchConfig:
    duration_s: float = 600.0
    cgroups: int = 20
    load_percent: int = 3
    # After the collector's start line. It covers the first segment flush (30 s segments by default):
    # Polars sets up its thread pools and allocator arenas there, a one-off step that would read as RSS
    # growth if the first window fell before it.
    warmup_s: float = SEGMENT_S + 15.0
    window_s: float = 10.0
    interval_s: float = 1.0
    cgroup_root: Path = Path("/sys/fs/cgroup")
    node_exporter: str = "prometheus-node-exporter"
    run_collector: bool = True
    process_interval_s: float = 5.0  # ``cotenant collect --process-interval``: per-process sources
    segment_s: float = SEGMENT_S
    push: bool = False  # push to an ingest sink (a node's agent) instead of writing Parquet (the lab)
    compact: bool = False  # with push: compact summaries in the sink's feature schema


def wait_until_collecting(collector: subprocess.Popen[bytes], log: Path, timeout_s: float = 180.0) -> None:
    """Start-up (imports, opening sources) is not steady-state cost: wait for the CLI's start line."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        if READY_LINE in text:
            return
        if collector.poll() is not None:
            raise RuntimeError(f"cotenant collect exited with {collector.returncode}:\n{text[-3000:]}")
        time.sleep(0.2)
    raise RuntimeError(f"cotenant collect did not print {READY_LINE!r} within {timeout_s:g} s")


def process_cpu_seconds(pid: int) -> float:
    """utime + stime (+ reaped children) of a process, from /proc/<pid>/stat."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()  # the command name may hold spaces and parentheses
    return sum(int(value) for value in fields[11:15]) / CLOCK_TICKS


def process_rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def count_prometheus_samples(text: str) -> int:
    """Samples in a Prometheus text exposition: every non-blank line that is not a # HELP/TYPE comment."""
    return sum(1 for line in text.splitlines() if line and not line.startswith("#"))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


@dataclass
class Workloads:
    """The benchmark's cgroups (in cgroup2 and each mounted v1 controller) and their stress-ng loads."""

    config: BenchConfig
    name: str = field(default_factory=lambda: f"cotenant-overhead-{uuid.uuid4().hex[:8]}")
    hierarchies: list[Path] = field(default_factory=list)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self) -> None:
        from cotenant.datasets.lab.cgroups import detect_hierarchy

        # The lab's hierarchies (the collector's detection, less cpuset, which needs cpus set to join).
        self.hierarchies = detect_hierarchy(self.config.cgroup_root).directories("")
        for index in range(self.config.cgroups):
            directories = [h / self.name / f"w{index:02d}" for h in self.hierarchies]
            for directory in directories:
                directory.mkdir(parents=True, exist_ok=True)
            join = "; ".join(f'echo $$ > "{d}/cgroup.procs"' for d in directories)
            # A bounded lifetime: should this script be SIGKILLed, its loads still end on their own.
            lifetime = int(self.config.warmup_s + self.config.duration_s + 600)
            load = f"exec stress-ng --cpu 1 --cpu-load {self.config.load_percent} --timeout {lifetime}"
            self.processes.append(
                subprocess.Popen(
                    ["sh", "-c", f"{join}; {load}"],
                    start_new_session=True,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )

    def stop(self) -> None:
        stop_processes(self.processes)
        for hierarchy in self.hierarchies:
            parent = hierarchy / self.name
            for directory in [*sorted(parent.glob("w*")), parent]:
                remove_cgroup(directory)


def stop_processes(processes: list[subprocess.Popen[bytes]], grace_s: float = 30.0) -> None:
    """SIGTERM each process group (a collector flushes on it), then SIGKILL what is left."""
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for process in processes:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def remove_cgroup(directory: Path) -> None:
    for _ in range(100):  # busy while killed tasks are being reaped
        try:
            directory.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.05)
    print(f"warning: could not remove cgroup {directory}", file=sys.stderr)


class IngestSink:
    """``POST /ingest`` on loopback, as the service takes it: counts the metric values and targets of every
    tick it receives (by the sample timestamp) and answers 200."""

    def __init__(self) -> None:
        import json
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        from cotenant.collectors.summaries import PACKING, SUMMARIES, schema_id

        self.per_tick: dict[str, list[int]] = {}  # ISO timestamp -> [values, targets]
        self.cgroup_metrics: set[str] = set()
        self.raw_bytes_per_target: list[float] = []  # per push: body bytes / targets in it
        self.compact_bytes_per_target: list[float] = []  # per compact push: each summary's JSON bytes
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length", 0)))
                if self.path == "/feature_schema":
                    self.reply(*sink.schema())
                    return
                body = json.loads(raw)
                samples = body.get("samples", [])
                for sample in samples:
                    counts = sink.per_tick.setdefault(sample["timestamp"], [0, 0])
                    counts[0] += len(sample["metrics"])
                    counts[1] += 1
                    if sample["target"] != "host":
                        sink.cgroup_metrics.update(sample["metrics"])
                summaries = body.get("summaries", [])
                if summaries:
                    sink.compact_bytes_per_target.extend(len(json.dumps(s)) for s in summaries)
                elif samples:
                    sink.raw_bytes_per_target.append(len(raw) / len({s["target"] for s in samples}))
                self.reply(200, {"accepted": len(samples), "summaries": len(summaries)})

            def reply(self, status: int, answer: dict[str, object]) -> None:
                reply = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: object) -> None:  # no access log on stderr
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

        self.schema_parts = (PACKING, list(SUMMARIES), schema_id)

    def schema(self) -> tuple[int, dict[str, object]]:
        """A feature schema of every per-cgroup metric seen (503 until a raw push has shown them)."""
        packing, statistics_, schema_id = self.schema_parts
        if not self.cgroup_metrics:
            return 503, {"error": "no raw push seen yet"}
        metrics = sorted(self.cgroup_metrics)
        return 200, {
            "schema_id": schema_id(metrics, 120),
            "model_version": "bench",
            "metrics": metrics,
            "statistics": statistics_,
            "window_seconds": 120,
            "packing": packing,
            "values_per_target": len(metrics) * len(statistics_),
        }

    def figures(self, window: tuple[float, float]) -> dict[str, float]:
        """The same figures as ``collection_figures`` reads from Parquet, from what was pushed."""
        ticks = {datetime.fromisoformat(at).timestamp(): counts for at, counts in self.per_tick.items()}
        figures: dict[str, float] = {}
        if ticks:
            figures["values_per_sample"] = statistics.median(values for values, _ in ticks.values())
            figures["targets_per_sample"] = statistics.median(targets for _, targets in ticks.values())
        inside = [values for at, (values, _) in ticks.items() if window[0] <= at < window[1]]
        figures["values_in_window"] = float(sum(inside))
        figures["samples_in_window"] = float(len(inside))
        if self.raw_bytes_per_target:
            figures["raw_bytes_per_target_push"] = statistics.median(self.raw_bytes_per_target)
        if self.compact_bytes_per_target:
            figures["compact_bytes_per_target_push"] = statistics.median(self.compact_bytes_per_target)
        return figures

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Scraper(threading.Thread):
    """Scrapes node_exporter at 1 Hz, aligned to wall-clock seconds, as Prometheus would."""

    def __init__(self, url: str, interval_s: float) -> None:
        super().__init__(daemon=True)
        self.url, self.interval_s = url, interval_s
        self.scrapes: list[tuple[float, int]] = []  # (wall time, samples) of each successful scrape
        self.failures: list[str] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        import httpx

        # Prometheus' default scrape timeout; no proxy from the environment for a loopback address.
        with httpx.Client(timeout=10.0, trust_env=False) as client:
            while not self.stopping.wait(self.interval_s - time.time() % self.interval_s):
                try:
                    response = client.get(self.url)
                    response.raise_for_status()
                    self.scrapes.append((time.time(), count_prometheus_samples(response.text)))
                except Exception as error:  # a failed scrape is counted, never ends the benchmark
                    self.failures.append(f"{type(error).__name__}: {error}")


@dataclass
class Usage:
    """Per-window CPU share of one core and RSS of one process, after warm-up."""

    cpu_share: list[float] = field(default_factory=list)
    cpu_seconds: float = 0.0  # over the whole measured window
    rss_bytes: list[int] = field(default_factory=list)


def measure(pids: dict[str, int], config: BenchConfig) -> tuple[dict[str, Usage], tuple[float, float]]:
    """Per-window CPU and RSS of each process, and the measured window in wall-clock seconds."""
    usage = {name: Usage() for name in pids}
    time.sleep(config.warmup_s)
    started = time.time()
    previous = {name: (time.monotonic(), process_cpu_seconds(pid)) for name, pid in pids.items()}
    end = time.monotonic() + config.duration_s
    while time.monotonic() < end:
        time.sleep(min(config.window_s, max(0.0, end - time.monotonic())))
        for name, pid in pids.items():
            now, cpu = time.monotonic(), process_cpu_seconds(pid)
            then, cpu_then = previous[name]
            usage[name].cpu_share.append((cpu - cpu_then) / (now - then))
            usage[name].cpu_seconds += cpu - cpu_then
            usage[name].rss_bytes.append(process_rss_bytes(pid))
            previous[name] = (now, cpu)
    return usage, (started, time.time())


def collection_figures(out: Path, window: tuple[float, float]) -> tuple[dict[str, float], str]:
    """Values per sample (non-null metric cells over host + targets per timestamp), values and samples
    written within the measured window, and tick lateness p99."""
    import polars as pl

    figures: dict[str, float] = {}
    frame = pl.scan_parquet(out, hive_partitioning=True)
    data = frame.filter(pl.col("table").is_in(["host", "cgroup"])).collect()
    metrics = [c for c, t in data.schema.items() if t == pl.Float64]
    present = pl.sum_horizontal(
        [(pl.col(c).is_not_null() & pl.col(c).is_not_nan()).cast(pl.Int64) for c in metrics]
    )
    per_tick = data.group_by("timestamp").agg(
        present.sum().alias("values"), pl.col("target").n_unique().alias("n")
    )
    figures["values_per_sample"] = statistics.median(per_tick["values"].to_list())
    figures["targets_per_sample"] = statistics.median(per_tick["n"].to_list())
    start, end = (datetime.fromtimestamp(t, UTC) for t in window)
    in_window = per_tick.filter((pl.col("timestamp") >= start) & (pl.col("timestamp") < end))
    figures["values_in_window"] = float(in_window["values"].sum())
    figures["samples_in_window"] = float(in_window.height)
    observations = frame.filter(pl.col("table") == "collector").collect()
    late = [c for c in observations.columns if c == LATENESS_COLUMN]
    if late:
        lateness = observations[late[0]].drop_nulls().to_list()
        if lateness:
            figures["jitter_p99_ms"] = percentile([abs(x) for x in lateness], 0.99) * 1000
    for column in observations.columns:  # where the time goes: each source's read (and CPU) time per tick
        for suffix, key in (("_duration_seconds", "source_ms"), ("_cpu_seconds", "source_cpu_ms")):
            if column.startswith("collector_source_") and column.endswith(suffix):
                durations = observations[column].drop_nulls().to_list()
                if durations:
                    source = column.removeprefix("collector_source_").removesuffix(suffix)
                    figures[f"{key}_median:{source}"] = statistics.median(durations) * 1000
                    figures[f"{key}_p99:{source}"] = percentile(durations, 0.99) * 1000
    return figures, (late[0] if late else "none found")


def run(config: BenchConfig) -> None:
    workloads = Workloads(config)
    processes: list[subprocess.Popen[bytes]] = []
    scraper: Scraper | None = None
    sink: IngestSink | None = None
    out = Path(tempfile.mkdtemp(prefix="cotenant-overhead-"))
    try:
        workloads.start()
        port = free_port()
        exporter = subprocess.Popen(
            [config.node_exporter, f"--web.listen-address=127.0.0.1:{port}"],
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        processes.append(exporter)
        pids = {"node_exporter": exporter.pid}
        if config.run_collector:
            glob = f"{workloads.name}/*"
            command = [
                sys.executable,
                "-m",
                "cotenant",  # as the `cotenant` command starts it: the agent path (cotenant/entry.py)
                "collect",
                "--cgroup-glob",
                glob,
                "--interval",
                str(config.interval_s),
                "--process-interval",
                str(config.process_interval_s),
            ]
            if config.push:
                sink = IngestSink()
                command += ["--push", sink.url, "--token", "bench", "--host-name", "bench"]
                command += ["--compact"] if config.compact else []
            else:
                command += ["--segment-seconds", str(config.segment_s), "--out", str(out / "collection")]
            log = (out / "collector.log").open("wb")
            collector = subprocess.Popen(
                command, start_new_session=True, stdout=log, stderr=subprocess.STDOUT
            )
            processes.append(collector)
            pids["cotenant collect"] = collector.pid
            wait_until_collecting(collector, out / "collector.log")
        scraper = Scraper(f"http://127.0.0.1:{port}/metrics", config.interval_s)
        scraper.start()
        load_before = os.getloadavg()
        usage, window = measure(pids, config)
        load_after = os.getloadavg()
        scraper.stopping.set()
        stop_processes(processes)
        if config.run_collector and processes[-1].returncode != 0:
            log_tail = (out / "collector.log").read_text(errors="replace").splitlines()[-15:]
            print(
                f"note: collector exit code {processes[-1].returncode} (0 expected after SIGTERM); log tail:",
                *log_tail,
                sep="\n",
                file=sys.stderr,
            )
        if sink is not None:
            figures, jitter_column = sink.figures(window), "not pushed (the collector keeps its table local)"
        elif config.run_collector:
            figures, jitter_column = collection_figures(out / "collection", window)
        else:
            figures, jitter_column = {}, ""
        in_window = [samples for at, samples in scraper.scrapes if window[0] <= at < window[1]]
        figures["node_exporter_values_in_window"] = float(sum(in_window))
        figures["node_exporter_samples_in_window"] = float(len(in_window))
        scraped = [samples for _at, samples in scraper.scrapes]
        print_report(config, usage, scraped, figures, (load_before, load_after), window)
        for key in ("raw_bytes_per_target_push", "compact_bytes_per_target_push"):
            if key in figures:
                print(f"{key.replace('_', ' ')}: {figures[key]:.0f} B (median)")
        print(
            f"lateness column read: {jitter_column or 'n/a'}; node_exporter scrapes: "
            f"{len(scraper.scrapes)} ok, {len(scraper.failures)} failed "
            f"{scraper.failures[-1:] if scraper.failures else ''}"
        )
    finally:
        if scraper is not None:
            scraper.stopping.set()
        stop_processes(processes)
        if sink is not None:
            sink.close()
        workloads.stop()
        shutil.rmtree(out, ignore_errors=True)


def print_report(
    config: BenchConfig,
    usage: dict[str, Usage],
    scrapes: list[int],
    figures: dict[str, float],
    load: tuple[tuple[float, ...], tuple[float, ...]],
    window: tuple[float, float],
) -> None:
    from rich.console import Console
    from rich.table import Table

    values = {"node_exporter": float(statistics.median(scrapes)) if scrapes else float("nan")}
    values["cotenant collect"] = figures.get("values_per_sample", float("nan"))
    title = (
        f"Collector overhead: host + {config.cgroups} cgroups at {1 / config.interval_s:g} Hz, "
        f"{config.duration_s:g} s after {config.warmup_s:g} s warm-up, medians of {config.window_s:g} s"
    )
    table = Table(title=title)
    table.add_column("figure")
    for name in usage:
        table.add_column(name, justify="right")
    table.add_column("goal (collector)")

    def row(label: str, cells: list[str], goal: str = "") -> None:
        table.add_row(label, *cells, goal)

    cpu = {n: statistics.median(u.cpu_share) for n, u in usage.items()}
    row("CPU, % of one core (median)", [f"{cpu[n] * 100:.2f}" for n in usage], GOALS["cpu"])
    row("CPU, % of one core (max window)", [f"{max(u.cpu_share) * 100:.2f}" for u in usage.values()])
    row("metric values per sample (median)", [f"{values[n]:.0f}" for n in usage])
    # Per value delivered in the window, so that skipped ticks or slow scrapes do not flatter either side.
    prefix = {"node_exporter": "node_exporter_", "cotenant collect": ""}
    delivered = {n: figures.get(f"{prefix[n]}values_in_window", float("nan")) for n in usage}
    samples = {n: figures.get(f"{prefix[n]}samples_in_window", float("nan")) for n in usage}
    expected = (window[1] - window[0]) / config.interval_s
    row("samples delivered in window / expected", [f"{samples[n]:.0f} / {expected:.0f}" for n in usage])
    row(
        "CPU µs per metric value delivered",
        [f"{usage[n].cpu_seconds / delivered[n] * 1e6:.2f}" if delivered[n] else "n/a" for n in usage],
        GOALS["per_value"],
    )
    row(
        "RSS first -> last window, MiB",
        [f"{u.rss_bytes[0] / 2**20:.1f} -> {u.rss_bytes[-1] / 2**20:.1f}" for u in usage.values()],
    )
    # A segment flush briefly holds a segment's frames: single windows swing with the flush phase, so the
    # trend is the peak of the first minute against the peak of the last (each spans two flushes).
    peaks = {n: rss_peaks(u.rss_bytes, config) for n, u in usage.items()}
    row(
        "RSS peak first -> last minute, MiB",
        [f"{a / 2**20:.1f} -> {b / 2**20:.1f}" for a, b in peaks.values()],
    )
    row(
        "RSS growth (minute peaks), %", [f"{(b - a) / a * 100:+.1f}" for a, b in peaks.values()], GOALS["rss"]
    )
    jitter = figures.get("jitter_p99_ms")
    row(
        "tick lateness p99, ms",
        ["n/a" if n == "node_exporter" or jitter is None else f"{jitter:.1f}" for n in usage],
        GOALS["jitter"],
    )
    targets = f"{figures.get('targets_per_sample', 0):.0f}"
    row("targets per sample (median)", ["1" if n == "node_exporter" else targets for n in usage])
    console = Console(width=130)
    console.print(table)
    sources = Table(title="collector: time per source per tick, all targets (CPU: the reading thread's)")
    for column in ("source", "wall median ms", "wall p99 ms", "CPU median ms"):
        sources.add_column(column, justify="left" if column == "source" else "right")
    medians = {k.partition(":")[2]: v for k, v in figures.items() if k.startswith("source_ms_median:")}
    for source, median in sorted(medians.items(), key=lambda item: -item[1]):
        cpu_ms = figures.get(f"source_cpu_ms_median:{source}")
        sources.add_row(source, f"{median:.2f}", f"{figures[f'source_ms_p99:{source}']:.2f}",
                        "n/a" if cpu_ms is None else f"{cpu_ms:.2f}")  # fmt: skip
    if medians:
        console.print(sources)
    for name, each in usage.items():
        print(f"RSS peak per minute, MiB, {name}: {rss_minutes(each.rss_bytes, config)}")
    print(f"load average before/after: {load[0][0]:.2f} / {load[1][0]:.2f} on {os.cpu_count()} CPUs")


def rss_peaks(rss_bytes: list[int], config: BenchConfig) -> tuple[int, int]:
    """Peak RSS of the first and of the last minute of windows (the whole run when shorter)."""
    per_minute = max(1, round(60.0 / config.window_s))
    return max(rss_bytes[:per_minute]), max(rss_bytes[-per_minute:])


def rss_minutes(rss_bytes: list[int], config: BenchConfig) -> str:
    """Peak RSS of each minute in MiB, to tell a trend from the flush cycle's swing."""
    per_minute = max(1, round(60.0 / config.window_s))
    chunks = [rss_bytes[i : i + per_minute] for i in range(0, len(rss_bytes), per_minute)]
    return " ".join(f"{max(chunk) / 2**20:.0f}" for chunk in chunks)


def parse_args(argv: list[str] | None = None) -> BenchConfig:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=600.0, help="measured seconds after warm-up")
    parser.add_argument("--cgroups", type=int, default=20)
    parser.add_argument("--load-percent", type=int, default=3, help="stress-ng --cpu-load per cgroup")
    parser.add_argument(
        "--warmup",
        type=float,
        default=None,
        help="seconds before measuring (default: segment + 15 s, past the first segment flush)",
    )
    parser.add_argument(
        "--process-interval", type=float, default=5.0, help="collector: per-process sources' period"
    )
    parser.add_argument("--segment-seconds", type=float, default=SEGMENT_S, help="collector: segment length")
    parser.add_argument("--window", type=float, default=10.0, help="CPU/RSS measurement window, seconds")
    parser.add_argument("--no-collector", action="store_true", help="measure node_exporter only")
    parser.add_argument(
        "--push", action="store_true", help="collector pushes to an ingest sink (a node's agent)"
    )
    parser.add_argument(
        "--compact", action="store_true", help="with --push: compact summaries (--compact) instead of rows"
    )
    args = parser.parse_args(argv)
    return BenchConfig(
        duration_s=args.duration,
        cgroups=args.cgroups,
        load_percent=args.load_percent,
        warmup_s=default_warmup(args) if args.warmup is None else args.warmup,
        window_s=min(args.window, args.duration),
        run_collector=not args.no_collector,
        process_interval_s=args.process_interval,
        segment_s=args.segment_seconds,
        push=args.push,
        compact=args.compact,
    )


def default_warmup(args: argparse.Namespace) -> float:
    """Past the first Parquet segment; with --compact also past the agent's first schema retry (it pushes raw
    until the sink has seen its metrics and it asks again)."""
    from cotenant.collectors.push import SCHEMA_RETRY_S

    return args.segment_seconds + 15.0 + (SCHEMA_RETRY_S if args.compact else 0.0)


def main(argv: list[str] | None = None) -> None:
    config = parse_args(argv)

    def terminate(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")  # unwinds through run()'s cleanup

    signal.signal(signal.SIGTERM, terminate)
    try:
        run(config)
    except KeyboardInterrupt:
        print("interrupted: processes and cgroups removed", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
