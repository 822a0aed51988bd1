"""sysbench fileio: random 16 KiB reads and writes through the page cache on four files (256 MiB in all),
each file fsynced every 16 requests, as a database's data files are written; file operations per second.

Between the storage programs already measured: fio_randrw bypasses the page cache (direct I/O) and waits on
every request, fio_wal waits on a flush per write; here most requests are copies to and from the page cache
(CPU in the kernel) and the program waits on the disk at each fsync (about a quarter of a core alone at one
thread). ``prepare`` lays the files out once per session in the scratch directory; every run reuses them.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import ClassVar

from cotenant.datasets.lab.workloads.base import WORKLOADS, ParseError, WorkContext, Workload, last_number


def parse_sysbench_fileio(output: str) -> float:
    """Reads plus writes per second from sysbench fileio's ``File operations`` block (fsyncs not counted:
    they are the cost of the writes, not work of their own)."""
    reads = last_number(r"reads/s:\s+([\d.]+)", output, "sysbench fileio reads/s")
    writes = last_number(r"writes/s:\s+([\d.]+)", output, "sysbench fileio writes/s")
    if reads + writes <= 0:
        raise ParseError(f"sysbench fileio did no file operations ({output[-200:]!r})")
    return reads + writes


@WORKLOADS.register("sysbench_fileio")
class SysbenchFileio(Workload):
    name = "sysbench_fileio"
    unit = "file_operations_per_second"
    description = (
        "sysbench fileio rndrw 16k buffered, fsync every 16 requests, 4 files of 64 MiB, level = threads"
    )
    category = "storage"
    directory: ClassVar[str] = "sysbench-fileio"
    options: ClassVar[tuple[str, ...]] = ("--file-num=4", "--file-total-size=256M", "--file-block-size=16384")

    def files(self, scratch: Path) -> Path:
        return scratch / self.directory

    def prepare(self, scratch: Path) -> None:
        files = self.files(scratch)
        files.mkdir(parents=True, exist_ok=True)
        # sysbench works on test_file.N in its current directory; laying them out costs seconds, done once.
        subprocess.run(
            ["sysbench", "fileio", *self.options, "prepare"], cwd=files, check=True, capture_output=True
        )

    def phase_command(self, level: int, seconds: int, ctx: WorkContext) -> list[str]:
        # sysbench has no option for the files' directory: the phase starts in it (exec keeps the runner's
        # process the program's).
        run = [
            "sysbench",
            "fileio",
            *self.options,
            "--file-test-mode=rndrw",
            "--file-io-mode=sync",
            "--file-fsync-freq=16",
            # The files are the session's: the last fsync of a phase is not this phase's work to time.
            "--file-fsync-end=off",
            f"--threads={level}",
            f"--time={seconds}",
            "run",
        ]
        return ["sh", "-c", 'cd "$1" && shift && exec "$@"', "sh", str(self.files(ctx.scratch)), *run]

    def parse(self, output: str) -> float:
        return parse_sysbench_fileio(output)
