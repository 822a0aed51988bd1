"""Consolidation: workloads arrive one by one and two online policies place them on identical hosts.

- ``requests_only``: Kubernetes' MostAllocated bin packing, the fullest host where the requests fit;
  interference is not looked at.
- ``degradation_aware``: among occupied hosts where the requests fit and the newcomer and every incumbent stay
  at or above the SLO, the one with the best score (the service's rule: the lower of the newcomer's P and the
  worst incumbent's P after the placement); an empty host only when no occupied one qualifies (the best score
  alone would give every workload an empty host, P = 1 there); otherwise the workload is refused.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Annotated, Literal

import numpy as np
import polars as pl
from cotenant.models.base import MEDIAN, QUANTILES
from cotenant.planning.scoring import PlacementScorer
from pydantic import BaseModel, Field, model_validator

Policy = Literal["requests_only", "degradation_aware"]
POLICIES: tuple[Policy, ...] = ("requests_only", "degradation_aware")
SLACK = 1e-9  # requests that sum to exactly the capacity fit


@dataclass(frozen=True)
class Request:
    profile_id: str
    cpu_cores: float
    memory_gib: float


@dataclass(frozen=True)
class Capacity:
    cpu_cores: float
    memory_gib: float


@dataclass
class HostPlan:
    tenants: list[Request] = field(default_factory=list)
    quantiles: np.ndarray = field(
        default_factory=lambda: np.zeros((0, len(QUANTILES)))
    )  # [K, Q], tenants' order

    def load_after(self, newcomer: Request) -> tuple[float, float]:
        tenants = [*self.tenants, newcomer]
        return sum(t.cpu_cores for t in tenants), sum(t.memory_gib for t in tenants)

    def fits(self, newcomer: Request, capacity: Capacity) -> bool:
        cpu, memory = self.load_after(newcomer)
        return cpu <= capacity.cpu_cores + SLACK and memory <= capacity.memory_gib + SLACK

    def admit(self, newcomer: Request, quantiles: np.ndarray) -> None:
        """``quantiles`` ``[1 + K, Q]``: the newcomer's row, then the incumbents' (the scorer's order)."""
        self.tenants.append(newcomer)
        self.quantiles = np.concatenate([quantiles[1:], quantiles[:1]])


def _most_allocated(hosts: Sequence[HostPlan], newcomer: Request, capacity: Capacity) -> int:
    """The fullest host after placement (ties: the first), as Kubernetes' MostAllocated scores."""

    def allocated(host: HostPlan) -> float:
        cpu, memory = host.load_after(newcomer)
        return cpu / capacity.cpu_cores + memory / capacity.memory_gib

    return max(range(len(hosts)), key=lambda i: allocated(hosts[i]))


def place_stream(
    stream: Sequence[Request],
    n_hosts: int,
    capacity: Capacity,
    policy: Policy,
    min_p: float,
    scorer: PlacementScorer,
) -> list[HostPlan]:
    """Online placement of the whole stream on ``n_hosts`` empty hosts; refused workloads are dropped."""
    hosts = [HostPlan() for _ in range(n_hosts)]
    for newcomer in stream:
        candidates = [host for host in hosts if host.fits(newcomer, capacity)]
        if not candidates:
            continue
        incumbents = [[t.profile_id for t in host.tenants] for host in candidates]
        if policy == "requests_only":
            best = _most_allocated(candidates, newcomer, capacity)
            candidates[best].admit(newcomer, scorer.joining(newcomer.profile_id, [incumbents[best]])[0])
            continue
        scored = scorer.joining(newcomer.profile_id, incumbents)
        binding = np.array([q[:, MEDIAN].min() for q in scored])  # the service's score: the worst P
        feasible = binding >= min_p
        occupied = feasible & np.array([bool(host.tenants) for host in candidates])
        pool = occupied if occupied.any() else feasible
        if pool.any():
            best = int(np.argmax(np.where(pool, binding, -np.inf)))
            candidates[best].admit(newcomer, scored[best])
    return hosts


@dataclass
class Outcome:
    placed: int
    hosts_used: int
    violations: int  # tenants whose predicted P is under the SLO
    lower_end_under_slo: int  # tenants whose predicted interval reaches under the SLO: at risk
    tenants_beyond_training_range: int  # on hosts with more tenants than any training run had
    median_p: float | None
    predicted_p: list[float]  # of every tenant, ascending


def outcome(hosts: Sequence[HostPlan], min_p: float, trained_max_tenants: int) -> Outcome:
    quantiles = np.concatenate([np.zeros((0, len(QUANTILES))), *(host.quantiles for host in hosts)])
    p = quantiles[:, MEDIAN]
    return Outcome(
        placed=len(p),
        hosts_used=sum(1 for host in hosts if host.tenants),
        violations=int((p < min_p).sum()),
        lower_end_under_slo=int((quantiles[:, 0] < min_p).sum()),
        tenants_beyond_training_range=sum(
            len(host.tenants) for host in hosts if len(host.tenants) > trained_max_tenants
        ),
        median_p=float(np.median(p)) if len(p) else None,
        predicted_p=[round(float(value), 4) for value in sorted(p)],
    )


def hosts_lower_bound(stream: Sequence[Request], capacity: Capacity) -> int:
    """No placement of the whole stream needs fewer hosts: its summed requests over one host's capacity."""
    return max(
        1,
        math.ceil(sum(r.cpu_cores for r in stream) / capacity.cpu_cores - SLACK),
        math.ceil(sum(r.memory_gib for r in stream) / capacity.memory_gib - SLACK),
    )


@dataclass
class SweepPoint:
    min_p: float
    placed: int  # on the planned fleet
    violations: int  # there
    hosts_needed: int | None  # for the whole stream (None: not within max_hosts)
    violations_on_hosts_needed: int | None


def sweep(
    stream: Sequence[Request],
    n_hosts: int,
    capacity: Capacity,
    policy: Policy,
    slos: Sequence[float],
    scorer: PlacementScorer,
    max_hosts: int,
    trained_max_tenants: int,
) -> list[SweepPoint]:
    """Per SLO: what the policy places on ``n_hosts``, and the smallest fleet (from the lower bound up to
    ``max_hosts``) on which it refuses nothing."""
    points = []
    for min_p in slos:
        on_fleet = outcome(
            place_stream(stream, n_hosts, capacity, policy, min_p, scorer), min_p, trained_max_tenants
        )
        needed: tuple[int | None, int | None] = (None, None)
        for size in range(hosts_lower_bound(stream, capacity), max_hosts + 1):
            everything = outcome(
                place_stream(stream, size, capacity, policy, min_p, scorer), min_p, trained_max_tenants
            )
            if everything.placed == len(stream):
                needed = (size, everything.violations)
                break
        points.append(SweepPoint(min_p, on_fleet.placed, on_fleet.violations, *needed))
    return points


def greedy_surprises(aware: Sequence[SweepPoint], packing: Sequence[SweepPoint]) -> dict[str, list]:
    """Where online greedy placement defies expectation (refusing one large workload can leave room for two
    small ones later): a stricter SLO placing more, or degradation-aware placing more than requests-only."""
    return {
        "stricter_slo_placed_more": [
            [lenient.min_p, strict.min_p]
            for lenient, strict in itertools.pairwise(aware)
            if strict.placed > lenient.placed
        ],
        "aware_placed_more_than_requests_only": [
            a.min_p for a, p in zip(aware, packing, strict=True) if a.placed > p.placed
        ],
    }


def requests_from_profiles(profiles: pl.DataFrame, cpu_metric: str, memory_metric: str) -> dict[str, Request]:
    """Each profile's requests: its mean CPU use (cores) and mean memory (bytes, as GiB) when alone. A metric
    missing from the profiles, or a profile without values of it, is an error naming it."""
    for parameter, metric in (("cpu_request_metric", cpu_metric), ("memory_request_metric", memory_metric)):
        if metric not in profiles.columns:
            raise ValueError(f"{parameter}: {metric!r} is not a metric of the profiles")
    means = profiles.group_by("profile_id").agg(
        pl.col(cpu_metric).mean().alias("cpu_cores"),
        (pl.col(memory_metric).mean() / 2**30).alias("memory_gib"),
    )
    unmeasured = means.filter(pl.col("cpu_cores").is_null() | pl.col("memory_gib").is_null())["profile_id"]
    if len(unmeasured):
        raise ValueError(f"profile {unmeasured[0]!r} has no values of the request metrics")
    return {row["profile_id"]: Request(**row) for row in means.iter_rows(named=True)}


class Scenario(BaseModel):
    """A consolidation study's parameters, checked before any work: a bad one fails naming it."""

    n_workloads: int = Field(ge=1)
    n_hosts: int = Field(ge=1)
    host_cpu_cores: float = Field(gt=0)
    host_memory_gib: float = Field(gt=0)
    min_p: float = Field(gt=0, le=1)
    slo_sweep: list[Annotated[float, Field(gt=0, le=1)]] = Field(min_length=1)
    max_hosts: int = Field(ge=1)
    seed: int

    @model_validator(mode="after")
    def _search_covers_the_fleet(self) -> Scenario:
        if self.max_hosts < self.n_hosts:
            raise ValueError(f"max_hosts ({self.max_hosts}) must be >= n_hosts ({self.n_hosts})")
        return self

    @property
    def capacity(self) -> Capacity:
        return Capacity(self.host_cpu_cores, self.host_memory_gib)


@dataclass
class Study:
    at_slo: dict[Policy, Outcome]  # each policy on the planned fleet at min_p
    sensitivity: dict[Policy, list[SweepPoint]]  # each policy per SLO of the sweep (ascending)
    surprises: dict[str, list]  # greedy_surprises


def study(
    stream: Sequence[Request], scenario: Scenario, scorer: PlacementScorer, trained_max_tenants: int
) -> Study:
    """Both policies at the SLO on the planned fleet, and over the SLO sweep."""
    capacity, slos = scenario.capacity, sorted(set(scenario.slo_sweep))
    at_slo = {
        policy: outcome(
            place_stream(stream, scenario.n_hosts, capacity, policy, scenario.min_p, scorer),
            scenario.min_p,
            trained_max_tenants,
        )
        for policy in POLICIES
    }
    sensitivity = {
        policy: sweep(
            stream, scenario.n_hosts, capacity, policy, slos, scorer, scenario.max_hosts, trained_max_tenants
        )
        for policy in POLICIES
    }
    surprises = greedy_surprises(sensitivity["degradation_aware"], sensitivity["requests_only"])
    return Study(at_slo, sensitivity, surprises)
