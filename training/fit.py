"""Fit any registered model on one split of a RunTable and wrap it as a predictor artifact.

Neural models go through the one Lightning loop, tabular ones through scikit-learn; both end as a
``cotenant.models.predictor.Predictor``, and test predictions are made through that predictor, so what is
evaluated is exactly what serving loads.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

import numpy as np
import polars as pl
from cotenant.datasets.splits import FeatureStats, Split, program_of
from cotenant.datasets.table import SELF, VS_SOLO, RunTable
from cotenant.models.base import QUANTILES, DataShape, ModelSpec, feature_groups, set_torch_threads, summarise
from cotenant.models.predictor import Predictor, PredictorMetadata
from cotenant.training.config import TrainConfig
from cotenant.training.metrics import errors_pp

if TYPE_CHECKING:
    from cotenant.datasets.torch_data import MonitoringDataset, TaskData


# The quantile columns an outcome's answers are written under (``answers.parquet``): p10, p50, p90.
ANSWER_QUANTILES = [f"p{round(q * 100):02d}" for q in QUANTILES]
MEDIAN_ANSWER = ANSWER_QUANTILES[len(ANSWER_QUANTILES) // 2]


@dataclass
class FitOutcome:
    predictor: Predictor
    predicted: np.ndarray  # [N, Q] on the split's test runs
    labels: np.ndarray  # [N]
    applications: list[str]  # [N]
    test_runs: list[str]
    train_seconds: float
    n_train: int
    extra: dict[str, Any] = field(default_factory=dict)
    # MAE (pp) on the split's validation programs: what any choice between variants may look at (None: the
    # split has no validation programs).
    validation_mae: float | None = None
    # The validation programs' runs, the predictor's answers on them ([N, Q], as the service would answer:
    # for the probes family, incumbents without probes; interval ends before calibration, which moves only
    # them) and their labels: promotion judges the medians.
    validation_runs: list[str] = field(default_factory=list)
    validation_predicted: np.ndarray | None = None
    validation_labels: np.ndarray | None = None


def model_config(spec: ModelSpec, cfg: TrainConfig) -> Any:
    options = dict(cfg.model_options)
    if "seed" in spec.config_type.model_fields:
        options.setdefault("seed", cfg.seed)
    return spec.config_type.model_validate(options)


def _applications(table: RunTable, run_ids: list[str]) -> list[str]:
    order = pl.DataFrame({"run_id": run_ids}).join(table.runs, on="run_id", how="left", maintain_order="left")
    return order["application"].to_list()


def fit_model(table: RunTable, split: Split, cfg: TrainConfig, digest: str = "") -> FitOutcome:
    from cotenant.models import MODELS

    spec = MODELS[cfg.model]
    set_torch_threads(cfg.threads)
    import lightning as L

    L.seed_everything(cfg.seed, workers=True, verbose=False)
    started = time.perf_counter()
    if spec.task == "monitoring":
        outcome = _fit_monitoring(spec, table, split, cfg, digest)
    else:
        outcome = _fit_placement(spec, table, split, cfg, digest)
    outcome.train_seconds = time.perf_counter() - started
    return outcome


def _metadata(
    spec: ModelSpec, model_cfg: Any, table: RunTable, digest: str, **fields: Any
) -> PredictorMetadata:
    return PredictorMetadata(
        model_name=spec.name,
        task=spec.task,
        family=spec.family,
        config=model_cfg.model_dump(),
        metric_groups=dict(table.metric_groups),
        quantiles=list(QUANTILES),
        data_digest=digest,
        data_source=str(table.meta.get("source", "")),
        trained_at=datetime.now(UTC).isoformat(timespec="seconds"),
        **fields,
    )


def _fit_monitoring(
    spec: ModelSpec, table: RunTable, split: Split, cfg: TrainConfig, digest: str
) -> FitOutcome:
    from cotenant.datasets.torch_data import collate_monitoring

    if cfg.include_probes:  # the same table the datasets read, so that the probes' metric groups are known
        table = table.with_probe_inputs()
    data = monitoring_data(table, split, cfg)
    features = list(data.stats.names)
    shape = DataShape(len(features), 0, cfg.max_steps)
    model_cfg = model_config(spec, cfg)
    train, test = data.train, data.test
    train_runs, test_runs = _runs_of(train), _runs_of(test)
    train_apps = np.asarray(_applications(table, train.run_ids))
    residual_quantiles = None
    halves = stopping_halves(data.validation, table)
    training_scores = None
    models: list[Any] = []
    if spec.family == "neural":
        pretrain = getattr(model_cfg, "pretrain_epochs", 0)
        module = spec.build(model_cfg, shape)
        tell_solo_prior(module, data.stats)
        fit_rate_gates(module, train, list(train_apps))
        if getattr(model_cfg, "members_hold_out_programs", False):
            train.held_out_by = program_shares(train_apps, getattr(model_cfg, "members", 1))
        if getattr(model_cfg, "members_apart", False) and getattr(model_cfg, "members", 1) > 1:
            models = _fit_members_apart(
                module,
                cfg,
                lambda member, own: _fit_neural(member, train, halves, collate_monitoring, own, pretrain),
            )
        else:
            models = _fit_neural(module, train, halves, collate_monitoring, cfg, pretrain)
        model = models[0]
        n_inputs = len(features)
    else:
        x = np.nan_to_num(np.stack([summarise(run) for run in train_runs]))  # [N, 3F]
        estimator = spec.build(model_cfg, shape)
        tell_solo_prior(estimator, data.stats)
        model, residual_quantiles, training_scores = _fit_tabular(estimator, x, train.y, train_apps)
        models = [model]
        n_inputs = x.shape[1]
    metadata = _metadata(
        spec,
        model_cfg,
        table,
        digest,
        features=features,
        metrics=table.metrics,
        host_metrics=[c.removeprefix("host__") for c in table.host_columns] if cfg.include_host else [],
        feature_groups=feature_groups(features, table.metric_groups),
        normaliser=data.stats.to_dict(),
        max_steps=cfg.max_steps,
        n_inputs=n_inputs,
        residual_quantiles=residual_quantiles,
    )
    predictor = Predictor(metadata, model)
    if spec.family == "neural" and train.held_out_by is not None:
        training_scores = members_out_of_fold_scores(predictor, train)
    validation_error, validation_answers = None, None
    if halves is not None:
        validation_answers = halves.answers(
            [Predictor(metadata, fitted) for fitted in models],
            lambda answering, runs: answering.predict_normalised(_runs_of(runs)),
        )
        validation_error = validation_mae(validation_answers, halves.validation.y)
        # With the training programs' out-of-fold scores where the model has them and calibration reads them.
        pooled = training_scores if cfg.calibration == "programs" else None
        predictor = calibrate(predictor, validation_answers, halves.validation.y, pooled)
    predicted = predictor.predict_normalised(test_runs) if test_runs else np.zeros((0, len(QUANTILES)))
    return FitOutcome(
        predictor,
        predicted,
        test.y,
        _applications(table, test.run_ids),
        list(test.run_ids),
        0.0,
        len(train_runs),
        validation_mae=validation_error,
        validation_runs=list(halves.validation.run_ids) if halves is not None else [],
        validation_predicted=validation_answers,
        validation_labels=halves.validation.y if halves is not None else None,
    )


def monitoring_data(table: RunTable, split: Split, cfg: TrainConfig) -> TaskData:
    """The split's monitoring datasets with the inputs ``cfg`` asks for, as every monitoring fit builds."""
    from cotenant.datasets.torch_data import build_monitoring

    return build_monitoring(
        table,
        split,
        include_host=cfg.include_host,
        max_steps=cfg.max_steps,
        clip=cfg.input_clip,
        max_features=cfg.max_features,
        include_own_levels=cfg.include_own_levels,
        include_probes=cfg.include_probes,
    )


