"""stress-ng memcpy: copies between 2 MiB buffers (to and from a shared one, and overlapping moves), bound by
the caches' and memory's copy bandwidth; bogo ops/s.

A copy kernel rather than stream's arithmetic (copy/scale/add/triad over 16 MiB arrays): the libc memcpy
and memmove every program spends time in, on buffers that spill from the L2.
"""

from __future__ import annotations

from cotenant.datasets.lab.workloads.base import WORKLOADS, StressNgWorkload


@WORKLOADS.register("stressng_memcpy")
class StressNgMemcpy(StressNgWorkload):
    name = "stressng_memcpy"
    stressor = "memcpy"
    description = "stress-ng --memcpy (2 MiB buffers), level = workers"
    category = "memory"
