"""fio random 4 KiB reads and writes with direct I/O on one file reused by every run; total IOPS."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from cotenant.datasets.lab.workloads.base import WORKLOADS, ParseError, WorkContext, Workload

FILE_NAME = "fio-randrw.dat"
FILE_SIZE = "256M"


def parse_fio_iops(output: str) -> float:
    """Read + write IOPS of the first job from fio's JSON output (fio may print warnings before the JSON)."""
    start = output.find("{")
    if start < 0:
        raise ParseError(f"no fio JSON in the output ({output[-200:]!r})")
    try:
        job = json.loads(output[start : output.rfind("}") + 1])["jobs"][0]
        return float(job["read"]["iops"]) + float(job["write"]["iops"])
    except (json.JSONDecodeError, KeyError, IndexError, TypeError, ValueError) as error:
        raise ParseError(f"fio JSON without jobs[0].read/write.iops: {error}") from error


@WORKLOADS.register("fio_randrw")
class FioRandRW(Workload):
    name = "fio_randrw"
    unit = "iops"
    description = "fio randrw 4k direct psync on a 256 MiB file, level = jobs"
    category = "storage"

    def prepare(self, scratch: Path) -> None:
        # Laying the file out costs seconds; done once so that runs measure I/O, not file creation.
        subprocess.run(
            [
                "fio",
                "--name=layout",
                f"--filename={scratch / FILE_NAME}",
                f"--size={FILE_SIZE}",
                "--create_only=1",
            ],
            check=True,
            capture_output=True,
        )

    def phase_command(self, level: int, seconds: int, ctx: WorkContext) -> list[str]:
        return [
            "fio",
            "--name=randrw",
            f"--filename={ctx.scratch / FILE_NAME}",
            f"--size={FILE_SIZE}",
            "--rw=randrw",
            "--bs=4k",
            "--direct=1",
            "--ioengine=psync",
            f"--numjobs={level}",
            "--time_based",
            f"--runtime={seconds}",
            "--group_reporting",
            "--output-format=json",
        ]

    def parse(self, output: str) -> float:
        return parse_fio_iops(output)