def tell_solo_prior(model: Any, stats: FeatureStats) -> None:
    """Give every part of ``model`` (a torch module's parts, or a scikit-learn estimator) that can start from
    the solo-relative CPU prior (``set_prior``) the input column carrying it and that column's normalisation,
    and every part that mixes the work rates (``set_rate_priors``) the column of each ``SOLO_RELATIVE`` rate's
    ratio and of the target's own rate (-1 where the inputs lack it), and every part that can read the
    switch-gated prior (``set_switch_prior``) the columns of the switch ratio and the profile's switch
    density; nothing where the inputs lack the CPU one. A tabular model reads the column's mean over time at
    the same index (``base.summarise`` puts the means first). Every part that reads some input columns
    straight into its head (``set_head_columns``) is given the column names."""
    from cotenant.collectors.ratios import CPU_RATE, SOLO_RELATIVE, SWITCH_DENSITY, SWITCH_RATE

    for part in model.modules() if hasattr(model, "modules") else [model]:
        if hasattr(part, "set_head_columns"):  # the head's direct inputs (CloudFormer ``probe_head``, ...)
            part.set_head_columns(stats.names)
    if VS_SOLO + CPU_RATE not in stats.names:
        return
    rate_columns = [
        stats.names.index(VS_SOLO + rate) if VS_SOLO + rate in stats.names else -1 for rate in SOLO_RELATIVE
    ]
    column = rate_columns[SOLO_RELATIVE.index(CPU_RATE)]
    own_columns = [
        stats.names.index(SELF + rate) if SELF + rate in stats.names else -1 for rate in SOLO_RELATIVE
    ]

    def normalisation(columns: list[int]) -> tuple[list[int], list[float], list[float]]:
        means = [float(stats.mean[c]) if c >= 0 else 0.0 for c in columns]
        return columns, means, [float(stats.std[c]) if c >= 0 else 1.0 for c in columns]

    switch_columns = [
        stats.names.index(VS_SOLO + name) if VS_SOLO + name in stats.names else -1
        for name in (SWITCH_RATE, SWITCH_DENSITY)
    ]
    for part in model.modules() if hasattr(model, "modules") else [model]:
        if hasattr(part, "set_prior"):
            part.set_prior(column, float(stats.mean[column]), float(stats.std[column]))
        if hasattr(part, "set_switch_prior"):
            _, means, stds = normalisation(switch_columns)
            part.set_switch_prior(tuple(switch_columns), tuple(means), tuple(stds))
        if hasattr(part, "set_rate_priors"):
            part.set_rate_priors(*normalisation(rate_columns), own=normalisation(own_columns))


