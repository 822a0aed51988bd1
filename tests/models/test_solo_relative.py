"""A target's work rates relative to its own solo profile (``vs_solo__``) are one set of numbers in every
path: the run table computes them from the target's profile, the service from the profile a request names,
the monitoring reference and CloudFormer's prior read the same CPU column."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import torch
from cotenant.collectors.ratios import (
    CPU_RATE,
    SOLO_RELATIVE,
    SOLO_RELATIVE_CAP,
    solo_means,
    solo_relative,
)
from cotenant.datasets import RunTable, load_source
from cotenant.datasets.splits import leave_programs_out
from cotenant.datasets.table import NEIGHBOUR_MEAN, SELF, VS_SOLO
from cotenant.models.base import MODELS, DataShape
from cotenant.models.cloudformer.module import CloudFormer
from cotenant.models.predictor import Predictor
from cotenant.training.config import ModelChoice, TrainConfig
from cotenant.training.fit import fit_model, tell_solo_prior
from cotenant.training.references import solo_relative_predictions, solo_relative_reference
from solo_tables import with_cpu_rate, with_work_rates

RATE = VS_SOLO + CPU_RATE


def test_the_ratio_is_each_second_over_the_solo_mean_capped_and_missing_without_a_usable_mean() -> None:
    values = np.array([0.5, 1.0, 9.0, np.nan, -1.0])
    np.testing.assert_allclose(
        solo_relative(values, 0.5), [1.0, 2.0, SOLO_RELATIVE_CAP, np.nan, 0.0], equal_nan=True
    )
    assert np.isnan(solo_relative(values, None)).all() and np.isnan(solo_relative(values, 0.0)).all()
    np.testing.assert_allclose(solo_relative(np.array([1.0, 1.0]), np.array([2.0, np.nan])), [0.5, np.nan])
    means = solo_means({CPU_RATE: np.array([1.0, np.nan, 3.0]), "not_a_rate": np.array([5.0])})
    assert means == {CPU_RATE: pytest.approx(2.0)}


@pytest.fixture(scope="module")
def table() -> RunTable:
    """The synthetic source with its first metric named as the CPU rate (it reads no cgroup), and one run's
    target profile unknown."""
    raw = load_source(
        "synthetic", n_apps=8, n_runs=80, min_length=8, max_length=10, profile_length=10, seed=5
    )
    runs = raw.runs.with_columns(
        pl.when(pl.col("run_id") == raw.runs["run_id"][0])
        .then(None)
        .otherwise(pl.col("target_profile"))
        .alias("target_profile")
    )
    return with_cpu_rate(RunTable(runs, raw.telemetry, raw.profiles, raw.metric_groups, raw.meta, raw.extras))


Series = dict[str, np.ndarray]


def served_request(table: RunTable) -> tuple[pl.DataFrame, Series, list[Series], Series, Series]:
    """A co-run whose target has a solo profile, as a monitoring request carries it: its telemetry frame,
    the target's, neighbours' and host's series, and the target's solo profile."""
    run = table.runs.filter(pl.col("target_profile").is_not_null() & pl.col("has_neighbours"))["run_id"][0]
    profile_id = table.runs.filter(pl.col("run_id") == run)["target_profile"][0]
    frame = table.telemetry.filter(pl.col("run_id") == run).sort("second")
    own = {m: frame[SELF + m].to_numpy() for m in table.metrics}
    neighbours = [{m: frame[NEIGHBOUR_MEAN + m].to_numpy() for m in table.metrics}]
    host = {c.removeprefix("host__"): frame[c].to_numpy() for c in table.host_columns}
    profile = table.profiles.filter(pl.col("profile_id") == profile_id)
    solo = {m: profile[m].to_numpy() for m in table.profile_metrics}
    return frame, own, neighbours, host, solo


def test_the_run_table_divides_each_runs_rate_by_its_targets_profile_mean(table: RunTable) -> None:
    assert table.solo_relative_columns == [RATE]  # only the rates both telemetry and profiles have
    table.validate()
    means = table.profiles.group_by("profile_id").agg(pl.col(CPU_RATE).mean().alias("solo"))
    joined = (
        table.telemetry.select("run_id", SELF + CPU_RATE, RATE)
        .join(table.runs.select("run_id", "target_profile"), on="run_id")
        .join(means, left_on="target_profile", right_on="profile_id", how="left")
    )
    known = joined.filter(pl.col("solo").is_not_null())
    want = np.clip(known[SELF + CPU_RATE].to_numpy() / known["solo"].to_numpy(), 0, SOLO_RELATIVE_CAP)
    np.testing.assert_allclose(known[RATE].to_numpy(), want)
    assert joined.filter(pl.col("solo").is_null())[RATE].is_null().all()  # no profile: no ratio
    assert joined.filter(pl.col("solo").is_null()).height > 0
    assert table.with_solo_relative() is table  # applied once
    assert set(SOLO_RELATIVE) >= {CPU_RATE}


def test_the_service_computes_the_training_rows_from_the_named_profile(table: RunTable) -> None:
    outcome = fit_model(table, leave_programs_out(table, k=4)[0], TrainConfig(model="linear", progress=False))
    predictor = outcome.predictor
    assert RATE in predictor.metadata.features
    frame, own, neighbours, host, solo = served_request(table)
    served, missing = predictor.monitoring_matrix(own, neighbours, host, solo)
    assert not missing
    np.testing.assert_allclose(served, frame.select(predictor.metadata.features).to_numpy(), rtol=1e-9)
    _, without = predictor.monitoring_matrix(own, neighbours, host)
    assert without == (RATE,)  # no profile named: the ratio is reported missing, not invented


def test_the_monitoring_reference_is_the_mean_cpu_ratio_at_most_one(table: RunTable) -> None:
    predicted = dict(solo_relative_predictions(table).iter_rows())
    means = table.telemetry.group_by("run_id").agg(pl.col(RATE).mean())
    for run_id, mean in means.iter_rows():
        if mean is None:
            assert run_id not in predicted
        else:
            assert predicted[run_id] == pytest.approx(min(1.0, mean))
    splits = leave_programs_out(table, k=4)
    reference = solo_relative_reference(table, splits)
    assert reference is not None and reference["mean"] > 0


def test_cloudformer_with_the_prior_starts_from_the_heuristic_and_keeps_it_through_the_artifact(
    table: RunTable, tmp_path
) -> None:
    spec = MODELS.get("cloudformer")
    config = spec.config_type.model_validate({"solo_prior": True, "blocks": 1})
    x = torch.zeros(3, 5, 4)
    x[..., 2] = torch.tensor([[-1.0], [0.0], [1.0]])  # normalised CPU ratios: 0.4, 0.6, 0.8 below
    mask = torch.ones(3, 5, dtype=torch.bool)
    model = spec.build(config, DataShape(4, 0, 5)).eval()
    assert isinstance(model, CloudFormer)
    model.set_prior(2, 0.6, 0.2)
    head = model.head[-1].out
    torch.nn.init.zeros_(head.weight)
    torch.nn.init.zeros_(head.bias)
    with torch.no_grad():
        answered = model(x, mask)
    np.testing.assert_allclose(answered.numpy(), np.repeat([[0.4], [0.6], [0.8]], 3, axis=1), atol=1e-6)
    # Trained on the table, the prior's column is the CPU ratio's, and the artifact answers as the fit did.
    outcome = fit_model(
        table,
        leave_programs_out(table, k=4)[0],
        TrainConfig(model="cloudformer", epochs=1, model_options={"solo_prior": True}, progress=False),
    )
    outcome.predictor.save(tmp_path)
    loaded = Predictor.load(tmp_path)
    assert int(loaded.model.prior_column) == loaded.metadata.features.index(RATE)
    runs = [np.zeros((6, loaded.metadata.n_inputs), dtype=np.float32)]
    np.testing.assert_allclose(
        loaded.predict_normalised(runs), outcome.predictor.predict_normalised(runs), rtol=1e-6
    )
    plain = spec.build(spec.config_type(), DataShape(4, 0, 5))
    tell_solo_prior(plain, type("Stats", (), {"names": ["a"]})())  # no column, no prior: nothing to tell
    assert "prior_column" not in plain.state_dict()


VCS = SOLO_RELATIVE.index("tasks_voluntary_context_switches_per_second")
READ = SOLO_RELATIVE.index("tasks_read_chars_bytes_per_second")


def _rate_prior_model() -> CloudFormer:
    """A one-block CloudFormer with the work-rate prior over four inputs: column 2 the CPU ratio, column 3
    the voluntary context switches' and column 1 the bytes read (each normalised with mean 0.6, std 0.2);
    its head answers 0 (the prior alone)."""
    spec = MODELS.get("cloudformer")
    config = spec.config_type.model_validate({"solo_prior": True, "rate_prior": True, "blocks": 1})
    model = spec.build(config, DataShape(4, 0, 5)).eval()
    assert isinstance(model, CloudFormer)
    model.set_prior(2, 0.6, 0.2)
    columns = [-1] * len(SOLO_RELATIVE)
    columns[SOLO_RELATIVE.index(CPU_RATE)], columns[VCS], columns[READ] = 2, 3, 1
    model.set_rate_priors(columns, [0.6] * len(columns), [0.2] * len(columns))
    torch.nn.init.zeros_(model.head[-1].out.weight)
    torch.nn.init.zeros_(model.head[-1].out.bias)
    return model


def test_the_rate_prior_answers_the_rate_its_gate_weighs_and_never_one_the_run_lacks() -> None:
    model = _rate_prior_model()
    x = torch.zeros(3, 5, 4)
    x[..., 2] = torch.tensor([[1.0], [1.0], [1.0]])  # CPU ratio 0.8 for every run
    x[..., 3] = torch.tensor([[-1.0], [0.5], [-2.0]])  # context switches' ratio 0.4, 0.7, 0.2
    x[:2, :, 1] = 0.5  # bytes read 0.7; run 2 reads nothing (its column is the training mean throughout)
    mask = torch.ones(3, 5, dtype=torch.bool)
    assert model.rate_gate is not None
    with torch.no_grad():
        # Untrained, the gate starts near the CPU rate (e^4 against 1 for each other usable rate).
        start = model(x, mask)[:, 0].numpy()
        expected = [
            (np.exp(4) * 0.8 + 0.4 + 0.7) / (np.exp(4) + 2),
            (np.exp(4) * 0.8 + 0.7 + 0.7) / (np.exp(4) + 2),
        ]
        np.testing.assert_allclose(start[:2], expected, atol=1e-5)
        np.testing.assert_allclose(start[2], (np.exp(4) * 0.8 + 0.2) / (np.exp(4) + 1), atol=1e-5)
        model.rate_gate.bias.zero_()
        model.rate_gate.bias[VCS] = 30.0
        np.testing.assert_allclose(model(x, mask)[:, 0].numpy(), [0.4, 0.7, 0.2], atol=1e-5)
        model.rate_gate.bias.zero_()
        model.rate_gate.bias[READ] = 30.0
        # run 2 lacks the bytes read: it gets the other two rates, equally weighed
        np.testing.assert_allclose(model(x, mask)[:, 0].numpy(), [0.7, 0.7, (0.8 + 0.2) / 2], atol=1e-5)


def test_the_rate_prior_learns_a_progress_that_is_not_cpu_time() -> None:
    """Runs whose P is their context switches' ratio while their CPU ratio says otherwise: trained, the
    mixture moves onto the context switches and answers far closer than the CPU prior."""
    torch.manual_seed(0)
    model = _rate_prior_model().train()
    generator = torch.Generator().manual_seed(1)
    switches = torch.rand(64, generator=generator) * 0.6 + 0.3  # P in [0.3, 0.9]
    cpu = torch.rand(64, generator=generator) * 0.6 + 0.3  # unrelated to P
    x = torch.zeros(64, 5, 4)
    x[..., 2] = ((cpu - 0.6) / 0.2)[:, None]
    x[..., 3] = ((switches - 0.6) / 0.2)[:, None]
    mask = torch.ones(64, 5, dtype=torch.bool)
    optimiser = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(150):
        optimiser.zero_grad()
        loss = (model(x, mask)[:, 0] - switches).abs().mean()
        loss.backward()
        optimiser.step()
    model.eval()
    with torch.no_grad():
        error = (model(x, mask)[:, 0] - switches).abs().mean().item()
    assert error < 0.3 * (cpu - switches).abs().mean().item()


def test_a_fit_tells_the_rate_prior_where_each_rate_is_and_the_artifact_keeps_it(tmp_path) -> None:
    raw = load_source(
        "synthetic", n_apps=8, n_runs=80, min_length=8, max_length=10, profile_length=10, seed=5
    )
    table = with_work_rates(raw, (CPU_RATE, SOLO_RELATIVE[VCS], SOLO_RELATIVE[READ]))
    outcome = fit_model(
        table,
        leave_programs_out(table, k=4)[0],
        TrainConfig(
            model="cloudformer",
            epochs=1,
            model_options={"solo_prior": True, "rate_prior": True},
            progress=False,
        ),
    )
    outcome.predictor.save(tmp_path)
    loaded = Predictor.load(tmp_path)
    features = loaded.metadata.features
    told = [int(column) for column in loaded.model.rate_columns]
    assert told == [
        features.index(VS_SOLO + rate) if VS_SOLO + rate in features else -1 for rate in SOLO_RELATIVE
    ]
    assert told[SOLO_RELATIVE.index(CPU_RATE)] == int(loaded.model.prior_column) >= 0
    assert sorted(i for i, column in enumerate(told) if column >= 0) == sorted(
        [SOLO_RELATIVE.index(CPU_RATE), VCS, READ]
    )
    runs = [np.random.default_rng(0).normal(size=(6, loaded.metadata.n_inputs)).astype(np.float32)]
    np.testing.assert_allclose(
        loaded.predict_normalised(runs), outcome.predictor.predict_normalised(runs), rtol=1e-6
    )


def test_the_profile_gate_stays_on_the_cpu_rate_without_programs_to_check_it_on() -> None:
    """Two programs cannot tell whether a gate's rule carries to a third: the gate keeps the CPU rate alone
    and the answer is the CPU ratio itself."""
    x = _runs(
        torch.tensor([0.3, 1.0] * 4),
        torch.tensor([20000.0, 2.0] * 4),
        torch.rand(8) * 0.5 + 0.3,
        torch.rand(8) * 0.5 + 0.3,
    )
    mask = torch.ones(8, 5, dtype=torch.bool)
    model = _profile_gate_model()
    model.fit_rate_gate(x, mask, x[:, 0, 3], ["storage", "compute"] * 4)
    assert float(model.gate_penalty) == np.inf
    with torch.no_grad():
        np.testing.assert_allclose(model(x, mask)[:, 0].numpy(), x[:, 0, 1].numpy(), atol=1e-5)


def test_a_fit_fits_the_profile_gate_on_the_training_runs_and_the_artifact_keeps_it(tmp_path) -> None:
    raw = load_source(
        "synthetic", n_apps=8, n_runs=80, min_length=8, max_length=10, profile_length=10, seed=5
    )
    table = with_work_rates(raw, (CPU_RATE, SOLO_RELATIVE[VCS], SOLO_RELATIVE[READ]))
    options = {"solo_prior": True, "rate_prior": True, "rate_gate": "solo_profile", "rate_gate_l2": 1e-3}
    config = TrainConfig(model="cloudformer", epochs=1, model_options=options, progress=False)
    outcome = fit_model(table, leave_programs_out(table, k=4)[0], config)
    outcome.predictor.save(tmp_path)
    loaded = Predictor.load(tmp_path)
    features = loaded.metadata.features
    own = [int(column) for column in loaded.model.self_columns]
    assert own == [features.index(SELF + rate) if SELF + rate in features else -1 for rate in SOLO_RELATIVE]
    present = [i for i, column in enumerate(own) if column >= 0]
    assert sorted(present) == sorted([SOLO_RELATIVE.index(CPU_RATE), VCS, READ])
    # fitted: the training runs' log solo means z-scored, and a gate moved off its start
    assert (loaded.model.profile_means[present] != 0).all()
    assert float(loaded.model.gate_penalty) == pytest.approx(1e-3)
    gate = outcome.predictor.model.rate_gate
    assert not gate.weight.requires_grad and gate.weight.abs().sum() > 0
    runs = [np.random.default_rng(0).normal(size=(6, loaded.metadata.n_inputs)).astype(np.float32)]
    np.testing.assert_allclose(
        loaded.predict_normalised(runs), outcome.predictor.predict_normalised(runs), rtol=1e-6
    )


def test_the_mlflow_model_takes_the_targets_solo_profile(table: RunTable, tmp_path) -> None:
    """The registered pyfunc (a real sqlite store) answers a monitoring request with ``solo`` as the
    predictor does, and without it as the predictor does without the profile."""
    import json

    import mlflow
    import pandas as pd
    from cotenant.training.tracking import log_predictor, use_experiment

    outcome = fit_model(table, leave_programs_out(table, k=4)[0], TrainConfig(model="linear", progress=False))
    predictor = outcome.predictor
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    before = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    try:
        use_experiment("solo-relative", uri)
        with mlflow.start_run():
            name, version = log_predictor(predictor, "monitoring")
        model = mlflow.pyfunc.load_model(f"models:/{name}/{version}")
    finally:  # the process-wide store is left as the other tests expect it
        mlflow.set_tracking_uri(before[0])
        mlflow.set_registry_uri(before[1])
    run = table.runs.filter(pl.col("target_profile").is_not_null() & pl.col("has_neighbours"))["run_id"][0]
    profile_id = table.runs.filter(pl.col("run_id") == run)["target_profile"][0]
    frame = table.telemetry.filter(pl.col("run_id") == run).sort("second")
    own = {m: frame[SELF + m].to_list() for m in table.metrics}
    neighbours = [{m: frame[NEIGHBOUR_MEAN + m].to_list() for m in table.metrics}]
    profile = table.profiles.filter(pl.col("profile_id") == profile_id)
    solo = {m: profile[m].to_list() for m in table.profile_metrics}
    requests = [
        {"target": own, "neighbours": neighbours, "solo": solo},
        {"target": own, "neighbours": neighbours},
    ]
    answered = model.predict(pd.DataFrame({"request": [json.dumps(r) for r in requests]}))

    def direct(with_solo: bool) -> float:
        series = {k: np.asarray(v) for k, v in own.items()}
        others = [{k: np.asarray(v) for k, v in neighbours[0].items()}]
        given = {k: np.asarray(v) for k, v in solo.items()} if with_solo else None
        return predictor.predict_degradation(series, others, None, given).p

    assert answered["p"].tolist() == pytest.approx([direct(True), direct(False)], abs=1e-9)
    assert answered["p"][0] != pytest.approx(answered["p"][1], abs=1e-6)  # the profile changes the answer


def test_the_served_heuristic_answers_the_reference_through_the_artifact(table: RunTable, tmp_path) -> None:
    """``solo-relative`` trained and saved as any tabular model answers each test run ``min(1, mean CPU
    ratio)``, the reference's answer, and its interval is calibrated around that."""
    split = leave_programs_out(table, k=4)[0]
    outcome = fit_model(table, split, TrainConfig(model="solo-relative", input_clip=None, progress=False))
    reference = dict(solo_relative_predictions(table).iter_rows())
    answered = dict(zip(outcome.test_runs, outcome.predicted[:, 1], strict=True))
    known = [run for run in outcome.test_runs if run in reference]
    assert len(known) > 10
    np.testing.assert_allclose([answered[r] for r in known], [reference[r] for r in known], atol=1e-9)
    assert (outcome.predicted[:, 0] <= outcome.predicted[:, 1]).all()
    assert (outcome.predicted[:, 0] < outcome.predicted[:, 2]).any()  # an interval, not a point
    outcome.predictor.save(tmp_path)
    loaded = Predictor.load(tmp_path)
    runs = [np.full((6, loaded.metadata.n_inputs), value, dtype=np.float32) for value in (-1.0, 0.0, 1.0)]
    np.testing.assert_allclose(
        loaded.predict_normalised(runs), outcome.predictor.predict_normalised(runs), rtol=1e-9
    )
    assert len(set(np.round(loaded.predict_normalised(runs)[:, 1], 6))) == 3  # it reads the ratio


