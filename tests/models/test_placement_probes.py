"""placement-probes: one input row for training and serving, probes when measured, the describer otherwise."""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl
import pytest
from cotenant.datasets import RunTable, load_source
from cotenant.datasets.splits import leave_programs_out
from cotenant.datasets.tensors import placement_inputs, probe_results
from cotenant.training.config import TrainConfig
from cotenant.training.fit import fit_model

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def table() -> RunTable:
    return load_source(
        "synthetic", n_apps=16, n_runs=240, min_length=8, max_length=12, profile_length=12, seed=5
    )


@pytest.fixture(scope="module")
def outcome(table: RunTable) -> Any:
    split = leave_programs_out(table, k=4)[0]
    return fit_model(table, split, TrainConfig(model="placement-probes", progress=False)), split


def probes_of(table: RunTable, application: str) -> dict[str, float]:
    """What ``cotenant lab probe`` reports for an application: P by probe name."""
    found = probe_results(table, application)
    assert len(found) == len(table.extras["sensitivity"].columns) + len(table.extras["pressure"].columns) - 2
    return found


def series_of(table: RunTable, profile_id: str) -> dict[str, np.ndarray]:
    frame = table.profiles.filter(pl.col("profile_id") == profile_id).sort("second")
    return {m: frame[m].to_numpy() for m in table.profile_metrics}


def test_serving_builds_the_row_training_built_for_the_same_workload(table: RunTable, outcome: Any) -> None:
    """The same workload through both paths: the run table's row (training) and a profile registered with
    its telemetry and probe results (serving) are the same numbers."""
    fitted, split = outcome
    predictor = fitted.predictor
    stats = predictor._stats()
    names, frame = placement_inputs(table, probes=True)
    assert names == predictor.metadata.features
    for application in sorted(split.test_apps)[:2] + sorted(split.train_apps)[:2]:
        trained = stats.transform(frame.filter(pl.col("profile_id") == application).select(names).to_numpy())[
            0
        ]
        series, probes = series_of(table, application), probes_of(table, application)
        served = predictor.profile_summary(series, probes, latency=False)  # the synthetic metrics are rates
        np.testing.assert_allclose(served, trained, rtol=1e-5, atol=1e-6, equal_nan=True)
        # a profile registered without saying what its metric is leaves the flag to the model's estimate
        unsaid = predictor.profile_summary(series, probes)
        latency = names.index("probe:latency")
        assert np.isnan(unsaid[latency]) and trained[latency] == 0.0
        np.testing.assert_allclose(
            np.delete(unsaid, latency), np.delete(trained, latency), rtol=1e-5, atol=1e-6
        )


def test_measured_probes_are_used_as_given_and_the_describer_fills_the_rest(
    table: RunTable, outcome: Any
) -> None:
    predictor = outcome[0].predictor
    application = sorted(outcome[1].test_apps)[0]
    series, probes = series_of(table, application), probes_of(table, application)
    names = predictor.probe_names()
    measured = predictor.encode_profile(series, probes)[0][: len(names)]
    np.testing.assert_allclose(measured, [1.0 - probes[n] for n in names], rtol=1e-5)
    estimated = predictor.encode_profile(series)[0][: len(names)]
    assert not np.allclose(estimated, measured)  # the describer's guess, not the measurement
    partial = predictor.encode_profile(series, {"sens_cpu_2": 0.25})[0][: len(names)]
    assert partial[names.index("sens_cpu_2")] == pytest.approx(0.75)
    others = [i for i, n in enumerate(names) if n != "sens_cpu_2"]
    np.testing.assert_allclose(partial[others], estimated[others], rtol=1e-5)


def test_an_estimated_pressure_is_scaled_to_the_workloads_own_demand(table: RunTable) -> None:
    """pressure_at_demand: the describer also gives the demand its pressure estimate was measured at, and a
    workload demanding less (a throttled copy of one) gets that share of the estimate; its sensitivities,
    measured probes, and estimates at the reference demand stay as they are."""
    from dataclasses import replace

    from cotenant.models.placement_probes import REFERENCE_DEMAND_WEIGHT, forest_mean

    table = replace(table, meta={**table.meta, "machine": {"cores": 2}})  # demand in cores needs the host's
    split = leave_programs_out(table, k=4)[0]
    cfg = TrainConfig(model="placement-probes", progress=False, model_options={"pressure_at_demand": True})
    predictor = fit_model(table, split, cfg).predictor
    model = predictor.model
    application = sorted(split.test_apps)[0]
    row = predictor.profile_summary(series_of(table, application), {})  # normalised, probes missing
    column, (mean, std) = model.demand_column, model.demand_scale_
    throttled = row.copy()
    throttled[column] = (0.05 - mean) / std  # 0.05 cores, in the normaliser's units
    pressure = model.pressure_deficits
    d = len(model.deficit_columns)
    for x in (row, throttled):
        raw = forest_mean(model.describer_, np.nan_to_num(x[None, model.summary_columns]))[0]
        assert raw.shape == (d + 1,)  # the deficits, then the reference demand
        reference = raw[d] / REFERENCE_DEMAND_WEIGHT
        share = min(1.0, max(0.0, max(x[column] * std + mean, 0.0)) / reference)
        embedded = model.embed(x[None])[0]
        expected = raw[:d].copy()
        expected[pressure] *= share
        np.testing.assert_allclose(embedded[:d], expected, rtol=1e-5, atol=1e-7)
        if x is throttled:
            assert share < 0.5  # far below the workloads it resembles: most of the estimate goes
            sensitivities = [j for j in range(d) if j not in pressure]
            np.testing.assert_allclose(embedded[sensitivities], raw[sensitivities], rtol=1e-5)
    # Measured probes are used as measured, whatever the demand.
    probes = probes_of(table, application)
    measured = predictor.profile_summary(series_of(table, application), probes)
    measured[column] = throttled[column]
    names = predictor.probe_names()
    np.testing.assert_allclose(
        model.embed(measured[None])[0][:d], [1.0 - probes[n] for n in names], rtol=1e-5
    )


