"""The workload catalogue: one module per workload, each registering itself in ``WORKLOADS``.

Adding a workload is one file plus its import here (explicit, so a missing file is an ImportError).
"""

from cotenant.datasets.lab.workloads import (
    fio_randrw,
    openssl_speed,
    pressure,
    redis,
    stressng_matrix,
    stressng_stream,
    sysbench_cpu,
    sysbench_cpu_rate,
    sysbench_memory,
    zstd_bench,
)
from cotenant.datasets.lab.workloads.base import WORKLOADS, ParseError, WorkContext, Workload

__all__ = [
    "WORKLOADS",
    "ParseError",
    "WorkContext",
    "Workload",
    "fio_randrw",
    "openssl_speed",
    "pressure",
    "redis",
    "stressng_matrix",
    "stressng_stream",
    "sysbench_cpu",
    "sysbench_cpu_rate",
    "sysbench_memory",
    "zstd_bench",
]
