"""Rescheduling planning against the known scorer of test_consolidation: greedy raises the worst P move by
move and stops when nothing helps, the exact search is never worse and agrees with greedy's first move,
moves respect capacity, and unrated tenants press on others without counting."""

from __future__ import annotations

import pytest
from cotenant.planning import (
    Capacity,
    Fleet,
    Planner,
    Request,
    exact_plans,
    exact_state_bound,
    greedy_plan,
)
from test_consolidation import KnownScorer

HOST = Capacity(cpu_cores=4.0, memory_gib=16.0)


def fleet(tenants: dict[str, str], rated: set[str] | None = None, max_tenants: int = 3) -> Fleet:
    return Fleet(
        tenants={t: Request(profile, 1.0, 2.0) for t, profile in tenants.items()},
        hosts=("a", "b", "c"),
        capacity=HOST,
        max_tenants_per_host=max_tenants,
        rated=frozenset(rated if rated is not None else tenants),
    )


TENANTS = {"w0": "noisy", "w1": "calm", "w2": "busy", "w3": "calm"}
START = {"w0": "a", "w1": "a", "w2": "b", "w3": "b"}


def test_greedy_raises_the_worst_p_and_exact_is_never_worse() -> None:
    planner = Planner(fleet(TENANTS), KnownScorer())
    before = planner.p_of(START)
    assert before["w1"] == pytest.approx(1 / 2.5)  # the calm tenant beside the noisy one: the worst
    plan = greedy_plan(planner, START, budget=3, min_gain=0.005)
    worst = [value[0] for value in plan.values]
    assert worst == sorted(worst) and worst[-1] > worst[0] + 0.3
    # the first move takes the noisy tenant (or its victim) to the empty host
    assert plan.moves[0][2] == "c" and plan.moves[0][0] in ("w0", "w1")
    assert len(plan.states) == len(plan.moves) + 1
    best, visited = exact_plans(planner, START, max_moves=2)
    assert visited <= exact_state_bound(4, 3, 2)
    assert best[1][0] == plan.values[1]  # greedy's first step is the best single move
    for j, (value, moves) in enumerate(best):
        assert len(moves) <= j
        assert value >= plan.values[min(j, len(plan.values) - 1)]


def test_moves_respect_capacity_and_nothing_moves_when_nothing_helps() -> None:
    crowded = fleet(TENANTS, max_tenants=2)
    planner = Planner(crowded, KnownScorer())
    for tenant, _, to in planner.moves(START):
        assert to == "c", tenant  # a and b hold 2 each: full at max 2 tenants
    calm = fleet({"w0": "calm", "w1": "calm"})
    spread = Planner(calm, KnownScorer())
    plan = greedy_plan(spread, {"w0": "a", "w1": "b"}, budget=3, min_gain=0.005)
    assert plan.moves == [] and plan.values == [(1.0, 1.0)]  # alone everywhere: nothing to gain


def test_unrated_tenants_press_but_do_not_count() -> None:
    planner = Planner(fleet(TENANTS, rated={"w1", "w3"}), KnownScorer())
    worst, mean = planner.value(START)
    view = planner.p_of(START)
    assert worst == min(view["w1"], view["w3"]) and mean == pytest.approx((view["w1"] + view["w3"]) / 2)
    plan = greedy_plan(planner, START, budget=2, min_gain=0.005)
    assert plan.values[-1][0] > worst