def test_the_cheapest_head_family_close_to_the_best_on_training_programs_is_chosen(outcome: Any) -> None:
    from cotenant.models.placement_probes import AUTO_HEADS, HEADS_BY_COST

    model = outcome[0].predictor.model
    mae = model.candidates_mae
    assert set(mae) == set(AUTO_HEADS) == {"boosting", "factorised"}  # ridge is unbounded on new programs
    # the cheapest family within the tolerance of the best validation MAE
    best = min(mae.values())
    chosen = model.head_family_
    assert mae[chosen] <= (1 + model.head_tolerance) * best
    cheaper = [h for h in HEADS_BY_COST[: HEADS_BY_COST.index(chosen)] if h in mae]
    assert all(mae[h] > (1 + model.head_tolerance) * best for h in cheaper)


def test_the_factorised_law_is_its_regressions_own_prediction_to_the_last_bit() -> None:
    """``_factorised_p`` skips scikit-learn's input checks, not its arithmetic: the same numbers as
    ``exp(-head.predict(...))`` on the column slices the head reads (``_interactions``: not contiguous)."""
    from cotenant.models.base import P_FLOOR
    from cotenant.models.placement_probes import _factorised_p
    from sklearn.linear_model import LinearRegression

    rng = np.random.default_rng(3)
    wide = rng.gamma(2.0, 0.3, size=(500, 9))
    interactions = wide[:, -5:]
    head = LinearRegression(positive=True).fit(interactions, interactions @ rng.uniform(0, 1, 5) + 0.1)
    expected = np.clip(np.exp(-head.predict(interactions)), P_FLOOR, 1.0)
    np.testing.assert_array_equal(_factorised_p(head, interactions), expected)
    np.testing.assert_array_equal(
        _factorised_p(head, interactions.astype(np.float32)),
        np.clip(np.exp(-head.predict(interactions.astype(np.float32))), P_FLOOR, 1.0),
    )


def test_the_utilisation_share_is_a_head_input_that_follows_summed_demand(outcome: Any) -> None:
    """The heuristic as a term: -log min(1, cores / summed demand in cores), from the standardised demands."""
    import copy

    fitted = outcome[0].predictor.model
    # the synthetic source names no host cores: no share (a made-up core count would be a made-up term)
    assert fitted.host_cores_ is None
    model = copy.copy(fitted)
    model.host_cores_, model.demand_scale_ = 2.0, (0.8, 0.5)  # as fit sets them from the normaliser and meta
    mean, std = model.demand_scale_
    width = model.embedding_width
    own, others = np.zeros((3, width), np.float32), np.zeros((3, width), np.float32)
    d = len(model.deficit_columns)
    # own demand 1 core; others: nobody, one workload of 0.5 core, two of 1.5 cores each
    own[:, d] = (1.0 - mean) / std
    others[1, d] = (0.5 - mean) / std
    others[2, d] = (3.0 - 2 * mean) / std
    count = np.array([0, 1, 2])
    with_share = model.features(own, others, count)
    np.testing.assert_allclose(with_share[:, -1], [0.0, 0.0, -np.log(2.0 / 4.0)], atol=1e-5)
    assert with_share.shape[1] == fitted.features(own, others, count).shape[1] + 1


def test_the_fair_share_is_the_last_head_input_and_reads_each_tenants_capped_demand(outcome: Any) -> None:
    """Embeddings carry capped demands, so a host's sum tells a two-thread build beside a one-thread job
    (fair: 0.5 for the build) from two 1.5-thread jobs (0.67 each), which the summed demand cannot."""
    import copy

    from cotenant.models.placement_probes import FAIR_LEVELS

    model = copy.copy(outcome[0].predictor.model)
    model.host_cores_, model.demand_scale_ = 2.0, (0.8, 0.5)
    model.fair_share_ = True
    mean, std = model.demand_scale_
    d = len(model.deficit_columns)
    rows = np.zeros((3, len(model.names)), np.float32)
    rows[:, model.measured_column] = 1.0
    rows[:, model.deficit_columns] = 0.1
    rows[:, model.demand_column] = (np.array([2.0, 1.0, 1.5]) - mean) / std  # cores of demand
    embedded = model.embed(rows)
    assert embedded.shape == (3, model.embedding_width) == (3, d + 2 + len(FAIR_LEVELS))
    build, job, half = embedded
    own = np.stack([build, job, half])
    others = np.stack([job, build, half])  # the build beside the job, the job beside the build, 1.5 + 1.5
    features = model.features(own, others, np.ones(3))
    np.testing.assert_allclose(np.exp(-features[:, -1]), [0.5, 1.0, 2.0 / 3.0], atol=0.02)
    # the proportional share (one column before) cannot tell the build from the job
    assert features[0, -2] == pytest.approx(features[1, -2])
    # served on one-CPU hosts (the service's host_cores): the same job beside a half-core tenant now waits
    rows = rows[1:]
    rows[:, model.demand_column] = (np.array([1.0, 0.5]) - mean) / std
    job, small = model.embed(rows)
    two_cores = model.features(np.stack([job]), np.stack([small]), np.ones(1))[0, -1]
    assert two_cores == pytest.approx(0.0, abs=1e-6)  # 1.5 cores of demand fit two
    assert model.serve_on_hosts_of(1.0) and model.host_cores_ == 1.0
    job, small = model.embed(rows)
    one_core = model.features(np.stack([job]), np.stack([small]), np.ones(1))[0, -1]
    assert np.exp(-one_core) == pytest.approx(0.5, abs=0.02)  # max-min fair on one core: 0.5 each
    assert not outcome[0].predictor.model.serve_on_hosts_of(1.0)  # fit without the host's size: not read


