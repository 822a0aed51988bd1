from __future__ import annotations

import pytest
from cotenant.collectors.base import MetricGroup, counter, gauge
from cotenant.collectors.derive import derive

SPECS = {
    s.name: s
    for s in (
        counter("cpu_seconds_total", "seconds", "t", MetricGroup.CPU, "cpu"),
        gauge("memory_bytes", "bytes", "t", MetricGroup.MEMORY, "mem"),
    )
}


def test_first_sample_is_dropped() -> None:
    assert derive(None, {"cpu_seconds_total": 5.0}, 1.0, SPECS) is None


def test_counter_becomes_rate_and_gauge_passes_through() -> None:
    out = derive({"cpu_seconds_total": 10.0}, {"cpu_seconds_total": 11.5, "memory_bytes": 7.0}, 2.0, SPECS)
    assert out == {"cpu_seconds_per_second": pytest.approx(0.75), "memory_bytes": 7.0}


def test_reset_gives_null_not_negative_spike() -> None:
    out = derive({"cpu_seconds_total": 10.0}, {"cpu_seconds_total": 1.0}, 1.0, SPECS)
    assert out == {"cpu_seconds_per_second": None}


def test_counter_new_in_this_reading_is_null_and_unknown_names_ignored() -> None:
    out = derive({}, {"cpu_seconds_total": 3.0, "undeclared_total": 1.0}, 1.0, SPECS)
    assert out == {"cpu_seconds_per_second": None}


def test_non_positive_interval_gives_no_sample() -> None:
    assert derive({"cpu_seconds_total": 1.0}, {"cpu_seconds_total": 2.0}, 0.0, SPECS) is None
