"""stress-ng pressure neighbours, one per contended resource; level = workers.

These are the lab's controlled aggressors (any catalogue workload can also be a neighbour). Their metric is
stress-ng's bogo ops/s, recorded in their solo profiles like any workload's.
"""

from __future__ import annotations

from cotenant.datasets.lab.workloads.base import WORKLOADS, StressNgWorkload, WorkContext


@WORKLOADS.register("pressure_cpu")
class CpuPressure(StressNgWorkload):
    name = "pressure_cpu"
    stressor = "cpu"
    description = "CPU: stress-ng --cpu at 100% load"


@WORKLOADS.register("pressure_cache")
class CachePressure(StressNgWorkload):
    name = "pressure_cache"
    stressor = "cache"
    description = "CPU caches: stress-ng --cache thrashing"


@WORKLOADS.register("pressure_membw")
class MemoryBandwidthPressure(StressNgWorkload):
    name = "pressure_membw"
    stressor = "memrate"
    description = "memory bandwidth: stress-ng --memrate over 256 MiB per worker"

    def extra_options(self, level: int, ctx: WorkContext) -> list[str]:
        return ["--memrate-bytes", "256M"]


@WORKLOADS.register("pressure_vm")
class VirtualMemoryPressure(StressNgWorkload):
    name = "pressure_vm"
    stressor = "vm"
    description = "virtual memory: stress-ng --vm touching 192 MiB per worker"

    def extra_options(self, level: int, ctx: WorkContext) -> list[str]:
        return ["--vm-bytes", "192M"]


@WORKLOADS.register("pressure_io")
class IoPressure(StressNgWorkload):
    name = "pressure_io"
    stressor = "hdd"
    description = "block I/O: stress-ng --hdd with direct I/O on 64 MiB files"

    def extra_options(self, level: int, ctx: WorkContext) -> list[str]:
        return ["--hdd-bytes", "64M", "--hdd-opts", "direct", "--temp-path", str(ctx.role_dir)]


@WORKLOADS.register("pressure_net")
class NetworkPressure(StressNgWorkload):
    name = "pressure_net"
    stressor = "sock"
    description = "loopback network: stress-ng --sock TCP send/receive over 127.0.0.1"
