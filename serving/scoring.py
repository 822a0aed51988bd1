"""Degradation and placement answers from champions and host state: plain functions, no HTTP.

Two paths share the host lookup. ``score_hosts`` answers ``/score_placement`` with a full ``HostPlacement``
(intervals, drivers) per host. ``score_candidates`` is the scheduler-extender path, called with hundreds of
nodes per pod within kube-scheduler's timeout: it asks the predictor for medians only (no explanation
variants) and keeps the answer as arrays, so no per-host object is built unless a node fails the filter.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from cotenant.models.base import MEDIAN, probability_below
from cotenant.serving.hosts import HostIndex, HostSnapshot, HostStore
from cotenant.serving.models import LoadedModel
from cotenant.serving.schemas import EstimateView, HostPlacement

NEUTRAL_SCORE = 0.5
UNKNOWN_HOST_REASON = "no telemetry received for this host"
STATE_UNAVAILABLE_STATUS = "state_unavailable"
EMPTY_HOST_REASON = "no incumbents: alone, the newcomer runs as in its solo profile (P = 1) and harms nobody"


def driving_resource(drivers: dict[str, float]) -> str | None:
    return max(drivers, key=lambda group: drivers[group]) if drivers else None


def estimate_view(estimate: Any) -> EstimateView:
    drivers = {str(k): float(v) for k, v in (getattr(estimate, "drivers", None) or {}).items()}
    return EstimateView(
        p=float(estimate.p),
        lower=float(estimate.lower),
        upper=float(estimate.upper),
        drivers=drivers,
        driving_resource=driving_resource(drivers),
    )


def neutral(host: str, status: str, reason: str) -> HostPlacement:
    return HostPlacement(host=host, status=status, reason=reason, score=NEUTRAL_SCORE)


@dataclass(frozen=True)
class HostLookup:
    """Candidates split into hosts to score (fresh snapshots, with their request positions) and the rest."""

    positions: list[int]
    snapshots: list[HostSnapshot]
    unscored: dict[int, tuple[str, str]]  # request position -> (status, reason)


def look_up_hosts(hosts: Sequence[str], store: HostStore, placement: LoadedModel) -> HostLookup:
    """Unknown or stale hosts are set aside with a reason: a scheduler must never fail on our account."""
    positions: list[int] = []
    snapshots: list[HostSnapshot] = []
    unscored: dict[int, tuple[str, str]] = {}
    if store.outage is not None:
        return HostLookup(positions, snapshots, dict.fromkeys(range(len(hosts)), outage_answer(store.outage)))
    for position, host in enumerate(hosts):
        snapshot = store.snapshot(host, placement)
        if snapshot is None:
            unscored[position] = ("unknown_host", UNKNOWN_HOST_REASON)
        elif snapshot.pending is not None:
            unscored[position] = ("stale_host", snapshot.pending)
        elif store.is_stale(snapshot.last_seen):
            age = store.age_s(snapshot.last_seen)
            reason = f"last telemetry {age:.0f}s ago (> {store.stale_after_s:g}s)"
            unscored[position] = ("stale_host", reason)
        else:
            positions.append(position)
            snapshots.append(snapshot)
    return HostLookup(positions, snapshots, unscored)


def outage_answer(outage: str) -> tuple[str, str]:
    return STATE_UNAVAILABLE_STATUS, f"host state unavailable: {outage}"


def score_hosts(
    newcomer: np.ndarray,
    hosts: Sequence[str],
    store: HostStore,
    placement: LoadedModel,
    min_performance: float,
) -> list[HostPlacement]:
    """Per candidate host: newcomer P, worst incumbent P, feasibility, score; sorted best first."""
    found = look_up_hosts(hosts, store, placement)
    results = [neutral(hosts[position], *why) for position, why in found.unscored.items()]
    results.extend(explained_placements(newcomer, found.snapshots, placement, min_performance))
    # feasible first, then by score; unknown feasibility (neutral) between feasible and infeasible
    rank = {True: 0, None: 1, False: 2}
    results.sort(key=lambda r: (rank[r.feasible], -r.score, r.host))
    return results


def explained_placements(
    newcomer: np.ndarray, snapshots: Sequence[HostSnapshot], placement: LoadedModel, min_performance: float
) -> list[HostPlacement]:
    """Full answers (intervals and drivers) for hosts already known to be fresh."""
    if not snapshots:
        return []
    estimates = placement.predictor.score_placement(newcomer, [s.encoding for s in snapshots])
    return [
        placement_result(snapshot, estimate, min_performance)
        for snapshot, estimate in zip(snapshots, estimates, strict=True)
    ]


def placement_result(snapshot: HostSnapshot, estimate: Any, min_performance: float) -> HostPlacement:
    newcomer = estimate_view(estimate.newcomer)
    incumbents = [estimate_view(e) for e in estimate.incumbents]
    worst_index = min(range(len(incumbents)), key=lambda i: incumbents[i].p) if incumbents else None
    worst = incumbents[worst_index] if worst_index is not None else None
    binding = newcomer if worst is None or newcomer.p <= worst.p else worst
    score = min(newcomer.p, worst.p if worst else 1.0)
    score = score if math.isfinite(score) else NEUTRAL_SCORE
    return HostPlacement(
        host=snapshot.host,
        status="scored" if incumbents else "empty_host",
        reason=None if incumbents else EMPTY_HOST_REASON,
        newcomer=newcomer,
        worst_incumbent=worst,
        worst_incumbent_target=snapshot.incumbents[worst_index] if worst_index is not None else None,
        driving_resource=binding.driving_resource,
        feasible=score >= min_performance,
        score=min(1.0, max(0.0, score)),
    )


@dataclass(frozen=True)
class CandidateScores:
    """The extender's answer per candidate, in request order, as arrays ``[H]``.

    ``raw`` is the lower of the newcomer's and the worst incumbent's median P (what feasibility compares with
    the minimum), ``score`` the same clipped to [0, 1]; both are ``NEUTRAL_SCORE`` where a host is not scored.
    ``newcomer_p`` and ``worst_incumbent_p`` are NaN where absent. ``expected_misses`` (asked for with a
    minimum, the ``expected_misses`` extender rule; else None) is the SLO misses placing the workload there is
    expected to cost (``host_expected_misses``), NaN where a host is not scored.
    """

    hosts: Sequence[str]
    newcomer: np.ndarray  # the workload's encoding, kept to explain the few nodes that fail the filter
    placement: LoadedModel
    index: HostIndex
    rows: np.ndarray  # per candidate its row in the index, -1 where unknown
    unscored: dict[int, tuple[str, str]]  # request position -> (status, reason)
    scored: np.ndarray  # bool
    raw: np.ndarray
    score: np.ndarray
    newcomer_p: np.ndarray
    worst_incumbent_p: np.ndarray
    expected_misses: np.ndarray | None = None

    def neutral_reasons(self) -> dict[str, str]:
        return {self.hosts[position]: reason for position, (_, reason) in self.unscored.items()}

    def explain(self, positions: Sequence[int], min_performance: float) -> list[HostPlacement]:
        """Full answers (intervals, drivers, worst incumbent's name) for a few scored request positions."""
        snapshots = [self.index.snapshots[self.rows[position]] for position in positions]
        return explained_placements(self.newcomer, snapshots, self.placement, min_performance)


def host_medians(newcomer: np.ndarray, batch: Any, placement: LoadedModel) -> tuple[np.ndarray, np.ndarray]:
    """Per host of ``batch`` (a ``HostBatch`` of one variant): the newcomer's median P and the worst
    incumbent's (NaN on a host without incumbents)."""
    quantiles, _, offsets = placement.predictor.score_placement_arrays(newcomer, batch, explain=False)
    return medians_of(quantiles, offsets)


def medians_of(quantiles: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``host_medians`` from the rows ``score_placement_arrays`` answered."""
    medians = quantiles[:, MEDIAN].astype(np.float64)  # [R]: per host its newcomer row, then incumbents
    starts = offsets[:-1]
    incumbent_rows = medians.copy()
    incumbent_rows[starts] = np.inf  # each host's segment keeps at least its newcomer row: never empty
    worst = np.minimum.reduceat(incumbent_rows, starts)
    worst[np.diff(offsets) == 1] = np.nan  # a host without incumbents
    return medians[starts], worst


def host_expected_misses(
    newcomer: np.ndarray, batch: Any, placement: LoadedModel, min_performance: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per host of ``batch`` (a ``HostBatch`` of one variant): the SLO misses placing the newcomer there is
    expected to cost, ``Pr(newcomer under the minimum) + sum over incumbents of the rise in their chance of
    falling under it`` (against the host as it runs now, never below 0: a newcomer is not counted as
    rescuing anyone), each chance read off the predicted quantiles (``probability_below``); with the
    newcomer's and worst incumbent's medians (``host_medians``'s), from the same answer.

    The alternative to placing a workload is leaving it pending, which misses its SLO for certain: one
    miss. A host whose expected cost stays under one is better than no host, even when the newcomer's own
    median falls short of its minimum; a host where it would push an incumbent that now meets its minimum
    under it is not (a rise of about one)."""
    predictor = placement.predictor
    quantiles, _, offsets = predictor.score_placement_arrays(newcomer, batch, explain=False)
    chance = probability_below(quantiles, min_performance)  # [R], host-major: newcomer, then incumbents
    starts = offsets[:-1]
    is_incumbent = np.ones(len(chance), dtype=bool)
    is_incumbent[starts] = False
    now = probability_below(predictor.score_incumbents_arrays(batch), min_performance)
    rise = np.maximum(chance[is_incumbent] - now, 0.0)  # the batch's incumbent order is host-major too
    expected = chance[starts] + np.bincount(batch.owner, weights=rise, minlength=len(starts))
    return (*medians_of(quantiles, offsets), expected)


class WorkloadMedians:
    """One workload's medians on the hosts of the index, kept between its requests.

    kube-scheduler asks about the same workload again and again (a deployment's replicas are scheduled one
    after another, each through filter and prioritize), while a fleet pushing every few seconds changes only
    a few hosts between two of those requests: the index says which (``HostIndex.changed_since``), and only
    those, and hosts never asked about before, are scored again. Safe under concurrent requests (one lock
    per workload; the medians are the same numbers ``host_medians`` gives on the whole index)."""

    def __init__(self, newcomer: np.ndarray) -> None:
        self.newcomer = newcomer
        self._lock = threading.Lock()
        self._layout: dict[str, int] | None = None
        self._model_key: str | None = None
        self._generation = -1
        self._newcomer_p = np.zeros(0)
        self._worst_p = np.zeros(0)
        self._known = np.zeros(0, dtype=bool)

    def read(
        self, index: HostIndex, rows: np.ndarray, placement: LoadedModel
    ) -> tuple[np.ndarray, np.ndarray]:
        """The newcomer's and the worst incumbent's median P on index ``rows`` (``host_medians``'s)."""
        with self._lock:
            self._follow(index)
            missing = np.unique(rows[~self._known[rows]])
            if len(missing):
                batch = index.batch.select(missing, variants=1)
                self._newcomer_p[missing], self._worst_p[missing] = host_medians(
                    self.newcomer, batch, placement
                )
                self._known[missing] = True
            return self._newcomer_p[rows], self._worst_p[rows]

    def _follow(self, index: HostIndex) -> None:
        """Forget the medians of the hosts changed since they were computed (all of them on a new layout)."""
        changed = None
        if index.rows is self._layout and index.model_key == self._model_key:
            changed = index.changed_since(self._generation)
        if changed is None:
            size = len(index.snapshots)
            self._newcomer_p, self._worst_p = np.zeros(size), np.zeros(size)
            self._known = np.zeros(size, dtype=bool)
        else:
            self._known[changed] = False
        self._layout, self._model_key, self._generation = index.rows, index.model_key, index.generation


class MedianCache:
    """``WorkloadMedians`` per (profile, champion), the least recently asked dropped beyond ``max_workloads``
    (0: nothing kept, every request scored whole). A profile registered again starts afresh."""

    def __init__(self, max_workloads: int) -> None:
        self.max_workloads = max_workloads
        self._workloads: OrderedDict[tuple[str, str], WorkloadMedians] = OrderedDict()
        self._lock = threading.Lock()

    def workload(
        self, profile_id: str, placement: LoadedModel, newcomer: np.ndarray
    ) -> WorkloadMedians | None:
        if self.max_workloads <= 0:
            return None
        key = (profile_id, placement.key)
        with self._lock:
            found = self._workloads.get(key)
            if found is None or found.newcomer is not newcomer:
                found = self._workloads[key] = WorkloadMedians(newcomer)
            self._workloads.move_to_end(key)
            while len(self._workloads) > self.max_workloads:
                self._workloads.popitem(last=False)
            return found


def score_candidates(
    newcomer: np.ndarray,
    hosts: Sequence[str],
    store: HostStore,
    placement: LoadedModel,
    kept: WorkloadMedians | None = None,
    misses_below: float | None = None,
) -> CandidateScores:
    """Medians only, vectorised: the same P and score as ``score_hosts`` without intervals or drivers; with
    ``kept``, this workload's medians from its earlier requests where their hosts have not changed since.
    With ``misses_below`` (a minimum P), also each host's expected SLO misses (``host_expected_misses``;
    every scored host is scored afresh, ``kept`` unused: the chances depend on the minimum)."""
    index = store.index(placement)
    rows = index.lookup(hosts)
    if store.outage is not None:
        rows = np.full(len(hosts), -1, dtype=np.int64)  # nothing is scored: host state cannot be trusted
    known = rows >= 0
    last_seen = index.last_seen[rows] if index.snapshots else np.zeros(len(hosts))  # row -1: ignored below
    age = store.clock() - last_seen
    pending = index.pending[rows] & known if index.snapshots else np.zeros(len(hosts), dtype=bool)
    scored = known & (age <= store.stale_after_s) & ~pending
    unscored: dict[int, tuple[str, str]] = {}
    for position in np.flatnonzero(~scored).tolist():  # only the few unknown or stale nodes
        if store.outage is not None:
            unscored[position] = outage_answer(store.outage)
        elif not known[position]:
            unscored[position] = ("unknown_host", UNKNOWN_HOST_REASON)
        elif pending[position]:
            unscored[position] = ("stale_host", str(index.snapshots[rows[position]].pending))
        else:
            reason = f"last telemetry {age[position]:.0f}s ago (> {store.stale_after_s:g}s)"
            unscored[position] = ("stale_host", reason)
    positions = np.flatnonzero(scored)
    newcomer_p = np.full(len(hosts), np.nan)
    worst_p = np.full(len(hosts), np.nan)
    expected = None if misses_below is None else np.full(len(hosts), np.nan)
    if len(positions) and expected is not None and misses_below is not None:
        batch = index.batch.select(rows[positions], variants=1)
        newcomer_p[positions], worst_p[positions], expected[positions] = host_expected_misses(
            newcomer, batch, placement, misses_below
        )
    elif len(positions) and kept is not None:
        newcomer_p[positions], worst_p[positions] = kept.read(index, rows[positions], placement)
    elif len(positions):
        batch = index.batch.select(rows[positions], variants=1)
        newcomer_p[positions], worst_p[positions] = host_medians(newcomer, batch, placement)
    raw = np.minimum(newcomer_p, np.where(np.isnan(worst_p), 1.0, worst_p))
    raw[~np.isfinite(raw)] = NEUTRAL_SCORE  # unscored hosts (NaN) and any non-finite prediction
    clipped = np.clip(raw, 0.0, 1.0)
    return CandidateScores(
        hosts, newcomer, placement, index, rows, unscored, scored, raw, clipped, newcomer_p, worst_p, expected
    )
