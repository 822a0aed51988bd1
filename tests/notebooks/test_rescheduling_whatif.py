"""The rescheduling what-if notebook on a small fleet (4 busy hosts), with models trained in the notebook."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cotenant.datasets import load_source
from papermill.exceptions import PapermillExecutionError

# Every test here reads a notebook executed by a real kernel (tens of seconds): the cost is the module's.
pytestmark = pytest.mark.slow

# Small enough for the exact search over 2 moves to take well under a second; models trained here (no URI).
SMALL = {"n_hosts": 4, "empty_hosts": 0, "move_budget": 4, "exact_moves": 2, "seed": 0}
TOLERANCE = 1e-9  # values round-trip through JSON exactly; this only absorbs float summation order


@pytest.fixture(scope="module")
def values(run_notebook: Callable[..., dict[str, Any]]) -> dict[str, Any]:
    return run_notebook("rescheduling_whatif", **SMALL)


def within_capacity(tenants: list[str], values: dict[str, Any]) -> bool:
    scenario, requests = values["scenario"], values["tenants"]
    return (
        len(tenants) <= scenario["max_tenants_per_host"]
        and sum(requests[t]["cpus"] for t in tenants) <= scenario["host_cpus"]
        and sum(requests[t]["memory_mb"] for t in tenants) <= scenario["host_memory_mb"]
    )


def rated_minimum(p_by_tenant: dict[str, float], values: dict[str, Any]) -> float:
    """The fleet's worst P: over tenants with learnt P (targets in the dataset), not pressure generators."""
    return min(p for tenant, p in p_by_tenant.items() if values["tenants"][tenant]["rated"])


def replay(values: dict[str, Any], moves: list[dict[str, str]]) -> dict[str, set[str]]:
    """Apply the moves to the starting fleet one by one, checking capacity after each."""
    fleet = {host: set(tenants) for host, tenants in values["fleet_before"].items()}
    for step, move in enumerate(moves):
        assert move["tenant"] in fleet[move["from"]], (step, move)
        assert move["to"] != move["from"], (step, move)
        fleet[move["from"]].remove(move["tenant"])
        fleet[move["to"]].add(move["tenant"])
        assert within_capacity(sorted(fleet[move["to"]]), values), (step, move)
    return fleet


def test_models_are_trained_in_the_notebook_without_a_tracking_uri(values: dict[str, Any]) -> None:
    models = values["models"]
    assert models["cotenant-monitoring"]["origin"] == "trained here"
    assert models["cotenant-monitoring"]["model"] == "decision-tree"
    assert models["cotenant-placement"] == {"model": "placement", "version": "1", "origin": "trained here"}


def test_champions_of_a_tracking_uri_are_loaded_not_retrained(
    run_notebook: Callable[..., dict[str, Any]], values: dict[str, Any]
) -> None:
    # the first run trained into a store in its working directory (where its charts are)
    store = Path(values["figures"][0]).parent / "rescheduling-mlflow.db"
    assert store.is_file()
    again = run_notebook(
        "rescheduling_whatif", **{**SMALL, "exact_moves": 0, "tracking_uri": f"sqlite:///{store}"}
    )
    assert {m["origin"] for m in again["models"].values()} == {"champion"}
    assert {n: m["version"] for n, m in again["models"].items()} == {
        n: m["version"] for n, m in values["models"].items()
    }
    # the same seed draws the same fleet, and the loaded champions predict what the trained models did
    assert again["fleet_before"] == values["fleet_before"]
    assert again["current"] == values["current"]
    # float32 models: a loaded champion may run with another thread count, so sums differ in the last bits
    assert again["placement_before"] == pytest.approx(values["placement_before"], rel=1e-6)
    assert again["exact"] is None and again["gap_by_moves"] == []


def test_fleet_starts_within_capacity_with_recorded_co_runs(values: dict[str, Any]) -> None:
    before = values["fleet_before"]
    placed = [t for tenants in before.values() for t in tenants]
    assert sorted(placed) == sorted(values["tenants"])  # every tenant on exactly one host
    assert all(within_capacity(tenants, values) for tenants in before.values())
    assert sum(1 for tenants in before.values() if tenants) == SMALL["n_hosts"] - SMALL["empty_hosts"]
    # each busy host is a recorded co-run: at least its target is predicted from recorded telemetry
    # rated: the workload was a labelled target in the dataset (the lab's pressure generators never were)
    targets = set(load_source("bundled").runs["target_profile"].drop_nulls())
    for tenant, row in values["tenants"].items():
        assert row["rated"] == (row["profile"] in targets), tenant
    assert any(row["rated"] for row in values["tenants"].values())
    series = [row["series"] for row in values["current"].values()]
    assert series.count("co-run telemetry") >= SMALL["n_hosts"] - SMALL["empty_hosts"]
    assert set(series) <= {"co-run telemetry", "solo profiles", "alone"}


