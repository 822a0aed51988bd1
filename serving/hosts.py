"""Host state: bounded per-host, per-target telemetry windows and placement encodings computed at ingest.

The extender is called with hundreds of nodes per pod, so a query must only read: every ingest re-encodes the
targets it touched and the host (``Predictor.encode_profile`` / ``encode_host``) and publishes an immutable
``HostSnapshot`` by one reference assignment. A snapshot made with another champion is recomputed once.
For the extender, ``index`` keeps every host's snapshot in one ``HostIndex`` per champion (rebuilt only
after the hosts changed): a query finds hundreds of nodes by one dict lookup each, staleness on an array.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import repeat
from typing import Any

import numpy as np
from cotenant.collectors.lanes import HOST_TARGET  # the collector's host-table target (one owner)
from cotenant.collectors.summaries import FeatureSchema
from cotenant.serving.models import LoadedModel, PredictorLike, Series
from cotenant.serving.schemas import MAX_CLOCK_AHEAD_S, IngestSample, SkipReason

# How many patches an index remembers (``HostIndex.changes``): a workload's cached medians older than that
# are recomputed whole (``serving/scoring.py`` ``WorkloadMedians``).
PATCH_HISTORY = 64


@dataclass(frozen=True)
class IngestOutcome:
    targets: list[str]  # the targets whose windows changed, sorted
    accepted: int
    skipped: dict[SkipReason, int]
    summaries: int = 0


def window_to_series(rows: Iterable[tuple[datetime, dict[str, float | None]]]) -> Series:
    """Per-second rows -> metric -> values in time order; gaps take the window mean (never a fake 0).

    Built as one ``[seconds, metrics]`` matrix (column-major: each series a contiguous column) rather than
    metric by metric: a push re-reads its targets' whole windows, 120 rows x ~200 metrics each."""
    ordered = sorted(rows, key=lambda row: row[0])
    names = sorted({name for _, metrics in ordered for name in metrics})
    column = {name: i for i, name in enumerate(names)}
    matrix = np.full((len(ordered), len(names)), np.nan, order="F")
    for row, (_, metrics) in enumerate(ordered):
        given = [(column[name], value) for name, value in metrics.items() if value is not None]
        if given:
            columns, given_values = zip(*given, strict=True)
            matrix[row, list(columns)] = given_values
    known = ~np.isnan(matrix)
    seen, complete = known.any(axis=0), known.all(axis=0)
    for i in np.flatnonzero(seen & ~complete).tolist():
        column_values, present = matrix[:, i], known[:, i]
        column_values[~present] = column_values[present].mean()
    # A metric never seen in this window is absent, so the model fills its training mean.
    return {name: matrix[:, i] for i, name in enumerate(names) if seen[i]}


def screen_samples(
    samples: Sequence[IngestSample], received_at: datetime
) -> tuple[list[IngestSample], dict[SkipReason, int]]:
    """The samples a store may keep, and the count of the others by reason.

    A sample stamped more than ``MAX_CLOCK_AHEAD_S`` after ``received_at`` is dropped: it would become the
    host's "last seen" and keep a dead host fresh for years. A workload sample with no usable value is kept
    (it tells that the target is still there) but counted as ``no_values``: ``HostStore.apply`` stores no row
    for it. The request's other samples are kept.
    """
    latest_allowed = received_at.timestamp() + MAX_CLOCK_AHEAD_S
    kept: list[IngestSample] = []
    skipped: dict[SkipReason, int] = {}
    for sample in samples:
        if sample.timestamp.timestamp() > latest_allowed:
            skipped["ahead_of_clock"] = skipped.get("ahead_of_clock", 0) + 1
            continue
        if sample.target != HOST_TARGET and not sample.has_values():
            skipped["no_values"] = skipped.get("no_values", 0) + 1
        kept.append(sample)
    return kept, skipped


@dataclass(frozen=True)
class CompactSummary:
    """A target's window as a compact push sent it: the raw summary vector of one feature schema."""

    target: str
    timestamp: datetime
    seconds: int
    schema_id: str
    values: np.ndarray  # [F] raw (unnormalised) summaries, NaN where a metric was missing


class CompactOnly(LookupError):
    """Monitoring needs per-second series, and this host's targets arrive as compact summaries."""


