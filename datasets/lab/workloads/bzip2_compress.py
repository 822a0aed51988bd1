"""bzip2 -9 compressing the session's 2 MiB text log (``compress_input``); compressions per second.

Burrows-Wheeler on 900 KiB blocks: sorting a block's suffixes is random access over several MiB (~8 MiB of
memory per process), a third kind of compressor beside xz's dictionary and gzip's small window; about
0.13 s a unit on a quiet 2-core VM, ~5x on this log.
"""

from __future__ import annotations

from cotenant.datasets.lab.workloads.base import WORKLOADS
from cotenant.datasets.lab.workloads.compress_input import LogCompressWorkload


@WORKLOADS.register("bzip2_compress")
class Bzip2Compress(LogCompressWorkload):
    name = "bzip2_compress"
    description = "bzip2 -9 on a 2 MiB text log, level = concurrent bzip2 processes"
    compressor = ("bzip2", "-9")
