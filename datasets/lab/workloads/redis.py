"""redis-server driven by redis-benchmark (SET on 100k random keys) over a unix socket; requests per second.

The server starts once per run; each phase is one redis-benchmark with ``level`` clients. redis-benchmark has
no duration option, so it gets a request count no phase reaches and is interrupted at the phase deadline; its
last progress line carries the overall rate so far.
"""

from __future__ import annotations

from cotenant.datasets.lab.workloads.base import WORKLOADS, WorkContext, Workload, last_number


def parse_redis_benchmark(output: str) -> float:
    return last_number(r"overall: ([\d.]+)\) avg_msec", output, "redis-benchmark overall rps")


@WORKLOADS.register("redis")
class Redis(Workload):
    name = "redis"
    unit = "requests_per_second"
    description = "redis-server + redis-benchmark SET, level = clients"
    category = "key_value"
    stop_at_deadline = True

    @staticmethod
    def socket(ctx: WorkContext) -> str:
        return str(ctx.runtime_dir / "redis.sock")

    def service_command(self, ctx: WorkContext) -> list[str] | None:
        return [
            "redis-server",
            "--port",
            "0",
            "--unixsocket",
            self.socket(ctx),
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--dir",
            str(ctx.role_dir),
        ]

    def service_ready(self, ctx: WorkContext) -> bool:
        return (ctx.runtime_dir / "redis.sock").exists()

    def phase_command(self, level: int, seconds: int, ctx: WorkContext) -> list[str]:
        return [
            "redis-benchmark",
            "-s",
            self.socket(ctx),
            "-t",
            "set",
            "-r",
            "100000",
            "-n",
            "2000000000",
            "-c",
            str(level),
            "-q",
        ]

    def parse(self, output: str) -> float:
        return parse_redis_benchmark(output)
