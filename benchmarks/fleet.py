"""A fleet on loopback: simulated nodes pushing at the real cadence, the scheduler asking at the same time.

Every node pushes what ``cotenant collect --push --compact`` sends (its host rows for the interval and one
summary per pod in the champion's feature schema; ``--raw``: every pod's per-second rows) every
``--push-interval`` seconds, each at its own phase; meanwhile ``/prioritize`` is called at ``--rate`` per
second with ``--candidates`` random nodes, alternating with a no-op BentoML endpoint at the same rate (the
framework's floor, measured in the same seconds). Fleets grow (``--nodes``) until one is not sustained.

Per fleet size and deployment (``--deployments``: ``1`` one replica with in-process state, ``1r`` one replica
on Redis, ``2r`` two replicas sharing one Redis; nodes push to replica ``i mod R``, the scheduler asks them in
turn; ``2s`` two replicas sharing one Redis with their roles apart: every node pushes to the first, the
scheduler asks the second, which only applies the log's already-encoded pushes) it reports: pushes achieved /
offered, push p99, ingest CPU per node per second (service CPU in a push-only phase), service RSS per node,
extender p50/p99 against the no-op's, Redis CPU, memory (the shared log's retained entries) and round trip.

A fleet is *sustained* when >= 95% of the offered pushes complete without error, push p99 stays under the
interval, and extender p99 <= 2 x the no-op's p99. Load generation runs in this process on the same machine
(a raw HTTP/1.1 keep-alive client on asyncio, pre-built bodies): its CPU is reported too, since it competes
with the service for the same cores.

    python benchmarks/fleet.py --nodes 250,1000,2500,5000 --deployments 1,2r --seconds 30
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from cotenant.collectors.summaries import FeatureSchema, pack, summarise
from cotenant.serving.cli import serve_command
from cotenant.serving.config import ServiceSettings
from cotenant.serving.local_servers import RedisServer, free_port, stop_server
from serving_extender import AUTH, TOKEN, seeded_champions, start, start_noop, tree_rss_mib

HOST_METRICS = ["host_cpu_busy_ratio", "host_memory_available_bytes", "host_psi_cpu_some_avg10"]


# ---- a raw HTTP/1.1 client: a few hundred microseconds of this process per request, not milliseconds ------
class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def post(self, path: str, body: bytes, headers: str = "") -> tuple[int, bytes]:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n{headers}"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        self.writer.write(head.encode() + body)
        status_line = await self.reader.readline()
        length = 0
        chunked = False
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            if name.lower() == "content-length":
                length = int(value)
            elif name.lower() == "transfer-encoding" and "chunked" in value.lower():
                chunked = True
        if chunked:
            payload = b""
            while (size := int((await self.reader.readline()).strip() or b"0", 16)) > 0:
                payload += await self.reader.readexactly(size + 2)
            await self.reader.readline()
        else:
            payload = await self.reader.readexactly(length)
        return int(status_line.split()[1]), payload


class Pool:
    """Keep-alive connections to one server; a request takes a free one (or waits)."""

    def __init__(self, port: int, size: int) -> None:
        self.port, self.size = port, size
        self.free: asyncio.Queue[Connection] = asyncio.Queue()

    async def open(self) -> Pool:
        for _ in range(self.size):
            self.free.put_nowait(Connection(*await asyncio.open_connection("127.0.0.1", self.port)))
        return self

    async def post(self, path: str, body: bytes, headers: str = "") -> tuple[int, bytes]:
        connection = await self.free.get()
        try:
            result = await connection.post(path, body, headers)
        except (OSError, asyncio.IncompleteReadError, ValueError):
            connection = Connection(*await asyncio.open_connection("127.0.0.1", self.port))
            raise
        finally:
            self.free.put_nowait(connection)
        return result

    def close(self) -> None:
        while not self.free.empty():
            self.free.get_nowait().writer.close()


# ---- what the nodes send ----------------------------------------------------------------------------------
def fetch_schema(url: str) -> FeatureSchema:
    body = httpx.post(f"{url}/feature_schema", timeout=30).raise_for_status().json()
    return FeatureSchema(body["schema_id"], body["metrics"], body["window_seconds"])


def push_template(schema: FeatureSchema, pods: int, interval_s: int, raw: bool, seed: int) -> bytes:
    """One node's push with ``__HOST__`` in place of its name (names are substituted per node)."""
    rng = np.random.default_rng(seed)
    now = datetime.now(UTC)
    seconds = [(now - timedelta(seconds=interval_s - s)).isoformat() for s in range(interval_s)]
    host_rows = [
        {"timestamp": t, "target": "host", "metrics": {m: float(rng.uniform(0, 1)) for m in HOST_METRICS}}
        for t in seconds
    ]
    body: dict[str, Any] = {"host": "__HOST__"}
    windows = rng.gamma(4.0, 0.25, size=(pods, schema.window_seconds, len(schema.metrics)))
    windows *= rng.uniform(0.2, 3.0, size=(pods, 1, len(schema.metrics))) * 10.0 ** rng.integers(
        -2, 9, size=(1, 1, len(schema.metrics))
    )
    if raw:
        pod_rows = [
            {
                "timestamp": t,
                "target": f"kubepods/pod{p}",
                "metrics": dict(zip(schema.metrics, windows[p, -interval_s + s].tolist(), strict=True)),
            }
            for p in range(pods)
            for s, t in enumerate(seconds)
        ]
        body["samples"] = host_rows + pod_rows
    else:
        body["samples"] = host_rows
        body["schema_id"] = schema.schema_id
        body["summaries"] = [
            {
                "target": f"kubepods/pod{p}",
                "timestamp": seconds[-1],
                "seconds": schema.window_seconds,
                "values": pack(summarise(windows[p])),
            }
            for p in range(pods)
        ]
    return json.dumps(body, separators=(",", ":")).encode()


