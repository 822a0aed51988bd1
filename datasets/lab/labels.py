"""Labels P derived from run records: performance relative to the median of the config's solo references.

Pure: records in, Polars frames out. P = actual/ideal when higher is better, ideal/actual when lower is
better, clipped to (0, 1]. A run's references are the solos its record names (measured next to it, by a plan
with adjacent references) or else every solo of its configuration. Solo references are labelled too, the
same way and leaving themselves out, which is the noise floor: how far from 1 P moves with no neighbour.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import polars as pl
from cotenant.datasets.lab.canary import CANARIES
from cotenant.datasets.lab.records import RunRecord

LABEL_COLUMNS = {
    "run_id": pl.Utf8,
    "kind": pl.Utf8,
    "application": pl.Utf8,
    "config_key": pl.Utf8,
    "scenario": pl.Utf8,
    "n_neighbours": pl.Int32,
    "performance": pl.Float64,
    "solo_performance": pl.Float64,
    "n_solo_references": pl.Int32,
    "ratio": pl.Float64,
    "label": pl.Float64,
}

# The smallest label kept: P is in (0, 1], so a run that did no work at all still gets a positive label.
MIN_LABEL = 1e-3


def performance_ratio(actual: float, ideal: float, higher_is_better: bool) -> float:
    if actual <= 0 or ideal <= 0:
        return MIN_LABEL
    return actual / ideal if higher_is_better else ideal / actual


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def machine_speed(record: RunRecord, canary: str) -> float | None:
    """The mean of one canary's speed before and after the run (None where either is missing)."""
    if not record.speed_before or not record.speed_after:
        return None
    before, after = record.speed_before.get(canary), record.speed_after.get(canary)
    return None if before is None or after is None else (before + after) / 2


def speed_adjusted(record: RunRecord, canary: str) -> float | None:
    """The run's performance as on a machine of speed 1 by ``canary``: divided by the speed where higher is
    better, multiplied where lower is (a latency shrinks on a faster machine)."""
    speed = machine_speed(record, canary)
    if speed is None or speed <= 0:
        return None
    return record.performance / speed if record.higher_is_better else record.performance * speed


def label_runs(
    records: Iterable[RunRecord], *, adjacent: bool = True, canary: str | None = None
) -> pl.DataFrame:
    """One row per co-run and per solo reference (``kind`` says which), with columns ``LABEL_COLUMNS``.

    ``ratio`` is the unclipped performance ratio, ``label`` is P clipped to (0, 1]. A co-run whose config has
    no solo reference is left out (it cannot be labelled); ``neighbour_solo`` profiles are inputs, not
    labelled.
    The reference is the median of the solos the record names (those that finished), else of every solo of
    its config; solo rows leave themselves out (needs at least two solos). ``adjacent=False`` ignores the
    named solos: what the labels would be with references spread over the campaign (the comparison that says
    what measuring references next to each run bought). With ``canary``, every performance is first
    adjusted to the machine's speed by that canary (``speed_adjusted``; runs without it are left out).
    """
    records = list(records)
    if canary is not None:
        records = [
            record.model_copy(update={"performance": adjusted})
            for record in records
            if (adjusted := speed_adjusted(record, canary)) is not None
        ]
    solos: dict[str, list[RunRecord]] = {}
    for record in records:
        if record.kind == "solo":
            solos.setdefault(record.config_key, []).append(record)
    rows: list[dict[str, object]] = []
    for record in records:
        if record.kind == "neighbour_solo":
            continue
        candidates = [s for s in solos.get(record.config_key, []) if s.run_id != record.run_id]
        named = [s for s in candidates if s.run_id in record.references] if adjacent else []
        references = [s.performance for s in named or candidates]
        if not references:
            continue
        ideal = _median(references)
        ratio = performance_ratio(record.performance, ideal, record.higher_is_better)
        rows.append(
            {
                "run_id": record.run_id,
                "kind": record.kind,
                "application": record.application,
                "config_key": record.config_key,
                "scenario": record.scenario,
                "n_neighbours": len(record.neighbours),
                "performance": record.performance,
                "solo_performance": ideal,
                "n_solo_references": len(references),
                "ratio": ratio,
                "label": min(max(ratio, MIN_LABEL), 1.0),
            }
        )
    return pl.DataFrame(rows, schema=LABEL_COLUMNS)