def screen_push(
    samples: Sequence[IngestSample], summaries: Sequence[CompactSummary], received_at: datetime
) -> tuple[list[IngestSample], list[CompactSummary], dict[SkipReason, int]]:
    """A push's samples (``screen_samples``) and summaries a store may keep, the others counted by reason:
    a summary stamped too far ahead is skipped like a sample."""
    kept, skipped = screen_samples(samples, received_at)
    latest_allowed = received_at.timestamp() + MAX_CLOCK_AHEAD_S
    kept_summaries = [summary for summary in summaries if summary.timestamp.timestamp() <= latest_allowed]
    if ahead := len(summaries) - len(kept_summaries):
        skipped["ahead_of_clock"] = skipped.get("ahead_of_clock", 0) + ahead
    return kept, kept_summaries, skipped


@dataclass(frozen=True)
class SummaryEncodings:
    """Incumbents' encodings by target, made by the champion ``model_key`` (``encode_summaries``)."""

    model_key: str
    vectors: dict[str, np.ndarray]


def encode_incumbents(predictor: PredictorLike, summaries: Sequence[np.ndarray]) -> np.ndarray:
    """Incumbents' raw summaries (live windows) -> their embeddings ``[N, V, E]``, in one model call."""
    return predictor.encode_summaries(predictor.placement_row(np.stack(summaries), live=True))


@dataclass
class TargetWindow:
    rows: deque[tuple[datetime, dict[str, float | None]]]
    last_seen: float  # monotonic seconds
    # The target's latest compact summary when it arrives that way; its rows are then empty. Whichever form
    # came last is the target's data.
    summary: CompactSummary | None = None

    def series(self) -> Series:
        return window_to_series(list(self.rows))


@dataclass(frozen=True)
class HostSnapshot:
    """What a placement query reads: encodings of one champion, the incumbents in the same order."""

    host: str
    model_key: str | None
    encoding: Any
    incumbents: tuple[str, ...]
    last_seen: float
    last_seen_wall: datetime
    # Why the host cannot be scored by this champion although it is heard from (an incumbent's summary is in
    # another feature schema until its collector's next push), else None.
    pending: str | None = None


@dataclass(frozen=True)
class HostIndex:
    """All hosts' snapshots for one champion, as of one generation of the store."""

    model_key: str
    generation: int
    rows: dict[str, int]  # host -> row
    snapshots: list[HostSnapshot]
    last_seen: np.ndarray  # [H] monotonic seconds
    pending: np.ndarray  # [H] bool: heard from but not scorable now (``HostSnapshot.pending``)
    batch: Any  # every snapshot's encoding stacked once, unoccluded variant only (``Predictor.stack_hosts``)
    # The patches that led here from earlier indexes of the same layout (``rows``), oldest first: (the
    # generation patched, the rows it replaced). Empty for an index stacked anew.
    changes: tuple[tuple[int, np.ndarray], ...] = ()

    def lookup(self, hosts: Sequence[str]) -> np.ndarray:
        """Row per host, -1 where unknown."""
        return np.fromiter(map(self.rows.get, hosts, repeat(-1)), dtype=np.int64, count=len(hosts))

    def changed_since(self, generation: int) -> np.ndarray | None:
        """The rows whose snapshot changed since the index of ``generation`` (same layout), or None when
        that is not known here (stacked anew since, or patched more than ``PATCH_HISTORY`` times)."""
        if generation == self.generation:
            return np.zeros(0, dtype=np.int64)
        for start, (patched, _) in enumerate(self.changes):
            if patched == generation:
                return np.unique(np.concatenate([rows for _, rows in self.changes[start:]]))
        return None


@dataclass
class HostState:
    host: str
    targets: dict[str, TargetWindow] = field(default_factory=dict)
    incumbent_encodings: dict[str, tuple[str, np.ndarray]] = field(default_factory=dict)
    last_seen: float = 0.0
    last_seen_wall: datetime | None = None
    snapshot: HostSnapshot | None = None
    # Bumped whenever the host's incumbents or their windows may have changed (each re-encode): a cache of
    # encodings by another model (shadow mode) is current while this is unchanged.
    data_version: int = 0
    # Each workload target's registered solo profile as the host's collector last linked them (target ->
    # profile_id): host monitoring reads a target's rates against it when the caller names none.
    profiles: dict[str, str] = field(default_factory=dict)


