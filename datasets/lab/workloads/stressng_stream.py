"""stress-ng stream: STREAM-like copy/scale/add/triad over arrays sized for a 16 MiB cache; bogo ops/s.

stress-ng sizes the arrays from the detected L3 by default, which on large virtual L3s means gigabytes and
seconds of page faults before any work; a fixed size keeps short phases meaningful.
"""

from __future__ import annotations

from cotenant.datasets.lab.workloads.base import WORKLOADS, StressNgWorkload, WorkContext


@WORKLOADS.register("stressng_stream")
class StressNgStream(StressNgWorkload):
    name = "stressng_stream"
    stressor = "stream"
    description = "stress-ng --stream (16 MiB L3 assumed), level = workers"
    category = "memory"

    def extra_options(self, level: int, ctx: WorkContext) -> list[str]:
        return ["--stream-l3-size", "16M"]
