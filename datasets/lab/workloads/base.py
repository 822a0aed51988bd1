"""What a workload is: a real program, how to run one phase of it at a level, and how to read its metric.

A workload runs in phases (one for a static load, several for a dynamic schedule); each phase is one
time-bounded invocation of the program, so co-runs overlap fully whatever the interference. Parsers are pure
functions of the program's captured output, tested on real captured outputs.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from cotenant.registry import Registry


class ParseError(ValueError):
    """The program's output does not contain its metric (it failed, or its format changed)."""


@dataclass(frozen=True)
class WorkContext:
    """Where a workload may write: ``scratch`` is shared by the whole lab session (files reused across runs),
    ``role_dir`` is private to one role of one run (temporary files, on the lab directory's disk) and
    ``runtime_dir`` is a short private path for unix sockets (whose paths are limited to 107 bytes)."""

    scratch: Path
    role_dir: Path
    runtime_dir: Path


class Workload(ABC):
    name: ClassVar[str]
    unit: ClassVar[str]
    higher_is_better: ClassVar[bool] = True
    description: ClassVar[str] = ""
    # The application class (one of ``CATEGORIES``): folds and reports group applications by it.
    category: ClassVar[str] = "synthetic"
    # The tool has no duration option: the runner interrupts it (SIGINT) at the phase deadline and parses the
    # running totals it printed so far.
    stop_at_deadline: ClassVar[bool] = False
    # The shortest phase the tool can honour (zstd -b measures compression and decompression, 1 s each).
    min_phase_s: ClassVar[int] = 1

    def prepare(self, scratch: Path) -> None:  # noqa: B027 (optional hook; most workloads need nothing)
        """Once per lab session, before any run (create input files that runs then reuse)."""

    def service_command(self, ctx: WorkContext) -> list[str] | None:
        """A server started once per run in the role's cgroup before the phases (None: no server)."""
        return None

    def service_ready(self, ctx: WorkContext) -> bool:
        return True

    @abstractmethod
    def phase_command(self, level: int, seconds: int, ctx: WorkContext) -> list[str]:
        """The command line of one phase at ``level`` (threads, clients, workers) lasting ``seconds``."""

    @abstractmethod
    def parse(self, output: str) -> float:
        """The phase's performance from its stdout+stderr; raises ParseError."""


WORKLOADS: Registry[type[Workload]] = Registry("workload")

# What each application class means; every catalogue workload names one.
CATEGORIES: dict[str, str] = {
    "cpu": "compute-bound kernels (integer, floating point, crypto)",
    "memory": "memory bandwidth and latency bound",
    "interpreter": (
        "interpreted code (bytecode dispatch, regular expressions, object allocation): a Python web "
        "backend's work, a Perl log report"
    ),
    "storage": "block I/O bound",
    "key_value": "in-memory key-value caches and stores",
    "web": "web serving",
    "oltp": "transactional databases",
    "embedded_db": "embedded databases",
    "analytics": "analytical queries on tables",
    "graph": "graph analytics (sparse traversals and products)",
    "media": "media encoding",
    "build": "building software",
    "compression": "data compression",
    "ml": "machine-learning inference and training",
    "text": "text search and processing",
    "ipc": "processes exchanging messages on one host (message queues, event notifications)",
    "synthetic": "stress-ng aggressors (calibrated pressure, not applications)",
    "custom": "a user's own command (plans' `commands` section)",
}


def last_number(pattern: str, text: str, what: str) -> float:
    """The first group of the last match of ``pattern`` in ``text`` as a float."""
    matches = re.findall(pattern, text)
    if not matches:
        raise ParseError(f"no {what} in the output ({text[-200:]!r})")
    last = matches[-1]
    text_value = last[0] if isinstance(last, tuple) else last
    try:
        return float(text_value)
    except ValueError as error:
        raise ParseError(f"{what}: {text_value!r} is not a number") from error


STRESS_NG_METRIC = (
    r"stress-ng: metrc: \[\d+\]\s+{stressor}\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+([\d.]+)\s+[\d.]+"
)


def parse_stress_ng(output: str, stressor: str) -> float:
    """Bogo ops per second (real time) of one stressor from ``stress-ng --metrics-brief``."""
    return last_number(
        STRESS_NG_METRIC.format(stressor=re.escape(stressor)), output, f"{stressor} bogo ops/s"
    )


REPEAT_SCRIPT = Path(__file__).with_name("repeat.py")
REPEAT_RATE = r"repeat: units=\d+ seconds=[\d.]+ rate=([\d.]+) per_second"


