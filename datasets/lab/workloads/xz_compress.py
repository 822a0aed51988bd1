"""xz -6 single-threaded compressing the session's 2 MiB text log (``compress_input``); compressions/s.

LZMA with an 8 MiB dictionary: about 0.7-0.9 s a unit on a quiet 2-core VM, ~36 MiB of memory per process,
its match finder's hash chains reaching well past the L2 (xz compresses the log ~4.3x).
"""

from __future__ import annotations

from cotenant.datasets.lab.workloads.base import WORKLOADS
from cotenant.datasets.lab.workloads.compress_input import LogCompressWorkload


@WORKLOADS.register("xz_compress")
class XzCompress(LogCompressWorkload):
    name = "xz_compress"
    description = "xz -6 -T1 on a 2 MiB text log, level = concurrent xz processes"
    compressor = ("xz", "-6", "-T1")