def test_the_served_heuristic_is_refused_on_data_without_solo_profiles(tiny_table: RunTable) -> None:
    assert not tiny_table.solo_relative_columns
    with pytest.raises(ValueError, match="vs_solo__"):
        fit_model(tiny_table, leave_programs_out(tiny_table, k=2)[0], TrainConfig(model="solo-relative"))


def test_boosting_on_the_departures_keeps_the_prior_beyond_the_training_levels(tmp_path) -> None:
    """Trained on programs whose CPU ratios lie in 0.2-0.5 with P = ratio - 0.05, a tree on P answers an
    unseen program at ratio 0.9 with the levels it saw; one on the departures answers about 0.85."""
    from cotenant.models.solo_prior import SoloPriorRegressor
    from cotenant.models.tabular import load_estimator, save_estimator
    from sklearn.ensemble import HistGradientBoostingRegressor

    rng = np.random.default_rng(0)
    ratio = rng.uniform(0.2, 0.5, 400)
    features = np.column_stack([ratio, rng.normal(size=400)])  # the summary's first column: the ratio
    labels = ratio - 0.05
    unseen = np.array([[0.9, 0.0]])
    plain = HistGradientBoostingRegressor(random_state=0).fit(features, labels)
    assert plain.predict(unseen)[0] < 0.5
    prior = SoloPriorRegressor(HistGradientBoostingRegressor(random_state=0))
    prior.set_prior(0, 0.0, 1.0)
    prior.fit(features, labels)
    assert prior.predict(unseen)[0] == pytest.approx(0.85, abs=0.01)
    save_estimator(prior, tmp_path / "estimator.skops")  # stored pickle-free and loaded as trusted
    np.testing.assert_allclose(
        load_estimator(tmp_path / "estimator.skops").predict(unseen), prior.predict(unseen)
    )
    without = SoloPriorRegressor(HistGradientBoostingRegressor(random_state=0)).fit(features, labels)
    np.testing.assert_allclose(without.predict(unseen), np.clip(plain.predict(unseen), 1e-3, 1.0))