def fit_rate_gates(model: Any, train: MonitoringDataset, programs: list[str]) -> None:
    """Fit every part of a torch ``model`` whose work-rate gate is fitted before the network
    (``fit_rate_gate``) on the training runs: each run's inputs as their mean over its steps (the gate reads
    only means over the run), its label and its program."""
    import torch

    parts = [part for part in model.modules() if getattr(part, "fits_rate_gate_first", False)]
    if not parts or not len(train.y):
        return
    lengths = np.maximum(np.diff(train.offsets), 1)  # every run has steps; never divide by 0
    means = np.add.reduceat(train.values, train.offsets[:-1], axis=0) / lengths[:, None]
    x = torch.from_numpy(means.astype(np.float32))[:, None, :]  # [N, 1, F]
    mask = torch.ones(len(x), 1, dtype=torch.bool)
    labels = torch.as_tensor(np.asarray(train.y, dtype=np.float32))
    for part in parts:
        part.fit_rate_gate(x, mask, labels, programs)


def _runs_of(data: MonitoringDataset) -> list[np.ndarray]:
    """Each run's ``[T, F]`` inputs."""
    return [data.values[a:b] for a, b in zip(data.offsets[:-1], data.offsets[1:], strict=True)]


def _fit_placement(
    spec: ModelSpec, table: RunTable, split: Split, cfg: TrainConfig, digest: str
) -> FitOutcome:
    from cotenant.datasets.torch_data import build_placement, collate_placement

    data = build_placement(table, split, clip=cfg.input_clip, probes=spec.family == "probes")
    names = list(data.stats.names)  # "<metric>__<stat>", then "probe:<column>" for the probes family
    model_cfg = model_config(spec, cfg)
    shape = DataShape(0, len(names), cfg.max_steps)
    residual_quantiles = None
    training_scores: np.ndarray | None = None
    groups = placement_groups(names, table.metric_groups)
    train = data.train
    apps = np.asarray(_applications(table, train.run_ids))
    fit_probes = None
    halves = stopping_halves(data.validation, table)
    models: list[Any] = []
    if spec.family == "neural":
        models = _fit_neural(spec.build(model_cfg, shape), data.train, halves, collate_placement, cfg)
        model = models[0]
    elif spec.family == "probes":
        from cotenant.datasets.tensors import live_rows

        live = data.stats.transform(live_rows(table, train.run_ids, names))

        def fit_probes(runs: np.ndarray) -> Any:
            """The probes model fit on these training runs only (describers, head and its choice)."""
            return spec.build(model_cfg, shape).fit(
                train.newcomer[runs],
                train.neighbours[runs],
                train.mask[runs],
                train.y[runs],
                apps[runs],
                names,
                groups,
                live[runs],
                feature_scale=(data.stats.mean, data.stats.std),
                host_cores=train.cores[runs],
            )

        model = fit_probes(np.arange(len(train)))
        residual_quantiles = residual_bounds(model.out_of_fold_residuals())
    else:
        from cotenant.models.placement import batch_placement_features

        x = batch_placement_features(train.newcomer, train.neighbours, train.mask)
        model, residual_quantiles, training_scores = _fit_tabular(
            spec.build(model_cfg, shape), x, train.y, apps
        )
    models = models or [model]  # the fitted models: one, or a stopped neural model's two copies
    metadata = _metadata(
        spec,
        model_cfg,
        table,
        digest,
        features=names,
        metrics=table.profile_metrics,
        host_metrics=[],
        feature_groups=groups,
        normaliser=data.stats.to_dict(),
        max_steps=cfg.max_steps,
        n_inputs=len(names),
        residual_quantiles=residual_quantiles,
    )
    predictor = Predictor(metadata, model)
    validation_error, validation_answers = None, None
    if halves is not None:
        validation = halves.validation

        def served_answers(answering: Predictor, runs: Any) -> np.ndarray:
            """As the service answers: for the probes family, incumbents known by their telemetry only."""
            probed = spec.family == "probes"
            neighbours = model.withhold_probes(runs.neighbours) if probed else runs.neighbours
            return answering.predict_placement(runs.newcomer, neighbours, runs.mask, runs.cores)

        fitted = [Predictor(metadata, m) for m in models]
        validation_answers = halves.answers(fitted, served_answers)
        validation_error = validation_mae(validation_answers, validation.y)
        if cfg.calibration == "programs" and fit_probes is not None and len(validation.y):
            # And every training program answered (as served) by a model fit without it.
            training_scores = _cross_program_scores(fit_probes, metadata, train, apps)
        pooled = training_scores if cfg.calibration == "programs" else None
        predictor = calibrate(predictor, validation_answers, validation.y, pooled)
        if spec.family == "probes" and len(validation.y):
            unprobed = model.withhold_probes(validation.newcomer)
            quantiles = predictor.predict_placement(
                unprobed, validation.neighbours, validation.mask, validation.cores
            )
            widening = max(0.0, conformal_adjustment(quantiles, validation.y))
            update = {"interval_widening_unprobed": widening}
            predictor = Predictor(predictor.metadata.model_copy(update=update), predictor.model)

    test = data.test
    extra: dict[str, Any] = {}
    if len(test):
        predicted = predictor.predict_placement(test.newcomer, test.neighbours, test.mask, test.cores)
        if spec.family == "probes":
            # As the service answers: incumbents are known by their telemetry only (their probes estimated),
            # the newcomer by its registered probes ("served", as the gate judges it on validation programs).
            # And with the newcomer registered without probes too (the evaluation reports these beside).
            unprobed = model.withhold_probes(test.newcomer)
            served = predictor.predict_placement(
                test.newcomer, model.withhold_probes(test.neighbours), test.mask, test.cores
            )
            extra["served"] = served
            extra["variants"] = {
                f"{spec.name}:incumbents-without-probes": served,
                f"{spec.name}:newcomer-without-probes": predictor.predict_placement(
                    unprobed, test.neighbours, test.mask, test.cores
                ),
                f"{spec.name}:without-probes": predictor.predict_placement(
                    unprobed, model.withhold_probes(test.neighbours), test.mask, test.cores
                ),
            }
    else:
        predicted = np.zeros((0, len(QUANTILES)))
    return FitOutcome(
        predictor,
        predicted,
        test.y,
        _applications(table, test.run_ids),
        list(test.run_ids),
        0.0,
        len(data.train),
        extra,
        validation_error,
        list(halves.validation.run_ids) if halves is not None else [],
        validation_answers,
        halves.validation.y if halves is not None else None,
    )


