"""Rescheduling: a fleet is running and some tenants are slowed down by their neighbours; which tenants
should move, and where, to raise the worst predicted P with the fewest moves?

A fleet's value is (worst P, mean P) over its rated tenants (those whose P the models learnt; the others only
press on their neighbours), compared in that order. Hypotheticals are scored with the placement model from
solo profiles, cached per host contents. Greedy takes, step by step, the move that raises the value most and
stops when no move raises the worst P by ``min_gain`` or the budget is spent; the exact search (small fleets)
tries every plan of up to ``max_moves`` moves and is greedy's yardstick.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl
from cotenant.datasets.table import RunTable
from cotenant.models.base import MEDIAN
from cotenant.planning.consolidation import SLACK, Capacity, Request
from cotenant.planning.scoring import PlacementScorer
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

State = dict[str, str]  # tenant id -> host
Move = tuple[str, str, str]  # (tenant, from host, to host)
Value = tuple[float, float]  # (worst P, mean P) of the rated tenants: compared in this order


@dataclass(frozen=True)
class Fleet:
    tenants: Mapping[str, Request]  # tenant id -> its profile and requests
    hosts: tuple[str, ...]
    capacity: Capacity
    max_tenants_per_host: int
    rated: frozenset[str]  # tenants whose P counts in the fleet's value

    def fits(self, requests: list[Request]) -> bool:
        return (
            len(requests) <= self.max_tenants_per_host
            and sum(r.cpu_cores for r in requests) <= self.capacity.cpu_cores + SLACK
            and sum(r.memory_gib for r in requests) <= self.capacity.memory_gib + SLACK
        )

    def on(self, state: State, host: str) -> list[str]:
        return [tenant for tenant in self.tenants if state[tenant] == host]


@dataclass
class Planner:
    """Scores fleet states with ``scorer``, every host's contents scored once."""

    fleet: Fleet
    scorer: PlacementScorer
    _scored: dict[tuple[str, ...], dict[str, float]] = field(default_factory=dict)  # sorted profiles -> P

    def profiles_on(self, state: State, host: str) -> tuple[str, ...]:
        return tuple(sorted(self.fleet.tenants[t].profile_id for t in self.fleet.on(state, host)))

    def score_joining(self, newcomer: str, incumbents: list[tuple[str, ...]]) -> None:
        """P of everyone on each host if ``newcomer`` (a profile) joined it, in one call; fills the cache."""
        missing = [
            c for c in dict.fromkeys(incumbents) if c and tuple(sorted((*c, newcomer))) not in self._scored
        ]
        if not missing:
            return
        for contents, quantiles in zip(missing, self.scorer.joining(newcomer, missing), strict=True):
            p = quantiles[:, MEDIAN]
            by_profile = {profile: float(value) for profile, value in zip(contents, p[1:], strict=True)}
            self._scored[tuple(sorted((*contents, newcomer)))] = {**by_profile, newcomer: float(p[0])}

    def p_of(self, state: State) -> dict[str, float]:
        """Predicted P of every tenant in ``state`` (1 for a tenant alone on its host)."""
        view = {}
        for host in self.fleet.hosts:
            profiles = self.profiles_on(state, host)
            if len(profiles) > 1:
                self.score_joining(profiles[0], [profiles[1:]])
            for tenant in self.fleet.on(state, host):
                profile = self.fleet.tenants[tenant].profile_id
                view[tenant] = self._scored[profiles][profile] if len(profiles) > 1 else 1.0
        return view

    def value(self, state: State) -> Value:
        view = self.p_of(state)
        p = [view[t] for t in self.fleet.rated]
        return min(p), float(np.mean(p))

    def moves(self, state: State) -> list[Move]:
        """Every (tenant, from, to) the destination's capacity allows."""
        loads = {h: [self.fleet.tenants[t] for t in self.fleet.on(state, h)] for h in self.fleet.hosts}
        return [
            (t, state[t], h)
            for t in self.fleet.tenants
            for h in self.fleet.hosts
            if h != state[t] and self.fleet.fits([*loads[h], self.fleet.tenants[t]])
        ]


def moved(state: State, move: Move) -> State:
    return {**state, move[0]: move[2]}


@dataclass
class Plan:
    moves: list[Move]
    states: list[State]  # the start, then after each move
    values: list[Value]


def greedy_plan(planner: Planner, start: State, budget: int, min_gain: float) -> Plan:
    plan = Plan(moves=[], states=[start], values=[planner.value(start)])
    state = start
    while len(plan.moves) < budget and (candidates := planner.moves(state)):
        for tenant, request in planner.fleet.tenants.items():  # batched: one call per tenant
            destinations = [planner.profiles_on(state, to) for t, _, to in candidates if t == tenant]
            planner.score_joining(request.profile_id, destinations)
        value, move = max(((planner.value(moved(state, m)), m) for m in candidates), key=lambda o: o[0])
        if value[0] < plan.values[-1][0] + min_gain:
            break  # no move raises the worst P enough
        state = moved(state, move)
        plan.moves.append(move)
        plan.states.append(state)
        plan.values.append(value)
    return plan