def test_runs_on_nodes_of_two_sizes_are_each_read_on_their_own_nodes_cores(outcome: Any) -> None:
    """Training data from nodes of several sizes (a lab plan's ``host_cpus`` beside whole-machine campaigns):
    each run's shares are read on its own node's cores, so labels that the fair share on each node explains
    are fit, where one size for all (the machine's) cannot; the model then answers for the most common size,
    and a batch answers each row for its own node."""
    from cotenant.models.backends import ProbesBackend
    from cotenant.models.predictor import Predictor
    from cotenant.training.references import exact_fair_share

    fitted = outcome[0].predictor.model
    names, column = fitted.names, fitted.demand_column
    mean, std = 0.8, 0.5
    scale = (np.zeros(len(names)), np.ones(len(names)))
    scale[0][column], scale[1][column] = mean, std
    rng = np.random.default_rng(3)
    runs = 600
    own_demand, other_demand = rng.uniform(0.3, 1.0, runs), rng.uniform(0.3, 1.5, runs)
    rows = np.zeros((runs, len(names)), np.float32)
    rows[:, fitted.measured_column] = 1.0
    rows[:, fitted.deficit_columns] = 0.0  # no probe says anything: the node's size must
    newcomer, neighbour = rows.copy(), rows.copy()
    newcomer[:, column] = (own_demand - mean) / std
    neighbour[:, column] = (other_demand - mean) / std
    neighbours, mask = neighbour[:, None, :], np.ones((runs, 1), bool)
    cores = np.where(np.arange(runs) % 3 == 0, 1.0, 2.0)  # a third measured on one-CPU nodes
    labels = np.array(
        [exact_fair_share([o, d], c) for o, d, c in zip(own_demand, other_demand, cores, strict=True)]
    )
    programs = rng.integers(0, 6, runs)
    groups = outcome[0].predictor.metadata.feature_groups

    def fit(host_cores: float | np.ndarray) -> Any:
        model = type(fitted)(head="factorised", estimated_neighbours=False, describer_trees=10)
        return model.fit(
            newcomer, neighbours, mask, labels, programs, names, groups,
            feature_scale=scale, host_cores=host_cores,
        )  # fmt: skip

    per_node, machine_only = fit(cores), fit(2.0)
    assert per_node.host_cores_ == 2.0  # the most common size: what it answers for until told otherwise
    predictor = Predictor(outcome[0].predictor.metadata, per_node)
    assert isinstance(predictor.backend, ProbesBackend)
    answered = predictor.predict_placement(newcomer, neighbours, mask, cores)[:, 1]
    one_core = cores == 1.0
    assert np.mean(np.abs(answered - labels)) < 0.02
    assert per_node.host_cores_ == 2.0  # restored after answering rows of other sizes
    # one size for all reads the one-CPU runs' neighbours as fitting beside them: those labels go unexplained
    unaware = Predictor(outcome[0].predictor.metadata, machine_only).predict_placement(
        newcomer, neighbours, mask
    )[:, 1]
    assert np.mean(np.abs(unaware[one_core] - labels[one_core])) > 0.15
    # rows answered for their own node equal the rows answered with the whole batch's node set to theirs
    per_node.serve_on_hosts_of(1.0)
    alone = predictor.predict_placement(newcomer[one_core], neighbours[one_core], mask[one_core])[:, 1]
    np.testing.assert_allclose(answered[one_core], alone, rtol=1e-6)


def test_the_contended_cpu_pair_charges_cpu_sensitivity_only_where_the_fair_share_falls_short(
    outcome: Any,
) -> None:
    """With ``contended_cpu_pair`` the CPU product is scaled by 1 - fair share: nothing on a host whose cores
    cover every demand, half of it for a build that gets half its demand; other resources are untouched."""
    import copy

    model = copy.copy(outcome[0].predictor.model)
    model.host_cores_, model.demand_scale_ = 2.0, (0.8, 0.5)
    model.fair_share_ = True
    cpu = model._cpu_pair()
    assert cpu is not None and len(model.pairs) > 1
    mean, std = model.demand_scale_
    rows = np.zeros((3, len(model.names)), np.float32)
    rows[:, model.measured_column] = 1.0
    rows[:, model.deficit_columns] = 0.2
    rows[:, model.demand_column] = (np.array([2.0, 1.0, 0.5]) - mean) / std  # build, job, small tenant
    build, job, small = model.embed(rows)
    own, others = np.stack([build, job]), np.stack([job, small])  # build beside job; job beside 0.5 core
    model.contended_cpu_pair = False
    always = model.features(own, others, np.ones(2))
    model.contended_cpu_pair = True
    gated = model.features(own, others, np.ones(2))
    products = slice(always.shape[1] - len(model.pairs) - 3, always.shape[1] - 3)  # pairs, demand, shares
    assert always[0, products][cpu] == pytest.approx(0.04) == always[1, products][cpu]
    assert gated[0, products][cpu] == pytest.approx(0.04 * 0.5, abs=0.005)  # the build gets 1 of 2 cores
    assert gated[1, products][cpu] == pytest.approx(0.0)  # 1.5 cores of demand on 2: no contention
    others_kept = [i for i in range(len(model.pairs)) if i != cpu]
    np.testing.assert_allclose(gated[:, products][:, others_kept], always[:, products][:, others_kept])
    np.testing.assert_allclose(np.delete(gated, products, axis=1), np.delete(always, products, axis=1))


