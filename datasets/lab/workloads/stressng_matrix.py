"""stress-ng matrix: floating-point matrix operations, compute and L1/L2 bound; bogo ops/s."""

from __future__ import annotations

from cotenant.datasets.lab.workloads.base import WORKLOADS, StressNgWorkload


@WORKLOADS.register("stressng_matrix")
class StressNgMatrix(StressNgWorkload):
    name = "stressng_matrix"
    stressor = "matrix"
    description = "stress-ng --matrix, level = workers"
    category = "cpu"