def node_name(i: int) -> str:
    return f"node-{i:05d}"


# ---- measuring ---------------------------------------------------------------------------------------------
def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its descendants (a bentoml server's workers)."""
    total, pending = 0.0, [pid]
    tick = os.sysconf("SC_CLK_TCK")
    while pending:
        current = pending.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except (OSError, IndexError):
            continue
        pending.extend(int(child) for child in children)
    return total


def own_cpu() -> float:
    times = os.times()
    return times.user + times.system


@dataclass
class Phase:
    offered: int = 0
    pushed: int = 0
    push_errors: int = 0
    push_latency: list[float] = field(default_factory=list)
    extender: list[float] = field(default_factory=list)
    noop: list[float] = field(default_factory=list)
    extender_errors: int = 0


async def warm_up(nodes: int, replicas: list[Pool], templates: list[bytes]) -> None:
    """Every node pushes once, as fast as the pools allow, so that the store holds the whole fleet."""
    auth = f"Authorization: {AUTH['Authorization']}\r\n"

    async def push(i: int) -> None:
        body = templates[i % len(templates)].replace(b"__HOST__", node_name(i).encode())
        await replicas[i % len(replicas)].post("/ingest", body, auth)

    for first in range(0, nodes, 256):
        await asyncio.gather(*(push(i) for i in range(first, min(nodes, first + 256))))


async def run_phase(
    nodes: int,
    replicas: list[Pool],
    askers: list[Pool],
    noop: Pool | None,
    templates: list[bytes],
    extender_bodies: list[bytes],
    interval_s: float,
    seconds: float,
    rate: float,
) -> Phase:
    phase = Phase()
    auth = f"Authorization: {AUTH['Authorization']}\r\n"
    began = time.perf_counter()
    deadline = began + seconds

    async def push(i: int, at: float) -> None:
        await asyncio.sleep(max(0.0, at - time.perf_counter()))
        body = templates[i % len(templates)].replace(b"__HOST__", node_name(i).encode())
        started = time.perf_counter()
        try:
            status, _ = await replicas[i % len(replicas)].post("/ingest", body, auth)
        except (OSError, asyncio.IncompleteReadError, ValueError):
            status = 0
        phase.push_latency.append(time.perf_counter() - started)
        if status == 200:
            phase.pushed += 1
        else:
            phase.push_errors += 1

    async def scheduler() -> None:
        k = 0
        while (now := time.perf_counter()) < deadline:
            body = extender_bodies[k % len(extender_bodies)]
            started = time.perf_counter()
            try:
                status, _ = await askers[k % len(askers)].post("/prioritize", body)
            except (OSError, asyncio.IncompleteReadError, ValueError):
                status = 0
            phase.extender.append(time.perf_counter() - started)
            phase.extender_errors += status != 200
            if noop is not None:
                started = time.perf_counter()
                await noop.post("/prioritize", body)
                phase.noop.append(time.perf_counter() - started)
            k += 1
            await asyncio.sleep(max(0.0, began + k / rate - now - (time.perf_counter() - now)))

    pushes = []
    for i in range(nodes):
        offset = (i / nodes) * interval_s
        at = began + offset
        while at < deadline:
            pushes.append(push(i, at))
            phase.offered += 1
            at += interval_s
    if rate > 0:
        await asyncio.gather(scheduler(), *pushes)
    else:
        await asyncio.gather(*pushes)
    return phase


def ms(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values) * 1000, q)) if values else float("nan")


