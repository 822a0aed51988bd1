"""The main job end to end on a fresh state directory: trains champions, serves, its examples succeed, and
Ctrl-C stops it with everything it started."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cotenant.serving.local_servers import free_port

from cotenant.up import CHAMPIONS

pytestmark = pytest.mark.slow


def up_command(port: int, *extra: str) -> list[str]:
    return [sys.executable, "-m", "cotenant.cli", "up", "--epochs", "1", "--port", str(port), *extra]


def up_env(home: Path) -> dict[str, str]:
    env = {**os.environ, "COTENANT_HOME": str(home), "PYTHONUNBUFFERED": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


def run_up(home: Path, port: int) -> subprocess.CompletedProcess[str]:
    command = up_command(port, "--once")
    return subprocess.run(command, env=up_env(home), capture_output=True, text=True, timeout=900, check=False)


def listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test_up_trains_serves_and_its_examples_succeed(tmp_path: Path) -> None:
    first = run_up(tmp_path, free_port())
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    # Every candidate is trained, named as written with its options (the variant a report chose); the
    # champion is the best on the validation programs the gate lets through.
    for choice in (choice for candidates in CHAMPIONS.values() for choice in candidates):
        assert f"training {choice} on the bundled dataset" in first.stdout, first.stdout[-3000:]
    # Each task's champion is named, or the job says that none of its candidates passed the gate; a task
    # without one has its example answered 503 by the service, saying so (the extender stays neutral).
    from cotenant.training.tracking import version_by_alias
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    served = {}
    for task in ("cotenant-monitoring", "cotenant-placement"):
        served[task] = bool(
            re.search(rf"{task} champion: [\w-]+ \(v\d+\), best on validation programs", first.stdout)
        )
        refused = f"no {task} candidate passed the promotion gate" in " ".join(first.stdout.split())
        assert served[task] != refused, first.stdout[-3000:]
        assert (version_by_alias(client, task) is not None) == served[task]
    # The solo-relative heuristic, at least, passes the monitoring gate.
    assert served["cotenant-monitoring"], first.stdout[-3000:]
    assert "fitted accelerator profiles" in first.stdout
    names = (
        "placement scoring",
        "monitoring a running tenant",
        "extender prioritize",
        "accelerator placement",
        "accelerator latency by model",
    )
    answered = [name for name in names if served["cotenant-placement"] or name != "placement scoring"]
    for name in answered:
        assert f"{name}: ok" in first.stdout
    if not served["cotenant-placement"]:
        assert re.search(
            r"placement scoring: skipped, answered 503: no placement champion: "
            r"no version of cotenant-placement is aliased 'champion'",
            " ".join(first.stdout.split()),
        )
    examples = {path.stem: json.loads(path.read_text()) for path in (tmp_path / "examples").glob("*.json")}
    assert set(examples) == {name.replace(" ", "-") for name in names}
    assert examples["extender-prioritize"]["Pod"]["metadata"]["labels"]["cotenant.io/profile"]
    # Monitoring names the tenant only: its node's collector linked it to its registered profile, which its
    # rates are read against; a P with its interval for the crowded node's first incumbent, beside the other
    # two.
    monitored = examples["monitoring-a-running-tenant"]
    assert set(monitored) == {"host", "target"} and monitored["target"].startswith("pod-1-")
    found = re.search(
        r"(pod-1-\S+) on demo-node-\d+ beside 2 neighbours: P (0\.\d\d|1\.00) \(80% interval.*"
        r"read against its solo profile (\S+)",
        first.stdout,
    )
    assert found and found[1] == f"pod-1-{found[3]}"[:253], first.stdout[-3000:]
    # The ranked demo: the fleet's two empty nodes first, then the occupied ones; the service's own output
    # (an access-log line per ingest) goes to its log file, not to the console.
    ranked = [line for line in first.stdout.splitlines() if re.match(r"\s+\d+\. demo-node-\d+ ", line)]
    assert len(ranked) == (6 if served["cotenant-placement"] else 0), first.stdout[-3000:]
    assert all("empty_host" in line for line in ranked[:2]), ranked
    assert not any("empty_host" in line for line in ranked[2:]), ranked
    assert "/ingest" not in first.stdout and "/ingest" in (tmp_path / "serve.log").read_text()

    # The second time it reuses the registry (no training), serves until Ctrl-C (SIGINT to the foreground
    # process group, as a terminal sends it), which stops the job and its service.
    port = free_port()
    log = tmp_path / "up.log"
    with log.open("w") as out:
        job = subprocess.Popen(
            up_command(port),
            env=up_env(tmp_path),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            # As from an interactive shell: a suite started in the background inherits SIGINT ignored.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
    try:
        deadline = time.monotonic() + 300
        while "Press Ctrl-C to stop" not in log.read_text() and time.monotonic() < deadline:
            assert job.poll() is None, log.read_text()[-3000:]
            time.sleep(0.5)
        assert listening(port), log.read_text()[-3000:]
        second = log.read_text()
        assert "reusing them" in second and "training" not in second, second[-3000:]
        assert all(f"{name}: ok" in second for name in answered), second[-3000:]
        os.killpg(job.pid, signal.SIGINT)
        assert job.wait(timeout=60) == 0, log.read_text()[-3000:]
        assert not listening(port)  # the service and its workers went with it
    finally:
        if job.poll() is None:  # SIGTERM also stops the service, which runs in its own session
            os.killpg(job.pid, signal.SIGTERM)
            try:
                job.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(job.pid, signal.SIGKILL)