def exact_state_bound(tenants: int, hosts: int, max_moves: int) -> int:
    """Distinct fleets within ``max_moves`` moves: at most C(n, j) tenant choices times (H - 1)^j places."""
    return sum(math.comb(tenants, j) * (hosts - 1) ** j for j in range(max_moves + 1))


def exact_plans(planner: Planner, start: State, max_moves: int) -> tuple[list[tuple[Value, list[Move]]], int]:
    """The best (value, plan) using at most j moves for j = 0..max_moves (breadth-first over fleet states; a
    fleet reached again later is not expanded again), and the number of fleet states visited."""
    tenants = list(planner.fleet.tenants)
    frontier: dict[tuple[str, ...], list[Move]] = {tuple(start[t] for t in tenants): []}
    seen = set(frontier)
    best = [(planner.value(start), list[Move]())]
    for _ in range(max_moves):
        layer: dict[tuple[str, ...], list[Move]] = {}
        for key, plan in frontier.items():
            here = dict(zip(tenants, key, strict=True))
            for move in planner.moves(here):
                reached = tuple(moved(here, move)[t] for t in tenants)
                if reached not in seen:
                    seen.add(reached)
                    layer[reached] = [*plan, move]
        found = [(planner.value(dict(zip(tenants, k, strict=True))), plan) for k, plan in layer.items()]
        best.append(max([best[-1], *found], key=lambda o: o[0]))  # ties keep the shorter plan
        frontier = layer
    return best, len(seen)


# ---- a fleet from recorded co-runs (the lab's profile ids state each tenant's requests) --------------------

_CPUS, _MEMORY_MB = re.compile(r"cpus=([\d.]+)"), re.compile(r"mem=(\d+)")


def lab_request(profile_id: str) -> Request:
    """A lab profile id's requests: the CPUs and memory (``cpus=``, ``mem=`` in MB) its cgroup had."""
    cpus, memory = _CPUS.search(profile_id), _MEMORY_MB.search(profile_id)
    if cpus is None or memory is None:
        raise ValueError(f"profile {profile_id!r}: no cpus=/mem= request in its id; cannot check capacity")
    return Request(profile_id, float(cpus[1]), float(memory[1]) / 1024.0)


def fleet_from_co_runs(
    table: RunTable,
    n_hosts: int,
    empty_hosts: int,
    capacity: Capacity,
    max_tenants_per_host: int,
    seed: int,
) -> tuple[Fleet, State]:
    """``n_hosts - empty_hosts`` busy hosts, each running the tenants of one recorded co-run that fits a host
    (drawn with ``seed``), and ``empty_hosts`` empty ones. Rated tenants: those the dataset labels as targets
    (the lab's pressure generators only ever ran as neighbours)."""
    runs = table.runs.filter(pl.col("target_profile").is_not_null()).sort("run_id")
    co_runs = [
        [t, *n] for t, n in zip(runs["target_profile"], runs["neighbour_profiles"].to_list(), strict=True)
    ]
    probe = Fleet({}, (), capacity, max_tenants_per_host, frozenset())
    fitting = [i for i, profiles in enumerate(co_runs) if probe.fits([lab_request(p) for p in profiles])]
    busy = n_hosts - empty_hosts
    if len(fitting) < busy:
        raise ValueError(
            f"n_hosts: {busy} busy hosts asked, only {len(fitting)} co-runs fit a host's capacity"
        )
    hosts = tuple(f"host-{h:02d}" for h in range(n_hosts))
    tenants: dict[str, Request] = {}
    start: State = {}
    for host, run in zip(
        hosts[:busy], sorted(np.random.default_rng(seed).choice(fitting, busy, replace=False)), strict=True
    ):
        for profile in co_runs[run]:
            tenant = f"w{len(tenants):02d}-{profile.split('/')[0]}"
            tenants[tenant], start[tenant] = lab_request(profile), host
    targets = set(runs["target_profile"])
    rated = frozenset(t for t, request in tenants.items() if request.profile_id in targets)
    return Fleet(tenants, hosts, capacity, max_tenants_per_host, rated), start


