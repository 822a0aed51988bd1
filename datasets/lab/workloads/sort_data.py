"""GNU ``sort`` of a 64 MiB CSV file of generated sales records on its second (key) field; sorts per second.

The file is generated once per session from a fixed seed (the same bytes on every machine): one million
records ``id,customer key,date,amount,status,comment`` whose keys are random 12-character strings. One unit is
one ``sort -S 256M --parallel=LEVEL -t, -k2,2`` of the whole file with its output discarded, in the C locale
(byte order: the same work on every machine, whatever its locale; a UTF-8 collation is several times slower
and varies with glibc). The file is read from the page cache after the first unit and 256 MiB of buffer hold
it whole, so a sort is in-memory: reading and splitting lines, then a merge sort whose comparisons chase
pointers to keys spread over 64 MiB, bound by the CPU, the caches and memory latency, not the disk.

Level = sort's threads (``--parallel``) within one sort at a time, as a data pipeline sorts one file: only the
in-memory sort is parallel, reading the input is not, so rates do not scale linearly with the level. The
file's size is fixed, so sorts per second times ``file_mb`` is the throughput in MB/s.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import ClassVar

from cotenant.datasets.lab.workloads.base import WORKLOADS, RepeatWorkload, WorkContext, repeat_command

SEED = 4242
ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
STATUSES = ["paid", "pending", "shipped", "refunded", "cancelled"]
COMMENTS = ["", "", "gift", "express delivery", "call before delivery", "leave at the door", "fragile"]


def generate_records(path: Path, megabytes: int, seed: int = SEED) -> None:
    """Writes about ``megabytes`` MiB of CSV records (whole lines) to ``path``."""
    rng = random.Random(seed)
    target = megabytes * 1024 * 1024
    written, number = 0, 0
    temporary = path.with_name(path.name + ".partial")
    with temporary.open("w") as out:
        while written < target:
            lines = []
            for _ in range(10_000):
                number += 1
                key = "".join(rng.choices(ALPHABET, k=12))
                lines.append(
                    f"{number:09d},{key},2023-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d},"
                    f"{rng.randint(1, 999_999) / 100:.2f},{rng.choice(STATUSES)},{rng.choice(COMMENTS)}\n"
                )
            block = "".join(lines)
            out.write(block)
            written += len(block)
    # Renamed when complete, so an existing file is never a partial one.
    temporary.replace(path)


@WORKLOADS.register("sort_data")
class SortData(RepeatWorkload):
    name = "sort_data"
    unit = "sorts_per_second"
    description = "GNU sort -k2,2 of a 64 MiB generated CSV (C locale, in memory), level = sort threads"
    category = "text"
    file_mb: ClassVar[int] = 64

    def records(self, scratch: Path) -> Path:
        return scratch / f"sort-records-{self.file_mb}mb.csv"

    def prepare(self, scratch: Path) -> None:
        if not self.records(scratch).exists():
            generate_records(self.records(scratch), self.file_mb)

    def unit_command(self, level: int, ctx: WorkContext) -> list[str]:
        # -T: if sort ever spilled (it should not with -S 256M), its temporary files go to the role's
        # directory (removed with the run), not /tmp. -o /dev/null: the sort is the work, not writing 64 MiB
        # out.
        return [
            "env",
            "LC_ALL=C",
            "sort",
            "-S",
            "256M",
            f"--parallel={level}",
            "-T",
            str(ctx.role_dir),
            "-t,",
            "-k2,2",
            "-o",
            "/dev/null",
            str(self.records(ctx.scratch)),
        ]

    def phase_command(self, level: int, seconds: int, ctx: WorkContext) -> list[str]:
        # One sort at a time: the level is sort's own parallelism.
        return repeat_command(seconds, 1, self.unit_command(level, ctx))
