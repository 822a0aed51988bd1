"""fio appending 8 KiB writes, each made durable by fdatasync as a database's write-ahead log commits them;
commits per second.

Bound by the disk's flush latency, neither its bandwidth (``fio_seqrw``) nor its random operations
(``fio_randrw``); the program waits on each flush with little CPU.
"""

from __future__ import annotations

from cotenant.datasets.lab.workloads.base import WORKLOADS, FioWorkload


@WORKLOADS.register("fio_wal")
class FioWal(FioWorkload):
    name = "fio_wal"
    unit = "commits_per_second"
    description = "fio sequential 8k writes, fdatasync after each, on a 64 MiB file, level = jobs"
    file_name = "fio-wal.dat"
    file_size = "64M"
    metric_field = "iops"

    def job_options(self) -> list[str]:
        return ["--rw=write", "--bs=8k", "--fdatasync=1", "--ioengine=sync"]
