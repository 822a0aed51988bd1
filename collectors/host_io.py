"""Host block devices (/proc/diskstats) and network interfaces (/proc/net/dev), one column set per device."""

from __future__ import annotations

import re

from cotenant.collectors.base import (
    HOST_SOURCES,
    HostSource,
    MetricGroup,
    MetricSpec,
    counter,
    gauge,
)

SOURCE = "host_io"
IO, NET = MetricGroup.IO, MetricGroup.NETWORK
SECTOR = 512.0
_IGNORED_DISKS = re.compile(r"^(loop|ram|zram)\d+")
# diskstats fields after major, minor, name: (metric, scale, unit); times are milliseconds.
DISK_FIELDS = (
    ("reads_total", 1.0, "operations"),
    ("reads_merged_total", 1.0, "operations"),
    ("read_bytes_total", SECTOR, "bytes"),
    ("read_seconds_total", 1e-3, "seconds"),
    ("writes_total", 1.0, "operations"),
    ("writes_merged_total", 1.0, "operations"),
    ("written_bytes_total", SECTOR, "bytes"),
    ("write_seconds_total", 1e-3, "seconds"),
    ("in_flight", 1.0, "operations"),
    ("busy_seconds_total", 1e-3, "seconds"),
    ("weighted_busy_seconds_total", 1e-3, "seconds"),
    ("discards_total", 1.0, "operations"),
    ("discards_merged_total", 1.0, "operations"),
    ("discarded_bytes_total", SECTOR, "bytes"),
    ("discard_seconds_total", 1e-3, "seconds"),
    ("flushes_total", 1.0, "operations"),
    ("flush_seconds_total", 1e-3, "seconds"),
)
NET_FIELDS = [
    "receive_bytes",
    "receive_packets",
    "receive_errors",
    "receive_drops",
    "receive_fifo_errors",
    "receive_frame_errors",
    "receive_compressed",
    "receive_multicast",
    "transmit_bytes",
    "transmit_packets",
    "transmit_errors",
    "transmit_drops",
    "transmit_fifo_errors",
    "transmit_collisions",
    "transmit_carrier_errors",
    "transmit_compressed",
]


def column_safe(device: str) -> str:
    return re.sub(r"[^a-zA-Z0-9]", "_", device)


def parse_diskstats(text: str) -> dict[str, float]:
    values: dict[str, float] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 7 or _IGNORED_DISKS.match(parts[2]):
            continue
        device = column_safe(parts[2])
        for (metric, scale, _), raw in zip(DISK_FIELDS, parts[3:], strict=False):
            values[f"host_disk_{device}_{metric}"] = float(raw) * scale
    return values


def parse_net_dev(text: str) -> dict[str, float]:
    values: dict[str, float] = {}
    for line in text.splitlines()[2:]:
        interface, _, counters = line.partition(":")
        name = column_safe(interface.strip())
        for metric, raw in zip(NET_FIELDS, counters.split(), strict=False):
            values[f"host_net_{name}_{metric}_total"] = float(raw)
    return values


def disk_specs(device: str) -> list[MetricSpec]:
    specs = []
    for metric, _, unit in DISK_FIELDS:
        name = f"host_disk_{device}_{metric}"
        description = f"/proc/diskstats {metric} of {device}"
        specs.append(
            counter(name, unit, SOURCE, IO, description)
            if metric.endswith("_total")
            else gauge(name, unit, SOURCE, IO, description)
        )
    return specs


@HOST_SOURCES.register(SOURCE)
class HostIoSource(HostSource):
    name = SOURCE

    def specs(self) -> list[MetricSpec]:
        specs: list[MetricSpec] = []
        try:
            diskstats = (self.roots.procfs / "diskstats").read_text()
            interfaces = parse_net_dev((self.roots.procfs / "net" / "dev").read_text())
        except OSError:
            return specs
        for line in diskstats.splitlines():
            parts = line.split()
            if len(parts) >= 7 and not _IGNORED_DISKS.match(parts[2]):
                specs += disk_specs(column_safe(parts[2]))
        specs += [
            counter(
                name,
                "bytes" if name.endswith("bytes_total") else "packets",
                SOURCE,
                NET,
                f"/proc/net/dev {name}",
            )
            for name in interfaces
        ]
        return specs

    def read(self) -> dict[str, float]:
        values = parse_diskstats(self.read_proc("diskstats"))
        values.update(parse_net_dev(self.read_proc("net", "dev")))
        return values
