"""The data digest every evaluation and registered version carries: what a model reads, and only that."""

from __future__ import annotations

import polars as pl
from cotenant.datasets import load_source
from cotenant.training.run import data_digest


def test_the_digest_changes_with_every_input_a_model_reads_and_not_with_row_order() -> None:
    table = load_source("synthetic", n_apps=4, n_runs=20, min_length=4, max_length=6, seed=3)
    before = data_digest(table)
    assert data_digest(table) == before
    runs = table.runs
    table.runs = runs.reverse()
    assert data_digest(table) == before  # the same table, rows in another order
    with_neighbour = runs.filter(pl.col("neighbour_profiles").list.len() > 0)["run_id"][0]
    table.runs = runs.with_columns(  # one run loses a neighbour's profile link (labels, telemetry the same)
        pl.when(pl.col("run_id") == with_neighbour)
        .then(pl.col("neighbour_profiles").list.slice(1))
        .otherwise(pl.col("neighbour_profiles"))
        .alias("neighbour_profiles")
    )
    assert data_digest(table) != before
    table.runs = runs.with_columns(pl.col("label") * 0.99)
    assert data_digest(table) != before
    table.runs = runs
    profiles = table.profiles
    table.profiles = profiles.with_columns(pl.col(profiles.columns[-1]) + 1.0)
    assert data_digest(table) != before
    table.profiles = profiles
    sensitivity = table.extras["sensitivity"]  # a program's measured probes
    table.extras["sensitivity"] = sensitivity.with_columns(pl.col(sensitivity.columns[-1]) * 0.5)
    assert data_digest(table) != before
    table.extras["sensitivity"] = sensitivity
    assert data_digest(table) == before
