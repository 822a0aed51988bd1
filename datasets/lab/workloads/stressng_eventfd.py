"""stress-ng eventfd: a parent and a child waking each other through an eventfd, almost all wake-ups and
context switches (as often per CPU-second as a server's); bogo ops/s. A program that blocks on every unit of
work yet is bound by CPU time, not by a device."""

from __future__ import annotations

from cotenant.datasets.lab.workloads.base import WORKLOADS, StressNgWorkload


@WORKLOADS.register("stressng_eventfd")
class StressNgEventfd(StressNgWorkload):
    name = "stressng_eventfd"
    stressor = "eventfd"
    description = "stress-ng --eventfd, level = parent/child pairs"
    category = "ipc"
