"""Extender ``prioritize`` latency over real HTTP vs a no-op BentoML endpoint, and a sustained load.

Both servers run as ``bentoml serve`` subprocesses on this machine; requests alternate between them so that
both see the same noise. The service's champions come from ``--tracking-uri`` (e.g. trained on ``bundled``),
or, by default, from a temporary store holding the real model classes at their default sizes with seeded
weights (latency does not depend on the weights' values).

    python benchmarks/serving_extender.py --nodes 500 --requests 1000 --load-seconds 60 [--challenger]
    python benchmarks/serving_extender.py --nodes 500 --requests 1000 --in-process

With ``--challenger`` the temporary store also holds a placement challenger, so the service runs in shadow
mode (the challenger scores every request in the background): the figures then include its cost.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from cotenant.serving.cli import serve_command
from cotenant.serving.config import ServiceSettings
from cotenant.serving.local_servers import free_port, start_server, stop_server, wait_ready
from cotenant.training.tracking import REGISTERED

TOKEN = "benchmark"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def start(command: list[str], env: dict[str, str], url: str, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        process = start_server(command, env, out)
    try:
        wait_ready(url, process, 600, log)
    except RuntimeError as error:
        stop_server(process)
        sys.exit(str(error))
    return process


def start_noop(port: int, log: Path) -> subprocess.Popen[bytes]:
    """The framework's floor: a BentoML endpoint that parses the body and does nothing (serving_noop.py)."""
    bentoml = str(Path(sys.executable).parent / "bentoml")
    command = [bentoml, "serve", "serving_noop:NoopService", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--working-dir", str(Path(__file__).parent)]
    return start(command, dict(os.environ), f"http://127.0.0.1:{port}", log)


def tree_rss_mib(pid: int) -> float:
    """Resident memory of a process and its descendants (the server's workers)."""
    total, pending = 0, [pid]
    while pending:
        current = pending.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            total += int(next(ln for ln in status.splitlines() if ln.startswith("VmRSS")).split()[1])
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except (OSError, StopIteration):
            continue
        pending.extend(int(child) for child in children)
    return total / 1024


def seeded_champions(root: Path, challenger: bool = False) -> str:
    """A store with both champions: the real model classes, default sizes, seeded weights (and, with
    ``challenger``, a second placement version under the challenger alias)."""
    import mlflow
    import polars as pl
    import torch
    from cotenant.datasets.splits import FeatureStats
    from cotenant.datasets.tensors import profile_summaries
    from cotenant.models.lstm import LstmConfig, LstmRegressor
    from cotenant.models.placement import PlacementConfig, PlacementModel
    from cotenant.models.predictor import Predictor, PredictorMetadata
    from mlflow import MlflowClient

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    groups = dict(zip(METRICS, ["cpu", "memory", "cache_membw", "io"], strict=True))
    profiles = pl.concat(pl.DataFrame({"profile_id": f"w{i}", **telemetry(rng, 20)}) for i in range(64))
    names, summary = profile_summaries(profiles, METRICS)
    placement_cfg = PlacementConfig()
    common: dict[str, Any] = {
        "family": "neural",
        "metrics": METRICS,
        "metric_groups": groups,
        "max_steps": 120,
    }
    placement = Predictor(
        PredictorMetadata(
            model_name="placement",
            task="placement",
            config=placement_cfg.model_dump(),
            features=names,
            host_metrics=[],
            feature_groups=[groups[n.rpartition("__")[0]] for n in names],
            normaliser=FeatureStats.fit(summary, names).to_dict(),
            n_inputs=len(names),
            **common,
        ),
        PlacementModel(len(names), placement_cfg).eval(),
    )
    features = [f"self__{m}" for m in METRICS] + [f"neighbour_mean__{m}" for m in METRICS]
    lstm_cfg = LstmConfig()
    rows = pl.DataFrame(rng.gamma(4.0, 0.25, size=(256, len(features))), schema=features)
    monitoring = Predictor(
        PredictorMetadata(
            model_name="lstm",
            task="monitoring",
            config=lstm_cfg.model_dump(),
            features=features,
            host_metrics=[],
            feature_groups=[groups[f.partition("__")[2]] for f in features],
            normaliser=FeatureStats.fit(rows, features).to_dict(),
            n_inputs=len(features),
            **common,
        ),
        LstmRegressor(len(features), lstm_cfg).eval(),
    )
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment = client.create_experiment("benchmark", artifact_location=str(root / "artifacts"))
    versions = [
        (REGISTERED["placement"], placement, "champion"),
        (REGISTERED["monitoring"], monitoring, "champion"),
    ]
    if challenger:
        torch.manual_seed(1)
        versions.append(
            (
                REGISTERED["placement"],
                Predictor(placement.metadata, PlacementModel(len(names), placement_cfg).eval()),
                "challenger",
            )
        )
    for index, (name, predictor, alias) in enumerate(versions):
        run = client.create_run(experiment)
        predictor.save(root / f"{name}-{index}")
        client.log_artifacts(run.info.run_id, str(root / f"{name}-{index}"), artifact_path="predictor")
        if not client.search_registered_models(f"name = '{name}'"):
            client.create_registered_model(name)
        version = client.create_model_version(name, f"{run.info.artifact_uri}/predictor", run.info.run_id)
        client.set_registered_model_alias(name, alias, version.version)
    del mlflow
    return uri


METRICS = [
    "cpu_usage_seconds_per_second",
    "memory_rss_bytes",
    "llc_misses_per_second",
    "io_read_bytes_per_second",
]


def telemetry(rng: np.random.Generator, seconds: int) -> dict[str, list[float]]:
    scales = np.array([0.8, 2e9, 5e7, 1e8]) * rng.uniform(0.2, 3)
    values = rng.gamma(4.0, 0.25, size=(seconds, len(METRICS))) * scales
    return {m: values[:, i].tolist() for i, m in enumerate(METRICS)}


def seed_hosts(url: str, nodes: int) -> list[str]:
    rng = np.random.default_rng(1)
    names = [f"node-{i:04d}" for i in range(nodes)]
    start = datetime.now(UTC) - timedelta(seconds=10)
    with httpx.Client(base_url=url, timeout=30, headers=AUTH) as client:
        for name in names:
            samples = [
                {
                    "timestamp": (start + timedelta(seconds=s)).isoformat(),
                    "target": f"pod{t}",
                    "metrics": {m: v[s] for m, v in telemetry(rng, 10).items()},
                }
                for t in range(int(rng.integers(1, 5)))
                for s in range(10)
            ]
            client.post("/ingest", json={"host": name, "samples": samples}).raise_for_status()
        client.post(
            "/register_profile", json={"profile_id": "web", "telemetry": telemetry(rng, 30)}
        ).raise_for_status()
    return names


def in_process(uri: str, nodes: int, requests: int) -> None:
    """The extender's work without HTTP: the service's own host store, profile store and scoring calls, on
    the same hosts and pod as the HTTP run (what ``prioritize`` does between parsing and the reply)."""
    from cotenant.serving import extender, scoring
    from cotenant.serving.hosts import HostStore
    from cotenant.serving.models import ChampionSource
    from cotenant.serving.profiles import ProfileStore
    from cotenant.serving.schemas import IngestSample

    settings = ServiceSettings(tracking_uri=uri)
    source = ChampionSource(settings)
    name = REGISTERED["placement"]
    placement = source.load(name, source.champion_version(name))
    hosts = HostStore(settings.window_samples, 86_400, max(settings.max_hosts, nodes))
    rng = np.random.default_rng(1)
    names = [f"node-{i:04d}" for i in range(nodes)]
    start = datetime.now(UTC) - timedelta(seconds=10)
    began = time.perf_counter()
    for name_ in names:
        samples = [
            IngestSample(
                timestamp=start + timedelta(seconds=s),
                target=f"pod{t}",
                metrics={m: v[s] for m, v in telemetry(rng, 10).items()},
            )
            for t in range(int(rng.integers(1, 5)))
            for s in range(10)
        ]
        hosts.apply(name_, samples, placement)
    ingest_ms = (time.perf_counter() - began) * 1000 / nodes
    profile = ProfileStore().register("web", telemetry(rng, 30), placement)
    newcomer = profile.encodings[placement.key]
    hosts.index(placement)

    def answer() -> str:
        return extender.prioritize_body(names, scoring.score_candidates(newcomer, names, hosts, placement))

    timings = []
    for _ in range(requests + 20):
        began = time.perf_counter()
        answer()
        timings.append(time.perf_counter() - began)
    p50, p99 = percentiles(timings[20:])
    print(f"in process, champion {placement.key}: {nodes} hosts ingested at {ingest_ms:.2f} ms per push")
    print(f"{'score + reply':<22}{p50:>10.2f}{p99:>10.2f}   (p50, p99 ms; goal at 500 nodes: <= 1 ms)")


def percentiles(samples: list[float]) -> tuple[float, float]:
    values = np.asarray(samples) * 1000
    return float(np.percentile(values, 50)), float(np.percentile(values, 99))


def latency(urls: dict[str, str], body: dict[str, Any], requests: int) -> dict[str, list[float]]:
    timings: dict[str, list[float]] = {name: [] for name in urls}
    clients = {name: httpx.Client(base_url=url, timeout=10) for name, url in urls.items()}
    for i in range(requests + 50):
        for name, client in clients.items():
            began = time.perf_counter()
            response = client.post("/prioritize", json=body)
            elapsed = time.perf_counter() - began
            response.raise_for_status()
            if i >= 50:  # warm-up
                timings[name].append(elapsed)
    return timings


def sustained(url: str, body: dict[str, Any], seconds: float, clients: int, pid: int) -> dict[str, float]:
    counts = {"ok": 0, "errors": 0}
    rss: list[float] = []
    stop_at = time.monotonic() + seconds
    lock = threading.Lock()

    def worker() -> None:
        with httpx.Client(base_url=url, timeout=10) as client:
            while time.monotonic() < stop_at:
                try:
                    ok = client.post("/prioritize", json=body).status_code == 200
                except httpx.HTTPError:
                    ok = False
                with lock:
                    counts["ok" if ok else "errors"] += 1

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    while time.monotonic() < stop_at:
        rss.append(tree_rss_mib(pid))
        time.sleep(1)
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - began
    return {
        "requests_per_s": counts["ok"] / elapsed,
        "errors": counts["errors"],
        "ok": counts["ok"],
        "rss_mib_max": max(rss),
        "rss_mib_median": float(np.median(rss)),
    }


def shadow_state(uri: str) -> str:
    """Whether the service shadows a challenger: the store has a placement version under that alias."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        found = MlflowClient(tracking_uri=uri).get_model_version_by_alias(
            REGISTERED["placement"], "challenger"
        )
    except MlflowException:
        return "off (no placement challenger)"
    return f"on (challenger version {found.version} scores every request in the background)"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tracking-uri", help="store with cotenant-* champions (default: seeded, temporary)")
    parser.add_argument("--nodes", type=int, default=500)
    parser.add_argument("--requests", type=int, default=1000, help="timed requests per endpoint")
    parser.add_argument("--load-seconds", type=float, default=60.0)
    parser.add_argument("--load-clients", type=int, default=4)
    parser.add_argument(
        "--challenger", action="store_true", help="seed a placement challenger: shadow mode on"
    )
    parser.add_argument(
        "--in-process", action="store_true", help="time the scoring calls without HTTP, then stop"
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="serving-bench-"))
    uri = args.tracking_uri or seeded_champions(work, args.challenger)
    if args.in_process:
        in_process(uri, args.nodes, args.requests)
        return
    # Stale hosts are answered without scoring: seeding 500 hosts on a loaded machine can take longer than the
    # default 30 s, so the benchmark keeps every host fresh to time the cached-state path it is about.
    settings = ServiceSettings(
        tracking_uri=uri,
        token=TOKEN,
        watch_interval_s=0,
        max_candidates=max(5000, args.nodes),
        stale_after_s=86_400,
    )
    port, noop_port = free_port(), free_port()
    command, env = serve_command("127.0.0.1", port, 1, settings.to_env(), [])
    url, noop_url = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{noop_port}"
    server = start(command, env, url, work / "service.log")
    noop = start_noop(noop_port, work / "noop.log")
    try:
        names = seed_hosts(url, args.nodes)
        pod = {
            "metadata": {"name": "bench", "namespace": "default", "labels": {"cotenant.io/profile": "web"}}
        }
        body = {"Pod": pod, "NodeNames": names}
        reply = httpx.post(f"{url}/prioritize", json=body, timeout=10).json()
        listed = httpx.post(f"{url}/list_hosts", json={}, timeout=30).json()["hosts"]
        scored = sum(1 for host in listed if not host["stale"])
        assert len(reply) == len(names)
        timings = latency({"cotenant": url, "noop": noop_url}, body, args.requests)
        (p50, p99), (n50, n99) = percentiles(timings["cotenant"]), percentiles(timings["noop"])
        print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} (shared, noisy)")
        print(f"shadow mode: {shadow_state(uri)}")
        print(
            f"prioritize, {args.nodes} nodes ({scored} fresh), {args.requests} requests each, "
            "sequential, alternating"
        )
        print(f"{'endpoint':<22}{'p50 ms':>10}{'p99 ms':>10}")
        print(f"{'cotenant /prioritize':<22}{p50:>10.2f}{p99:>10.2f}")
        print(f"{'no-op BentoML':<22}{n50:>10.2f}{n99:>10.2f}")
        print(f"{'ratio':<22}{p50 / n50:>10.2f}{p99 / n99:>10.2f}   (goal: p99 <= 10 ms and <= 2x no-op)")
        if args.load_seconds > 0:
            result = sustained(url, body, args.load_seconds, args.load_clients, server.pid)
            print(
                f"sustained {args.load_seconds:.0f} s, {args.load_clients} clients, {args.nodes} nodes: "
                f"{result['requests_per_s']:.1f} req/s, {result['errors']:.0f} errors of "
                f"{result['ok'] + result['errors']:.0f}, RSS median {result['rss_mib_median']:.0f} MiB, "
                f"max {result['rss_mib_max']:.0f} MiB"
            )
    finally:
        stop_server(server)
        stop_server(noop)


if __name__ == "__main__":
    main()
