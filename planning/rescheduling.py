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
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from cotenant.models.base import MEDIAN
from cotenant.planning.consolidation import SLACK, Capacity, Request
from cotenant.planning.scoring import PlacementScorer

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
