"""sysbench memory: writes of 64 MiB blocks, far beyond L2, so bound by cache and memory bandwidth; MiB/s."""

from __future__ import annotations

from cotenant.datasets.lab.workloads.base import WORKLOADS, WorkContext, Workload, last_number


def parse_sysbench_memory(output: str) -> float:
    return last_number(r"MiB transferred \(([\d.]+) MiB/sec\)", output, "sysbench MiB/sec")


@WORKLOADS.register("sysbench_memory")
class SysbenchMemory(Workload):
    name = "sysbench_memory"
    unit = "mebibytes_per_second"
    description = "sysbench memory writes in 64 MiB blocks, level = threads"
    category = "memory"

    def phase_command(self, level: int, seconds: int, ctx: WorkContext) -> list[str]:
        # A total size no phase can reach, so that --time alone bounds the phase.
        return [
            "sysbench",
            "memory",
            f"--threads={level}",
            f"--time={seconds}",
            "--memory-block-size=64M",
            "--memory-total-size=100T",
            "--memory-oper=write",
            "run",
        ]

    def parse(self, output: str) -> float:
        return parse_sysbench_memory(output)