class Scenario(BaseModel):
    """A rescheduling study's parameters, checked before any work: a bad value fails here, with its name."""

    model_config = ConfigDict(extra="forbid")
    n_hosts: int = Field(ge=2)
    empty_hosts: int = Field(ge=0)
    host_cpus: float = Field(gt=0)
    host_memory_mb: float = Field(gt=0)
    max_tenants_per_host: int = Field(ge=2)
    move_budget: int = Field(ge=0)
    min_gain: float = Field(ge=0, lt=1)
    exact_moves: int = Field(ge=0)
    exact_max_states: int = Field(ge=1)
    placement_epochs: int = Field(ge=1)
    monitoring_model: str
    monitoring_options: dict[str, Any]

    @model_validator(mode="after")
    def _consistent(self) -> Scenario:
        from cotenant.models import MODELS

        if self.empty_hosts >= self.n_hosts:
            raise ValueError(f"empty_hosts ({self.empty_hosts}) must be below n_hosts ({self.n_hosts})")
        spec = MODELS.get(self.monitoring_model)
        if spec is None or spec.task != "monitoring":
            known = sorted(name for name, s in MODELS.items() if s.task == "monitoring")
            raise ValueError(f"monitoring_model {self.monitoring_model!r} is not one of {known}")
        try:
            spec.config_type.model_validate(self.monitoring_options)
        except ValidationError as error:
            raise ValueError(f"monitoring_options do not fit {self.monitoring_model}: {error}") from error
        return self

    @property
    def capacity(self) -> Capacity:
        return Capacity(self.host_cpus, self.host_memory_mb / 1024.0)


Verdicts = dict[str, tuple[float, str]]  # tenant -> (P by the monitoring model, where its inputs came from)


@dataclass
class Study:
    greedy: Plan
    exact: list[tuple[Value, list[Move]]]  # best plan with at most j moves, j = 0..exact_moves ([]: skipped)
    exact_states: int  # fleet states the exact search visited
    state_bound: int  # at most this many: the search is skipped above exact_max_states
    rechecks: list[Verdicts]  # the monitoring model on every state of the greedy plan

    @property
    def gap(self) -> list[float]:
        """Per move count, how far greedy's worst P stays under the exact optimum."""
        values = self.greedy.values
        return [value[0] - values[min(j, len(values) - 1)][0] for j, (value, _) in enumerate(self.exact)]

    def worst_monitored(self, rated: frozenset[str]) -> list[float]:
        return [min(view[t][0] for t in rated) for view in self.rechecks]


def study(
    planner: Planner, start: State, scenario: Scenario, monitoring: Callable[[State], Verdicts]
) -> Study:
    """The greedy plan, the exact search where it is small enough, and the monitoring re-check."""
    greedy = greedy_plan(planner, start, scenario.move_budget, scenario.min_gain)
    bound = exact_state_bound(len(planner.fleet.tenants), len(planner.fleet.hosts), scenario.exact_moves)
    runnable = scenario.exact_moves > 0 and bound <= scenario.exact_max_states
    exact, visited = exact_plans(planner, start, scenario.exact_moves) if runnable else ([], 0)
    return Study(greedy, exact, visited, bound, [monitoring(state) for state in greedy.states])


def key_values(study: Study, planner: Planner, start: State, models: dict[str, Any]) -> dict[str, Any]:
    """What a study found, as plain JSON values (tests and downstream reports read these)."""
    fleet, greedy, after = planner.fleet, study.greedy, study.greedy.states[-1]

    def moves(plan: list[Move]) -> list[dict[str, str]]:
        return [{"tenant": t, "from": a, "to": b} for t, a, b in plan]

    def verdicts(view: Verdicts) -> dict[str, dict[str, Any]]:
        return {t: {"p_monitoring": p, "series": series} for t, (p, series) in view.items()}

    return {
        "models": models,
        "tenants": {
            t: {
                "profile": r.profile_id,
                "cpus": r.cpu_cores,
                "memory_mb": r.memory_gib * 1024,
                "rated": t in fleet.rated,
            }
            for t, r in fleet.tenants.items()
        },
        "fleet_before": {h: fleet.on(start, h) for h in fleet.hosts},
        "fleet_after": {h: fleet.on(after, h) for h in fleet.hosts},
        "current": verdicts(study.rechecks[0]),
        "placement_before": planner.p_of(start),
        "placement_after": planner.p_of(after),
        "greedy": {
            "moves": moves(greedy.moves),
            "worst_by_moves": [w for w, _ in greedy.values],
            "mean_by_moves": [m for _, m in greedy.values],
        },
        "exact": {
            "max_moves": len(study.exact) - 1,
            "states": study.exact_states,
            "worst_by_moves": [v[0] for v, _ in study.exact],
            "mean_by_moves": [v[1] for v, _ in study.exact],
            "moves": moves(study.exact[-1][1]),
        }
        if study.exact
        else None,
        "gap_by_moves": study.gap,
        "monitoring_recheck": {
            "worst_by_moves": study.worst_monitored(fleet.rated),
            "after": verdicts(study.rechecks[-1]),
            "solo_profile_fallbacks_after": sum(s == "solo profiles" for _, s in study.rechecks[-1].values()),
        },
    }
