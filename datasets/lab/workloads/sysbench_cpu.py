"""sysbench cpu: prime-number search, compute bound; events per second."""

from __future__ import annotations

from cotenant.datasets.lab.workloads.base import WORKLOADS, WorkContext, Workload, last_number


def parse_sysbench_cpu(output: str) -> float:
    return last_number(r"events per second:\s+([\d.]+)", output, "sysbench events per second")


@WORKLOADS.register("sysbench_cpu")
class SysbenchCpu(Workload):
    name = "sysbench_cpu"
    unit = "events_per_second"
    description = "sysbench cpu (primes up to 10000), level = threads"
    category = "cpu"

    def phase_command(self, level: int, seconds: int, ctx: WorkContext) -> list[str]:
        return ["sysbench", "cpu", f"--threads={level}", f"--time={seconds}", "--cpu-max-prime=10000", "run"]

    def parse(self, output: str) -> float:
        return parse_sysbench_cpu(output)