def repeat_command(seconds: int, parallel: int, unit: list[str], items: Path | None = None) -> list[str]:
    """The command line that runs ``unit`` over and over for ``seconds`` with ``parallel`` workers
    (``repeat.py``); ``{item}`` in ``unit`` cycles through the lines of ``items``."""
    options = ["--items", str(items)] if items is not None else []
    return [
        sys.executable,
        "-S",
        str(REPEAT_SCRIPT),
        "--seconds",
        str(seconds),
        "--parallel",
        str(parallel),
        *options,
        "--",
        *unit,
    ]


def parse_repeat(output: str) -> float:
    """Units per second from ``repeat.py``'s result line."""
    return last_number(REPEAT_RATE, output, "repeat rate")


class RepeatWorkload(Workload):
    """A program that does one unit of work and exits, repeated until the phase's deadline by ``level``
    parallel workers; its metric is units per second."""

    unit = "units_per_second"

    @abstractmethod
    def unit_command(self, level: int, ctx: WorkContext) -> list[str]:
        """One unit of work (may contain ``{item}``, ``{i}``, ``{worker}``)."""

    def items(self, ctx: WorkContext) -> Path | None:
        """A file listing the items ``{item}`` cycles through (None: no items)."""
        return None

    def phase_command(self, level: int, seconds: int, ctx: WorkContext) -> list[str]:
        return repeat_command(seconds, level, self.unit_command(level, ctx), self.items(ctx))

    def parse(self, output: str) -> float:
        return parse_repeat(output)


class PyProgramWorkload(Workload):
    """A program of ``pyprograms.py`` (Python libraries: Polars, torch, numpy) run until the phase's deadline;
    level = the library's threads; the metric is its rate line."""

    program: ClassVar[str]

    def data(self, ctx: WorkContext) -> Path | None:
        """Input prepared for the program (None: it makes its own)."""
        return None

    def phase_command(self, level: int, seconds: int, ctx: WorkContext) -> list[str]:
        from cotenant.datasets.lab.workloads import pyprograms

        return pyprograms.command(self.program, level, seconds, self.data(ctx))

    def parse(self, output: str) -> float:
        from cotenant.datasets.lab.workloads import pyprograms

        return last_number(pyprograms.result_pattern(self.program), output, f"{self.program} rate")


class StressNgWorkload(Workload):
    """A stress-ng stressor with ``level`` workers for ``seconds``; its metric is bogo ops/s (real time)."""

    unit = "bogo_ops_per_second"
    stressor: ClassVar[str]

    def extra_options(self, level: int, ctx: WorkContext) -> list[str]:
        return []

    def phase_command(self, level: int, seconds: int, ctx: WorkContext) -> list[str]:
        return [
            "stress-ng",
            f"--{self.stressor}",
            str(level),
            *self.extra_options(level, ctx),
            "--timeout",
            f"{seconds}s",
            "--metrics-brief",
        ]

    def parse(self, output: str) -> float:
        return parse_stress_ng(output, self.stressor)


def fio_total(output: str, field: str) -> float:
    """A field of fio's JSON output summed over its first job's reads and writes (``iops``, ``bw_bytes``); fio
    may print warnings before the JSON."""
    start = output.find("{")
    if start < 0:
        raise ParseError(f"no fio JSON in the output ({output[-200:]!r})")
    try:
        job = json.loads(output[start : output.rfind("}") + 1])["jobs"][0]
        return sum(float(job[direction][field]) for direction in ("read", "write"))
    except (json.JSONDecodeError, KeyError, IndexError, TypeError, ValueError) as error:
        raise ParseError(f"fio JSON without jobs[0].read/write.{field}: {error}") from error


class FioWorkload(Workload):
    """fio on one file laid out once per session and reused by every run; level = jobs (``--numjobs``).
    Subclasses give the file, the job's options and which total is the metric."""

    category = "storage"
    file_name: ClassVar[str]
    file_size: ClassVar[str]
    metric_field: ClassVar[str]  # summed over reads and writes

    @abstractmethod
    def job_options(self) -> list[str]:
        """The I/O pattern: ``--rw``, block size, engine, syncing."""

    def prepare(self, scratch: Path) -> None:
        # Laying the file out costs seconds; done once so that runs measure I/O, not file creation.
        subprocess.run(
            [
                "fio",
                "--name=layout",
                f"--filename={scratch / self.file_name}",
                f"--size={self.file_size}",
                "--create_only=1",
            ],
            check=True,
            capture_output=True,
        )

    def phase_command(self, level: int, seconds: int, ctx: WorkContext) -> list[str]:
        return [
            "fio",
            f"--name={self.name}",
            f"--filename={ctx.scratch / self.file_name}",
            f"--size={self.file_size}",
            *self.job_options(),
            f"--numjobs={level}",
            "--time_based",
            f"--runtime={seconds}",
            "--group_reporting",
            "--output-format=json",
        ]

    def parse(self, output: str) -> float:
        return fio_total(output, self.metric_field)
