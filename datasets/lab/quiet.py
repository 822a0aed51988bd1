"""Quiet labels: before each run, the lab measures the host's background load and waits while it is busy.

Interference labels are ratios to solo references; any other process on the host (a build, a test suite,
another tenant) slows solo and co-runs alike but at different moments, and that noise is as large as the
models' errors. Between runs the lab has nothing running but its collector, so the host's busy CPU over a
short window is the background. The lab waits until both the busy CPU and the host's CPU pressure (PSI
``some``, over the same window) are under their thresholds for one window, or ``max_wait_s`` has passed, and
records what it saw in the run's record (``background``), so the noise floor can be related to it.

Pure parsers apart from the reads: ``parse_cpu_ticks`` and ``parse_psi_total``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class QuietSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_busy_cpus: float = Field(
        default=0.15, ge=0, description="host CPU busy over the window, in cores (the collector uses ~0.01)"
    )
    max_cpu_pressure: float = Field(
        default=0.05, ge=0, le=1, description="share of the window some task waited for a CPU (PSI some)"
    )
    window_s: float = Field(default=1.0, gt=0, le=60)
    max_wait_s: float = Field(default=900.0, ge=0, description="then the run goes ahead, marked not quiet")


class BackgroundLoad(BaseModel):
    """What the host did just before a run (stored with the run)."""

    model_config = ConfigDict(extra="forbid")

    busy_cpus: float
    cpu_pressure: float | None  # None: the kernel has no PSI
    waited_s: float
    quiet: bool  # False: max_wait_s passed and the run went ahead on a busy host


def parse_cpu_ticks(stat: str) -> tuple[int, int]:
    """(busy, total) jiffies of the aggregate ``cpu`` line of /proc/stat (iowait and idle are not busy)."""
    for line in stat.splitlines():
        if line.startswith("cpu "):
            values = [int(value) for value in line.split()[1:]]
            # user nice system idle iowait irq softirq steal [guest guest_nice: already in user/nice]
            idle = values[3] + (values[4] if len(values) > 4 else 0)
            total = sum(values[:8])
            return total - idle, total
    raise ValueError("no aggregate cpu line in /proc/stat")


def parse_psi_total(text: str) -> int:
    """Microseconds some task stalled (the ``some`` line's ``total``) from a /proc/pressure file."""
    for line in text.splitlines():
        if line.startswith("some "):
            for field in line.split()[1:]:
                key, _, value = field.partition("=")
                if key == "total":
                    return int(value)
    raise ValueError("no 'some ... total=' line in the pressure file")


@dataclass(frozen=True)
class HostProbe:
    """Reads the host's counters; ``procfs`` is injectable for tests."""

    procfs: Path = Path("/proc")

    def cpu_ticks(self) -> tuple[int, int]:
        return parse_cpu_ticks((self.procfs / "stat").read_text())

    def cpu_stall_us(self) -> int | None:
        try:
            return parse_psi_total((self.procfs / "pressure" / "cpu").read_text())
        except (OSError, ValueError):
            return None


def measure(
    probe: HostProbe,
    window_s: float,
    cpus: int,
    sleep: Callable[[float], None],
    clock: Callable[[], float] = time.monotonic,
) -> tuple[float, float | None]:
    """(busy cores, CPU pressure share) over one window."""
    busy0, total0 = probe.cpu_ticks()
    stall0 = probe.cpu_stall_us()
    started = clock()
    sleep(window_s)
    elapsed = max(clock() - started, 1e-6)
    busy1, total1 = probe.cpu_ticks()
    stall1 = probe.cpu_stall_us()
    busy = cpus * (busy1 - busy0) / max(total1 - total0, 1)
    pressure = None if stall0 is None or stall1 is None else (stall1 - stall0) / 1e6 / elapsed
    return busy, pressure


def wait_for_quiet(
    spec: QuietSpec,
    cpus: int,
    probe: HostProbe | None = None,
    sleep: Callable[[float], None] = time.sleep,
    on_wait: Callable[[float, float | None, float], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> BackgroundLoad:
    """Blocks until one window is quiet (or ``max_wait_s`` passes) and says what the host did."""
    probe = probe or HostProbe()
    started = clock()
    while True:
        busy, pressure = measure(probe, spec.window_s, cpus, sleep, clock)
        quiet = busy <= spec.max_busy_cpus and (pressure is None or pressure <= spec.max_cpu_pressure)
        waited = clock() - started - spec.window_s
        if quiet or waited >= spec.max_wait_s:
            return BackgroundLoad(
                busy_cpus=round(busy, 4),
                cpu_pressure=None if pressure is None else round(pressure, 4),
                waited_s=round(max(waited, 0.0), 2),
                quiet=quiet,
            )
        if on_wait is not None:
            on_wait(busy, pressure, waited)