def test_greedy_raises_the_worst_p_within_budget_and_capacity(values: dict[str, Any]) -> None:
    greedy, min_gain = values["greedy"], values["scenario"]["min_gain"]
    worst, moves = greedy["worst_by_moves"], greedy["moves"]
    assert len(moves) <= SMALL["move_budget"]
    assert len(worst) == len(greedy["mean_by_moves"]) == len(moves) + 1
    assert worst[-1] >= worst[0]
    for before, after in itertools.pairwise(worst):
        assert after >= before + min_gain - TOLERANCE  # a move is taken only when it helps enough
    assert worst[0] == pytest.approx(rated_minimum(values["placement_before"], values), abs=TOLERANCE)
    assert worst[-1] == pytest.approx(rated_minimum(values["placement_after"], values), abs=TOLERANCE)
    fleet = replay(values, moves)
    assert fleet == {host: set(tenants) for host, tenants in values["fleet_after"].items()}


def test_exact_search_bounds_greedy(values: dict[str, Any]) -> None:
    exact, greedy_worst = values["exact"], values["greedy"]["worst_by_moves"]
    assert exact is not None and exact["max_moves"] == SMALL["exact_moves"]
    best = exact["worst_by_moves"]
    assert len(best) == SMALL["exact_moves"] + 1
    assert best[0] == greedy_worst[0]  # no move: the same fleet
    assert best == sorted(best)  # more moves allowed never make the optimum worse
    for moves, optimum in enumerate(best):
        greedy_then = greedy_worst[min(moves, len(greedy_worst) - 1)]  # greedy stays once it stops
        assert greedy_then <= optimum + TOLERANCE, moves
        assert values["gap_by_moves"][moves] == pytest.approx(optimum - greedy_then, abs=TOLERANCE)
        assert values["gap_by_moves"][moves] >= -TOLERANCE
    assert len(exact["moves"]) <= SMALL["exact_moves"]
    replay(values, exact["moves"])


def test_monitoring_recheck_of_the_plan(values: dict[str, Any]) -> None:
    recheck, before = values["monitoring_recheck"], values["current"]
    after = recheck["after"]
    assert set(after) == set(before) == set(values["tenants"])
    for row in [*before.values(), *after.values()]:
        assert 0.0 < row["p_monitoring"] <= 1.0
    assert len(recheck["worst_by_moves"]) == len(values["greedy"]["moves"]) + 1
    assert recheck["worst_by_moves"][0] == rated_minimum(
        {t: r["p_monitoring"] for t, r in before.items()}, values
    )
    assert recheck["worst_by_moves"][-1] == rated_minimum(
        {t: r["p_monitoring"] for t, r in after.items()}, values
    )
    fallbacks = sum(row["series"] == "solo profiles" for row in after.values())
    assert recheck["solo_profile_fallbacks_after"] == fallbacks
    # tenants whose host the plan left untouched see the same inputs, so the same prediction
    touched = {m[side] for m in values["greedy"]["moves"] for side in ("from", "to")}
    for host, tenants in values["fleet_before"].items():
        if host not in touched:
            for tenant in tenants:
                assert after[tenant] == before[tenant], tenant


def test_charts_are_written(values: dict[str, Any]) -> None:
    assert len(values["figures"]) == 2
    for figure in values["figures"]:
        assert Path(figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", figure


@pytest.mark.parametrize(
    ("bad", "named"),
    [({"n_hosts": 1}, "n_hosts"), ({"monitoring_options": {"no_such_option": 1}}, "monitoring_options")],
)
def test_a_bad_parameter_fails_naming_it(
    run_notebook: Callable[..., dict[str, Any]], bad: dict[str, Any], named: str
) -> None:
    with pytest.raises(PapermillExecutionError, match=named):
        run_notebook("rescheduling_whatif", **{**SMALL, **bad})
