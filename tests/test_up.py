"""The main job end to end on a fresh state directory: trains champions, serves, and its examples succeed."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def run_up(home: Path, port: int) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COTENANT_HOME": str(home)}
    env.pop("MLFLOW_TRACKING_URI", None)
    command = [sys.executable, "-m", "cotenant.cli", "up", "--once", "--epochs", "1", "--port", str(port)]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=900, check=False)


def test_up_trains_serves_and_its_examples_succeed(tmp_path: Path) -> None:
    first = run_up(tmp_path, free_port())
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert "training cloudformer" in first.stdout and "training placement" in first.stdout
    for name in ("placement scoring", "extender prioritize", "accelerator placement"):
        assert f"{name}: ok" in first.stdout
    examples = {path.stem: json.loads(path.read_text()) for path in (tmp_path / "examples").glob("*.json")}
    assert set(examples) == {"placement-scoring", "extender-prioritize", "accelerator-placement"}
    assert examples["extender-prioritize"]["Pod"]["metadata"]["labels"]["cotenant.io/profile"]

    second = run_up(tmp_path, free_port())  # reuses the registry: no training the second time
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert "reusing them" in second.stdout and "training" not in second.stdout
