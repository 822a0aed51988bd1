"""The lab's output record: one JSON line per finished execution in ``DIR/runs.jsonl``.

The format is the contract of docs/architecture.md section 2.
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from typing import Literal

from cotenant.datasets.lab.quiet import BackgroundLoad
from pydantic import BaseModel, ConfigDict, Field, ValidationError

# probe: a target beside one calibrated aggressor (its sensitivity); pressure: a fixed victim beside a
# workload (that workload's pressure). Both are labelled like co-runs and kept apart from them.
RunKind = Literal["solo", "corun", "neighbour_solo", "probe", "pressure"]
Scenario = Literal["static", "dynamic"]


class RunCgroups(BaseModel):
    model_config = ConfigDict(extra="forbid")

    target: str
    neighbours: list[str] = Field(default_factory=list)


class RunRecord(BaseModel):
    """One finished execution. Labels are derived from these by ``labels.label_runs``, never stored."""

    model_config = ConfigDict(extra="forbid")

    run_id: str
    kind: RunKind
    application: str
    config_key: str
    scenario: Scenario
    load: str
    schedule: str | None
    neighbours: list[str]
    repeat: int
    started_at: datetime
    ended_at: datetime
    cgroups: RunCgroups
    performance: float
    performance_unit: str
    higher_is_better: bool
    # The host's load just before the run (None in journals written before quiet labels).
    background: BackgroundLoad | None = None
    # Solo runs of the same configuration measured next to this one, which its label compares with (empty:
    # every solo of its configuration; a plan's ``adjacent_references`` fills it).
    references: list[str] = Field(default_factory=list)
    # The machine's speed (canary.py: each canary's metric) right before the run and right after it, where
    # the plan asks for a canary.
    speed_before: dict[str, float] | None = None
    speed_after: dict[str, float] | None = None
    # The CPUs the run was pinned to (a plan's ``host_cpus``): the size of the node it measured; None: the
    # whole machine.
    host_cores: int | None = None
    # The cgroups' cpu.shares, target's first then each neighbour's, where the plan weighs tenants by their
    # CPU requests (None: every cgroup at the kernel's default weight; a None inside: that one at it).
    cpu_shares: list[int | None] | None = None


class JournalError(ValueError):
    """A runs.jsonl line that is not a RunRecord; the message names the file and line."""


def read_journal(path: Path) -> list[RunRecord]:
    """All records of a journal. A torn last line (a crash during the append) is ignored; any other bad line
    raises, because silently dropping a finished run would make a resume redo or lose it."""
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    records: list[RunRecord] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            records.append(RunRecord.model_validate(json.loads(line)))
        except (json.JSONDecodeError, ValidationError) as error:
            if number == len(lines):
                continue
            raise JournalError(f"{path}:{number}: not a RunRecord: {error}") from error
    return records


def append_record(path: Path, record: RunRecord) -> None:
    """Appends one record and fsyncs, so that a finished run survives a crash right after it."""
    with path.open("a") as journal:
        journal.write(record.model_dump_json() + "\n")
        journal.flush()
        os.fsync(journal.fileno())
