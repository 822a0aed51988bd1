"""zstd -1 compressing a 64 MiB text log that it reads from disk with direct I/O; compressions per second.

A program between the kinds the work-rate reference tells apart (``reports/evaluation``): ``dd iflag=direct``
reads the file in 256 KiB requests that bypass the page cache, so each read waits on the disk, and zstd
compresses what arrives through the pipe: part CPU, part waiting on the disk, between the storage programs (a
third of a core alone, their progress their blocking calls) and the compressors (a core, their progress their
CPU time); which of the two its progress follows depends on which its neighbours take. (Its solo profile in
the campaign that measures it says how much of a core it uses alone.) The input is the compressors' log
(``compress_input``) 32 times over, written once per session; zstd's level-1 window (512 KiB) is far below
the log's 2 MiB, so the copies compress as new text.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import ClassVar

from cotenant.datasets.lab.workloads.base import WORKLOADS, RepeatWorkload, WorkContext
from cotenant.datasets.lab.workloads.compress_input import INPUT_BYTES, generate_log

INPUT_NAME = "direct-input.log"
# Direct reads of this size: large enough that the disk streams, small enough that a unit waits many times.
READ_BYTES = 256 * 1024


@WORKLOADS.register("zstd_direct")
class ZstdDirect(RepeatWorkload):
    name = "zstd_direct"
    unit = "compressions_per_second"
    description = "dd iflag=direct bs=256K | zstd -1 over a 64 MiB text log, level = concurrent pipelines"
    category = "compression"
    copies: ClassVar[int] = 32  # of the 2 MiB log: 64 MiB

    def input(self, scratch: Path) -> Path:
        return scratch / f"{self.copies}x-{INPUT_NAME}"

    def prepare(self, scratch: Path) -> None:
        target = self.input(scratch)
        if target.exists() and target.stat().st_size == self.copies * INPUT_BYTES:
            return
        log = generate_log()
        partial = target.with_suffix(".partial")
        with partial.open("wb") as out:
            for _ in range(self.copies):
                out.write(log)
        partial.rename(target)

    def unit_command(self, level: int, ctx: WorkContext) -> list[str]:
        read = shlex.join(
            ["dd", f"if={self.input(ctx.scratch)}", "iflag=direct", f"bs={READ_BYTES}", "status=none"]
        )
        return ["sh", "-c", f"{read} | zstd -1 -q -c > /dev/null"]
