"""Host pressure stall information (/proc/pressure/{cpu,memory,io}); ``full`` may be absent for cpu."""

from __future__ import annotations

from cotenant.collectors.base import (
    HOST_SOURCES,
    PRESSURE_RESOURCES,
    HostSource,
    MetricSpec,
    SourceUnavailable,
    pressure_specs,
)
from cotenant.collectors.keyed import pressure_parser

SOURCE = "host_psi"
PREFIX = "host_"
PARSERS = {resource: pressure_parser(PREFIX, resource) for resource in PRESSURE_RESOURCES}


@HOST_SOURCES.register(SOURCE)
class HostPsiSource(HostSource):
    name = SOURCE

    def specs(self) -> list[MetricSpec]:
        return pressure_specs(PREFIX, SOURCE)

    def open(self) -> None:
        if not (self.roots.procfs / "pressure").is_dir():
            raise SourceUnavailable("no /proc/pressure: kernel without PSI (CONFIG_PSI or psi=0)")

    def read(self) -> dict[str, float]:
        values: dict[str, float] = {}
        for resource, parse in PARSERS.items():
            try:
                values.update(parse(self.read_proc("pressure", resource)))
            except FileNotFoundError:
                continue
        return values
