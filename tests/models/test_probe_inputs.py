"""Probe inputs for monitoring (``include_probes``): the target's measured sensitivity and its neighbours'
summed pressure, the same numbers in the run table and in the service, missing where not told."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from cotenant.datasets import RunTable, load_source
from cotenant.datasets.probe_inputs import PROBE_INPUT, probe_input_names, probe_inputs
from cotenant.datasets.splits import Split, leave_programs_out
from cotenant.datasets.table import NEIGHBOUR_MEAN, SELF
from cotenant.datasets.tensors import probe_results
from cotenant.models.predictor import Predictor
from cotenant.training.config import TrainConfig
from cotenant.training.fit import fit_model

SENSITIVITY = PROBE_INPUT + "sens_membw_2"
PRESSURE = PROBE_INPUT + "neighbours_press_membw"


def test_the_targets_deficits_and_the_neighbours_summed_deficits_nan_where_any_is_unknown() -> None:
    names = probe_input_names(["press_io", "sens_io_1"])
    assert names == [PROBE_INPUT + "sens_io_1", PROBE_INPUT + "neighbours_press_io"]
    target = {
        "sens_io_1": 0.75,
        "press_io": 0.1,
    }  # its own pressure is not an input: nothing it does to itself
    both = probe_inputs(names, target, [{"press_io": 0.9}, {"press_io": 0.6}])
    assert both == pytest.approx({names[0]: 0.25, names[1]: 0.5})
    alone = probe_inputs(names, target, [])
    assert alone[names[1]] == 0.0  # no neighbour presses
    one_unprobed = probe_inputs(names, {}, [{"press_io": 0.9}, {}])
    assert math.isnan(one_unprobed[names[0]]) and math.isnan(one_unprobed[names[1]])


@pytest.fixture(scope="module")
def probed() -> tuple[RunTable, Split]:
    """The synthetic source (its lab probes measured for every program) with its probe inputs."""
    table = load_source(
        "synthetic", n_apps=16, n_runs=240, min_length=8, max_length=12, profile_length=12, seed=5
    ).with_probe_inputs()
    return table, leave_programs_out(table, k=4)[0]


def test_the_table_and_the_service_read_the_same_probe_inputs(probed: tuple[RunTable, Split]) -> None:
    table, split = probed
    names = table.probe_input_columns
    assert SENSITIVITY in names and PRESSURE in names
    assert table.metric_groups["sens_membw_2"] == "cache_membw"  # explained as the resource it probes
    run = table.runs.filter(pl.col("has_neighbours")).row(0, named=True)
    frame = table.telemetry.filter(pl.col("run_id") == run["run_id"]).sort("second")
    probes = probe_results(table, run["target_profile"])
    neighbour_probes = [probe_results(table, n) for n in run["neighbour_profiles"]]
    want = probe_inputs(names, probes, neighbour_probes)
    for name in names:  # the same every second of the run
        np.testing.assert_allclose(frame[name].to_numpy(), want[name])
    predictor = fit_model(
        table, split, TrainConfig(model="linear", include_probes=True, progress=False)
    ).predictor
    features = predictor.metadata.features
    assert set(names) <= set(features)
    own = {m: frame[SELF + m].to_numpy() for m in table.metrics}
    neighbours = [{m: frame[NEIGHBOUR_MEAN + m].to_numpy() for m in table.metrics}]
    served, missing = predictor.monitoring_matrix(own, neighbours, None, None, probes, neighbour_probes)
    columns = [features.index(n) for n in names]
    np.testing.assert_allclose(served[:, columns], frame.select(names).to_numpy(), rtol=1e-12)
    assert not set(names) & set(missing)
    # Not told the probes: said missing, never invented; a neighbour unprobed leaves the sums unknown.
    _, untold = predictor.monitoring_matrix(own, neighbours, None)
    assert set(names) <= set(untold)
    _, partly = predictor.monitoring_matrix(own, neighbours, None, None, probes, [*neighbour_probes, None])
    assert PRESSURE in partly and SENSITIVITY not in partly
    # Without the option the model reads no probe.
    plain = fit_model(table, split, TrainConfig(model="linear", progress=False)).predictor
    assert not [f for f in plain.metadata.features if f.startswith(PROBE_INPUT)]


def test_the_cloudformers_probe_head_reads_the_probe_columns_and_travels_with_the_artifact(
    probed: tuple[RunTable, Split], tmp_path
) -> None:
    table, split = probed
    options = {"probe_head": True, "blocks": 1}
    outcome = fit_model(
        table,
        split,
        TrainConfig(
            model="cloudformer", model_options=options, include_probes=True, epochs=1, progress=False
        ),
    )
    features = outcome.predictor.metadata.features
    module = outcome.predictor.model
    assert module.probe_columns.tolist() == [f.startswith(PROBE_INPUT) for f in features]
    run = table.runs.filter(pl.col("has_neighbours")).row(0, named=True)
    frame = table.telemetry.filter(pl.col("run_id") == run["run_id"]).sort("second")
    own = {m: frame[SELF + m].to_numpy() for m in table.metrics}
    neighbours = [{m: frame[NEIGHBOUR_MEAN + m].to_numpy() for m in table.metrics}]
    probes = probe_results(table, run["target_profile"])
    others = [probe_results(table, n) for n in run["neighbour_profiles"]]
    answer = outcome.predictor.predict_degradation(own, neighbours, None, None, probes, others)
    outcome.predictor.save(tmp_path / "artifact")
    loaded = Predictor.load(tmp_path / "artifact")
    assert loaded.predict_degradation(own, neighbours, None, None, probes, others) == answer
    # The answer reads the probes: a target told it is insensitive to everything is answered otherwise.
    insensitive = {name: 1.0 for name in probes}
    assert loaded.predict_degradation(own, neighbours, None, None, insensitive, others).p != answer.p


@pytest.mark.parametrize(
    ("options", "read"),
    [
        ({"probe_head": True}, [False, False, True, True]),
        ({"ratio_head": True}, [False, True, False, False]),
        ({"probe_head": True, "ratio_head": True}, [False, True, True, True]),
    ],
)
def test_the_cloudformers_head_reads_the_columns_its_options_name(
    options: dict[str, bool], read: list[bool]
) -> None:
    from cotenant.datasets.table import VS_SOLO
    from cotenant.models.cloudformer.config import CloudFormerConfig
    from cotenant.models.cloudformer.module import CloudFormer

    names = [SELF + "cpu", VS_SOLO + "cpu", PROBE_INPUT + "sens_cache_1", PROBE_INPUT + "neighbours_press_io"]
    module = CloudFormer(len(names), 4, True, True, CloudFormerConfig(blocks=1, **options))
    module.set_head_columns(names)
    assert module.probe_columns.tolist() == read
