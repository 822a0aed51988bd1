"""openssl speed AES-256-GCM on 16 KiB blocks; thousands of bytes per second. Level = parallel processes."""

from __future__ import annotations

from cotenant.datasets.lab.workloads.base import WORKLOADS, WorkContext, Workload, last_number


def parse_openssl_speed(output: str) -> float:
    return last_number(r"AES-256-GCM\s+([\d.]+)k", output, "openssl AES-256-GCM rate")


@WORKLOADS.register("openssl_speed")
class OpensslSpeed(Workload):
    name = "openssl_speed"
    unit = "kilobytes_per_second"
    description = "openssl speed -evp aes-256-gcm 16 KiB blocks, level = processes (-multi)"
    category = "cpu"

    def phase_command(self, level: int, seconds: int, ctx: WorkContext) -> list[str]:
        return [
            "openssl",
            "speed",
            "-seconds",
            str(seconds),
            "-bytes",
            "16384",
            "-multi",
            str(level),
            "-evp",
            "aes-256-gcm",
        ]

    def parse(self, output: str) -> float:
        return parse_openssl_speed(output)
