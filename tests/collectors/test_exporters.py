"""--prometheus-port and --push against real local servers (fixture trees as the machine)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar

import httpx
from collector_testkit import fixture_roots
from cotenant.collectors.config import CollectorConfig
from cotenant.collectors.prometheus import PrometheusSink
from cotenant.collectors.push import Pusher
from cotenant.collectors.runner import Collector
from cotenant.serving.local_servers import free_port

SOURCES = ("host_memory", "cgroup_v2")


def run_collect(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``cotenant collect ARGS`` in a fresh interpreter (its exit status and output as a user sees them)."""
    program = "import typer; from cotenant.collectors.cli import collect; typer.run(collect)"
    command = [sys.executable, "-c", program, *args]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=120)


class Ingest(BaseHTTPRequestHandler):
    bodies: ClassVar[list[dict[str, Any]]] = []
    auth: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        Ingest.bodies.append(json.loads(self.rfile.read(length)))
        Ingest.auth.append(self.headers["Authorization"])
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_prometheus_and_push(tmp_path: Path) -> None:
    server = HTTPServer(("127.0.0.1", 0), Ingest)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = free_port()
    prometheus = PrometheusSink(port, address="127.0.0.1")
    pusher = Pusher(f"http://127.0.0.1:{server.server_port}", "secret", "node-1")
    config = CollectorConfig(out=tmp_path, cgroups=("lab/a",), interval=0.2, duration=0.8,
                             roots=fixture_roots("v2"), sources=SOURCES)  # fmt: skip
    Collector(config, [prometheus, pusher]).run(threading.Event())
    text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    assert 'cotenant_cgroup_memory_current_bytes{table="cgroup",target="lab/a"} 5.36870912e+08' in text
    assert "cotenant_cgroup_memory_max_bytes" not in text, "unavailable metrics are absent, not zero"
    pusher.close()
    prometheus.close()
    server.shutdown()
    assert pusher.sent >= 4 and pusher.dropped == 0
    assert set(Ingest.auth) == {"Bearer secret"}
    sample = next(s for body in Ingest.bodies for s in body["samples"] if s["target"] == "lab/a")
    assert (
        Ingest.bodies[0]["host"] == "node-1" and sample["metrics"]["cgroup_memory_current_bytes"] == 536870912
    )


def test_push_never_blocks_and_counts_drops_when_service_is_down() -> None:
    pusher = Pusher(f"http://127.0.0.1:{free_port()}", "t", "h", max_batches=3, max_backoff=0.2)
    started = time.monotonic()
    for second in range(10):
        pusher(1_700_000_000_000 + second * 1000, {"host": {"host": {"m": 1.0}}})
    assert time.monotonic() - started < 0.5, "enqueueing never waits for the network"
    assert len(pusher.queue) == 3 and pusher.dropped == 7
    pusher.close(drain_seconds=0.2)
    assert pusher.failures >= 1 and pusher.sent == 0


def test_the_command_pushes_without_writing_parquet(tmp_path: Path) -> None:
    """`cotenant collect --push URL` alone (the README's node-agent line): no --out, nothing written; the
    target's link to its registered profile (--profile) goes with every push."""
    Ingest.bodies.clear()
    server = HTTPServer(("127.0.0.1", 0), Ingest)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    roots = fixture_roots("v2")
    done = run_collect(
        "--cgroup",
        f"{roots.cgroup}/lab/a",  # an absolute path, as copied from the cgroup filesystem
        "--push",
        f"http://127.0.0.1:{server.server_port}",
        "--token",
        "secret",
        "--host-name",
        "node-9",
        "--profile",
        "lab/a=web",
        "--duration",
        "2",
        "--cgroup-root",
        str(roots.cgroup),
        "--procfs-root",
        str(roots.procfs),
        cwd=tmp_path,
    )
    server.shutdown()
    assert done.returncode == 0, done.stderr
    assert "pushing to http://127.0.0.1" in done.stderr
    assert not list(tmp_path.iterdir())  # no Parquet anywhere
    bodies = [body for body in Ingest.bodies if body["host"] == "node-9"]
    assert any(s["target"] == "lab/a" for body in bodies for s in body["samples"])
    assert bodies and all(body["profiles"] == {"lab/a": "web"} for body in bodies)


def test_a_profile_link_that_is_not_target_equals_profile_is_refused_naming_the_option() -> None:
    done = run_collect("--push", "http://127.0.0.1:9", "--token", "t", "--profile", "lab/a")
    assert done.returncode == 2 and "--profile" in done.stderr and "TARGET=PROFILE_ID" in done.stderr


def test_the_command_needs_somewhere_to_send_samples() -> None:
    done = run_collect()
    assert done.returncode == 2 and "--out (Parquet), --push" in done.stderr


def test_an_agent_without_parquet_never_loads_the_writer_libraries() -> None:
    """Pushing or serving Prometheus needs no Parquet: Polars and numpy (about 50 MiB RSS) stay unloaded."""
    roots = fixture_roots("v2")
    program = (
        "import sys, threading\nfrom pathlib import Path\n"
        "from cotenant.collectors.base import Roots\n"
        "from cotenant.collectors.config import CollectorConfig\n"
        "from cotenant.collectors.runner import Collector\n"
        f"roots = Roots(procfs=Path({str(roots.procfs)!r}), cgroup=Path({str(roots.cgroup)!r}))\n"
        "config = CollectorConfig(cgroups=('lab/a',), interval=0.2, duration=0.6, roots=roots)\n"
        "Collector(config, [lambda epoch, tables: None]).run(threading.Event())\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'polars', 'numpy', 'pyarrow'}))\n"
    )
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"
