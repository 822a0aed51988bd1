"""fio random 4 KiB reads and writes with direct I/O on one file reused by every run; total IOPS."""

from __future__ import annotations

from cotenant.datasets.lab.workloads.base import WORKLOADS, FioWorkload


@WORKLOADS.register("fio_randrw")
class FioRandRW(FioWorkload):
    name = "fio_randrw"
    unit = "iops"
    description = "fio randrw 4k direct psync on a 256 MiB file, level = jobs"
    file_name = "fio-randrw.dat"
    file_size = "256M"
    metric_field = "iops"

    def job_options(self) -> list[str]:
        return ["--rw=randrw", "--bs=4k", "--direct=1", "--ioengine=psync"]
