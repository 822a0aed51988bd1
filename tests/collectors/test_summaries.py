"""The one summary function (training, service, agent) and the compact packing of its vectors."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from cotenant.collectors.summaries import (
    SUMMARIES,
    pack,
    packed_chars,
    schema_id,
    summarise,
    summary_names,
    unpack,
)
from cotenant.datasets.tensors import profile_summaries


def polars_reference(window: np.ndarray) -> np.ndarray:
    """The summaries as training computed them before ``summarise`` existed (Polars, NaN as missing)."""
    frame = pl.DataFrame(window, schema=[f"m{i}" for i in range(window.shape[1])], orient="row")
    frame = frame.with_columns(pl.all().fill_nan(None))
    row = frame.select(
        expr
        for name in frame.columns
        for expr in (
            pl.col(name).mean().alias(f"{name}_mean"),
            pl.col(name).std(ddof=0).alias(f"{name}_std"),
            pl.col(name).quantile(0.9).alias(f"{name}_p90"),
        )
    ).row(0)
    return np.array([np.nan if v is None else v for v in row], dtype=np.float64)


@pytest.mark.parametrize("seconds", [1, 2, 6, 7, 20, 120])
def test_summarise_reproduces_the_training_summaries_exactly(seconds: int) -> None:
    rng = np.random.default_rng(seconds)
    window = rng.gamma(2.0, 3.0, size=(seconds, 5)) * np.array([1e-3, 1.0, 1e3, 1e9, 1.0])
    window[rng.random(window.shape) < 0.2] = np.nan  # missing seconds
    window[:, 4] = np.nan  # a metric the target never had
    ours, reference = summarise(window), polars_reference(window)
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(reference))
    np.testing.assert_allclose(ours[~np.isnan(ours)], reference[~np.isnan(reference)], rtol=1e-12)
    assert len(ours) == 5 * len(SUMMARIES) and np.isnan(ours[12:]).all()


def test_the_run_table_summaries_are_summarise_per_profile() -> None:
    rng = np.random.default_rng(0)
    rows = [
        {"profile_id": pid, "second": s, "a": float(rng.normal()), "b": float(rng.gamma(2.0)) * 1e6}
        for pid in ("w2", "w1")
        for s in range(9)
    ]
    names, table = profile_summaries(pl.DataFrame(rows), ["a", "b"])
    assert names == summary_names(["a", "b"]) and table["profile_id"].to_list() == ["w1", "w2"]
    window = np.array([[r["a"], r["b"]] for r in rows if r["profile_id"] == "w1"])
    summarised = table.filter(pl.col("profile_id") == "w1").select(names).row(0)
    np.testing.assert_allclose(summarised, summarise(window), rtol=1e-12)


def test_pack_keeps_every_magnitude_within_its_stated_error_and_missing_as_missing() -> None:
    magnitudes = 10.0 ** np.arange(-3, 16)
    values = np.concatenate([magnitudes, -magnitudes, [0.0, np.nan]])
    back = unpack(pack(values), len(values))
    assert np.isnan(back[-1]) and back[-2] == 0.0
    relative = np.abs(back[:-2] - values[:-2]) / np.abs(values[:-2])
    # float16 of sign*log1p|x|: under 0.5% up to 1e4, under 2% at 1e15 (telemetry noise is larger)
    assert relative[np.abs(values[:-2]) <= 1e4].max() < 5e-3
    assert relative.max() < 2e-2


def test_a_compact_target_of_the_bundled_models_size_stays_under_2_kb() -> None:
    values = np.random.default_rng(0).gamma(2.0, 1e6, size=207 * len(SUMMARIES))  # 207 metrics
    packed = pack(values)
    assert len(packed) == packed_chars(len(values)) < 2048 - 100  # room for the target's name and time


def test_unpack_refuses_a_wrong_length_or_not_base64() -> None:
    packed = pack(np.ones(12))
    with pytest.raises(ValueError, match="12 values packed; the feature schema has 13"):
        unpack(packed, 13)
    with pytest.raises(ValueError, match="not base64"):
        unpack("not base64!", 12)


def test_schema_id_changes_with_metrics_order_and_window() -> None:
    base = schema_id(["a", "b"], 120)
    assert base == schema_id(["a", "b"], 120)
    assert len({base, schema_id(["b", "a"], 120), schema_id(["a", "b"], 60), schema_id(["a"], 120)}) == 4


def test_a_target_whose_seconds_went_to_a_replaced_schema_is_skipped_not_an_error() -> None:
    """When the service's champion changes mid-interval, the pusher's windows are replaced: a target named
    in the interval but without a second in the new windows gets no summary (its raw seconds ride along)."""
    from cotenant.collectors.push import CompactWindows
    from cotenant.collectors.summaries import FeatureSchema

    metrics = ["cpu_usage_seconds_per_second", "memory_current_bytes"]
    windows = CompactWindows(FeatureSchema(schema_id(metrics, 10), metrics, 10))
    windows.add("kubepods/pod1", {"cpu_usage_seconds_per_second": 0.5})
    found = windows.summaries({"kubepods/pod0", "kubepods/pod1"}, "2026-11-30T00:00:00+00:00")
    assert [summary["target"] for summary in found] == ["kubepods/pod1"]
    assert found[0]["seconds"] == 1