def with_shares(outcome: Any, cores: float) -> Any:
    """A copy of the fitted model reading shares of ``cores`` (the synthetic source names no host cores), as
    fit sets them from the normaliser and the machine."""
    import copy

    model = copy.copy(outcome[0].predictor.model)
    model.host_cores_, model.demand_scale_, model.fair_share_ = cores, (0.8, 0.5), True
    return model


def service_rows(model: Any, demands: list[float]) -> np.ndarray:
    """Measured workloads at these CPU demands (cores), no deficit but the first's CPU sensitivity: 0.5, a
    latency-bound service, sensitive to whatever runs on its core."""
    cpu = model._cpu_pair()
    assert cpu is not None
    mean, std = model.demand_scale_
    rows = np.zeros((len(demands), len(model.names)), np.float32)
    rows[:, model.measured_column] = 1.0
    rows[0, model.deficit_columns[model.pairs[cpu][0]]] = 0.5
    rows[:, model.demand_column] = (np.asarray(demands) - mean) / std
    return rows


def test_with_neighbour_load_the_law_charges_the_cpu_neighbours_use_and_nothing_for_idle_ones(
    outcome: Any,
) -> None:
    """``neighbour_load``: two more law inputs, the others' CPU demand over the host's cores and that times
    the workload's own CPU sensitivity, and no intercept: neighbours that use no CPU and exert no pressure
    cost nothing, where the fitted constant charged every co-located workload alike."""
    model = with_shares(outcome, cores=1.0)
    mean, std = model.demand_scale_
    service, idle, busy = model.embed(service_rows(model, [0.1, 0.0, 0.3]))  # beside an idle, a busy tenant
    own, others = np.stack([service, service]), np.stack([idle, busy])
    model.neighbour_load = False
    without = model.features(own, others, np.ones(2))
    model.neighbour_load = True
    with_load = model.features(own, others, np.ones(2))
    assert with_load.shape[1] == without.shape[1] + 2
    np.testing.assert_allclose(with_load[:, :-2], without)
    np.testing.assert_allclose(with_load[:, -2], [0.0, 0.3], atol=1e-5)  # 0.3 of the one core
    np.testing.assert_allclose(with_load[:, -1], [0.0, 0.5 * 0.3], atol=1e-5)
    # the law fit on slowdowns that the load explains: no intercept, the load's weight recovered, and an
    # idle neighbour leaves P at 1 (a constant model, or the law with its intercept, cannot)
    rng = np.random.default_rng(0)
    loads = rng.uniform(0.0, 1.0, 400)
    others = np.repeat(others[1:], 400, axis=0)
    others[:, len(model.deficit_columns)] = (loads - mean) / std  # the demand column
    features = model.features(np.repeat(own[:1], 400, axis=0), others, np.ones(400))
    labels = np.exp(-0.4 * features[:, -2])
    law = model._fit_head("factorised", features, labels)
    assert law.intercept_ == 0.0
    assert law.coef_[-2] + 0.5 * law.coef_[-1] == pytest.approx(0.4, abs=1e-3)
    model.head_, model.head_family_ = law, "factorised"
    idle_p, busy_p = model.predict_rows(own, np.stack([idle, busy]), np.ones(2))
    assert idle_p == pytest.approx(1.0)
    assert busy_p == pytest.approx(np.exp(-0.4 * 0.3), abs=1e-3)


def test_core_wait_charges_the_same_share_more_on_a_node_with_fewer_cores(outcome: Any) -> None:
    """``core_wait``: two more law inputs, the chance that every core of the node is busy with neighbours,
    ``min(1, load) ** cores``, alone and times own CPU sensitivity. Half a node's worth of neighbours is a
    wait term of 0.5 on one CPU and 0.0625 on two; slowdowns it explains are fit on nodes of both sizes at
    once, which the load alone (the same share on both) cannot."""
    from cotenant.models.placement_probes import ProbePlacementConfig

    model = with_shares(outcome, cores=1.0)
    model.neighbour_load = True
    mean, std = model.demand_scale_
    rows = service_rows(model, [0.1, 0.5])  # the service, half a core beside it

    def inputs(cores: float, wait: bool) -> np.ndarray:
        model.host_cores_, model.core_wait = cores, wait
        service, neighbour = model.embed(rows)
        return model.features(service[None], neighbour[None], np.ones(1))[0]

    for cores, load in ((1.0, 0.5), (2.0, 0.25)):
        with_wait, without = inputs(cores, True), inputs(cores, False)
        assert len(with_wait) == len(without) + 2
        np.testing.assert_allclose(with_wait[:-2], without, atol=1e-6)
        wait = load**cores  # every core busy: 0.5 on one CPU, 0.0625 on two
        np.testing.assert_allclose(with_wait[-4:], [load, 0.5 * load, wait, 0.5 * wait], atol=1e-5)
    # labels a waiting service explains, on nodes of one and two cores alike: the law with the wait term
    # recovers its weight and answers each size; the load alone leaves one size or the other wrong
    rng = np.random.default_rng(2)
    demands = rng.uniform(0.05, 0.95, 300)
    features = {True: [], False: []}
    for wait in (True, False):
        for cores in (1.0, 2.0):
            for demand in demands:
                rows[1, model.demand_column] = (demand * cores - mean) / std
                features[wait].append(inputs(cores, wait))
    with_wait, without = np.array(features[True]), np.array(features[False])
    labels = np.exp(-1.2 * with_wait[:, -1])
    model.core_wait = True
    law = model._fit_head("factorised", with_wait, labels)
    assert law.coef_[-1] + 2 * law.coef_[-2] == pytest.approx(1.2, abs=1e-3)
    assert np.abs(model._predict_head(law, "factorised", with_wait) - labels).max() < 1e-3
    model.core_wait = False
    load_only = model._fit_head("factorised", without, labels)
    assert np.abs(model._predict_head(load_only, "factorised", without) - labels).max() > 0.05
    with pytest.raises(ValueError, match=r"core_wait: .*needs neighbour_load"):
        ProbePlacementConfig(core_wait=True)


