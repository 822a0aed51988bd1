"""The references set beside every accuracy figure: the constant and the utilisation heuristic."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from cotenant.collectors.ratios import SWITCH_DENSITY
from cotenant.datasets import load_source
from cotenant.datasets.table import VS_SOLO


def test_the_utilisation_reference_reads_solo_cpu_demand_against_the_cores() -> None:
    """P = min(1, cores / summed solo CPU demand) on the bundled lab data, where it beats the constant (its
    MAE on each split's test runs, recomputed here from its predictions)."""
    from cotenant.datasets.splits import leave_programs_out
    from cotenant.training.references import (
        CPU_DEMAND_METRIC,
        constant_reference,
        utilisation_predictions,
        utilisation_reference,
    )

    table = load_source("bundled")
    predicted = dict(utilisation_predictions(table, 2.0).iter_rows())
    means = table.profiles.group_by("profile_id").agg(pl.col(CPU_DEMAND_METRIC).mean())
    demand = dict(means.iter_rows())
    run = table.runs.row(0, named=True)
    total = demand[run["target_profile"]] + sum(demand[p] for p in run["neighbour_profiles"])
    assert predicted[run["run_id"]] == pytest.approx(min(1.0, 2.0 / total))
    splits = leave_programs_out(table, k=4)
    heuristic, constant = utilisation_reference(table, splits), constant_reference(table, splits)
    assert heuristic is not None and heuristic["cores"] == 2.0
    labels = dict(table.runs.select("run_id", "label").iter_rows())
    per_split = [
        100 * np.mean([abs(predicted[r] - labels[r]) for r in split.test_runs if r in predicted])
        for split in splits
    ]
    assert heuristic["mean"] == pytest.approx(np.mean(per_split))
    assert heuristic["mean"] < constant["mean"]
    # A source without the host's cores (synthetic) has no heuristic to offer, rather than a made-up one.
    synthetic = load_source("synthetic", n_apps=4, n_runs=20, min_length=4, max_length=6)
    assert utilisation_reference(synthetic, leave_programs_out(synthetic, k=2)) is None


def test_the_fair_share_reference_shares_the_same_demands_max_min_fairly() -> None:
    """Same solo demands, shared as CFS shares CPU between equal-weight cgroups: the run whose tenants ask
    unequal amounts gets a different (and per tenant different) answer from the proportional share."""
    from cotenant.datasets.splits import leave_programs_out
    from cotenant.training.references import (
        exact_fair_share,
        utilisation_predictions,
        utilisation_reference,
    )

    assert exact_fair_share([2.0, 1.0], 2.0) == pytest.approx(0.5)  # the build gets one core
    assert exact_fair_share([1.0, 2.0], 2.0) == pytest.approx(1.0)  # the job keeps its own
    assert exact_fair_share([0.3, 1.9, 1.9], 2.0) == pytest.approx(1.0)  # below the water level
    assert exact_fair_share([1.9, 0.3, 1.9], 2.0) == pytest.approx(0.85 / 1.9)
    assert exact_fair_share([0.5, 0.5], 2.0) == 1.0
    table = load_source("bundled")
    fair = dict(utilisation_predictions(table, 2.0, law="fair").iter_rows())
    proportional = dict(utilisation_predictions(table, 2.0).iter_rows())
    assert fair.keys() == proportional.keys()
    assert any(abs(fair[r] - proportional[r]) > 0.1 for r in fair)
    reference = utilisation_reference(table, leave_programs_out(table, k=4), law="fair")
    assert reference is not None and reference["law"] == "fair"


def test_runs_measured_on_a_smaller_node_share_that_nodes_cores() -> None:
    """A run whose plan pinned it to one CPU (``host_cores``) is shared on one core, the others on the
    machine's two; a table that names neither leaves the run's cores unknown."""
    from cotenant.datasets.table import RUN_HOST_CORES
    from cotenant.training.references import utilisation_predictions

    table = load_source("bundled")
    first, second = table.runs["run_id"][:2].to_list()
    pinned = table.runs.with_columns(
        pl.when(pl.col("run_id") == first).then(1).otherwise(None).cast(pl.Int64).alias(RUN_HOST_CORES)
    )
    table.runs = pinned
    assert table.run_cores([second, first]).tolist() == [2.0, 1.0]
    for law in ("proportional", "fair"):
        predicted = dict(utilisation_predictions(table, 2.0, law).iter_rows())
        table.runs = pinned.drop(RUN_HOST_CORES)
        on_the_machine = dict(utilisation_predictions(table, 2.0, law).iter_rows())
        table.runs = pinned
        assert predicted[second] == on_the_machine[second]
        assert predicted[first] < on_the_machine[first]
    table.meta = {k: v for k, v in table.meta.items() if k != "machine"}
    assert np.isnan(table.run_cores([second]))[0] and table.run_cores([first]).tolist() == [1.0]


def test_repeated_co_runs_are_read_against_the_median_of_their_other_measurements() -> None:
    """Co-runs of the same target configuration, load and neighbours (in any order) are one measurement
    repeated: each is read against the median of the others; a co-run measured once, a solo, or the same
    target with other neighbours is no repeat."""
    from types import SimpleNamespace

    from cotenant.training.references import repeat_reference

    def run(label: float, neighbours: list[str], has_neighbours: bool = True, load: str = "level 1") -> dict:
        return {
            "application": "app",
            "config_key": "app/level=1",
            "scenario": "static",
            "load": load,
            "neighbours": neighbours,
            "has_neighbours": has_neighbours,
            "label": label,
        }

    runs = pl.DataFrame(
        [
            run(0.50, ["a", "b"]),
            run(0.60, ["b", "a"]),  # the same neighbours started in the other order
            run(0.80, ["a", "b"]),
            run(0.70, ["a"]),  # other neighbours: measured once
            run(0.40, ["a", "b"], load="level 2"),  # another load: measured once
            run(1.00, [], has_neighbours=False),
            run(0.98, [], has_neighbours=False),
        ]
    )
    found = repeat_reference(SimpleNamespace(runs=runs))  # type: ignore[arg-type]
    # 0.50 vs median(0.60, 0.80) = 0.70; 0.60 vs 0.65; 0.80 vs 0.55: 20, 5 and 25 pp.
    assert found is not None and (found["runs"], found["configurations"]) == (3, 1)
    assert found["median"] == pytest.approx(20.0) and found["mean"] == pytest.approx(50 / 3)
    assert repeat_reference(SimpleNamespace(runs=runs[3:])) is None  # type: ignore[arg-type]


def test_the_work_rate_reference_reads_each_program_through_the_rate_closest_to_its_labels() -> None:
    """Per program, each target rate over its solo profile (its mean over the run, at most 1) read as P; the
    closest one names the program's progress. A rate some co-run lacks is not a candidate for its program,
    solos and co-runs without the CPU ratio are left out, and the report line names the programs another
    rate serves 2 pp better."""
    from types import SimpleNamespace

    from cotenant.training.learning_curve import work_rates_markdown
    from cotenant.training.references import CPU_DEMAND_METRIC, work_rate_reference

    cpu, faults, switches = (VS_SOLO + m for m in (CPU_DEMAND_METRIC, "faults", "switches"))
    runs = pl.DataFrame(
        {
            "run_id": ["a1", "a2", "b1", "b2", "solo", "c1"],
            "application": ["a", "a", "b", "b", "a", "c"],
            "label": [0.5, 0.7, 0.9, 0.6, 1.0, 0.5],
            "has_neighbours": [True, True, True, True, False, True],
        }
    )
    # Two seconds per run: the rate read is the mean over them.
    seconds = {
        # a: its page faults follow P, its CPU stays at its solo level (one second above it, capped at 1)
        "a1": {cpu: [1.0, 1.2], faults: [0.5, 0.5], switches: [0.1, 0.1]},
        "a2": {cpu: [1.0, 1.0], faults: [0.6, 0.8], switches: [0.2, None]},
        # b: the CPU ratio follows P; the faults ratio is exact on b2 but missing on b1, so not read for b
        "b1": {cpu: [0.8, 0.8], faults: [None, None], switches: [0.0, 0.0]},
        "b2": {cpu: [0.6, 0.6], faults: [0.6, 0.6], switches: [0.0, 0.0]},
        "solo": {cpu: [1.0, 1.0], faults: [1.0, 1.0], switches: [1.0, 1.0]},
        # c: no solo profile, so no CPU ratio: left out
        "c1": {cpu: [None, None], faults: [0.5, 0.5], switches: [0.5, 0.5]},
    }
    # The profile's switch density sits beside the rates; it is no rate, though here it equals every label.
    density = VS_SOLO + SWITCH_DENSITY
    label_of = dict(runs.select("run_id", "label").iter_rows())
    telemetry = pl.DataFrame(
        [
            {
                "run_id": run,
                cpu: values[cpu][i],
                faults: values[faults][i],
                switches: values[switches][i],
                density: label_of[run],
            }
            for run, values in seconds.items()
            for i in range(2)
        ],
        schema={
            "run_id": pl.Utf8,
            cpu: pl.Float64,
            faults: pl.Float64,
            switches: pl.Float64,
            density: pl.Float64,
        },
    )
    table = SimpleNamespace(
        runs=runs, telemetry=telemetry, solo_relative_columns=[cpu, faults, switches, density]
    )
    found = work_rate_reference(table)  # type: ignore[arg-type]
    assert found is not None and found["runs"] == 4 and set(found["programs"]) == {"a", "b"}
    a, b = found["programs"]["a"], found["programs"]["b"]
    # a: CPU reads 1.0 and 1.0 against 0.5 and 0.7 -> 40 pp; faults 0.5 and 0.7 -> 0; switches 0.1, 0.2 -> 45
    assert a["cpu_mae"] == pytest.approx(40.0) and (a["closest"], a["closest_mae"]) == ("faults", 0.0)
    # b: CPU 0.8 and 0.6 against 0.9 and 0.6 -> 5 pp; switches 0 -> 75; faults missing on b1
    assert b["cpu_mae"] == pytest.approx(5.0) and b["closest"] == CPU_DEMAND_METRIC
    assert found["cpu_mae"] == pytest.approx((40 + 40 + 10 + 0) / 4)
    assert found["closest_mae"] == pytest.approx((0 + 0 + 10 + 0) / 4)
    line = work_rates_markdown(found)
    assert "for 1 of 2 programs: a (faults 0.0 against 40.0)" in line and " b (" not in line
    # Without the CPU ratio there is nothing to set the rates beside.
    table.solo_relative_columns = [faults, switches, density]
    assert work_rate_reference(table) is None  # type: ignore[arg-type]
