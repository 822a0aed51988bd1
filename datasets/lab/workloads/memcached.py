"""memcached driven by memaslap (Debian's ``memcaslap``) over loopback TCP; operations per second.

The server starts once per run (``-m 64 -t 1``, one worker thread, on a 127.0.0.1 port reserved per role);
each phase is one ``memcaslap -T 1 -c <level> -t <seconds>s`` running memaslap's default mix (90 % get,
10 % set, keys and values from its built-in size distribution, a 10k-key window per connection). Level =
concurrent client connections, multiplexed by one client thread. The metric is the ``TPS`` (operations per
second, get and set together) of memaslap's final report.

memaslap has a duration option, so phases end by themselves. It speaks TCP only (host:port), hence the port.

memaslap binds each of its threads to a CPU (thread i to CPU i mod the CPU count: its one thread to CPU 0),
while the server went wherever the scheduler put it: beside the client on one core, or across two, run to
run. Solo throughput of one configuration was bimodal (~62k or ~77k TPS in the v2 and v2.1 campaigns' solo
runs of ``level=8``), a noise floor of ~20 pp. The server is therefore pinned beside the client (CPU 0) when
the role may use that CPU; in a cpuset without it memaslap's binding fails too and both float.
"""

from __future__ import annotations

from cotenant.datasets.lab.workloads.base import WORKLOADS, WorkContext, Workload, last_number
from cotenant.datasets.lab.workloads.ports import port_accepts, reserve_port

# The server's command runs through this: on CPU 0 (where memaslap binds its thread) when the role's cgroup
# allows that CPU, else as it is; ``exec`` keeps one process, the server, for the runner to stop.
CLIENT_CPU = 0
BESIDE_THE_CLIENT = [
    "sh",
    "-c",
    f'if taskset -c {CLIENT_CPU} true 2>/dev/null; then exec taskset -c {CLIENT_CPU} "$@"; fi; exec "$@"',
    "memcached",
]


def parse_memaslap(output: str) -> float:
    # The final report's line; interim statistics (-S) are not requested, so it is the only one.
    return last_number(r"Run time: [\d.]+s Ops: \d+ TPS: (\d+)", output, "memaslap TPS")


@WORKLOADS.register("memcached")
class Memcached(Workload):
    name = "memcached"
    unit = "operations_per_second"
    description = "memcached (1 thread) + memaslap 90% get / 10% set, level = client connections"
    category = "key_value"

    def service_command(self, ctx: WorkContext) -> list[str] | None:
        port = reserve_port(ctx, "memcached")
        return [
            *BESIDE_THE_CLIENT,
            "memcached",
            # Required to run as root (ignored otherwise).
            "-u",
            "root",
            "-l",
            "127.0.0.1",
            "-p",
            str(port),
            "-U",
            "0",
            "-m",
            "64",
            "-t",
            "1",
            "-c",
            "4096",
        ]

    def service_ready(self, ctx: WorkContext) -> bool:
        return port_accepts(reserve_port(ctx, "memcached"))

    def phase_command(self, level: int, seconds: int, ctx: WorkContext) -> list[str]:
        port = reserve_port(ctx, "memcached")
        return [
            "memcaslap",
            "-s",
            f"127.0.0.1:{port}",
            "-T",
            "1",
            "-c",
            str(level),
            "-t",
            f"{seconds}s",
        ]

    def parse(self, output: str) -> float:
        return parse_memaslap(output)
