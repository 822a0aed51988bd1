"""The switch-gated prior (``prior="switches"``): a program that blocks once per request or I/O (many context
switches per CPU-second in its solo profile) is read by its context-switch ratio, a compute program by its
CPU ratio. The density is one number per solo profile, the same in the run table and in the service; the gate
is two numbers fitted on the training runs, read alike by the tabular models and CloudFormer."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import torch
from cotenant.collectors.ratios import CPU_RATE, SWITCH_DENSITY, SWITCH_RATE, solo_means, switch_density
from cotenant.datasets import RunTable, load_source
from cotenant.datasets.splits import Split, leave_programs_out
from cotenant.datasets.table import NEIGHBOUR_MEAN, SELF, VS_SOLO
from cotenant.models import solo_prior
from cotenant.models.cloudformer import module as cloudformer_module
from cotenant.models.predictor import Predictor
from cotenant.models.solo_prior import CPU_ONLY_GATE, fit_switch_gate, switch_mixture
from cotenant.training.config import TrainConfig
from cotenant.training.fit import fit_model

DENSITY = VS_SOLO + SWITCH_DENSITY
# How much more often a blocking program switches than the synthetic source's rates: tens of thousands of
# switches per CPU-second, a storage program's or a server's.
BLOCKING_SCALE = 1e5


def test_the_gate_reads_blocking_programs_by_their_switches_and_compute_ones_by_their_cpu_time() -> None:
    rng = np.random.default_rng(0)
    n = 200
    blocking = np.arange(n) % 2 == 1
    density = np.where(blocking, rng.uniform(4.0, 4.8, n), rng.uniform(0.3, 2.0, n))
    cpu, switches = rng.uniform(0.3, 1.0, n), rng.uniform(0.3, 1.0, n)
    labels = np.where(blocking, switches, cpu)
    gate = fit_switch_gate(cpu, switches, density, labels)
    assert 2.0 <= gate[1] <= 4.0  # between the two kinds
    # Runs of programs at densities the fit never saw (1.5 and 4.6): each read through its own rate.
    unseen_density = np.array([1.5, 4.6])
    unseen_cpu, unseen_switches = np.array([0.5, 0.9]), np.array([0.9, 0.4])
    answered = switch_mixture(unseen_cpu, unseen_switches, unseen_density, *gate)
    np.testing.assert_allclose(answered, [0.5, 0.4], atol=0.01)
    # The CPU ratio alone misses the blocking half by what its two rates differ.
    assert np.abs(np.minimum(cpu, 1) - labels).mean() > 0.1
    # The same rule on tensors, as CloudFormer reads it.
    as_tensor = switch_mixture(
        torch.tensor(unseen_cpu), torch.tensor(unseen_switches), torch.tensor(unseen_density), *gate
    )
    np.testing.assert_allclose(as_tensor.numpy(), answered, rtol=1e-12)


def test_the_density_is_the_profiles_switches_per_cpu_second_and_nan_without_either_rate() -> None:
    means = solo_means({CPU_RATE: np.array([0.5, 1.5]), SWITCH_RATE: np.array([999.0, 999.0])})
    assert switch_density(means) == pytest.approx(np.log10(1000.0 / 1.001))
    assert np.isnan(switch_density({CPU_RATE: 1.0}))
    assert np.isnan(switch_density({SWITCH_RATE: 5.0, CPU_RATE: float("nan")}))


def _kinds_table(blocking: set[str]) -> RunTable:
    """The synthetic source with its first two metrics named as the CPU and context-switch rates; the
    ``blocking`` programs switch BLOCKING_SCALE x as often (alone and in co-runs, so their ratios are
    unchanged). Each co-run's label is the run's mean ratio of the rate its kind progresses by (at most 1):
    the switch ratio for a blocking program, the CPU ratio for the others."""
    raw = load_source(
        "synthetic", n_apps=8, n_runs=120, min_length=8, max_length=10, profile_length=10, seed=11
    )
    cpu_old, switch_old = raw.metrics[:2]
    renamed = {
        p + old: p + new
        for old, new in ((cpu_old, CPU_RATE), (switch_old, SWITCH_RATE))
        for p in (SELF, NEIGHBOUR_MEAN)
    }
    program_of_run = dict(raw.runs.select("run_id", "application").iter_rows())
    profile_programs = dict(
        raw.runs.select("target_profile", "application").unique("target_profile").iter_rows()
    )
    is_blocking = pl.col("run_id").replace_strict(program_of_run, default=None).is_in(sorted(blocking))
    scale = pl.when(is_blocking).then(BLOCKING_SCALE).otherwise(1.0)
    telemetry = raw.telemetry.rename(renamed).with_columns(
        pl.col(SELF + CPU_RATE).abs(), (pl.col(SELF + SWITCH_RATE).abs() * scale)
    )
    profile_blocking = (
        pl.col("profile_id").replace_strict(profile_programs, default=None).is_in(sorted(blocking))
    )
    profiles = raw.profiles.rename({cpu_old: CPU_RATE, switch_old: SWITCH_RATE}).with_columns(
        pl.col(CPU_RATE).abs() + 0.1,
        (pl.col(SWITCH_RATE).abs() + 0.1) * pl.when(profile_blocking).then(BLOCKING_SCALE).otherwise(1.0),
    )
    groups = {
        ({cpu_old: CPU_RATE, switch_old: SWITCH_RATE}).get(m, m): g for m, g in raw.metric_groups.items()
    }
    table = RunTable(raw.runs, telemetry, profiles, groups, raw.meta, raw.extras).with_solo_relative()
    means = table.telemetry.group_by("run_id").agg(
        pl.col(VS_SOLO + CPU_RATE).mean().alias("cpu"), pl.col(VS_SOLO + SWITCH_RATE).mean().alias("switches")
    )
    runs = (
        table.runs.join(means, on="run_id", how="left")
        .with_columns(
            pl.when(pl.col("application").is_in(sorted(blocking)))
            .then(pl.col("switches"))
            .otherwise(pl.col("cpu"))
            .clip(0.05, 1.0)
            .fill_null(pl.col("label"))
            .alias("label")
        )
        .drop("cpu", "switches")
    )
    return RunTable(runs, table.telemetry, table.profiles, table.metric_groups, table.meta, table.extras)


@pytest.fixture(scope="module")
def kinds() -> tuple[RunTable, Split]:
    """The table with half the programs blocking, and a split whose test programs are one of each kind."""
    programs = sorted(load_source("synthetic", n_apps=8, n_runs=8, seed=11).runs["application"].unique())
    split = leave_programs_out(_kinds_table(set()), k=4)[0]
    others = [p for p in programs if p not in split.test_apps]
    blocking = {split.test_apps[0], *others[::2]}
    table = _kinds_table(blocking)
    split = leave_programs_out(table, k=4)[0]
    assert blocking & set(split.test_apps) and set(split.test_apps) - blocking
    return table, split


def test_the_table_and_the_service_read_the_same_density_from_the_targets_profile(
    kinds: tuple[RunTable, Split], tmp_path
) -> None:
    table, split = kinds
    assert DENSITY in table.telemetry.columns
    run = table.runs.filter(pl.col("target_profile").is_not_null() & pl.col("has_neighbours"))["run_id"][0]
    profile_id = table.runs.filter(pl.col("run_id") == run)["target_profile"][0]
    profile = table.profiles.filter(pl.col("profile_id") == profile_id)
    want = np.log10((profile[SWITCH_RATE].mean() + 1.0) / (profile[CPU_RATE].mean() + 1e-3))
    frame = table.telemetry.filter(pl.col("run_id") == run).sort("second")
    np.testing.assert_allclose(frame[DENSITY].to_numpy(), want)
    # A table packed before the density existed (the rates without it) gets it from the same profiles.
    packed = RunTable(
        table.runs,
        table.telemetry.drop(DENSITY),
        table.profiles,
        table.metric_groups,
        table.meta,
        table.extras,
    )
    np.testing.assert_allclose(
        packed.with_solo_relative().telemetry[DENSITY].to_numpy(), table.telemetry[DENSITY].to_numpy()
    )
    # The service computes it from the profile a request names, as the training rows have it.
    predictor = fit_model(table, split, TrainConfig(model="linear", progress=False)).predictor
    assert DENSITY in predictor.metadata.features
    own = {m: frame[SELF + m].to_numpy() for m in table.metrics}
    neighbours = [{m: frame[NEIGHBOUR_MEAN + m].to_numpy() for m in table.metrics}]
    host = {c.removeprefix("host__"): frame[c].to_numpy() for c in table.host_columns}
    solo = {m: profile[m].to_numpy() for m in table.profile_metrics}
    served, missing = predictor.monitoring_matrix(own, neighbours, host, solo)
    assert not missing
    np.testing.assert_allclose(served, frame.select(predictor.metadata.features).to_numpy(), rtol=1e-9)
    _, without = predictor.monitoring_matrix(own, neighbours, host)
    assert DENSITY in without  # no profile named: no density invented


def _test_mae(
    table: RunTable, split: Split, model: str, options: dict[str, object], **extra: object
) -> float:
    outcome = fit_model(
        table, split, TrainConfig(model=model, model_options=options, progress=False, **extra)
    )
    return float(np.abs(outcome.predicted[:, 1] - outcome.labels).mean())


def test_with_the_switch_prior_an_unseen_blocking_program_is_read_by_its_switches(
    kinds: tuple[RunTable, Split], tmp_path
) -> None:
    table, split = kinds
    cpu_prior = _test_mae(table, split, "solo-relative", {})
    switches = _test_mae(table, split, "solo-relative", {"prior": "switches"})
    assert switches < 0.3 * cpu_prior
    boosted = _test_mae(
        table, split, "hist-gradient-boosting", {"solo_prior": True, "prior": "switches", "max_iter": 20}
    )
    assert boosted < 0.5 * cpu_prior
    # CloudFormer fits the same gate before its network, and the artifact keeps it: with its head answering
    # nothing, the prior alone reads the unseen blocking program as the tabular prior does.
    outcome = fit_model(
        table,
        split,
        TrainConfig(
            model="cloudformer",
            epochs=1,
            model_options={"solo_prior": True, "prior": "switches", "blocks": 1},
            progress=False,
        ),
    )
    outcome.predictor.save(tmp_path)
    loaded = Predictor.load(tmp_path)
    model = loaded.model
    assert not torch.isnan(model.switch_gate).any()
    features = loaded.metadata.features
    assert [int(c) for c in model.switch_columns] == [
        features.index(VS_SOLO + SWITCH_RATE),
        features.index(DENSITY),
    ]
    test = split.test(table)
    stats = loaded._stats()
    errors = []
    for run_id, label in test.runs.select("run_id", "label").iter_rows():
        steps = test.telemetry.filter(pl.col("run_id") == run_id).sort("second").select(features).to_numpy()
        x = torch.from_numpy(stats.transform(steps.astype(np.float32)))[None]
        with torch.no_grad():
            errors.append(abs(float(model.prior(x, torch.ones(1, len(steps), dtype=torch.bool))[0]) - label))
    assert np.mean(errors) < 0.3 * cpu_prior


def test_a_gate_chosen_between_programs_keeps_a_rule_that_carries() -> None:
    rng = np.random.default_rng(1)
    programs = np.repeat(np.arange(10), 20)  # ten programs, the odd ones blocking
    blocking = programs % 2 == 1
    density = np.where(blocking, 4.0 + 0.08 * programs, 0.3 + 0.15 * programs) + rng.normal(0, 0.02, 200)
    cpu, switches = rng.uniform(0.3, 1.0, 200), rng.uniform(0.3, 1.0, 200)
    labels = np.where(blocking, switches, cpu)
    gate = fit_switch_gate(cpu, switches, density, labels, programs)
    assert gate != CPU_ONLY_GATE
    answered = switch_mixture(np.array([0.5, 0.9]), np.array([0.9, 0.4]), np.array([1.5, 4.6]), *gate)
    np.testing.assert_allclose(answered, [0.5, 0.4], atol=0.01)


def test_a_gate_chosen_between_programs_refuses_a_turn_that_depends_on_which_programs_trained_it() -> None:
    """At one density a program read by its switches (A, 80 runs, whose two rates differ by 0.1) beside one
    read by its CPU time (B, 20 runs, 0.3 apart): on every run, turning pays (8 gained, 6 lost); held out in
    turn, the gate fitted without A misses A as the CPU ratio does, and the gate fitted with A misses B,
    which the CPU ratio answers."""
    rng = np.random.default_rng(2)
    sizes = {"A": 80, "B": 20, "C": 60, "D": 50, "E": 40}
    programs = np.concatenate([np.full(size, name) for name, size in sizes.items()])
    cpu = rng.uniform(0.3, 0.6, len(programs))
    offset = np.select([programs == "A", programs == "B"], [0.1, 0.3], 0.0)  # C-E: both rates alike
    switches = cpu + offset
    density = np.select(
        [np.isin(programs, ["A", "B"]), programs == "C", programs == "D"], [4.5, 0.6, 0.9], 1.2
    )
    labels = np.where(programs == "A", switches, cpu)
    at_a = (np.array([0.5]), np.array([0.6]), np.array([4.5]))
    by_runs = fit_switch_gate(cpu, switches, density, labels)
    assert switch_mixture(*at_a, *by_runs)[0] == pytest.approx(0.6, abs=0.01)  # the turn pays on these runs
    between_programs = fit_switch_gate(cpu, switches, density, labels, programs)
    assert between_programs == CPU_ONLY_GATE
    assert switch_mixture(*at_a, *between_programs)[0] == 0.5
    as_tensor = switch_mixture(*(torch.tensor(a) for a in at_a), *between_programs)
    assert float(as_tensor[0]) == 0.5  # CloudFormer reads the CPU-only gate as the CPU ratio too


def test_the_models_choose_their_gate_between_training_programs_when_asked(
    kinds: tuple[RunTable, Split], tmp_path, monkeypatch
) -> None:
    table, split = kinds
    options = {"prior": "switches", "switch_gate_choice": "programs"}
    given: list[np.ndarray | None] = []

    def spy(*rates: np.ndarray) -> tuple[float, float]:
        given.append(rates[4] if len(rates) > 4 else None)
        return fit_switch_gate(*rates)

    monkeypatch.setattr(solo_prior, "fit_switch_gate", spy)
    monkeypatch.setattr(cloudformer_module, "fit_switch_gate", spy)
    cpu_prior = _test_mae(table, split, "solo-relative", {})
    outcome = fit_model(
        table, split, TrainConfig(model="solo-relative", model_options=options, progress=False)
    )
    assert float(np.abs(outcome.predicted[:, 1] - outcome.labels).mean()) < 0.3 * cpu_prior
    # Every gate the tabular prior fitted (the served one, and those of its out-of-fold residuals) was given
    # each run's program; the served one every training program.
    assert given and all(programs is not None for programs in given)
    assert any(set(programs) == set(split.train_apps) for programs in given)
    tabular_gate = outcome.predictor.model.switch_gate_
    assert tabular_gate is not None and tabular_gate != CPU_ONLY_GATE
    outcome.predictor.save(tmp_path / "tabular")
    assert Predictor.load(tmp_path / "tabular").model.switch_gate_ == tabular_gate
    # CloudFormer is given the training programs before its network, one per training run.
    given.clear()
    network = fit_model(
        table,
        split,
        TrainConfig(
            model="cloudformer",
            epochs=1,
            model_options={"solo_prior": True, "blocks": 1, **options},
            progress=False,
        ),
    )
    (programs,) = given
    assert programs is not None and set(programs) == set(split.train_apps)
    assert np.isfinite(network.predictor.model.switch_gate.numpy()).all()