def test_without_its_own_levels_a_model_reads_the_target_only_against_its_solo_profile(
    table: RunTable,
) -> None:
    """``include_own_levels=false`` drops the target's raw rates (self__), keeps its rates over its solo
    profile, its neighbours' and the host's; the service still computes those from the request's series."""
    cfg = ModelChoice.parse("linear[include_own_levels=false]").config(TrainConfig(progress=False))
    predictor = fit_model(table, leave_programs_out(table, k=4)[0], cfg).predictor
    features = predictor.metadata.features
    assert RATE in features and any(f.startswith(NEIGHBOUR_MEAN) for f in features)
    assert not any(f.startswith(SELF) for f in features)
    frame, own, neighbours, host, solo = served_request(table)
    served, missing = predictor.monitoring_matrix(own, neighbours, host, solo)
    assert not missing
    np.testing.assert_allclose(served, frame.select(features).to_numpy(), rtol=1e-9)


def _profile_gate_model() -> CloudFormer:
    """A one-block CloudFormer whose rate gate reads the solo profile, over four inputs: the target's CPU use
    (column 0, cores) and its CPU ratio (1); its voluntary context switches (2, per ms: std 1000) and their
    ratio (3); its head answers 0 (the mixture alone)."""
    spec = MODELS.get("cloudformer")
    options = {"solo_prior": True, "rate_prior": True, "rate_gate": "solo_profile", "blocks": 1}
    model = spec.build(spec.config_type.model_validate(options), DataShape(4, 0, 5)).eval()
    assert isinstance(model, CloudFormer)
    model.set_prior(1, 0.0, 1.0)
    ratios, own = [-1] * len(SOLO_RELATIVE), [-1] * len(SOLO_RELATIVE)
    ratios[SOLO_RELATIVE.index(CPU_RATE)], ratios[VCS] = 1, 3
    own[SOLO_RELATIVE.index(CPU_RATE)], own[VCS] = 0, 2
    stds = [1.0] * len(SOLO_RELATIVE)
    stds[VCS] = 1000.0
    zeros = [0.0] * len(SOLO_RELATIVE)
    model.set_rate_priors(ratios, zeros, [1.0] * len(SOLO_RELATIVE), own=(own, zeros, stds))
    torch.nn.init.zeros_(model.head[-1].out.weight)
    torch.nn.init.zeros_(model.head[-1].out.bias)
    return model