@dataclass(frozen=True)
class NoiseFloor:
    """How much P varies with no interference: solo vs the median of the other solos of the same config."""

    n_solo_pairs: int
    median_abs_deviation: float  # median |1 - ratio| over solo rows
    p90_abs_deviation: float
    mean_solo_label: float  # mean clipped P of solo rows (1.0 would be a noiseless machine)
    # Mean |1 - ratio| beside the median: an MAE is a mean, and these deviations have a long tail (the median
    # says how quiet a typical run is). Each solo is read against the median of the others, themselves noisy,
    # so both overstate a single run's distance from its expected P.
    mean_abs_deviation: float = float("nan")

    def describe(self) -> str:
        return "noise floor: " + noise_text(asdict(self))


def noise_text(noise: Any) -> str:
    """A noise floor in percentage points, whatever the source reports: a lab's solo-vs-solo summary (a
    ``NoiseFloor`` as a dict), a synthetic source's label noise (a float fraction), or nothing."""
    if isinstance(noise, dict) and noise.get("n_solo_pairs"):
        return (
            f"solo-vs-solo |1 - P| median {100 * noise['median_abs_deviation']:.2f} pp, "
            f"p90 {100 * noise['p90_abs_deviation']:.2f} pp{_mean_text(noise)}, "
            f"mean solo P {noise['mean_solo_label']:.3f} "
            f"over {noise['n_solo_pairs']} solo runs"
        )
    if isinstance(noise, int | float) and not isinstance(noise, bool):
        return f"label noise sd about {100 * noise:.2f} pp (synthetic ground truth)"
    return "not measured (fewer than two solo repeats per configuration)"


def noise_pp(noise: Any, statistic: str) -> float | None:
    """One statistic of a lab's noise floor summary (a ``NoiseFloor`` field, e.g. ``median_abs_deviation``)
    in percentage points; None where the source reports no such summary or it lacks the statistic (summaries
    stored before ``mean_abs_deviation`` was recorded)."""
    if not (isinstance(noise, dict) and noise.get("n_solo_pairs")):
        return None
    value = noise.get(statistic)
    return 100 * value if isinstance(value, float) and not math.isnan(value) else None


def _mean_text(noise: dict[str, Any]) -> str:
    mean = noise_pp(noise, "mean_abs_deviation")
    return "" if mean is None else f", mean {mean:.2f} pp"


def noise_floor(labels: pl.DataFrame) -> NoiseFloor:
    """The noise floor from the solo rows of ``label_runs``' output."""
    solo = labels.filter(pl.col("kind") == "solo")
    if solo.is_empty():
        return NoiseFloor(0, float("nan"), float("nan"), float("nan"))
    deviation = (1.0 - solo["ratio"]).abs()
    return NoiseFloor(
        n_solo_pairs=solo.height,
        median_abs_deviation=float(deviation.median()),  # type: ignore[arg-type]
        p90_abs_deviation=float(deviation.quantile(0.9)),  # type: ignore[arg-type]
        mean_solo_label=float(solo["label"].mean()),  # type: ignore[arg-type]
        mean_abs_deviation=float(deviation.mean()),  # type: ignore[arg-type]
    )


# Solos the running noise floor is the median over: twenty minutes of a bundled part (66 solos in ~110 min).
NOISE_WATCH_WINDOW = 12


