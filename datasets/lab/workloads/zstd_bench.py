"""zstd's built-in benchmark on its synthetic corpus; compression MB/s. Level = zstd compression level."""

from __future__ import annotations

from cotenant.datasets.lab.workloads.base import WORKLOADS, WorkContext, Workload, last_number


def parse_zstd_bench(output: str) -> float:
    # Progress lines are separated by carriage returns; the final one has both speeds, compression first.
    return last_number(r"\(x[\d.]+\),\s+([\d.]+) MB/s,\s+[\d.]+ MB/s", output, "zstd compression MB/s")


@WORKLOADS.register("zstd_bench")
class ZstdBench(Workload):
    name = "zstd_bench"
    unit = "megabytes_per_second"
    description = "zstd -b on synthetic data, level = compression level"
    category = "compression"
    min_phase_s = 2

    def phase_command(self, level: int, seconds: int, ctx: WorkContext) -> list[str]:
        # -i N benchmarks compression for N seconds, then decompression for N more.
        return ["zstd", f"-b{level}", f"-i{max(1, seconds // 2)}"]

    def parse(self, output: str) -> float:
        return parse_zstd_bench(output)