def _runs(solo_cpu: torch.Tensor, solo_switches: torch.Tensor, cpu: torch.Tensor, switches: torch.Tensor):
    """``[R, 5, 4]`` inputs of runs with these solo means and ratios (each steady over the run)."""
    x = torch.zeros(len(cpu), 5, 4)
    x[..., 0] = (cpu * solo_cpu)[:, None]
    x[..., 1] = cpu[:, None]
    x[..., 2] = (switches * solo_switches / 1000.0)[:, None]
    x[..., 3] = switches[:, None]
    return x


def test_the_profile_gate_reads_each_rates_solo_mean() -> None:
    model = _profile_gate_model()
    x = _runs(
        torch.tensor([0.3, 1.0]),
        torch.tensor([20000.0, 0.0]),
        torch.tensor([0.5, 0.8]),
        torch.tensor([0.9, 0.0]),
    )
    mask = torch.ones(2, 5, dtype=torch.bool)
    with torch.no_grad():
        read = model.solo_profile(x, mask).numpy()
    # unfitted, the z-scores are the logs themselves (mean 0, std 1)
    np.testing.assert_allclose(read[:, SOLO_RELATIVE.index(CPU_RATE)], np.log10([0.3, 1.0]), atol=1e-5)
    # run 1 never blocked: its switches read as none (10^-3 per second), as every rate the inputs lack
    np.testing.assert_allclose(read[:, VCS], [np.log10(20000.0), -3.0], atol=1e-5)
    assert (read[:, READ] == -3.0).all()


