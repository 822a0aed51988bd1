"""Predicted-P gauges: requests hand over batches in constant time; the publisher expands them."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from cotenant.serving.metrics import PlacementBatch, ServiceMetrics


@pytest.fixture
def metrics() -> Iterator[ServiceMetrics]:
    instance = ServiceMetrics(publish_interval_s=3600)  # published by the test, not the thread
    yield instance
    instance.stop()


def gauge(metrics: ServiceMetrics, host: str, workload: str, role: str) -> float | None:
    labels = {"host": host, "workload": workload, "role": role}
    for sample in metrics.predicted_performance.collect()[0].samples:
        if sample.labels == labels:
            return float(sample.value)
    return None


def test_batches_publish_the_latest_value_per_host_workload_and_role(metrics: ServiceMetrics) -> None:
    hosts = ["m-node-a", "m-node-b"]
    metrics.placement_batch(PlacementBatch("web", hosts, np.array([0.9, 0.8]), np.array([0.7, np.nan])))
    metrics.placement_batch(PlacementBatch("web", hosts, np.array([0.6, 0.5]), np.array([0.4, np.nan])))
    assert len(metrics._batches) == 1  # the same nodes again: the newer batch replaced the older
    metrics.placement_batch(PlacementBatch("web", ["m-node-a"], np.array([0.3]), np.array([np.nan])))
    metrics.publish()
    assert gauge(metrics, "m-node-a", "web", "newcomer") == pytest.approx(0.3)
    assert gauge(metrics, "m-node-b", "web", "newcomer") == pytest.approx(0.5)
    assert gauge(metrics, "m-node-a", "web", "worst_incumbent") == pytest.approx(0.4)
    assert gauge(metrics, "m-node-b", "web", "worst_incumbent") is None  # no incumbent: no series


def test_unchanged_values_are_not_set_again(metrics: ServiceMetrics) -> None:
    batch = PlacementBatch("batch", ["m-node-c"], np.array([0.5]), np.array([0.6]))
    metrics.placement_batch(batch)
    metrics.publish()
    metrics.predicted_performance.labels("m-node-c", "batch", "newcomer").set(0.0)  # set elsewhere
    metrics.placement_batch(batch)
    metrics.publish()
    assert gauge(metrics, "m-node-c", "batch", "newcomer") == 0.0  # same value as last published: skipped
