"""gzip -9 compressing the session's 2 MiB text log (``compress_input``); compressions per second.

DEFLATE: a 32 KiB window and hash chains of a few hundred KiB, so unlike xz (an 8 MiB dictionary) its
working set sits in the L2; about 0.12 s a unit on a quiet 2-core VM, 2 MiB of memory, ~3x on this log.
"""

from __future__ import annotations

from cotenant.datasets.lab.workloads.base import WORKLOADS
from cotenant.datasets.lab.workloads.compress_input import LogCompressWorkload


@WORKLOADS.register("gzip_compress")
class GzipCompress(LogCompressWorkload):
    name = "gzip_compress"
    description = "gzip -9 on a 2 MiB text log, level = concurrent gzip processes"
    compressor = ("gzip", "-9")