def test_the_profile_gate_learns_which_kind_of_program_progresses_as_its_blocking_calls() -> None:
    """Storage-like programs (a third of a core alone, 20k blocking calls a second) whose P is their
    context switches' ratio while their CPU ratio says otherwise, and compute programs (a core, hardly
    blocking) whose P is their CPU ratio. Fitted on some, the gate answers other programs of both kinds
    (solo means the training runs never had) far closer than either rate alone, and stays as fitted."""
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(2)

    def programs(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        storage = torch.arange(n) % 2 == 0
        solo_cpu = torch.where(storage, 0.25, 1.0) + torch.rand(n, generator=generator) * 0.2
        solo_switches = torch.where(storage, 15000.0, 2.0) * (1 + torch.rand(n, generator=generator))
        cpu = torch.rand(n, generator=generator) * 0.6 + 0.3
        switches = torch.rand(n, generator=generator) * 0.6 + 0.3
        return _runs(solo_cpu, solo_switches, cpu, switches), torch.where(storage, switches, cpu)

    x, p = programs(96)
    model = _profile_gate_model()
    # twelve programs of eight runs, each of one kind: the penalty is chosen over folds of them
    model.fit_rate_gate(x, torch.ones(len(p), 5, dtype=torch.bool), p, [f"p{i % 12}" for i in range(96)])
    assert model.rate_gate is not None and not model.rate_gate.weight.requires_grad
    assert np.isfinite(float(model.gate_penalty))  # a gate that carries between programs is kept
    unseen, p_unseen = programs(32)
    with torch.no_grad():
        error = (model(unseen, torch.ones(32, 5, dtype=torch.bool))[:, 0] - p_unseen).abs().mean().item()
    cpu_alone = (unseen[:, 0, 1] - p_unseen).abs().mean().item()
    switches_alone = (unseen[:, 0, 3] - p_unseen).abs().mean().item()
    assert error < 0.3 * min(cpu_alone, switches_alone)
