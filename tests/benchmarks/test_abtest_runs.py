"""Several A/B test runs side by side: per-policy medians, placement stability, cotenant's runs at the bar."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "abtest_runs.py"


def report(misses: dict[str, int], worst: dict[str, float], cotenant_host: str) -> dict[str, Any]:
    outcomes = {policy: {"slo_misses": misses[policy], "worst_p": worst[policy]} for policy in misses}
    placements = {
        policy: {"hosts": {"host-1": ["a", "b"], "host-2": ["c"]}, "refused": []} for policy in misses
    }
    placements["cotenant"] = {"hosts": {cotenant_host: ["a", "b", "c"]}, "refused": []}
    return {"plan": {"extender_rule": "expected_misses"}, "outcomes": outcomes, "placements": placements}


def write(directory: Path, content: dict[str, Any]) -> Path:
    directory.mkdir()
    (directory / "abtest.json").write_text(json.dumps(content))
    return directory


def run_script(*paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *map(str, paths)], capture_output=True, text=True, timeout=60
    )


def test_runs_are_summarised_per_policy_with_cotenants_record_against_each(tmp_path: Path) -> None:
    first = write(
        tmp_path / "one",
        report({"cotenant": 3, "least_allocated": 4}, {"cotenant": 0.7, "least_allocated": 0.2}, "host-1"),
    )
    second = write(
        tmp_path / "two",
        report({"cotenant": 5, "least_allocated": 3}, {"cotenant": 0.6, "least_allocated": 0.65}, "host-2"),
    )
    third = write(
        tmp_path / "three",
        report({"cotenant": 4, "least_allocated": 4}, {"cotenant": 0.5, "least_allocated": 0.3}, "host-1"),
    )
    finished = run_script(first, second, third)
    assert finished.returncode == 0, finished.stderr
    lines = {
        line.split(":")[0].strip(): line for line in finished.stdout.splitlines() if line.startswith("  ")
    }
    assert "misses 4 [3, 5, 4]" in lines["cotenant"]
    assert "placements differ between runs" in lines["cotenant"]
    least = lines["least_allocated"]
    assert "misses 4 [4, 3, 4]" in least and "worst P 0.300" in least
    assert "same placement every run" in least
    # no more misses in runs one and three; a higher worst P in the same two
    assert "cotenant no more misses in 2/3, higher worst P in 2/3" in least


def test_a_file_that_is_not_a_report_is_named(tmp_path: Path) -> None:
    broken = write(tmp_path / "broken", {"plan": {}})
    finished = run_script(broken)
    assert finished.returncode != 0
    assert "broken/abtest.json" in finished.stderr and "outcomes" in finished.stderr
    missing = run_script(tmp_path / "absent")
    assert missing.returncode != 0 and "absent" in missing.stderr