def _cross_program_scores(
    fit_on: Callable[[np.ndarray], Any], metadata: PredictorMetadata, train: Any, programs: np.ndarray
) -> np.ndarray:
    """The training runs' conformity scores as the service answers them (incumbents' probes estimated from
    their telemetry), each run answered by a model that ``fit_on`` fit without its program (grouped
    cross-conformal): what the validation programs alone, four or five of them, estimate too noisily."""
    from cotenant.models.tabular import grouped_folds
    from sklearn.model_selection import GroupKFold

    if len(np.unique(programs)) < 2:
        return np.zeros(0)
    scores = np.zeros(len(programs))
    for kept, held in GroupKFold(grouped_folds(programs, wanted=5)).split(programs, groups=programs):
        model = fit_on(kept)
        bounds = residual_bounds(model.out_of_fold_residuals())
        predictor = Predictor(metadata.model_copy(update={"residual_quantiles": bounds}), model)
        answers = predictor.predict_placement(
            train.newcomer[held],
            model.withhold_probes(train.neighbours[held]),
            train.mask[held],
            train.cores[held],
        )
        scores[held] = conformity_scores(answers, train.y[held])
    return scores


def validation_mae(quantiles: np.ndarray, labels: np.ndarray) -> float | None:
    return errors_pp(quantiles, labels)["mae"] if len(labels) else None


