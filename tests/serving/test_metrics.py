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


def test_a_batch_for_the_same_nodes_sets_only_the_nodes_whose_values_changed(metrics: ServiceMetrics) -> None:
    hosts = [f"m-node-{i}" for i in range(4)]
    first = PlacementBatch("db", hosts, np.array([0.9, 0.8, 0.7, 0.6]), np.array([0.5, np.nan, 0.4, 0.3]))
    metrics.placement_batch(first)
    metrics.publish()
    for host in hosts:  # changed behind the publisher's back: shows which gauges the next publish sets
        metrics.predicted_performance.labels(host, "db", "newcomer").set(-1.0)
    second = PlacementBatch(
        "db", list(hosts), np.array([0.9, 0.2, 0.7, 0.6]), np.array([0.5, np.nan, 0.4, 0.1])
    )
    metrics.placement_batch(second)
    metrics.publish()
    assert [gauge(metrics, h, "db", "newcomer") for h in hosts] == [-1.0, pytest.approx(0.2), -1.0, -1.0]
    assert gauge(metrics, "m-node-3", "db", "worst_incumbent") == pytest.approx(0.1)
    assert gauge(metrics, "m-node-1", "db", "worst_incumbent") is None
    # other nodes for the same workload: every value is expanded (compared with what was last published)
    metrics.placement_batch(PlacementBatch("db", ["m-node-9"], np.array([0.33]), np.array([np.nan])))
    metrics.publish()
    assert gauge(metrics, "m-node-9", "db", "newcomer") == pytest.approx(0.33)
