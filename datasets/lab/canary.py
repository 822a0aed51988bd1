"""The machine's own speed at each run's edges: a short fixed benchmark (the canary) before and after it.

On a shared virtual machine the machine's speed wanders (other tenants of the physical host, its clock):
solos of one configuration half a minute apart can differ by several per cent with no neighbour, no
background load, no steal time and no pressure visible from inside. A label divides a run's performance by
its solo references', so the wander enters it twice. The canary samples it: ``sysbench cpu`` on every CPU
and ``sysbench memory`` on one thread, ``seconds`` each, right before the run's neighbours start and right
after they stop, so it measures the machine, never the run's own interference. Stored with the run
(``speed_before``, ``speed_after``); ``cotenant lab labels`` says how far dividing by it moves the noise
floor. Before a sitting's first run, ``measure_steadiness`` samples it a few times to tell whether the machine
is steady enough to label on at all (``cotenant lab run --max-speed-spread``).

The canaries are catalogue workloads (their commands and parsers are the catalogue's, tested there).
"""

from __future__ import annotations

import statistics
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from cotenant.datasets.lab.workloads import WORKLOADS
from cotenant.datasets.lab.workloads.base import ParseError, WorkContext
from pydantic import BaseModel, ConfigDict, Field


class CanarySpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seconds: int = Field(default=1, ge=1, le=10, description="length of each canary benchmark")


class CanaryFailed(RuntimeError):
    """A canary produced no measurement; the message names it."""


def canary_workloads(cpus: int) -> dict[str, tuple[str, int]]:
    """Canary name -> (catalogue workload, level), in the order they run: the CPU canary on every CPU (a slow
    core shows), the memory one on one thread."""
    return {"cpu": ("sysbench_cpu", cpus), "memory": ("sysbench_memory", 1)}


CANARIES = tuple(canary_workloads(1))


def measure_speed(spec: CanarySpec, cpus: int) -> dict[str, float]:
    """Each canary's metric (higher is faster) over ``spec.seconds``; raises CanaryFailed."""
    speeds: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="cotenant-canary-") as scratch:
        context = WorkContext(Path(scratch), Path(scratch), Path(scratch))
        for name, (workload_name, level) in canary_workloads(cpus).items():
            workload = WORKLOADS[workload_name]()
            command = workload.phase_command(level, spec.seconds, context)
            try:
                done = subprocess.run(
                    command, capture_output=True, text=True, timeout=spec.seconds + 30, check=False
                )
                speeds[name] = workload.parse(done.stdout)
            except (OSError, subprocess.TimeoutExpired, ParseError) as error:
                raise CanaryFailed(f"canary {name} ({' '.join(command)}): {error}") from error
    return speeds


# A sitting's pre-flight: the canary a few times, a short pause apart, before the first run. The quiet gate
# sees only the guest's own load; a machine whose speed wanders under it (a busy hypervisor) labels as badly,
# and the noise watch only says so after a dozen solos (half an hour of lab time).
STEADINESS_SAMPLES = 5
STEADINESS_PAUSE_S = 2.0
STEADY_WAIT_S = 1800.0  # how long a sitting waits for a steady machine before it gives up
STEADY_RETRY_S = 60.0


def speed_spread_pct(samples: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """Per canary, how far its samples spread: (fastest - slowest) / their median, in %."""
    spreads: dict[str, float] = {}
    for name in samples[0] if samples else ():
        speeds = [sample[name] for sample in samples]
        spreads[name] = 100.0 * (max(speeds) - min(speeds)) / statistics.median(speeds)
    return spreads


def describe_spread(spreads: Mapping[str, float]) -> str:
    """``cpu 2.8%, memory 3.3%``: the spreads as the lab prints them."""
    return ", ".join(f"{name} {spread:.1f}%" for name, spread in spreads.items())


def measure_steadiness(
    spec: CanarySpec,
    cpus: int,
    samples: int = STEADINESS_SAMPLES,
    pause_s: float = STEADINESS_PAUSE_S,
) -> dict[str, float]:
    """``speed_spread_pct`` of ``samples`` canary measurements ``pause_s`` apart; raises CanaryFailed."""
    speeds = []
    for index in range(samples):
        if index:
            time.sleep(pause_s)
        speeds.append(measure_speed(spec, cpus))
    return speed_spread_pct(speeds)
