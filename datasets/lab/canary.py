"""The machine's own speed at each run's edges: a short fixed benchmark (the canary) before and after it.

On a shared virtual machine the machine's speed wanders (other tenants of the physical host, its clock):
solos of one configuration half a minute apart can differ by several per cent with no neighbour, no
background load, no steal time and no pressure visible from inside. A label divides a run's performance by
its solo references', so the wander enters it twice. The canary samples it: ``sysbench cpu`` on every CPU
and ``sysbench memory`` on one thread, ``seconds`` each, right before the run's neighbours start and right
after they stop, so it measures the machine, never the run's own interference. Stored with the run
(``speed_before``, ``speed_after``); ``cotenant lab labels`` says how far dividing by it moves the noise
floor.

The canaries are catalogue workloads (their commands and parsers are the catalogue's, tested there).
"""

from __future__ import annotations

import subprocess
import tempfile
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