def test_contended_batch_load_charges_a_batch_job_the_load_only_where_its_fair_share_falls_short(
    outcome: Any,
) -> None:
    """``contended_batch_load``: the load terms of a batch workload (latency flag 0) are scaled by 1 - fair
    share: nothing for a job capped at 0.1 of a core beside 0.3 of a core on one CPU (it gets all it asks),
    the ungated charge for the same workload as a service, and 1 - 0.7 / 0.9 of it for a 0.9-core job that
    the max-min share leaves 0.7; every other input as without the gate."""
    from cotenant.models.placement_probes import PROBE_LATENCY, ProbePlacementConfig

    model = with_shares(outcome, cores=1.0)
    model.neighbour_load, model.service_queue = True, True
    model.latency_column = model.names.index(PROBE_LATENCY)
    rows = service_rows(model, [0.1, 0.1, 0.9, 0.3])  # capped job, the same as a service, big job, neighbour
    cpu_sensitivity = model.deficit_columns[model.pairs[model._cpu_pair()][0]]
    rows[:, cpu_sensitivity] = 0.5
    rows[:, model.latency_column] = [0.0, 1.0, 0.0, 0.0]
    capped, service, big, neighbour = model.embed(rows)
    own, others = np.stack([capped, service, big]), np.stack([neighbour] * 3)

    def inputs(gated: bool) -> np.ndarray:
        model.contended_batch_load = gated
        return model.features(own, others, np.ones(3))

    ungated, gated = inputs(False), inputs(True)
    load, sensitive_load = slice(-3, -2), slice(-2, -1)  # the queue's slowdown is the last input
    np.testing.assert_allclose(ungated[:, load].ravel(), [0.3, 0.3, 0.3], atol=1e-5)
    np.testing.assert_allclose(gated[:, load].ravel(), [0.0, 0.3, 0.3 * (1 - 0.7 / 0.9)], atol=1e-5)
    np.testing.assert_allclose(gated[:, sensitive_load], 0.5 * gated[:, load], atol=1e-6)
    np.testing.assert_allclose(np.delete(gated, [-3, -2], axis=1), np.delete(ungated, [-3, -2], axis=1))
    assert gated[1, -1] > 0.0 and gated[0, -1] == 0.0  # the service's queue, none for the batch job
    with pytest.raises(ValueError, match=r"contended_batch_load: .*needs neighbour_load=true and service"):
        ProbePlacementConfig(contended_batch_load=True, neighbour_load=True)


def test_concurrent_pressure_charges_shared_resources_only_for_neighbours_that_can_run_alongside(
    outcome: Any,
) -> None:
    """``concurrent_pressure``: the cache, memory-bandwidth and I/O pairs are scaled by the share of the
    others' CPU time that can overlap the workload's, ``min(1, (cores - 1) / their demand)``: nothing on a
    node of one CPU (they only take turns), all of it for half a core of neighbours on two cores, half of it
    for two cores' worth; the CPU pair and every other law input as without it."""
    model = with_shares(outcome, cores=2.0)
    cpu = model._cpu_pair()
    shared = [i for i in range(len(model.pairs)) if i != cpu]
    assert shared
    rows = service_rows(model, [0.25, 0.5, 2.0])  # the workload; half a core, two cores of neighbours
    rows[:, model.deficit_columns] = 0.2

    def law_inputs(cores: float, concurrent: bool) -> np.ndarray:
        model.host_cores_, model.concurrent_pressure = cores, concurrent
        own, light, heavy = model.embed(rows)
        return model.interactions(np.stack([own, own]), np.stack([light, heavy]), np.ones(2))

    pairs = len(model.pairs)
    for cores, overlap in ((1.0, [0.0, 0.0]), (2.0, [1.0, 0.5])):
        before, after = law_inputs(cores, False), law_inputs(cores, True)
        assert before[:, shared].min() > 0.0  # without it the pairs charge both hosts
        np.testing.assert_allclose(
            after[:, shared], before[:, shared] * np.array(overlap)[:, None], atol=1e-6
        )
        np.testing.assert_allclose(after[:, cpu], before[:, cpu])
        np.testing.assert_allclose(after[:, pairs:], before[:, pairs:])


