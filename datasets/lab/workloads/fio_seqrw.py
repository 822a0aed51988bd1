"""fio sequential 128 KiB reads and writes with direct I/O on one file reused by every run; bytes per second.

Streaming storage (backups, log shipping, media files): bound by the disk's bandwidth where ``fio_randrw`` is
bound by its operations per second, with about a quarter of a core of CPU either way.
"""

from __future__ import annotations

from cotenant.datasets.lab.workloads.base import WORKLOADS, FioWorkload


@WORKLOADS.register("fio_seqrw")
class FioSeqRW(FioWorkload):
    name = "fio_seqrw"
    unit = "bytes_per_second"
    description = "fio sequential rw 128k direct psync on a 256 MiB file, level = jobs"
    file_name = "fio-seqrw.dat"
    file_size = "256M"
    metric_field = "bw_bytes"

    def job_options(self) -> list[str]:
        return ["--rw=rw", "--bs=128k", "--direct=1", "--ioengine=psync"]