def placement_groups(names: list[str], metric_groups: dict[str, str]) -> list[str]:
    """Each placement input's explanation group: its metric's, or for a probe its resource's."""
    from cotenant.models.placement_probes import PROBE_PREFIX, probe_group

    groups = feature_groups([name.rsplit("__", 1)[0] for name in names], metric_groups)
    return [probe_group(n) if n.startswith(PROBE_PREFIX) else g for n, g in zip(names, groups, strict=True)]


# The interval's nominal coverage: QUANTILES' outer pair (0.1, 0.9) brackets 80% of outcomes.
NOMINAL_COVERAGE = QUANTILES[-1] - QUANTILES[0]


def conformity_scores(quantiles: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """How far each label falls outside its interval ``[N, Q]`` (negative: inside, by that much)."""
    return np.maximum(quantiles[:, 0] - labels, labels - quantiles[:, -1])


def conformal_quantile(scores: np.ndarray, coverage: float = NOMINAL_COVERAGE) -> float:
    """Conformalised quantile regression (Romano et al., 2019): the amount by which the interval's ends must
    move so that ``coverage`` of exchangeable new runs fall inside, from the ``conformity_scores`` of
    calibration runs never trained on. Negative when the model's interval is wider than needed."""
    n = len(scores)
    level = min(1.0, np.ceil((n + 1) * coverage) / n)
    return float(np.quantile(scores, level, method="higher"))


def conformal_adjustment(
    quantiles: np.ndarray, labels: np.ndarray, coverage: float = NOMINAL_COVERAGE
) -> float:
    """``conformal_quantile`` of these calibration runs' answers ``[N, Q]`` and labels."""
    return conformal_quantile(conformity_scores(quantiles, labels), coverage)


def calibrate(
    predictor: Predictor,
    quantiles: np.ndarray,
    labels: np.ndarray,
    training_scores: np.ndarray | None = None,
) -> Predictor:
    """The predictor with its interval calibrated on validation runs (its median untouched), and on
    ``training_scores`` beside them: the training programs' conformity scores, each run answered by a model
    fit without its program (``calibration="programs"``)."""
    if not len(labels):
        return predictor
    extra = np.zeros(0) if training_scores is None else np.asarray(training_scores, dtype=np.float64)
    scores = np.concatenate([conformity_scores(quantiles, labels), extra])
    metadata = predictor.metadata.model_copy(
        update={
            "interval_adjustment": conformal_quantile(scores),
            "calibration_runs": len(labels),
            "calibration_training_runs": len(extra),
        }
    )
    return Predictor(metadata, predictor.model)


class _Subsettable(Protocol):
    run_ids: list[str]

    def subset(self, keep: np.ndarray) -> Any: ...


Validation = TypeVar("Validation", bound=_Subsettable)
Answering = TypeVar("Answering")


@dataclass(frozen=True)
class StoppingHalves(Generic[Validation]):
    """A split's validation runs, their programs halved for early stopping (``first``: a run's program is
    in the first half; every other program, sorted). A model stopped early is trained once and kept twice,
    each stopped on one half (``_fit_neural``), and each half is answered by the model that never read it
    (cross-fitting): every model of the split, stopped early or not, is judged and calibrated on every
    validation run, each answered by a model that did not read it."""

    validation: Validation
    first: np.ndarray  # [N] bool

    @property
    def parts(self) -> list[Validation]:
        """The two halves' runs; the one validation program alone where there is only one (then early
        stopping reads the runs it is judged on: nothing else is left)."""
        if self.first.all() or not self.first.any():
            return [self.validation]
        return [self.validation.subset(self.first), self.validation.subset(~self.first)]

    def answers(
        self, models: list[Answering], answer: Callable[[Answering, Validation], np.ndarray]
    ) -> np.ndarray:
        """Every validation run's answer ``[N, Q]``, in ``validation``'s order: from the one model where
        there is one, else from the model stopped on the other half (``models[i]`` stopped on part ``i``)."""
        if len(models) == 1:
            return answer(models[0], self.validation)
        first, second = self.parts
        answers = np.zeros((len(self.first), len(QUANTILES)))
        answers[~self.first] = answer(models[0], second)
        answers[self.first] = answer(models[1], first)
        return answers


def stopping_halves(validation: Validation | None, table: RunTable) -> StoppingHalves[Validation] | None:
    """``validation``'s runs halved by program (``StoppingHalves``); None where the split has none."""
    if validation is None:
        return None
    applications = _applications(table, validation.run_ids)
    first_programs = set(sorted(set(applications))[::2])
    return StoppingHalves(validation, np.array([app in first_programs for app in applications], dtype=bool))


def _fit_neural(
    module: Any,
    train: Any,
    halves: StoppingHalves[Any] | None,
    collate: Any,
    cfg: TrainConfig,
    pretrain_epochs: int = 0,
) -> list[Any]:
    """The one Lightning loop on already-built datasets; the validation programs (never the test ones) are
    what it reports while training, and with early stopping one model per half (``StoppingHalves``).
    ``pretrain_epochs`` of the model's self-supervised objective on the training runs' inputs come first."""
    from cotenant.training.loop import Devices, RunsDataModule, fit_neural, pretrain_neural

    if halves is None:
        validation: list[Any] = []
    elif cfg.early_stopping_patience is not None:
        validation = halves.parts
    else:
        validation = [halves.validation]
    loader = RunsDataModule(train, validation, collate, cfg.batch_size, cfg.seed)
    where = Devices(cfg.devices, cfg.strategy, cfg.accelerator, cfg.num_nodes, cfg.progress)
    if pretrain_epochs:
        pretrain_neural(module, loader, pretrain_epochs, cfg.optim, where)
    return fit_neural(module, loader, cfg.epochs, cfg.optim, where, cfg.early_stopping_patience)


def _fit_members_apart(
    ensemble: Any, cfg: TrainConfig, fit_member: Callable[[Any, TrainConfig], list[Any]]
) -> list[Any]:
    """An ensemble (``models.ensemble.MemberEnsemble``) whose members are trained one after another, each
    alone by ``fit_member`` (the one loop, ``_fit_neural``) with its own seed (``cfg.seed`` + its index)
    and its own early stopping: one ensemble per kept copy (with stopping halves, the members' copies
    stopped on the same half together)."""
    import lightning as L

    kept = []
    for index, member in enumerate(ensemble.members):
        own = cfg.model_copy(update={"seed": cfg.seed + index})
        L.seed_everything(own.seed, workers=True, verbose=False)  # its dropout draws, as fit_model seeds one
        kept.append(fit_member(member, own))
    copies = []
    for copy_index in range(len(kept[0])):
        together = ensemble if copy_index == 0 else copy.deepcopy(ensemble)
        together.members = type(ensemble.members)(copies_of_member[copy_index] for copies_of_member in kept)
        copies.append(together.eval())
    return copies


def program_shares(applications: np.ndarray, members: int) -> np.ndarray:
    """Per training run, the ensemble member that never trains on its program: the programs dealt into
    ``members`` shares of about equal runs (GroupKFold, a program's runs in one share)."""
    from sklearn.model_selection import GroupKFold

    programs = np.asarray([program_of(str(a)) for a in applications])
    if members < 2 or len(np.unique(programs)) < members:
        raise ValueError(
            f"members_hold_out_programs needs at least 2 members and as many training programs "
            f"({members} members, {len(np.unique(programs))} programs)"
        )
    shares = np.zeros(len(programs), dtype=np.int64)
    for share, (_, held) in enumerate(GroupKFold(members).split(programs, groups=programs)):
        shares[held] = share
    return shares


def members_out_of_fold_scores(predictor: Predictor, train: MonitoringDataset) -> np.ndarray:
    """Conformity scores of the training runs, each answered by the ensemble member that never trained on
    its program (``program_shares``): out-of-fold scores, as the tabular models' (one member answers where
    the served ensemble answers the mean of all, so they err wide)."""
    assert train.held_out_by is not None
    runs = _runs_of(train)
    scores = []
    for share, member in enumerate(predictor.model.members):
        chosen = np.flatnonzero(train.held_out_by == share)
        answers = Predictor(predictor.metadata, member).predict_normalised([runs[i] for i in chosen])
        scores.append(conformity_scores(answers, train.y[chosen]))
    return np.concatenate(scores)


def _fit_tabular(
    estimator: Any, x: np.ndarray, y: np.ndarray, applications: np.ndarray
) -> tuple[Any, list[float], np.ndarray]:
    """scikit-learn fit (with its search) plus the interval from out-of-fold residual quantiles, and the
    training runs' conformity scores against that interval, each answered by a fit without its program."""
    from cotenant.models.tabular import fit_tabular, out_of_fold_residuals

    x = np.nan_to_num(x)
    model = fit_tabular(estimator, x, y, applications)
    residuals = out_of_fold_residuals(model, x, y, applications)
    bounds = residual_bounds(residuals)
    return model, bounds, residual_scores(residuals, y, bounds)


def residual_bounds(residuals: np.ndarray) -> list[float]:
    """The interval's offsets from the point estimate: the residuals' outer quantiles."""
    return [float(np.quantile(residuals, QUANTILES[0])), float(np.quantile(residuals, QUANTILES[-1]))]


def residual_scores(residuals: np.ndarray, labels: np.ndarray, bounds: list[float]) -> np.ndarray:
    """``conformity_scores`` of runs answered ``label - residual`` with the interval ``bounds`` around that,
    kept in (0, 1] as the tabular backend keeps it."""
    from cotenant.models.base import P_FLOOR

    point = np.clip(labels - residuals, P_FLOOR, 1.0)
    low, high = (np.clip(point + bound, P_FLOOR, 1.0) for bound in bounds)
    return conformity_scores(np.column_stack([low, point, high]), labels)