def test_turn_taking_pairs_weigh_the_overlapping_and_the_turn_taking_neighbours_apart(outcome: Any) -> None:
    """``turn_taking_pairs``: each shared-resource pair becomes two law inputs that add up to the pair, the
    overlapping share (``concurrent_pressure``'s) in its place and the turn-taking rest right after the pairs:
    all of it turns on one CPU, all overlap for half a core of neighbours on two cores, half and half for two
    cores' worth; the CPU pair and every other input as without it, and the fit reads the wider law."""
    from cotenant.models.placement_probes import ProbePlacementConfig

    model = with_shares(outcome, cores=2.0)
    shared = model._shared_pairs()
    pairs = len(model.pairs)
    rows = service_rows(model, [0.25, 0.5, 2.0])
    rows[:, model.deficit_columns] = 0.2

    def law_inputs(cores: float, split: bool) -> np.ndarray:
        model.host_cores_, model.turn_taking_pairs = cores, split
        own, light, heavy = model.embed(rows)
        return model.interactions(np.stack([own, own]), np.stack([light, heavy]), np.ones(2))

    for cores, overlap in ((1.0, [0.0, 0.0]), (2.0, [1.0, 0.5])):
        before, after = law_inputs(cores, False), law_inputs(cores, True)
        assert after.shape[1] == before.shape[1] + len(shared)
        turns = after[:, pairs : pairs + len(shared)]
        np.testing.assert_allclose(
            after[:, shared], before[:, shared] * np.array(overlap)[:, None], atol=1e-6
        )
        np.testing.assert_allclose(turns, before[:, shared] * (1 - np.array(overlap))[:, None], atol=1e-6)
        np.testing.assert_allclose(after[:, shared] + turns, before[:, shared], atol=1e-6)
        np.testing.assert_allclose(after[:, pairs + len(shared) :], before[:, pairs:])
        features = np.concatenate([np.zeros((2, 3)), after], axis=1)
        np.testing.assert_allclose(model._interactions(features), after)
    model.turn_taking_pairs = False
    with pytest.raises(ValueError, match=r"turn_taking_pairs: .*choose one"):
        ProbePlacementConfig(turn_taking_pairs=True, concurrent_pressure=True)


def test_predicting_a_run_through_the_serving_calls_gives_the_training_answer(
    table: RunTable, outcome: Any
) -> None:
    """A held-out run predicted from arrays (training's path) and scored as a newcomer on a host holding its
    neighbours (the service's encode/host/score path) gives the same median P."""
    fitted, _ = outcome
    predictor = fitted.predictor
    runs = table.runs.filter(pl.col("run_id").is_in(fitted.test_runs) & (pl.col("n_neighbours") > 0)).head(5)
    for run in runs.iter_rows(named=True):
        newcomer = predictor.encode_profile(
            series_of(table, run["target_profile"]), probes_of(table, run["application"])
        )
        incumbents = [
            predictor.encode_profile(series_of(table, n), probes_of(table, n))
            for n in run["neighbour_profiles"]
        ]
        served = predictor.score_placement(newcomer, [predictor.encode_host(incumbents)])[0].newcomer.p
        trained = fitted.predicted[fitted.test_runs.index(run["run_id"])][1]
        assert served == pytest.approx(trained, abs=1e-5)


def test_a_workload_described_by_telemetry_alone_gets_the_wider_calibrated_interval(
    table: RunTable, outcome: Any
) -> None:
    from cotenant.models.predictor import Predictor

    fitted, split = outcome
    assert fitted.predictor.metadata.interval_widening_unprobed >= 0.0
    widened = fitted.predictor.metadata.model_copy(update={"interval_widening_unprobed": 0.1})
    predictor = Predictor(widened, fitted.predictor.model)
    application = sorted(split.test_apps)[0]
    series = series_of(table, application)
    host = predictor.encode_host([predictor.encode_profile(series_of(table, sorted(split.train_apps)[0]))])
    probed = predictor.score_placement(
        predictor.encode_profile(series, probes_of(table, application)), [host]
    )
    unprobed = predictor.score_placement(predictor.encode_profile(series), [host])
    width = {name: e[0].newcomer.upper - e[0].newcomer.lower for name, e in (("p", probed), ("u", unprobed))}
    assert width["u"] > width["p"] + 0.1  # 2 x 0.1 wider, less what the [0, 1] bounds clip


def test_the_interval_is_calibrated_on_every_training_program_answered_by_a_model_fit_without_it(
    table: RunTable, monkeypatch: pytest.MonkeyPatch
) -> None:
    """calibration="programs": besides the validation programs, each training program's runs are answered (as
    the service answers: incumbents described by their telemetry) by a probes model whose describers and
    head were fit on the other training programs only, and the adjustment is the pooled conformal quantile."""
    import cotenant.training.fit as fit
    from cotenant.datasets.torch_data import build_placement
    from cotenant.models.predictor import Predictor

    original, kept_sets, returned = fit._cross_program_scores, [], []

    def spied(fit_on: Any, metadata: Any, train: Any, programs: np.ndarray) -> np.ndarray:
        def recording(kept: np.ndarray) -> Any:
            kept_sets.append(np.asarray(kept))
            return fit_on(kept)

        scores = original(recording, metadata, train, programs)
        returned.append((scores, programs))
        return scores

    monkeypatch.setattr(fit, "_cross_program_scores", spied)
    split = leave_programs_out(table, k=4)[0]
    cfg = TrainConfig(model="placement-probes", progress=False)
    fitted = fit_model(table, split, cfg)
    (scores, programs), metadata = returned[0], fitted.predictor.metadata
    assert len(scores) == fitted.n_train == metadata.calibration_training_runs
    assert len(kept_sets) >= 2
    held_counts = np.zeros(len(programs), dtype=int)
    for kept in kept_sets:
        held = np.setdiff1d(np.arange(len(programs)), kept)
        held_counts[held] += 1
        assert not set(programs[kept]) & set(programs[held])  # a program is fit on or answered, never both
    assert (held_counts == 1).all()  # every training run answered exactly once
    # The pooled quantile, with the validation programs answered as served by the uncalibrated model.
    validation = build_placement(table, split, clip=cfg.input_clip, probes=True).validation
    assert validation is not None and metadata.calibration_runs == len(validation.y)
    model = fitted.predictor.model
    raw = Predictor(
        metadata.model_copy(update={"interval_adjustment": None, "interval_widening_unprobed": 0.0}), model
    )
    served = raw.predict_placement(
        validation.newcomer, model.withhold_probes(validation.neighbours), validation.mask
    )
    expected = fit.conformal_quantile(np.concatenate([fit.conformity_scores(served, validation.y), scores]))
    assert metadata.interval_adjustment == pytest.approx(expected)


