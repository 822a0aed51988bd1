"""``--prometheus-port``: the latest sample of every table in the Prometheus text format.

A custom collector renders the latest rows on each scrape, so nothing is registered per metric and targets
that vanish disappear from the next scrape. Metric names get a ``cotenant_`` prefix; labels: table, target.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

from cotenant.collectors.rows import Row
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import CollectorRegistry

PREFIX = "cotenant_"


class LatestSample:
    """Holds the rows of the last tick; ``collect`` is called by the exporter thread on each scrape."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tables: dict[str, dict[str, Row]] = {}
        self._epoch_ms = 0

    def __call__(self, epoch_ms: int, tables: dict[str, dict[str, Row]]) -> None:
        with self._lock:
            self._tables, self._epoch_ms = tables, epoch_ms

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            tables = self._tables
        families: dict[str, GaugeMetricFamily] = {}
        for table, rows in tables.items():
            for target, row in rows.items():
                for name, value in row.items():
                    if value is None:
                        continue  # unavailable: absent from the exposition, never a fake zero
                    family = families.get(name)
                    if family is None:
                        family = GaugeMetricFamily(PREFIX + name, name, labels=["table", "target"])
                        families[name] = family
                    family.add_metric([table, target], value)
        yield from families.values()


class PrometheusSink(LatestSample):
    def __init__(self, port: int, address: str = "0.0.0.0") -> None:
        from prometheus_client import start_http_server

        super().__init__()
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)
        self.server, self.thread = start_http_server(port, addr=address, registry=self.registry)

    def close(self) -> None:
        self.server.shutdown()
