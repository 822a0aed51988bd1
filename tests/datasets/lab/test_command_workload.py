"""A user's own command as a lab workload: validation of the plan, and real runs that succeed or fail."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from cotenant.datasets.lab.command import CommandSpec, CommandWorkload
from cotenant.datasets.lab.plan import PlanError, load_plan
from cotenant.datasets.lab.records import read_journal
from cotenant.datasets.lab.session import run_lab
from cotenant.datasets.lab.workloads import ParseError, WorkContext

SYSBENCH = {
    "command": ["sysbench", "cpu", "--threads={level}", "--time={seconds}", "run"],
    "metric": r"events per second:\s+([\d.]+)",
    "unit": "events_per_second",
}


def plan_with(tmp_path: Path, commands: dict[str, object], targets: list[str]) -> Path:
    plan = {
        "name": "commands",
        "duration_s": 2,
        "solo_repeats": 2,
        "quiet": {"max_wait_s": 0, "window_s": 0.1},
        "commands": commands,
        "targets": [{"workload": name, "levels": [1]} for name in targets],
    }
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(plan))
    return path


@pytest.mark.parametrize(
    ("command", "message"),
    [
        ({**SYSBENCH, "metric": r"events per second: [\d.]+"}, r"commands\.mine\.metric: .*capturing group"),
        ({**SYSBENCH, "metric": "("}, r"commands\.mine\.metric: .*not a regular expression"),
        (
            {**SYSBENCH, "command": ["x", "{threads}"]},
            r"commands\.mine\.command: .*unknown placeholder \{threads\}",
        ),
        ({**SYSBENCH, "command": []}, r"commands\.mine\.command"),
        ({"command": ["x"], "metric": "(1)"}, r"commands\.mine\.unit: Field required"),
    ],
)
def test_bad_command_specs_are_refused_naming_the_field(
    tmp_path: Path, command: dict[str, object], message: str
) -> None:
    with pytest.raises(PlanError, match=message):
        load_plan(plan_with(tmp_path, {"mine": command}, ["mine"]))


def test_a_command_may_not_shadow_a_catalogue_workload(tmp_path: Path) -> None:
    with pytest.raises(PlanError, match=r"commands\.redis: the name is a catalogue workload"):
        load_plan(plan_with(tmp_path, {"redis": SYSBENCH}, ["redis"]))


def test_placeholders_are_filled_and_the_last_match_is_read(tmp_path: Path) -> None:
    workload = CommandWorkload("mine", CommandSpec.model_validate({**SYSBENCH, "higher_is_better": False}))
    context = WorkContext(scratch=tmp_path / "s", role_dir=tmp_path / "r", runtime_dir=tmp_path / "t")
    assert workload.phase_command(3, 7, context) == ["sysbench", "cpu", "--threads=3", "--time=7", "run"]
    assert workload.parse("events per second: 1.5\nevents per second:   42.25\n") == 42.25
    assert not workload.higher_is_better and workload.unit == "events_per_second"
    with pytest.raises(ParseError, match="mine metric"):
        workload.parse("nothing here")


@pytest.mark.live
@pytest.mark.slow
def test_good_and_bad_commands_in_one_plan(tmp_path: Path) -> None:
    """The good command is measured and labelled; each bad one fails its own runs with an error naming the
    workload, and the journal keeps every finished run."""
    commands = {
        "good": SYSBENCH,
        "missing": {**SYSBENCH, "command": ["no-such-benchmark-binary", "{seconds}"]},
        "failing": {**SYSBENCH, "command": ["sh", "-c", "echo 'events per second: 9'; exit 3"]},
        "silent": {**SYSBENCH, "command": ["sh", "-c", "echo nothing to see"]},
        # a program that ran but did nothing its metric counts (a stressor starved of memory reports 0)
        "idle": {**SYSBENCH, "command": ["sh", "-c", "echo 'events per second: 0.00'"]},
    }
    out = tmp_path / "lab"
    result = run_lab(
        plan_with(tmp_path, commands, list(commands)), out, telemetry=False, allow_concurrent=True
    )
    records = read_journal(out / "runs.jsonl")
    assert result.done == len(records) == 2
    assert {record.application for record in records} == {"good"}
    assert all(record.performance > 0 and record.background is not None for record in records)
    failures = [json.loads(line) for line in (out / "failures.jsonl").read_text().splitlines()]
    errors = " | ".join(failure["error"] for failure in failures)
    assert len(failures) == len(result.failed) == 8
    assert "missing: cannot start 'no-such-benchmark-binary'" in errors
    assert "(failing): sh exited with 3" in errors
    assert "(idle): measured 0 events_per_second, no work its metric counts" in errors
    assert "(silent): no silent metric" in errors


@pytest.mark.live
@pytest.mark.slow
def test_a_campaign_stops_when_its_solos_become_too_noisy_and_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A program whose speed jumps between runs (a machine stuttering under its hypervisor looks the same to
    the lab) stops the campaign once its running noise floor passes the limit, with every finished run in
    the journal; the same command again measures a full window of its own before the limit can stop it (the
    journal's window does not stop it at once); without the limit it finishes."""
    import functools
    import sys

    from cotenant.datasets.lab import session
    from cotenant.datasets.lab.labels import NoiseWatch

    monkeypatch.setattr(session, "NoiseWatch", functools.partial(NoiseWatch, window=3))
    counter = tmp_path / "executions"
    alternate = (  # 1, 4, 1, 4, ... from one execution to the next
        f"import pathlib; p = pathlib.Path({str(counter)!r}); n = int(p.read_text()) if p.exists() else 0; "
        "p.write_text(str(n + 1)); print('score:', [1, 4][n % 2])"
    )
    jumpy = {"command": [sys.executable, "-c", alternate], "metric": r"score: (\d+)", "unit": "points"}
    plan = plan_with(tmp_path, {"jumpy": jumpy}, ["jumpy"])
    text = plan.read_text().replace("solo_repeats: 2", "solo_repeats: 9")
    plan.write_text(text)
    out = tmp_path / "lab"
    stopped = run_lab(plan, out, telemetry=False, allow_concurrent=True, max_noise_pp=10.0)
    kept = read_journal(out / "runs.jsonl")
    assert stopped.stopped is not None and "passed 10 pp" in stopped.stopped
    assert len(kept) == stopped.done == 4  # three deviations after the first solo: a full window
    again = run_lab(plan, out, telemetry=False, allow_concurrent=True, max_noise_pp=10.0)
    assert again.stopped is not None and again.done == 3  # still jumpy: stopped after a window of its own
    resumed = run_lab(plan, out, telemetry=False, allow_concurrent=True)
    assert resumed.stopped is None and resumed.skipped == len(kept) + 3
    assert len(read_journal(out / "runs.jsonl")) == 9