def test_an_incumbent_seen_live_is_described_as_training_described_co_run_targets(
    table: RunTable, outcome: Any
) -> None:
    """Incumbents are known by their live, contended windows: the service encodes such a window through
    the describer trained on co-run targets' windows, and gets the numbers training computed for that run."""
    from cotenant.datasets.table import SELF
    from cotenant.datasets.tensors import live_rows

    fitted, _ = outcome
    predictor = fitted.predictor
    model = predictor.model
    assert model.live_describer_ is not model.describer_
    run_id = fitted.test_runs[0]
    frame = table.telemetry.filter(pl.col("run_id") == run_id).sort("second")
    window = {m: frame[SELF + m].to_numpy() for m in table.metrics}
    served = predictor.encode_profile(window, live=True)[0]
    row = predictor._stats().transform(live_rows(table, [run_id], predictor.metadata.features))
    trained = model.embed(model.withhold_probes(row))[0]  # an incumbent arrives without its probes
    np.testing.assert_allclose(served, trained, rtol=1e-5, atol=1e-6)
    solo = predictor.encode_profile(window)[0]  # the same numbers read as a solo profile: the other describer
    assert not np.allclose(solo[: len(predictor.probe_names())], served[: len(predictor.probe_names())])


@pytest.mark.parametrize("fair", [False, True])
def test_hosts_stacked_with_the_factorised_laws_columns_score_as_whole_embeddings_do(
    table: RunTable, outcome: Any, fair: bool
) -> None:
    """The extender's path (the law's columns of each host gathered once, the newcomer's added per query)
    gives the general path's quantiles, with and without the fair share's columns: the same float32 sums
    and float64 law (to rounding: BLAS may sum the law's few terms in another order for other addresses)."""
    import copy

    from cotenant.models.host_batch import stack_hosts
    from cotenant.models.predictor import Predictor
    from sklearn.linear_model import LinearRegression

    fitted, split = outcome
    model = copy.copy(fitted.predictor.model)
    if fair:
        model.host_cores_, model.demand_scale_, model.fair_share_ = 2.0, (0.8, 0.5), True
        model.contended_cpu_pair = True
    rng = np.random.default_rng(7)
    width = len(model.pairs) + 1 + 2 * int(fair)  # products, demand product, utilisation and fair terms
    model.head_family_ = "factorised"
    model.head_ = LinearRegression(positive=True).fit(rng.uniform(0, 1, (50, width)), rng.uniform(0, 2, 50))
    predictor = Predictor(fitted.predictor.metadata, model)
    apps = sorted(split.train_apps)
    encoded = [predictor.encode_profile(series_of(table, app), probes_of(table, app)) for app in apps[:5]]
    live = predictor.encode_profile(series_of(table, apps[5]), live=True)  # an incumbent without probes
    hosts = [predictor.encode_host(members) for members in ([], [encoded[1]], [encoded[2], live, encoded[3]])]
    fast = predictor.stack_hosts(hosts)
    assert fast.host_part is not None and fast.incumbent_part is not None
    shape = (hosts[1].embeddings.shape[1], predictor.backend.embedding_width())
    general = stack_hosts(hosts, shape, None)
    for explain in (False, True):
        got = predictor.score_placement_arrays(encoded[0], fast, explain=explain)
        want = predictor.score_placement_arrays(encoded[0], general, explain=explain)
        for a, b in zip(got, want, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)
    medians = got[0][:, 1]
    assert np.ptp(medians[1:]) > 0  # the rows differ: a constant would not test the law


