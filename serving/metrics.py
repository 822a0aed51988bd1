"""Prometheus metrics of the service, served on BentoML's ``/metrics``.

Predicted P per host and workload is what autoscalers read. Setting hundreds of labelled gauges inside an
extender call would cost milliseconds (BentoML runs prometheus_client in multiprocess mode: each set writes a
memory-mapped file), so requests only record the latest values in a dict and a daemon thread publishes them.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from cotenant.serving.schemas import HostPlacement

_METRICS: dict[str, Any] = {}  # one object per name per process: prometheus_client refuses duplicates


def _metric(kind: str, name: str, documentation: str, labels: tuple[str, ...], **options: Any) -> Any:
    # Imported here, after BentoML has set PROMETHEUS_MULTIPROC_DIR in the worker (see bentoml.metrics).
    import prometheus_client

    if name not in _METRICS:
        _METRICS[name] = getattr(prometheus_client, kind)(name, documentation, labels, **options)
    return _METRICS[name]


class ServiceMetrics:
    def __init__(self, publish_interval_s: float = 2.0, max_series: int = 20_000) -> None:
        self.predicted_performance = _metric(
            "Gauge",
            "cotenant_predicted_performance",
            "Latest predicted P (performance relative to running alone) by host, workload and role",
            ("host", "workload", "role"),
            multiprocess_mode="mostrecent",
        )
        self.ingested_samples = _metric(
            "Counter", "cotenant_ingested_samples", "Telemetry samples received by /ingest", ("host",)
        )
        self.neutral_answers = _metric(
            "Counter",
            "cotenant_extender_neutral",
            "Extender nodes answered neutrally (unknown profile, unknown or stale host, no champion)",
            ("verb", "scope"),
        )
        self.champion_version = _metric(
            "Gauge",
            "cotenant_champion_version",
            "Registered model version serving as champion",
            ("task",),
            multiprocess_mode="mostrecent",
        )
        self.max_series = max_series
        self._pending: OrderedDict[tuple[str, str, str], float] = OrderedDict()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._publish_loop, args=(publish_interval_s,), daemon=True)
        self._thread.start()

    def predicted(self, host: str, workload: str, role: str, value: float) -> None:
        with self._lock:
            self._pending[(host, workload, role)] = value
            while len(self._pending) > self.max_series:
                self._pending.popitem(last=False)

    def placements(self, workload: str, placements: list[HostPlacement]) -> None:
        with self._lock:
            for placement in placements:
                if placement.newcomer is not None:
                    self._pending[(placement.host, workload, "newcomer")] = placement.newcomer.p
                if placement.worst_incumbent is not None:
                    self._pending[(placement.host, workload, "worst_incumbent")] = placement.worst_incumbent.p
            while len(self._pending) > self.max_series:
                self._pending.popitem(last=False)

    def ingested(self, host: str, count: int) -> None:
        self.ingested_samples.labels(host).inc(count)

    def neutral(self, verb: str, scope: str, count: int) -> None:
        self.neutral_answers.labels(verb, scope).inc(count)

    def model_versions(self, versions: dict[str, str | None]) -> None:
        for task, version in versions.items():
            if version is not None and version.isdigit():
                self.champion_version.labels(task).set(int(version))

    def publish(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, OrderedDict()
        for (host, workload, role), value in pending.items():
            self.predicted_performance.labels(host, workload, role).set(value)

    def _publish_loop(self, interval_s: float) -> None:
        while not self._stop.wait(interval_s):
            self.publish()

    def stop(self) -> None:
        self._stop.set()
