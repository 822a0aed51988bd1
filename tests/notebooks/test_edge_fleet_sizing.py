"""The edge fleet sizing notebook, executed on a small scenario (12 apps, fleets of up to 6 nodes)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

# Every test here reads a notebook executed by a real kernel (tens of seconds): the cost is the module's.
pytestmark = pytest.mark.slow

# the simulator's default first run and cap: a shorter first run misjudges loaded nodes
SMALL = {"n_apps": 12, "app_counts": [4, 8, 12], "max_nodes": 6, "seed": 7}


@pytest.fixture(scope="module")
def values(run_notebook: Callable[..., dict[str, Any]]) -> dict[str, Any]:
    return run_notebook("edge_fleet_sizing", **SMALL)


def test_model_driven_sizes_hold_in_simulation(values: dict[str, Any]) -> None:
    for kind, rows in values["sizing"].items():
        for policy in values["model_driven"]:
            row = rows[policy]
            assert row["by_rule"] is not None, (kind, policy)
            # the admission test alone picked the fleet; the simulator must find no violation there
            assert row["violations_at_rule"] == 0, (kind, policy)
            assert row["zero_violation"] == row["by_rule"], (kind, policy)


def test_tpu_knapsack_overloads_and_model_driven_needs_no_more_nodes(values: dict[str, Any]) -> None:
    tpu = values["sizing"]["tpu"]
    # memory-only packing puts all 12 TPU apps on one Coral: the simulator shows them over their SLO
    assert tpu["first_fit"]["by_rule"] == 1 and tpu["first_fit"]["violations_at_rule"] > 0
    knapsack = [tpu[p]["zero_violation"] for p in ("first_fit", "best_fit", "worst_fit")]
    best_knapsack = min(n for n in knapsack if n is not None)
    assert min(tpu[p]["zero_violation"] for p in values["model_driven"]) <= best_knapsack


def test_without_a_catalogue_the_workload_files_profiles_are_used(values: dict[str, Any]) -> None:
    assert values["profiles_from"].startswith("no tracking_uri given")
    assert values["apps_with_catalogue_profiles"] == {"tpu": [], "gpu": []}


def test_refused_apps_and_monotone_trend(values: dict[str, Any]) -> None:
    # ResNet-50 at 10 req/s fails lambda*T < 0.8 even alone on a Jetson (T about 83 ms)
    assert values["refused_alone"] == {"tpu": [], "gpu": ["resnet50"]}
    for kind, per_policy in values["trend"].items():
        for policy in values["model_driven"]:
            nodes = per_policy[policy]
            assert None not in nodes, (kind, policy)
            assert nodes == sorted(nodes), (kind, policy)  # more apps never need fewer nodes
        # depth-first fills nodes one after another, so three times the apps need more nodes; breadth-first
        # may not (one model per node: more apps of the same models join the nodes already serving them)
        assert per_policy["depth_first"][-1] > per_policy["depth_first"][0], kind
    assert all(Path(figure).is_file() for figure in values["figures"])


def test_helper_rejects_a_missing_notebook(run_notebook: Callable[..., dict[str, Any]]) -> None:
    with pytest.raises(FileNotFoundError, match="no notebook"):
        run_notebook("no_such_notebook")