@dataclass
class NoiseWatch:
    """The noise floor as a campaign measures it: each new solo against the median of the earlier solos of its
    configuration in the journal (|1 - P|, in pp), and the median of the last ``window`` of those. A machine
    that slows or stutters (a busy hypervisor, which the quiet gate cannot see from inside the guest) shows
    here within half an hour, where ``cotenant lab labels`` after the campaign tells it too late. With
    ``limit_pp``, ``exceeded`` says when the running median passed it over a full window."""

    limit_pp: float | None = None
    window: int = NOISE_WATCH_WINDOW
    _earlier: dict[str, list[float]] = field(default_factory=dict)
    _recent: deque[float] = field(init=False)

    def __post_init__(self) -> None:
        self._recent = deque(maxlen=self.window)

    def new_sitting(self) -> None:
        """Start the running window afresh (a resumed campaign): the solos already in the journal stay the
        references new ones are compared with, but whether the machine is too noisy *now* is said by this
        sitting's solos alone; the window that stopped the last sitting would stop a resume after its first
        solo, whatever the machine has become since."""
        self._recent.clear()

    def add(self, record: RunRecord) -> None:
        if record.kind != "solo":
            return
        earlier = self._earlier.setdefault(record.config_key, [])
        if earlier:
            ratio = performance_ratio(record.performance, _median(earlier), record.higher_is_better)
            self._recent.append(100 * abs(1.0 - ratio))
        earlier.append(record.performance)

    @property
    def median_pp(self) -> float | None:
        """The running noise floor (None before any solo has an earlier one to compare with)."""
        return _median(list(self._recent)) if self._recent else None

    @property
    def exceeded(self) -> bool:
        median = self.median_pp
        full = len(self._recent) == self.window
        return self.limit_pp is not None and full and median is not None and median > self.limit_pp

    def describe(self) -> str:
        median = self.median_pp
        if median is None:
            return "solo noise: not yet measured"
        return f"solo noise {median:.1f} pp (median of the last {len(self._recent)} solos)"


@dataclass(frozen=True)
class SoloDrift:
    """How an application's solo performance moved over the campaign: per configuration with two solos or
    more, its latest solo against its earliest (P of the latest, taking the earliest as the reference, minus
    1: negative when it got slower), the median over the application's configurations. A noise floor made of
    drift (the machine's state changing over hours) calls for solos near each co-run in time, one made of
    scatter for more solos or a steadier workload."""

    configurations: int
    median_change: float
    median_hours_apart: float


def solo_drift(records: pl.DataFrame) -> dict[str, SoloDrift]:
    """``SoloDrift`` per application (those with a configuration of two solo runs or more). ``records`` has a
    row per run (``kind``, ``application``, ``config_key``, ``started_at``, ``performance``,
    ``higher_is_better``) and, where several campaigns are pooled, a ``campaign`` column: a configuration's
    drift is read within each campaign, never from one machine's solo to another's."""
    within = ["campaign", "config_key"] if "campaign" in records.columns else ["config_key"]
    solos = records.filter(pl.col("kind") == "solo").sort("started_at")
    changes: dict[str, list[tuple[float, float]]] = {}
    for _, runs in solos.group_by(within, maintain_order=True):
        if runs.height < 2:
            continue
        earliest, latest = runs.row(0, named=True), runs.row(-1, named=True)
        change = (
            performance_ratio(latest["performance"], earliest["performance"], latest["higher_is_better"])
            - 1.0
        )
        hours = (latest["started_at"] - earliest["started_at"]).total_seconds() / 3600
        changes.setdefault(latest["application"], []).append((change, hours))
    return {
        application: SoloDrift(len(found), _median([c for c, _ in found]), _median([h for _, h in found]))
        for application, found in changes.items()
    }


def noise_floor_alternatives(records: list[RunRecord]) -> dict[str, NoiseFloor]:
    """The noise floor the same runs would have with other references: every solo of the configuration
    (where records name adjacent ones) and performance adjusted to each canary (where runs have one). Keyed
    by a description; empty for a plain campaign."""
    found: dict[str, NoiseFloor] = {}
    if any(record.references for record in records):
        found["with every solo of the configuration as reference"] = noise_floor(
            label_runs(records, adjacent=False)
        )
    if any(record.speed_before for record in records):
        for canary in CANARIES:
            found[f"with performance adjusted to the {canary} canary's speed"] = noise_floor(
                label_runs(records, canary=canary)
            )
    return found


def noise_floor_by_application(labels: pl.DataFrame) -> dict[str, NoiseFloor]:
    """The noise floor of each application (a mean over applications hides the one that is always noisy)."""
    solo = labels.filter(pl.col("kind") == "solo")
    return {
        str(application): noise_floor(frame)
        for (application,), frame in solo.group_by("application", maintain_order=True)
    }