def test_a_shadowed_challenger_encodes_incumbents_as_the_store_encodes_its_champion(
    table: RunTable, outcome: Any
) -> None:
    """A placement-probes challenger in shadow mode describes each incumbent from its live window (the
    live describer), as the store does once it is the champion; a solo profile's reading would differ."""
    from datetime import UTC, datetime, timedelta

    from cotenant.serving.hosts import HostStore
    from cotenant.serving.models import LoadedModel
    from cotenant.serving.schemas import IngestSample
    from cotenant.serving.shadow import ShadowScorer

    fitted, split = outcome
    champion = LoadedModel("cotenant-placement", "1", fitted.predictor)
    challenger = LoadedModel("cotenant-placement", "2", fitted.predictor)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    rows = []
    for target, app in zip(("pod-a", "pod-b"), sorted(split.train_apps)[:2], strict=True):
        series = series_of(table, app)
        for second in range(len(next(iter(series.values())))):
            metrics = {m: float(v[second]) for m, v in series.items() if np.isfinite(v[second])}
            rows.append(
                IngestSample(timestamp=start + timedelta(seconds=second), target=target, metrics=metrics)
            )
    served, shadowed = (HostStore(window_samples=60, stale_after_s=30, max_hosts=4) for _ in range(2))
    served.ingest("node-1", rows, challenger)
    shadowed.ingest("node-1", rows, champion)
    shadow = ShadowScorer(shadowed, tracking_uri="none", log_interval_s=3600)
    try:
        encoding = shadow._host_encoding(challenger, "node-1")
    finally:
        shadow.stop()
    snapshot = served.snapshot("node-1", challenger)
    assert encoding is not None and snapshot is not None and encoding.count == 2
    np.testing.assert_allclose(encoding.block, snapshot.encoding.block, rtol=1e-6)
    as_solo = fitted.predictor.encode_profile(shadowed.incumbent_series("node-1")[1][0])
    assert not np.allclose(as_solo, encoding.embeddings[0])


def test_a_latency_service_is_charged_its_queue_and_recognised_by_its_telemetry(table: RunTable) -> None:
    """``service_queue``: runs whose metric is a latency (lower is better) carry ``probe:latency`` = 1; the
    law gains one input, the queue's slowdown times that flag, zero for every other workload; the describers
    learn the flag (a vote: 0 or 1), so that a service registered without saying so (or seen only live, as an
    incumbent) is still charged; and where no training workload measures a latency, the queue's own weight
    (1) is taken."""
    from dataclasses import replace

    from cotenant.datasets.tensors import PROBE_LATENCY

    split = leave_programs_out(table, k=4)[0]
    service = sorted(split.train_apps)[0]
    runs = table.runs.with_columns(higher_is_better=pl.col("application") != service)
    latency_table = replace(table, runs=runs, meta={**table.meta, "machine": {"cores": 2}})
    _, frame = placement_inputs(latency_table, probes=True)
    flags = dict(frame.select("profile_id", PROBE_LATENCY).iter_rows())
    assert flags[service] == 1.0 and {v for k, v in flags.items() if k != service} == {0.0}

    def fitted(table: RunTable, queue: bool) -> Any:
        options = {"neighbour_load": True, "service_queue": queue, "head": "factorised"}
        cfg = TrainConfig(model="placement-probes", progress=False, model_options=options)
        return fit_model(table, split, cfg).predictor

    predictor, without = fitted(latency_table, True), fitted(latency_table, False)
    model = predictor.model
    assert model.embedding_width == without.model.embedding_width + 1
    # the describer says which is the service from its telemetry alone (a registered profile, an incumbent)
    for application, expected in ((service, 1.0), (sorted(split.train_apps)[1], 0.0)):
        series = series_of(latency_table, application)
        estimated = model.embed(predictor.profile_summary(series)[None])[0]
        assert estimated[-2] == expected
        said = model.embed(predictor.profile_summary(series, latency=not expected)[None])[0]
        assert said[-2] == (not expected)  # what a caller says is taken as said
    # beside the same busy neighbour, the same workload costs more as a latency, and nothing alone
    batch = predictor.profile_summary(series_of(latency_table, sorted(split.train_apps)[1]), latency=False)
    busy = model.embed(batch[None])
    as_service = model.embed(predictor.profile_summary(series_of(latency_table, service), latency=True)[None])
    as_batch = model.embed(predictor.profile_summary(series_of(latency_table, service), latency=False)[None])
    plain = without.model.embed(batch[None])
    width = without.model.features(plain, plain, np.ones(1)).shape[1]
    assert model.features(as_service, busy, np.ones(1)).shape[1] == width + 1
    term = model.features(as_service, busy, np.ones(1))[0, -1]
    assert term > 0.0 and model.features(as_batch, busy, np.ones(1))[0, -1] == 0.0
    alone = model.features(as_service, np.zeros_like(busy), np.zeros(1))[0, -1]
    assert alone == pytest.approx(0.0, abs=1e-9)
    assert model.head_.coef_[-1] >= 0.0
    # without any latency in training the flag never fires there, and the queue keeps its own weight
    unflagged = fitted(replace(table, meta=latency_table.meta), True).model
    assert unflagged.head_.coef_[-1] == 1.0
    # the extender's path (the law's columns of each host gathered once) answers as the general path does,
    # the service a newcomer (said) and an incumbent seen live (estimated)
    from cotenant.models.host_batch import stack_hosts

    others = sorted(split.train_apps)[1:4]
    newcomer = predictor.encode_profile(series_of(latency_table, service), latency=True)
    batch_jobs = [predictor.encode_profile(series_of(latency_table, app), latency=False) for app in others]
    live = predictor.encode_profile(series_of(latency_table, service), live=True)
    hosts = [
        predictor.encode_host(members)
        for members in ([batch_jobs[0]], [live, batch_jobs[1]], [batch_jobs[2], live, batch_jobs[0]])
    ]
    fast = predictor.stack_hosts(hosts)
    assert fast.host_part is not None
    general = stack_hosts(hosts, (hosts[0].embeddings.shape[1], predictor.backend.embedding_width()), None)
    got = predictor.score_placement_arrays(newcomer, fast, explain=False)
    want = predictor.score_placement_arrays(newcomer, general, explain=False)
    for a, b in zip(got, want, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)
