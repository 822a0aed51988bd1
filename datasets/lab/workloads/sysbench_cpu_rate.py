"""sysbench cpu driven at a fixed request rate (``--rate``), like a service under offered load; mean latency.

At a fixed offered rate the throughput does not change until the machine saturates, so interference shows in
the latency (which, with ``--rate``, includes the time a request waits in sysbench's queue): lower is better.
Level = offered load in hundreds of events per second, over two worker threads.
"""

from __future__ import annotations

from cotenant.datasets.lab.workloads.base import WORKLOADS, WorkContext, Workload, last_number

EVENTS_PER_LEVEL = 100


def parse_sysbench_latency(output: str) -> float:
    """Mean latency in milliseconds from sysbench's ``Latency (ms)`` block."""
    return last_number(r"Latency \(ms\):\s+min:\s+[\d.]+\s+avg:\s+([\d.]+)", output, "sysbench mean latency")


@WORKLOADS.register("sysbench_cpu_rate")
class SysbenchCpuRate(Workload):
    name = "sysbench_cpu_rate"
    unit = "milliseconds"
    higher_is_better = False
    description = "sysbench cpu at --rate = level x 100 events/s on 2 threads; mean latency"
    category = "cpu"

    def phase_command(self, level: int, seconds: int, ctx: WorkContext) -> list[str]:
        return [
            "sysbench",
            "cpu",
            "--threads=2",
            f"--rate={level * EVENTS_PER_LEVEL}",
            f"--time={seconds}",
            "--cpu-max-prime=10000",
            "run",
        ]

    def parse(self, output: str) -> float:
        return parse_sysbench_latency(output)
