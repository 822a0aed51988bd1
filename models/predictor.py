"""The predictor artifact (docs/architecture.md section 4): what training writes and serving loads.

One directory, pickle-free: ``predictor.json`` (metadata: model, task, config, feature schema, normalisation,
metric groups, quantiles, data digest) plus ``weights.npz`` (neural models) or ``model.skops`` (scikit-learn,
loaded with an allow-list of types). Serving imports only this package, never ``cotenant.training``.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from cotenant.collectors.summaries import FeatureSchema, schema_id, summarise
from cotenant.models.backends import BACKENDS
from cotenant.models.base import (
    MEDIAN,
    P_FLOOR,
    QUANTILES,
    Family,
    Task,
    quiet_nan_warnings,
    sort_quantiles,
)
from cotenant.models.explain import group_masks, occlusion_shares, occlusion_variants
from cotenant.models.host_batch import HostBatch, HostEncoding, stack_hosts
from pydantic import BaseModel

FORMAT_VERSION = 1
METADATA_FILE = "predictor.json"
Series = dict[str, np.ndarray]
# A workload's probe results: P by probe name (``sens_cpu_2``, ``press_io``), as ``cotenant lab probe`` gives.
Probes = dict[str, float]


class PredictorMetadata(BaseModel):
    format_version: int = FORMAT_VERSION
    model_name: str
    task: Task
    family: Family
    config: dict[str, Any]
    # monitoring: per-second feature columns (self__m, neighbour_mean__m, host__h); placement: profile metrics
    features: list[str]
    metrics: list[str]  # per-cgroup metric names, the keys of a request's Series
    host_metrics: list[str]
    metric_groups: dict[str, str]
    feature_groups: list[str]  # group of every model input column (after summarising, for tabular/placement)
    normaliser: dict[str, Any]  # cotenant.datasets FeatureStats (names, mean, std), fit on training runs
    max_steps: int
    n_inputs: int  # width of the model's input (F, 3F for tabular, F_p for placement)
    quantiles: list[float] = list(QUANTILES)
    # Tabular models: label - prediction quantiles from out-of-fold residuals, added to the point estimate.
    residual_quantiles: list[float] | None = None
    # Split-conformal calibration on validation programs (conformalised quantile regression): the interval's
    # ends move out (or in) by this much so that it covers its nominal share of held-out runs. None: the
    # split had no validation programs, and the interval is the model's own.
    interval_adjustment: float | None = None
    calibration_runs: int = 0
    # Training runs calibrating beside them, each answered by a model fit without its program (0: none).
    calibration_training_runs: int = 0
    # Models with probe inputs: how much wider the interval of a workload described by telemetry alone (its
    # probes estimated) must be, calibrated on the validation programs with their probes withheld.
    interval_widening_unprobed: float = 0.0
    data_digest: str = ""
    data_source: str = ""
    trained_at: str = ""


@dataclass(frozen=True, slots=True)
class Estimate:
    p: float
    lower: float
    upper: float
    drivers: dict[str, float] = field(
        default_factory=dict
    )  # metric group -> share of the explanation (sum 1)
    missing: tuple[str, ...] = ()  # metrics absent from the request, filled with the training mean


@dataclass(frozen=True, slots=True)
class PlacementEstimate:
    newcomer: Estimate
    incumbents: list[Estimate]  # one per incumbent, in the order given to encode_host


class Predictor:
    def __init__(self, metadata: PredictorMetadata, model: Any) -> None:
        self.metadata = metadata
        self.model = model  # nn.Module (eval mode) or fitted scikit-learn estimator
        self.backend = BACKENDS[metadata.family](metadata, model)  # everything that differs by family
        self._masks = group_masks(metadata.feature_groups)  # {group: bool [n_inputs]}
        self._feature_stats: Any = None

    # ---- persistence -------------------------------------------------------------------------------------
    def save(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        self.backend.save(path)
        (path / METADATA_FILE).write_text(self.metadata.model_dump_json(indent=1) + "\n")

    @classmethod
    def load(cls, path: Path) -> Predictor:
        meta_path = Path(path) / METADATA_FILE
        if not meta_path.is_file():
            raise FileNotFoundError(f"{path}: no {METADATA_FILE}; not a predictor artifact")
        metadata = PredictorMetadata.model_validate(json.loads(meta_path.read_text()))
        if metadata.format_version > FORMAT_VERSION:
            raise ValueError(f"{meta_path}: format_version {metadata.format_version} is newer than this code")
        return cls(metadata, BACKENDS[metadata.family].load(metadata, Path(path)))

    # ---- monitoring --------------------------------------------------------------------------------------
    def monitoring_matrix(
        self,
        target: Series,
        neighbours: list[Series],
        host: Series | None,
        solo: Series | None = None,
        probes: Probes | None = None,
        neighbour_probes: Sequence[Probes | None] | None = None,
    ) -> tuple[np.ndarray, tuple[str, ...]]:
        """A request's series -> raw ``[T, F]`` in feature order (last max_steps s), missing. ``solo``: the
        target's solo profile (its ``vs_solo__`` features: the target's rates over the profile's means;
        without it they are missing). For a model with probe inputs (``include_probes``): ``probes``, the
        target's registered probe results (P by probe name), and ``neighbour_probes``, each neighbour's (one
        per neighbour workload, None where it has none; the neighbours' series may be one mean series);
        an input whose probes are not all known is missing."""
        from cotenant.collectors.ratios import (
            CPU_RATE,
            SHARES,
            SWITCH_DENSITY,
            SWITCH_RATE,
            run_share,
            solo_means,
            solo_relative,
            switch_density,
        )
        from cotenant.datasets.probe_inputs import PROBE_INPUT, probe_inputs
        from cotenant.datasets.table import VS_SOLO

        relative = [f.removeprefix(VS_SOLO) for f in self.metadata.features if f.startswith(VS_SOLO)]
        means = solo_means(solo, [*relative, CPU_RATE, SWITCH_RATE]) if solo is not None else {}
        density = switch_density(means)
        probe_names = [f for f in self.metadata.features if f.startswith(PROBE_INPUT)]
        # Not told the neighbours' probes: unknown, unless there is no neighbour at all (nothing presses).
        listed = neighbour_probes if neighbour_probes is not None else ([None] if neighbours else [])
        probe_values = probe_inputs(probe_names, probes or {}, [given or {} for given in listed])

        lengths = [len(values) for values in target.values()]
        steps = min(max(lengths, default=1), self.metadata.max_steps) or 1

        def column(prefix: str, metric: str) -> np.ndarray | None:
            if prefix != "host" and metric in SHARES:  # from the same prefix's rates, as the run table has it
                running, waiting = (column(prefix, m) for m in SHARES[metric])
                return None if running is None or waiting is None else run_share(running, waiting)
            if prefix == "self":
                found = target.get(metric)
                return None if found is None else _last(found, steps)
            if prefix + "__" == PROBE_INPUT:  # the run's constants, every second
                value = probe_values[PROBE_INPUT + metric]
                return None if np.isnan(value) else np.full(steps, value)
            if prefix + "__" == VS_SOLO and metric == SWITCH_DENSITY:  # the profile's, every second
                return None if np.isnan(density) else np.full(steps, density)
            if prefix + "__" == VS_SOLO:
                own = column("self", metric)
                return None if own is None or metric not in means else solo_relative(own, means[metric])
            if prefix == "neighbour_mean":
                present = [n[metric] for n in neighbours if metric in n]
                return _mean_of(present, steps) if present else (np.zeros(steps) if not neighbours else None)
            found = None if host is None else host.get(metric)
            return None if found is None else _last(found, steps)

        columns, missing = [], []
        for feature in self.metadata.features:
            prefix, _, metric = feature.partition("__")
            values = column(prefix, metric)
            if values is None:
                missing.append(feature)
            columns.append(_last(values, steps))
        return np.stack(columns, axis=1), tuple(missing)

    def predict_steps(self, runs: list[np.ndarray], explain: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Raw ``[T_i, F]`` matrices -> sorted quantiles ``[N, Q]`` and driver shares ``[N, G]``."""
        stats = self._stats()
        normalised = [stats.transform(run[-self.metadata.max_steps :].astype(np.float32)) for run in runs]
        groups = list(self._masks)
        if not explain:
            return self._quantiles(normalised, per_step=True), np.zeros((len(runs), len(groups)))
        variants = [v for run in normalised for v in occlusion_variants(run, self._masks, per_step=True)]
        quantiles = self._quantiles(variants, per_step=True).reshape(len(runs), 1 + len(groups), -1)
        return quantiles[:, 0], occlusion_shares(quantiles[..., MEDIAN])

    def predict_normalised(self, runs: list[np.ndarray]) -> np.ndarray:
        """Already-normalised ``[T_i, F]`` runs (as cotenant.datasets builds them) -> quantiles ``[N, Q]``."""
        return self._quantiles(runs, per_step=True)

    def predict_placement(
        self,
        newcomer: np.ndarray,
        neighbours: np.ndarray,
        neighbour_mask: np.ndarray,
        host_cores: np.ndarray | None = None,
    ) -> np.ndarray:
        """Batch layout of the placement task (normalised summaries) -> quantiles ``[B, Q]``; ``host_cores
        [B]``: the cores of each row's node (NaN or None: the size the predictor answers for now), read by
        models that take the host's size into account."""
        self._require("placement")
        raw = self.backend.placement_quantiles(newcomer, neighbours, neighbour_mask, host_cores)
        out = self._calibrated(raw)
        out[~neighbour_mask.any(axis=1)] = 1.0  # alone: as in its solo profile (see score_placement_arrays)
        return out

    def predict_degradation(
        self,
        target: Series,
        neighbours: list[Series],
        host: Series | None,
        solo: Series | None = None,
        probes: Probes | None = None,
        neighbour_probes: Sequence[Probes | None] | None = None,
    ) -> Estimate:
        """P now of ``target`` beside ``neighbours`` (``solo``: the target's solo profile, where known;
        ``probes``, ``neighbour_probes``: the workloads' probe results, as ``monitoring_matrix`` reads
        them)."""
        self._require("monitoring")
        matrix, missing = self.monitoring_matrix(target, neighbours, host, solo, probes, neighbour_probes)
        quantiles, shares = self.predict_steps([matrix], explain=True)
        return _estimate(quantiles[0], shares[0], list(self._masks), missing)

    def _quantiles(self, normalised: list[np.ndarray], per_step: bool) -> np.ndarray:
        return self._calibrated(self.backend.monitoring_quantiles(normalised, per_step))

    def _calibrated(self, quantiles: np.ndarray) -> np.ndarray:
        """The interval ends moved by the conformal adjustment (the median never moves), kept in (0, 1]."""
        adjustment = self.metadata.interval_adjustment
        if not adjustment:
            return quantiles
        out = quantiles.copy()
        out[..., 0] -= adjustment
        out[..., -1] += adjustment
        out[..., 0] = np.minimum(out[..., 0], out[..., MEDIAN])
        out[..., -1] = np.maximum(out[..., -1], out[..., MEDIAN])
        return np.clip(out, P_FLOOR, 1.0)

    # ---- placement ---------------------------------------------------------------------------------------
    def profile_summary(
        self, profile: Series, probes: Probes | None = None, live: bool = False, latency: bool | None = None
    ) -> np.ndarray:
        """A solo profile's (or, ``live``, an incumbent's window's) series -> the normalised input row
        ``[F_p]`` (missing metrics -> mean); for a model with probe inputs the workload's probe results follow
        (``placement_row``)."""
        return self.placement_row(self.raw_summary(profile), probes, live, latency)

    def raw_summary(self, profile: Series) -> np.ndarray:
        """The per-metric summaries of a window (``summarise``, as training computed them)."""
        from cotenant.collectors.ratios import with_shares

        series = with_shares(profile)
        steps = max((len(v) for v in series.values()), default=1) or 1
        metrics = self.metadata.metrics
        window = np.full((steps, len(metrics)), np.nan)  # each metric's last values, left-padded with NaN
        for column, metric in enumerate(metrics):
            values = series.get(metric)
            if values is not None and len(values):
                window[steps - min(steps, len(values)) :, column] = values[-steps:]
        return summarise(window)

    def placement_row(
        self,
        summary: np.ndarray,
        probes: Probes | None = None,
        live: bool = False,
        latency: bool | None = None,
    ) -> np.ndarray:
        """A raw summary (and the workload's probe results: P by probe name, ``sens_cpu_2``) -> the normalised
        input row. Probe inputs are deficits (1 - P), NaN where not measured, then whether any was measured,
        whether the summary is of a live window, and whether the workload's metric is a latency (NaN: not
        said, the model estimates it), as ``datasets.tensors`` builds them for training.
        ``summary [..., F]``: several workloads' summaries at once get the same probes and flags."""
        row = np.asarray(summary, dtype=np.float64)
        probe_names = self.metadata.features[row.shape[-1] :]
        if probe_names:
            from cotenant.models.placement_probes import (
                PROBE_FLAGS,
                PROBE_LATENCY,
                PROBE_LIVE,
                PROBE_MEASURED,
                PROBE_PREFIX,
            )

            given = probes or {}
            deficits = {
                name: 1.0 - float(given[key]) if (key := name.removeprefix(PROBE_PREFIX)) in given else np.nan
                for name in probe_names
                if name not in PROBE_FLAGS
            }
            measured = float(any(np.isfinite(list(deficits.values()))))
            flags = {
                PROBE_MEASURED: measured,
                PROBE_LIVE: float(live),
                PROBE_LATENCY: np.nan if latency is None else float(latency),
            }
            inputs = [deficits.get(name, flags.get(name, np.nan)) for name in probe_names]
            row = np.concatenate([row, np.broadcast_to(inputs, (*row.shape[:-1], len(inputs)))], axis=-1)
        return self._stats().transform(row.astype(np.float32))

    def probe_names(self) -> list[str]:
        """The probe results this model reads (``sens_cpu_2``, ``press_io``); none for telemetry-only ones."""
        from cotenant.models.placement_probes import PROBE_FLAGS, PROBE_PREFIX

        names = self.metadata.features
        return [
            n.removeprefix(PROBE_PREFIX) for n in names if n.startswith(PROBE_PREFIX) and n not in PROBE_FLAGS
        ]

    def feature_schema(self, window_seconds: int) -> FeatureSchema:
        """What an agent sends instead of raw samples for this placement model (``collectors.summaries``)."""
        self._require("placement")
        metrics = list(self.metadata.metrics)
        return FeatureSchema(schema_id(metrics, window_seconds), metrics, window_seconds)

    def encode_profile(
        self, profile: Series, probes: Probes | None = None, live: bool = False, latency: bool | None = None
    ) -> np.ndarray:
        """A workload's embedding ``[V, E]``: row 0 as is, row 1+g with group g occluded. ``live``: the series
        is an incumbent's window on its host, not a solo profile; ``latency``: whether its metric is a
        latency (None: not said)."""
        self._require("placement")
        return self.encode_summaries(self.profile_summary(profile, probes, live, latency)[None])[0]

    def encode_summaries(self, summaries: np.ndarray) -> np.ndarray:  # [N, F_p] normalised -> [N, V, E]
        variants = np.stack([occlusion_variants(row, self._masks, per_step=False) for row in summaries])
        return self.backend.encode(variants)

    def set_host_cores(self, cores: float) -> bool:
        """Score hosts of ``cores`` CPUs (every candidate alike) rather than the training host's size, for the
        models that read it (placement-probes' shares); call before encoding anything. False: not read."""
        return self.backend.set_host_cores(cores)

    def encode_host(self, incumbents: list[np.ndarray]) -> HostEncoding:
        self._require("placement")
        width = (1 + len(self._masks), self.backend.embedding_width())
        stacked = np.stack(incumbents) if incumbents else np.zeros((0, *width), dtype=np.float32)
        return HostEncoding.of(stacked)

    def stack_hosts(self, hosts: Sequence[HostEncoding], variants: int | None = None) -> HostBatch:
        """Stack host encodings for repeated scoring (rebuild when a host or the model changes). With
        ``variants`` only the first that many explanation variants are kept (1: a batch for medians only,
        what the extender's fleet index holds)."""
        self._require("placement")
        width = (min(1 + len(self._masks), variants or 1 + len(self._masks)), self.backend.embedding_width())
        return stack_hosts(hosts, width, self.backend.host_parts, variants)

    def score_placement_arrays(
        self, newcomer: np.ndarray, hosts: Sequence[HostEncoding] | HostBatch, explain: bool = True
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Vectorised scoring: quantiles ``[R, Q]`` and shares ``[R, G]`` for rows R = per host: newcomer then
        each incumbent; plus the row offset of each host ``[H+1]``."""
        batch = hosts if isinstance(hosts, HostBatch) else self.stack_hosts(hosts)
        variants = newcomer.shape[0] if explain else 1
        new = newcomer[:variants]
        if batch.host_part is not None and batch.incumbent_part is not None:
            out = self.backend.head_from_parts(new, batch, variants)  # stacked with the backend's parts
        else:
            counts, owner = batch.counts, batch.owner
            totals, stacked = batch.totals[:, :variants], batch.incumbents[:, :variants]
            own = np.concatenate([np.broadcast_to(new, totals.shape), stacked])  # [H + sumK, V, E]
            others = np.concatenate([totals, totals[owner] - stacked + new])
            count = np.concatenate([counts, counts[owner]]).astype(np.float32)
            rows = own.shape[0]
            out = self._placement_head(
                own.reshape(rows * variants, -1),
                others.reshape(rows * variants, -1),
                np.repeat(count, variants),
            ).reshape(rows, variants, -1)
        out = self._calibrated(sort_quantiles(out[batch.order]))
        # A workload alone on a host runs as in its solo profile: P = 1 by the label's definition. The models
        # learn from co-runs, so a host without incumbents would be an extrapolation; it is answered here.
        out[batch.offsets[:-1][np.diff(batch.offsets) == 1]] = 1.0
        shares = occlusion_shares(out[..., MEDIAN]) if explain else np.zeros((out.shape[0], 0))
        return out[:, 0], shares, batch.offsets

    def score_incumbents_arrays(self, batch: HostBatch) -> np.ndarray:
        """Quantiles ``[sumK, Q]`` of each incumbent of ``batch`` beside its host's other incumbents, with no
        newcomer (in the batch's incumbent order, host by host): the host as it runs now, the baseline that
        a newcomer's cost to the incumbents is measured from. An incumbent alone on its host runs as in its
        solo profile (P = 1)."""
        self._require("placement")
        own = batch.incumbents[:, :1]  # [sumK, 1, E]: no occlusion variant
        others = batch.totals[batch.owner, :1] - own
        count = (batch.counts[batch.owner] - 1).astype(np.float32)
        rows = own.shape[0]
        if rows == 0:
            return np.zeros((0, len(self.metadata.quantiles)), dtype=np.float32)
        out = self._placement_head(own.reshape(rows, -1), others.reshape(rows, -1), count)
        out = self._calibrated(sort_quantiles(out))
        out[count == 0] = 1.0
        return out

    def _placement_head(self, own: np.ndarray, others: np.ndarray, count: np.ndarray) -> np.ndarray:
        """Quantiles ``[N, Q]`` (unsorted) for rows of (own embedding, sum of the others', their count)."""
        return self.backend.head(own, others, count)

    def score_placement(
        self, newcomer: np.ndarray, hosts: Sequence[HostEncoding] | HostBatch, explain: bool = True
    ) -> list[PlacementEstimate]:
        quantiles, shares, offsets = self.score_placement_arrays(newcomer, hosts, explain)
        groups = list(self._masks) if explain else []
        estimates = [
            _estimate(quantiles[i], shares[i] if explain else None, groups, ()) for i in range(len(shares))
        ]
        return [
            PlacementEstimate(newcomer=estimates[start], incumbents=estimates[start + 1 : end])
            for start, end in itertools.pairwise(offsets)
        ]

    def _stats(self) -> Any:
        # The same transform as training (cotenant.datasets, Polars only: no training code, no torch).
        from cotenant.datasets.splits import FeatureStats

        if self._feature_stats is None:
            self._feature_stats = FeatureStats.from_dict(self.metadata.normaliser)
        return self._feature_stats

    def _require(self, task: Task) -> None:
        if self.metadata.task != task:
            raise TypeError(
                f"predictor {self.metadata.model_name!r} serves the {self.metadata.task} task, not {task}"
            )


def _estimate(
    quantiles: np.ndarray, shares: np.ndarray | None, groups: list[str], missing: tuple[str, ...]
) -> Estimate:
    drivers = {} if shares is None else {g: float(s) for g, s in zip(groups, shares, strict=True)}
    return Estimate(float(quantiles[MEDIAN]), float(quantiles[0]), float(quantiles[-1]), drivers, missing)


def _last(values: np.ndarray | None, steps: int) -> np.ndarray:
    """The last ``steps`` values, left-padded with NaN (filled with the training mean by the normaliser)."""
    out = np.full(steps, np.nan)
    if values is not None and len(values):
        tail = np.asarray(values, dtype=np.float64)[-steps:]
        out[steps - len(tail) :] = tail
    return out


def _mean_of(series: list[np.ndarray], steps: int) -> np.ndarray:
    with quiet_nan_warnings():
        return np.nanmean(np.stack([_last(s, steps) for s in series]), axis=0)
