"""Prometheus metrics of the service, served on BentoML's ``/metrics``.

Predicted P per host and workload is what autoscalers read. Setting hundreds of labelled gauges inside an
extender call would cost milliseconds (BentoML runs prometheus_client in multiprocess mode: each set writes a
memory-mapped file), so a request only hands its answer over as one batch of arrays (constant time, whatever
the number of nodes) and a daemon thread expands the batches and publishes the values that changed.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from cotenant.serving.schemas import HostPlacement

_METRICS: dict[str, Any] = {}  # one object per name per process: prometheus_client refuses duplicates
SeriesKey = tuple[str, str, str]  # host, workload, role


def _metric(kind: str, name: str, documentation: str, labels: tuple[str, ...], **options: Any) -> Any:
    # Imported here, after BentoML has set PROMETHEUS_MULTIPROC_DIR in the worker (see bentoml.metrics).
    import prometheus_client

    if name not in _METRICS:
        _METRICS[name] = getattr(prometheus_client, kind)(name, documentation, labels, **options)
    return _METRICS[name]


@dataclass(frozen=True)
class PlacementBatch:
    """One answer's predictions, as the request produced them: per host the newcomer's and the worst
    incumbent's P (NaN where absent)."""

    workload: str
    hosts: Sequence[str]
    newcomer_p: np.ndarray
    worst_incumbent_p: np.ndarray

    def supersedes(self, earlier: PlacementBatch) -> bool:
        """Same workload and nodes: the earlier batch's values would all be overwritten by this one's."""
        return self.workload == earlier.workload and (
            self.hosts is earlier.hosts or list(self.hosts) == list(earlier.hosts)
        )

    def changed_since(self, earlier: PlacementBatch) -> np.ndarray:
        """Positions whose newcomer or worst-incumbent P differs from ``earlier``'s (a batch this one
        supersedes; NaN equals NaN)."""
        differs = np.zeros(len(self.hosts), dtype=bool)
        for now, then in (
            (self.newcomer_p, earlier.newcomer_p),
            (self.worst_incumbent_p, earlier.worst_incumbent_p),
        ):
            differs |= ~((now == then) | (np.isnan(now) & np.isnan(then)))
        return np.flatnonzero(differs)

    def values(self, positions: np.ndarray | None = None) -> list[tuple[SeriesKey, float]]:
        """Every (series, value) of the batch, or only those at ``positions``; none for NaN."""
        hosts = self.hosts if positions is None else [self.hosts[i] for i in positions.tolist()]
        out: list[tuple[SeriesKey, float]] = []
        for role, values in (("newcomer", self.newcomer_p), ("worst_incumbent", self.worst_incumbent_p)):
            chosen = values if positions is None else values[positions]
            out.extend(
                ((host, self.workload, role), value)
                for host, value in zip(hosts, chosen.tolist(), strict=True)
                if not math.isnan(value)
            )
        return out


class ServiceMetrics:
    def __init__(
        self, publish_interval_s: float = 2.0, max_series: int = 20_000, max_batches: int = 1_000
    ) -> None:
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
        self._pending: OrderedDict[SeriesKey, float] = OrderedDict()
        # Past the bound the oldest batches are dropped: their values were superseded or are that old.
        self._batches: deque[PlacementBatch] = deque(maxlen=max_batches)
        self._published: OrderedDict[SeriesKey, float] = OrderedDict()
        # The last batch published per workload: a batch for the same nodes expands only the nodes whose
        # values changed (the extender answers thousands of nodes per pod, mostly unchanged since).
        self._last_batches: OrderedDict[str, PlacementBatch] = OrderedDict()
        self.max_workloads = max_batches
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._publish_loop, args=(publish_interval_s,), daemon=True)
        self._thread.start()

    def predicted(self, host: str, workload: str, role: str, value: float) -> None:
        with self._lock:
            self._pending[(host, workload, role)] = value
            while len(self._pending) > self.max_series:
                self._pending.popitem(last=False)

    def placement_batch(self, batch: PlacementBatch) -> None:
        """Constant time on the request path; a batch for the same workload and nodes replaces the last."""
        with self._lock:
            if self._batches and batch.supersedes(self._batches[-1]):
                self._batches[-1] = batch
            else:
                self._batches.append(batch)

    def placements(self, workload: str, placements: list[HostPlacement]) -> None:
        newcomer = [p.newcomer.p if p.newcomer is not None else math.nan for p in placements]
        worst = [p.worst_incumbent.p if p.worst_incumbent is not None else math.nan for p in placements]
        hosts = [p.host for p in placements]
        self.placement_batch(PlacementBatch(workload, hosts, np.asarray(newcomer), np.asarray(worst)))

    def ingested(self, host: str, count: int) -> None:
        self.ingested_samples.labels(host).inc(count)

    def neutral(self, verb: str, scope: str, count: int) -> None:
        self.neutral_answers.labels(verb, scope).inc(count)

    def model_versions(self, versions: dict[str, str | None]) -> None:
        for task, version in versions.items():
            if version is not None and version.isdigit():
                self.champion_version.labels(task).set(int(version))

    def publish(self) -> None:
        """Expand the batches in arrival order (the latest value per series wins); set what changed."""
        with self._lock:
            pending, self._pending = self._pending, OrderedDict()
            batches, self._batches = self._batches, deque(maxlen=self._batches.maxlen)
        latest: dict[SeriesKey, float] = {}
        for batch in batches:
            earlier = self._last_batches.pop(batch.workload, None)
            if earlier is not None and batch.supersedes(earlier):
                latest.update(batch.values(batch.changed_since(earlier)))
            else:
                latest.update(batch.values())
            self._last_batches[batch.workload] = batch
            if len(self._last_batches) > self.max_workloads:
                self._last_batches.popitem(last=False)
        latest.update(pending)
        for key, value in latest.items():
            if self._published.get(key) == value:
                continue
            self.predicted_performance.labels(*key).set(value)
            self._published[key] = value
            self._published.move_to_end(key)
            if len(self._published) > self.max_series:
                self._published.popitem(last=False)

    def _publish_loop(self, interval_s: float) -> None:
        while not self._stop.wait(interval_s):
            self.publish()

    def stop(self) -> None:
        self._stop.set()
