"""stress-ng pipe: a writer and a reader process moving data through a pipe, kernel time and a context
switch per buffer; bogo ops/s. Between the kinds the switch-gated prior tells apart: its switches per
CPU-second lie between the compute kernels' and the storage programs' and servers'."""

from __future__ import annotations

from cotenant.datasets.lab.workloads.base import WORKLOADS, StressNgWorkload


@WORKLOADS.register("stressng_pipe")
class StressNgPipe(StressNgWorkload):
    name = "stressng_pipe"
    stressor = "pipe"
    description = "stress-ng --pipe, level = writer/reader pairs"
    category = "ipc"