class HostStore:
    def __init__(
        self,
        window_samples: int,
        stale_after_s: float,
        max_hosts: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.window_samples = window_samples
        self.stale_after_s = stale_after_s
        self.max_hosts = max_hosts
        self.clock = clock
        self.hosts: dict[str, HostState] = {}
        self._lock = threading.Lock()
        self._generation = 0  # bumped under the lock whenever a host's snapshot or the host set changes
        self._index: HostIndex | None = None
        # Since the index was built: the hosts whose snapshot changed, and whether hosts came or went.
        self._changed: set[str] = set()
        self._regrouped = False
        # Why the hosts cannot be trusted right now (the shared state store is unreachable), else None: every
        # host is then answered neutrally with this reason (``scoring``).
        self.outage: str | None = None
        self._schemas: dict[str, FeatureSchema] = {}

    def ingest(
        self,
        host: str,
        samples: Sequence[IngestSample],
        placement: LoadedModel | None,
        received_at: datetime | None = None,
        summaries: Sequence[CompactSummary] = (),
        profiles: Mapping[str, str] | None = None,
    ) -> IngestOutcome:
        """Screen the samples (``screen_samples``), append the kept ones to their windows, re-encode."""
        kept, kept_summaries, skipped = screen_push(samples, summaries, received_at or datetime.now(UTC))
        touched = self.apply(host, kept, placement, summaries=kept_summaries, profiles=profiles)
        return IngestOutcome(touched, len(kept) - skipped.get("no_values", 0), skipped, len(kept_summaries))

    def apply(
        self,
        host: str,
        samples: Sequence[IngestSample],
        placement: LoadedModel | None,
        heard_at: float | None = None,
        summaries: Sequence[CompactSummary] = (),
        encoded: SummaryEncodings | None = None,
        profiles: Mapping[str, str] | None = None,
    ) -> list[str]:
        """Append screened samples to their windows and re-encode the host; the targets whose windows changed.

        ``heard_at`` is when the push arrived on this store's clock (now by default): replicas sharing state
        replay a push with the time it was published, so each of them ages the host alike. ``encoded``: the
        push's summaries already encoded by the replica that received it (``encode_summaries``), used when
        made by this store's champion instead of encoding them again. ``profiles``: the collector's links of
        targets to registered solo profiles, replacing the host's earlier ones (None keeps them).
        """
        now = self.clock() if heard_at is None else heard_at
        with self._lock:
            state = self.hosts.get(host)
            if state is None:
                self._evict_if_full()
                state = self.hosts[host] = HostState(host=host)
            if profiles is not None:
                state.profiles = dict(profiles)
            touched: set[str] = set()
            for sample in samples:
                if sample.target != HOST_TARGET and not sample.has_values():
                    # Every value was missing or a fault: nothing to learn from, and a mean-filled row would
                    # shift the target's profile. The host is still heard from.
                    if sample.target in state.targets:
                        state.targets[sample.target].last_seen = now
                    continue
                window = state.targets.get(sample.target)
                if window is None:
                    window = state.targets[sample.target] = TargetWindow(
                        rows=deque(maxlen=self.window_samples), last_seen=now
                    )
                window.rows.append((sample.timestamp, dict(sample.metrics)))
                window.summary = None
                window.last_seen = now
                touched.add(sample.target)
                if state.last_seen_wall is None or sample.timestamp > state.last_seen_wall:
                    state.last_seen_wall = sample.timestamp
            for summary in summaries:
                window = state.targets.get(summary.target)
                if window is None:
                    window = state.targets[summary.target] = TargetWindow(
                        rows=deque(maxlen=self.window_samples), last_seen=now
                    )
                window.rows.clear()
                window.summary = summary
                window.last_seen = now
                touched.add(summary.target)
                if state.last_seen_wall is None or summary.timestamp > state.last_seen_wall:
                    state.last_seen_wall = summary.timestamp
            state.last_seen = max(state.last_seen, now)
            for target in touched:
                state.incumbent_encodings.pop(target, None)  # its window changed: encode again
            if encoded is not None and placement is not None and encoded.model_key == placement.key:
                for target, vector in encoded.vectors.items():
                    if target in touched and state.targets[target].summary is not None:
                        state.incumbent_encodings[target] = (placement.key, vector)
            self._encode(state, placement)
        return sorted(touched)

    def reset(self) -> None:
        """Forget every host (the shared state they came from was lost; pushes bring them back)."""
        with self._lock:
            self.hosts.clear()
            self._generation += 1
            self._index = None
            self._regrouped = True

    def index(self, placement: LoadedModel) -> HostIndex:
        """Every host's current snapshot for this champion; rebuilt only when a host changed since, and then
        patched where it can be (``_patched``) rather than stacked anew.

        While a push holds the store (``apply`` encodes its targets under the lock: milliseconds), a query
        that has an index of this champion answers from it rather than wait: host state one push old, never
        a query queued behind an encoding. (One replica's extender tail under a fleet's pushes did not move
        with this: it queues behind the pushes' request handling on the same interpreter.)"""
        key = placement.key
        index = self._index
        if index is not None and index.generation == self._generation and index.model_key == key:
            return index
        usable = index if index is not None and index.model_key == key else None
        if not self._lock.acquire(blocking=usable is None):
            assert usable is not None  # a blocking acquire always succeeds
            return usable
        try:
            index = self._index
            if index is not None and index.generation == self._generation and index.model_key == key:
                return index  # built by another query while this one waited
            patched = self._patched(index, placement) if index is not None else None
            self._index = patched or self._stacked(placement)
            self._changed.clear()
            self._regrouped = False
            return self._index
        finally:
            self._lock.release()

    def _stacked(self, placement: LoadedModel) -> HostIndex:
        key = placement.key
        snapshots: list[HostSnapshot] = []
        for state in self.hosts.values():
            if state.snapshot is None or state.snapshot.model_key != key:
                self._encode(state, placement)
            assert state.snapshot is not None  # _encode always publishes one
            snapshots.append(state.snapshot)
        return HostIndex(
            model_key=key,
            generation=self._generation,
            rows={snapshot.host: row for row, snapshot in enumerate(snapshots)},
            snapshots=snapshots,
            last_seen=np.array([snapshot.last_seen for snapshot in snapshots], dtype=np.float64),
            pending=np.array([snapshot.pending is not None for snapshot in snapshots], dtype=bool),
            # medians only: the extender never explains from the index (``CandidateScores.explain``
            # stacks the few hosts it explains anew)
            batch=placement.predictor.stack_hosts([snapshot.encoding for snapshot in snapshots], variants=1),
        )

    def _patched(self, index: HostIndex, placement: LoadedModel) -> HostIndex | None:
        """The index with the hosts changed since it was built replaced in copies of its arrays, or None when
        only a full stacking will do: another champion, a host added or gone, a host whose incumbent count
        changed, or so many changes that stacking is as cheap. A fleet pushing every few seconds changes a
        few hosts between two queries; stacking 5,000 hosts anew for each query would cost milliseconds."""
        if index.model_key != placement.key or self._regrouped or len(self._changed) > len(index.rows) // 4:
            return None
        rows: list[int] = []
        snapshots: list[HostSnapshot] = []
        for host in list(self._changed):  # _encode below adds to the set
            state, row = self.hosts.get(host), index.rows.get(host)
            if state is None or row is None:
                return None
            if state.snapshot is None or state.snapshot.model_key != placement.key:
                self._encode(state, placement)
            snapshot = state.snapshot
            assert snapshot is not None  # _encode always publishes one
            if snapshot.encoding.count != index.batch.counts[row]:
                return None
            rows.append(row)
            snapshots.append(snapshot)
        at = np.array(rows, dtype=np.int64)
        fresh = placement.predictor.stack_hosts([snapshot.encoding for snapshot in snapshots], variants=1)
        every = list(index.snapshots)
        for row, snapshot in zip(rows, snapshots, strict=True):
            every[row] = snapshot
        last_seen, pending = index.last_seen.copy(), index.pending.copy()
        last_seen[at] = [snapshot.last_seen for snapshot in snapshots]
        pending[at] = [snapshot.pending is not None for snapshot in snapshots]
        batch = index.batch.replaced(at, fresh)
        changes = (*index.changes, (index.generation, at))[-PATCH_HISTORY:]
        return HostIndex(
            placement.key, self._generation, index.rows, every, last_seen, pending, batch, changes
        )

    def snapshot(self, host: str, placement: LoadedModel | None) -> HostSnapshot | None:
        """The host's current snapshot for this champion (recomputed once after a swap); None if unknown."""
        state = self.hosts.get(host)
        if state is None:
            return None
        snapshot = state.snapshot
        key = placement.key if placement else None
        if snapshot is None or snapshot.model_key != key:
            with self._lock:
                self._encode(state, placement)
                snapshot = state.snapshot
        return snapshot

    def is_stale(self, last_seen: float) -> bool:
        return self.clock() - last_seen > self.stale_after_s

    def age_s(self, last_seen: float) -> float:
        return max(0.0, self.clock() - last_seen)

    def series(
        self, host: str, target: str
    ) -> tuple[Series, list[Series], Series | None, list[str | None]] | None:
        """Monitoring input for a known target: its series, its live neighbours', the host's (or None), and
        the solo profile the collector linked to each neighbour (None where it linked none)."""
        state = self.hosts.get(host)
        if state is None:
            return None
        with self._lock:
            if target not in state.targets or target == HOST_TARGET:
                return None
            live = self._live_targets(state)
            if any(state.targets[name].summary is not None for name in live):
                raise CompactOnly(
                    f"{host}: its collector pushes compact summaries; monitoring needs per-second telemetry "
                    "of every target on the host (cotenant collect --push without --compact)"
                )
            own = state.targets[target].series()
            others = [name for name in live if name != target]
            neighbours = [state.targets[name].series() for name in others]
            links = [state.profiles.get(name) for name in others]
            host_window = state.targets.get(HOST_TARGET)
            host_series = host_window.series() if host_window is not None else None
        return own, neighbours, host_series, links

    def profile_of(self, host: str, target: str) -> str | None:
        """The solo profile the host's collector linked to ``target`` (None when it linked none)."""
        state = self.hosts.get(host)
        return None if state is None else state.profiles.get(target)

    def _live_targets(self, state: HostState) -> list[str]:
        """Incumbent targets in a stable order; targets silent past the staleness bound have left the host."""
        now = self.clock()
        for name in [n for n, w in state.targets.items() if now - w.last_seen > self.stale_after_s]:
            if now - state.last_seen <= self.stale_after_s:  # keep a silent host's picture as it was
                del state.targets[name]
                state.incumbent_encodings.pop(name, None)
        return sorted(name for name in state.targets if name != HOST_TARGET)

    def incumbent_series(self, host: str) -> tuple[int, list[Series]] | None:
        """The host's data version and its live incumbents' series (in snapshot order); None if unknown, or
        if an incumbent arrives as compact summaries (in the champion's feature schema: not series)."""
        state = self.hosts.get(host)
        if state is None or state.snapshot is None:
            return None
        with self._lock:
            names = [name for name in state.snapshot.incumbents if name in state.targets]
            if any(state.targets[name].summary is not None for name in names):
                return None
            return state.data_version, [state.targets[name].series() for name in names]

    def _encode(self, state: HostState, placement: LoadedModel | None) -> None:
        state.data_version += 1
        incumbents = tuple(self._live_targets(state))
        encoding: Any = None
        pending: str | None = None
        if placement is not None:
            schema = self.feature_schema(placement)
            predictor = placement.predictor
            usable: list[str] = []
            summaries: dict[str, np.ndarray] = {}  # the incumbents to encode again: their raw summaries
            for name in incumbents:
                window = state.targets[name]
                if window.summary is not None and window.summary.schema_id != schema.schema_id:
                    pending = (
                        f"{name}'s summary is in feature schema {window.summary.schema_id}, the champion "
                        f"needs {schema.schema_id}: waiting for its collector's next push"
                    )
                    continue
                usable.append(name)
                cached = state.incumbent_encodings.get(name)
                if cached is None or cached[0] != placement.key:
                    summaries[name] = (
                        window.summary.values
                        if window.summary is not None
                        else predictor.raw_summary(window.series())
                    )
            if summaries:  # one call for a push's targets: a forest's and a normaliser's cost is per call
                encoded = encode_incumbents(predictor, list(summaries.values()))
                for name, vector in zip(summaries, encoded, strict=True):
                    state.incumbent_encodings[name] = (placement.key, vector)
            encoding = predictor.encode_host([state.incumbent_encodings[name][1] for name in usable])
        self._generation += 1
        self._changed.add(state.host)
        state.snapshot = HostSnapshot(
            host=state.host,
            model_key=placement.key if placement else None,
            encoding=encoding,
            incumbents=incumbents,
            last_seen=state.last_seen,
            last_seen_wall=state.last_seen_wall or datetime.now().astimezone(),
            pending=pending,
        )

    def encode_summaries(
        self, placement: LoadedModel, summaries: Sequence[CompactSummary]
    ) -> SummaryEncodings | None:
        """A compact push's incumbents encoded as ``apply`` would encode them (those in the champion's feature
        schema), for replicas that share state: the one that received the push encodes, the others reuse."""
        schema = self.feature_schema(placement)
        usable = [summary for summary in summaries if summary.schema_id == schema.schema_id]
        if not usable:
            return None
        vectors = encode_incumbents(placement.predictor, [summary.values for summary in usable])
        return SummaryEncodings(placement.key, dict(zip((s.target for s in usable), vectors, strict=True)))

    def feature_schema(self, placement: LoadedModel) -> FeatureSchema:
        """The champion's compact-push schema over this store's window (computed once per champion)."""
        cached = self._schemas.get(placement.key)
        if cached is None:
            cached = self._schemas[placement.key] = placement.predictor.feature_schema(self.window_samples)
        return cached

    def _evict_if_full(self) -> None:
        if len(self.hosts) >= self.max_hosts:
            oldest = min(self.hosts.values(), key=lambda state: state.last_seen)
            del self.hosts[oldest.host]
            self._generation += 1
            self._regrouped = True
