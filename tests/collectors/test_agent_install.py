"""The agent-only install path: ``requirements/agent.txt`` is all ``cotenant collect --push`` needs.

The agent runs in a subprocess where importing any other project dependency fails (as on a node that
installed the project with ``--no-deps`` and the agent requirements only), pushes compact summaries of a real
process to a receiver standing in for the service, and exits cleanly.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

ROOT = Path(__file__).resolve().parents[2]
AGENT_REQUIREMENTS = ROOT / "requirements" / "agent.txt"
# Distribution -> import name, where they differ.
IMPORT_NAMES = {"scikit-learn": "sklearn", "pyyaml": "yaml", "prometheus-client": "prometheus_client"}

BLOCKED_RUN = """
import sys
blocked = set(sys.argv[1].split(","))
class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in blocked:
            raise ImportError(f"{name} is not installed on an agent-only node")
        return None
sys.meta_path.insert(0, Blocker())
sys.argv = ["cotenant", *sys.argv[2:]]
from cotenant.entry import main
main()
"""


def requirement_name(line: str) -> str:
    return re.split(r"[<>=~!\\[ ;]", line.strip(), maxsplit=1)[0].lower()


def pins(lines: list[str]) -> dict[str, str]:
    kept = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    return {requirement_name(line): line for line in kept}


def project_pins() -> dict[str, str]:
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    return pins([dependency.split("#")[0] for dependency in dependencies])


def test_the_agent_requirements_are_pinned_as_the_project_pins_them() -> None:
    agent, project = pins(AGENT_REQUIREMENTS.read_text().splitlines()), project_pins()
    assert agent and set(agent) <= set(project)
    for name, pin in agent.items():
        assert pin.replace(" ", "") == project[name].replace(" ", ""), name


class Receiver(BaseHTTPRequestHandler):
    """The service's two agent-facing routes: the feature schema, and ingest (bodies kept)."""

    schema: ClassVar[dict[str, Any]] = {}
    pushes: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:  # http.server's name for the handler
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path.endswith("/feature_schema"):
            reply = json.dumps(self.schema).encode()
        else:
            self.pushes.append(json.loads(body))
            reply = b'{"accepted": 1}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    from cotenant.collectors.summaries import schema_id

    metrics = ["cpu_usage_seconds_per_second", "memory_rss_bytes"]
    Receiver.schema = {"schema_id": schema_id(metrics, 30), "metrics": metrics, "window_seconds": 30}
    Receiver.pushes = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", Receiver.pushes
    server.shutdown()


@pytest.mark.slow
def test_the_agent_pushes_compact_summaries_with_only_its_requirements_installed(
    receiver: tuple[str, list[dict[str, Any]]],
) -> None:
    url, pushes = receiver
    others = set(project_pins()) - set(pins(AGENT_REQUIREMENTS.read_text().splitlines()))
    blocked = sorted(IMPORT_NAMES.get(name, name.replace("-", "_")) for name in others)
    assert {"torch", "polars", "mlflow", "bentoml", "sklearn"} <= set(blocked)
    command = [sys.executable, "-c", BLOCKED_RUN, ",".join(blocked), "collect", "--pid", str(os.getpid())]
    command += ["--push", url, "--token", "t", "--host-name", "agent-only", "--compact", "--duration", "7"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert pushes and all(push["host"] == "agent-only" for push in pushes)
    summaries = [summary for push in pushes for summary in push.get("summaries", [])]
    assert summaries, "no compact summary was pushed"
    assert {summary["target"] for summary in summaries} == {f"pid:{os.getpid()}"}
    compact = [push for push in pushes if "summaries" in push]
    assert all(push.get("schema_id") == Receiver.schema["schema_id"] for push in compact)