def redis_round_trip(url: str, entry: bytes, samples: int = 2000) -> tuple[float, float]:
    """Median microseconds of PING and of XADD + XDEL of one typical push, from this process."""
    import redis

    client = redis.Redis.from_url(url)
    ping, xadd = [], []
    for _ in range(samples):
        started = time.perf_counter()
        client.ping()
        ping.append(time.perf_counter() - started)
        started = time.perf_counter()
        entry_id = client.xadd("bench:rtt", {"samples": entry})
        xadd.append(time.perf_counter() - started)
        client.xdel("bench:rtt", entry_id)
    client.close()
    return float(np.median(ping) * 1e6), float(np.median(xadd) * 1e6)


def redis_used_mib(url: str) -> float:
    """Redis's memory for the data it holds (``used_memory``): the shared log's retained entries, mostly."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        return round(int(client.info("memory")["used_memory"]) / 2**20, 1)
    finally:
        client.close()


@dataclass
class Measured:
    ingest_only: Phase
    mixed: Phase
    service_cores: float  # busy cores of every replica in the push-only phase
    redis_cores: float
    generator_cores: float  # this process's, in the same phase


async def measure(
    nodes: int,
    ports: list[int],
    split: bool,
    noop_port: int,
    templates: list[bytes],
    extender_bodies: list[bytes],
    args: argparse.Namespace,
    servers: list[Any],
    redis_pid: int | None,
) -> Measured:
    """A push-only phase (CPU per node), then pushes and scheduler calls together (latency)."""
    pools = [await Pool(port, args.connections).open() for port in ports]
    # split: the first replica takes every push, the others every query (roles apart, one Redis log)
    pushed_to, asked = (pools[:1], pools[1:]) if split else (pools, pools)
    noop = await Pool(noop_port, 2).open()
    await warm_up(nodes, pushed_to, templates)

    def cpu() -> tuple[float, float, float]:
        service = sum(cpu_seconds(server.pid) for server in servers)
        return service, cpu_seconds(redis_pid) if redis_pid else 0.0, own_cpu()

    before = cpu()
    ingest_only = await run_phase(
        nodes, pushed_to, asked, None, templates, [], args.push_interval, args.ingest_seconds, 0
    )
    after = cpu()
    mixed = await run_phase(
        nodes, pushed_to, asked, noop, templates, extender_bodies, args.push_interval, args.seconds, args.rate
    )
    for pool in [*pools, noop]:
        pool.close()
    service, redis_cores, generator = (
        (b - a) / args.ingest_seconds for a, b in zip(before, after, strict=True)
    )
    return Measured(ingest_only, mixed, service, redis_cores, generator)


# ---- one deployment ----------------------------------------------------------------------------------------
def deployment(
    name: str, args: argparse.Namespace, uri: str, work: Path, noop_port: int
) -> list[dict[str, Any]]:
    split = name.endswith("s")
    shared = split or name.endswith("r")
    count = int(name.rstrip("rs"))
    redis_server = RedisServer(work / f"redis-{name}").start() if shared else None
    settings = ServiceSettings(
        tracking_uri=uri,
        token=TOKEN,
        watch_interval_s=0,
        max_candidates=max(5000, args.candidates),
        max_hosts=max(20_000, max(args.nodes) * 2),
        shadow_alias="",
        state_url=redis_server.url if redis_server else "",
    )
    servers, ports = [], []
    rows: list[dict[str, Any]] = []
    try:
        for r in range(count):
            port = free_port()
            command, env = serve_command("127.0.0.1", port, 1, settings.to_env(), [])
            servers.append(start(command, env, f"http://127.0.0.1:{port}", work / f"{name}-{r}.log"))
            ports.append(port)
        url = f"http://127.0.0.1:{ports[0]}"
        httpx.post(
            f"{url}/register_profile",
            json={"profile_id": "web", "telemetry": {"cpu_usage_seconds_per_second": [0.5] * 30}},
            headers=AUTH,
            timeout=30,
        ).raise_for_status()
        schema = fetch_schema(url)
        templates = [
            push_template(schema, args.pods, int(args.push_interval), args.raw, seed) for seed in range(8)
        ]
        base_rss = sum(tree_rss_mib(s.pid) for s in servers)
        redis_pid = redis_server.process.pid if redis_server and redis_server.process else None
        for nodes in sorted(args.nodes):
            rng = random.Random(nodes)
            candidates = min(nodes, args.candidates)
            pod = {"metadata": {"name": "bench", "labels": {"cotenant.io/profile": "web"}}}
            extender_bodies = [
                json.dumps(
                    {
                        "Pod": pod,
                        "NodeNames": [node_name(i) for i in rng.sample(range(nodes), candidates)],
                    }
                ).encode()
                for _ in range(50)
            ]

            measured = asyncio.run(
                measure(nodes, ports, split, noop_port, templates, extender_bodies, args, servers, redis_pid)
            )
            ingest_only, mixed = measured.ingest_only, measured.mixed
            service_cores, redis_cores = measured.service_cores, measured.redis_cores
            generator_cores = measured.generator_cores
            rss = sum(tree_rss_mib(s.pid) for s in servers)
            achieved = mixed.pushed / max(1, mixed.offered)
            p99, noop_p99 = ms(mixed.extender, 99), ms(mixed.noop, 99)
            sustained = (
                achieved >= 0.95
                and mixed.push_errors == 0
                and ms(mixed.push_latency, 99) < args.push_interval * 1000
                and mixed.extender_errors == 0
                and p99 <= 2 * noop_p99
            )
            row = {
                "deployment": name,
                "nodes": nodes,
                "pods_per_node": args.pods,
                "push_kb": round(float(np.mean([len(t) for t in templates])) / 1024, 1),
                "pushes_achieved": round(achieved, 3),
                "push_errors": mixed.push_errors,
                "push_p50_ms": round(ms(mixed.push_latency, 50), 2),
                "push_p99_ms": round(ms(mixed.push_latency, 99), 2),
                "ingest_cpu_us_per_node_s": round(service_cores / nodes * 1e6, 1),
                "ingest_cores": round(service_cores, 3),
                "generator_cores": round(generator_cores, 3),
                "redis_cores": round(redis_cores, 3) if redis_pid else None,
                "rss_mib": round(rss, 1),
                "rss_kib_per_node": round((rss - base_rss) * 1024 / nodes, 1),
                "redis_mib": redis_used_mib(redis_server.url) if redis_server is not None else None,
                "extender_p50_ms": round(ms(mixed.extender, 50), 2),
                "extender_p99_ms": round(p99, 2),
                "noop_p50_ms": round(ms(mixed.noop, 50), 2),
                "noop_p99_ms": round(noop_p99, 2),
                "p99_ratio": round(p99 / noop_p99, 2),
                "extender_calls": len(mixed.extender),
                "sustained": sustained,
            }
            if not ingest_only.offered or ingest_only.push_errors:
                row["ingest_only_errors"] = ingest_only.push_errors
            rows.append(row)
            print(json.dumps(row), flush=True)
            if not sustained:
                break
        if redis_server is not None:
            ping_us, xadd_us = redis_round_trip(redis_server.url, templates[0])
            for row in rows:
                row["redis_ping_us"], row["redis_xadd_us"] = round(ping_us, 1), round(xadd_us, 1)
    finally:
        for server in servers:
            stop_server(server)
        if redis_server is not None:
            redis_server.stop()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tracking-uri", help="store with cotenant-* champions (default: seeded, temporary)")
    parser.add_argument("--nodes", type=lambda v: [int(n) for n in v.split(",")], default=[250, 1000, 5000])
    parser.add_argument("--deployments", type=lambda v: v.split(","), default=["1", "2r"])
    parser.add_argument("--pods", type=int, default=20)
    parser.add_argument("--push-interval", type=float, default=5.0)
    parser.add_argument("--candidates", type=int, default=500)
    parser.add_argument("--rate", type=float, default=50.0, help="prioritize calls per second")
    parser.add_argument("--seconds", type=float, default=30.0, help="mixed phase per fleet size")
    parser.add_argument("--ingest-seconds", type=float, default=15.0, help="push-only phase (CPU per node)")
    parser.add_argument("--connections", type=int, default=16, help="keep-alive connections per replica")
    parser.add_argument(
        "--raw", action="store_true", help="push per-second rows instead of compact summaries"
    )
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="fleet-bench-"))
    # The champions ``make run`` trained (the bundled data's 207 metrics: representative push sizes) when they
    # exist; otherwise seeded stand-ins with 4 metrics (pushes then smaller than a real fleet's).
    made = Path("var/mlflow.db")
    uri = args.tracking_uri or (f"sqlite:///{made.resolve()}" if made.exists() else seeded_champions(work))
    noop_port = free_port()
    noop = start_noop(noop_port, work / "noop.log")
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; champions from {uri}")
    form = "raw" if args.raw else "compact"
    print(f"{form} pushes, {args.pods} pods per node, every {args.push_interval:g} s")
    rows: list[dict[str, Any]] = []
    try:
        for name in args.deployments:
            rows.extend(deployment(name, args, uri, work, noop_port))
    finally:
        stop_server(noop)
    for name in args.deployments:
        sustained = [row["nodes"] for row in rows if row["deployment"] == name and row["sustained"]]
        largest = max(sustained) if sustained else 0
        print(f"{name}: largest sustained fleet {largest} nodes (of {sorted(args.nodes)} tried)")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
