"""The lab source on a small lab directory: labels, time windows, neighbour mean, host, profiles."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from cotenant.datasets import load_source
from labdir_fixture import CGROUP_METRICS, RUN_SECONDS, cgroup_value, write_lab_dir


def test_labels_against_median_solo(lab_dir: Path) -> None:
    table = load_source(lab_dir)
    labels = dict(table.runs.select("run_id", "label").iter_rows())
    # alpha solos 100 and 104 -> median 102; beta solos 50, 50.
    assert labels == pytest.approx({"r0006": 51 / 102, "r0007": 40 / 50, "r0008": 1.0})
    assert table.runs["n_neighbours"].to_list() == [1, 2, 0]
    assert table.runs["has_neighbours"].to_list() == [True, True, False]
    # the lab's noise floor: each solo against the other solos of its config; deviations 0.0385, 0.04, 0, 0
    assert table.meta["noise_floor"]["n_solo_pairs"] == 4
    assert table.meta["noise_floor"]["median_abs_deviation"] == pytest.approx((1 - 100 / 104) / 2)


def test_telemetry_cut_to_window_and_neighbours_averaged(lab_dir: Path) -> None:
    table = load_source(lab_dir)
    per_run = dict(table.telemetry.group_by("run_id").len().iter_rows())
    assert per_run == {"r0006": RUN_SECONDS, "r0007": RUN_SECONDS, "r0008": RUN_SECONDS}
    run = table.telemetry.filter(pl.col("run_id") == "r0007").sort("second")  # index 6, two neighbours
    seconds = np.arange(RUN_SECONDS)
    for k, metric in enumerate(CGROUP_METRICS):
        np.testing.assert_allclose(run[f"self__{metric}"], [cgroup_value(6, 0, s, k) for s in seconds])
        expected = [(cgroup_value(6, 1, s, k) + cgroup_value(6, 2, s, k)) / 2 for s in seconds]
        np.testing.assert_allclose(run[f"neighbour_mean__{metric}"], expected)
    alone = table.telemetry.filter(pl.col("run_id") == "r0008")
    assert (alone.select(table.neighbour_columns).to_numpy() == 0).all()
    assert table.host_columns == ["host__cpu_busy_ratio", "host__psi_cpu_some_ratio"]
    assert run["host__cpu_busy_ratio"].null_count() == 0


def test_profiles_from_solo_runs(lab_dir: Path) -> None:
    table = load_source(lab_dir)
    assert sorted(table.profiles["profile_id"].unique()) == [
        "alpha/static/l1",
        "beta/static/l1",
        "stress-cache/l2",
    ]
    alpha = table.profiles.filter(pl.col("profile_id") == "alpha/static/l1").sort("second")
    np.testing.assert_allclose(
        alpha[CGROUP_METRICS[0]], [cgroup_value(0, 0, s, 0) for s in range(RUN_SECONDS)]
    )
    r7 = table.runs.filter(pl.col("run_id") == "r0007")
    assert r7["neighbour_profiles"].to_list() == [["stress-cache/l2", "alpha/static/l1"]]


def test_bad_record_names_file_line_and_field(tmp_path: Path, lab_dir: Path) -> None:
    lines = (lab_dir / "runs.jsonl").read_text().splitlines()
    record = json.loads(lines[2])
    del record["config_key"]
    lines[2] = json.dumps(record)
    (lab_dir / "runs.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"(?s)runs.jsonl:3: not a RunRecord: .*config_key"):
        load_source(lab_dir)


def test_corun_without_solo_reference_is_dropped_and_counted(tmp_path: Path) -> None:
    root = write_lab_dir(tmp_path / "lab")
    records = [json.loads(line) for line in (root / "runs.jsonl").read_text().splitlines()]
    kept = [r for r in records if r["application"] != "beta" or r["kind"] == "corun"]
    (root / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in kept))
    table = load_source(f"lab:{root}")
    assert "r0007" not in table.runs["run_id"].to_list()
    assert table.meta["dropped"]["no_solo_reference"] == 1
