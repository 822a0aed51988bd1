"""Extender protocol mapping on kube-scheduler's own request shapes (a full v1.Pod and v1.NodeList)."""

from __future__ import annotations

import json
from typing import cast

import numpy as np
from conftest import fixture_json
from cotenant.serving.config import ServiceSettings
from cotenant.serving.extender import (
    NEUTRAL_EXTENDER_SCORE,
    ExtenderArgs,
    extender_scores,
    failure_reason,
    filter_result,
    infeasible_positions,
    node_names,
    prioritize_body,
    prioritize_result,
    read_pod,
)
from cotenant.serving.hosts import HostIndex
from cotenant.serving.models import LoadedModel
from cotenant.serving.schemas import EstimateView, HostPlacement
from cotenant.serving.scoring import NEUTRAL_SCORE, CandidateScores


def candidate_scores(
    hosts: list[str], raw: list[float | None], expected_misses: list[float] | None = None
) -> CandidateScores:
    """Scores as ``score_candidates`` returns them; None marks a host that was not scored (neutral); with
    ``expected_misses`` as the ``expected_misses`` rule has them (NaN where not scored)."""
    scored = np.array([value is not None for value in raw])
    values = np.array([NEUTRAL_SCORE if value is None else value for value in raw])
    unscored = {i: ("unknown_host", "no telemetry") for i, value in enumerate(raw) if value is None}
    rows = np.where(scored, np.arange(len(hosts)), -1)
    newcomer = np.where(scored, values, np.nan)
    no_model = cast("LoadedModel", None)  # only explain() reads the model and the index; never called here
    no_index = HostIndex("m/1", 0, {}, [], np.zeros(0), np.zeros(0, dtype=bool), None)
    clipped = np.clip(values, 0, 1)
    return CandidateScores(
        hosts,
        np.zeros(1),
        no_model,
        no_index,
        rows,
        unscored,
        scored,
        values,
        clipped,
        newcomer,
        newcomer,
        None if expected_misses is None else np.where(scored, expected_misses, np.nan),
    )


def test_full_pod_and_node_list_parse_and_keep_their_fields() -> None:
    args = ExtenderArgs.model_validate(
        {"Pod": fixture_json("pod.json"), "Nodes": fixture_json("nodelist.json")}
    )
    assert node_names(args) == ["node-a", "node-b", "node-c"]
    pod = read_pod(args.Pod, ServiceSettings(tracking_uri="sqlite://"))
    assert pod.pod == "shop/web-frontend-7d4b9c8f6-x2kqp"
    assert pod.profile_id == "web" and pod.min_performance == 0.05 and pod.reasons == []
    echoed = filter_result(args, {}).model_dump(exclude_none=True)
    assert echoed["Nodes"]["items"][0]["status"]["allocatable"]["cpu"] == "7910m"  # nodes come back whole
    # the pod is read, never echoed: its spec, status and managedFields are skipped, not parsed into dicts
    assert args.Pod.model_extra is None or args.Pod.model_extra == {}
    assert not args.Pod.metadata.model_extra


def test_profile_key_is_configurable_and_bad_minimum_is_ignored_with_a_reason() -> None:
    pod = fixture_json("pod.json")
    pod["metadata"]["annotations"]["example.com/workload"] = "batch"
    pod["metadata"]["annotations"]["cotenant.io/min-performance"] = "high"
    settings = ServiceSettings(tracking_uri="sqlite://", profile_key="example.com/workload")
    request = read_pod(ExtenderArgs.model_validate({"Pod": pod, "NodeNames": []}).Pod, settings)
    assert request.profile_id == "batch"
    assert request.min_performance == 0.0 and "not in [0, 1]" in request.reasons[0]


def test_only_scored_nodes_below_the_minimum_are_infeasible() -> None:
    scores = candidate_scores(["node-a", "node-b", "node-c"], [0.9, 0.3, None])
    assert infeasible_positions(scores, 0.5) == [1]  # node-c is unknown: neutral, it passes
    assert infeasible_positions(scores, 0.0) == []
    assert infeasible_positions(None, 1.0) == []  # unknown pod: every node passes


def test_by_expected_misses_a_node_fails_only_where_placing_costs_a_whole_miss() -> None:
    """The pod's median under its minimum (node-a, node-b) is no reason to fail a node by this rule: leaving
    the pod pending costs one miss for certain, and a node expected to cost less is better."""
    hosts = ["node-a", "node-b", "node-c", "node-d"]
    scores = candidate_scores(hosts, [0.5, 0.7, 0.95, None], expected_misses=[1.0, 0.62, 0.04, 0.0])
    assert infeasible_positions(scores, 0.8) == [0]  # by the medians: [0, 1]
    assert infeasible_positions(candidate_scores(hosts, [0.5, 0.7, 0.95, None]), 0.8) == [0, 1]
    assert extender_scores(scores, 0.8) == [0, 4, 10, NEUTRAL_EXTENDER_SCORE]


def test_filter_fails_the_named_nodes_in_both_request_forms() -> None:
    failed = {"node-b": "cotenant: predicted newcomer P 0.30 below the minimum"}
    by_list = ExtenderArgs.model_validate(
        {"Pod": fixture_json("pod.json"), "Nodes": fixture_json("nodelist.json")}
    )
    result = filter_result(by_list, failed)
    assert [n.metadata.name for n in result.Nodes.items or []] == ["node-a", "node-c"]
    assert result.FailedNodes == failed
    by_name = ExtenderArgs.model_validate(
        {"Pod": fixture_json("pod.json"), "NodeNames": ["node-a", "node-b"]}
    )
    named = filter_result(by_name, failed)
    assert named.NodeNames == ["node-a"] and named.Nodes is None


def test_failure_reason_gives_both_predictions_and_the_driving_resource() -> None:
    def estimate(p: float, driver: str) -> EstimateView:
        return EstimateView(p=p, lower=p - 0.1, upper=p, drivers={driver: 1.0}, driving_resource=driver)

    placement = HostPlacement(
        host="node-b",
        status="scored",
        newcomer=estimate(0.3, "cpu"),
        worst_incumbent=estimate(0.4, "io"),
        worst_incumbent_target="kubepods/pod0",
        driving_resource="cpu",
        feasible=False,
        score=0.3,
    )
    reason = failure_reason(placement)
    assert "newcomer P 0.30" in reason and "kubepods/pod0 P 0.40" in reason and "cpu" in reason


def test_reply_keys_are_kube_schedulers_capitalised_field_names() -> None:
    args = ExtenderArgs.model_validate({"Pod": fixture_json("pod.json"), "NodeNames": ["node-a"]})
    reply = json.loads(filter_result(args, {}).model_dump_json())
    assert set(reply) == {"Nodes", "NodeNames", "FailedNodes", "FailedAndUnresolvableNodes", "Error"}
    scores = prioritize_result(
        ["node-a", "node-b", "node-c", "node-d"],
        candidate_scores(["node-a", "node-b", "node-c", "node-d"], [0.83, None, 1.7, 0.25]),
    )
    assert json.loads(scores.model_dump_json()) == [
        {"Host": "node-a", "Score": 8},
        {"Host": "node-b", "Score": NEUTRAL_EXTENDER_SCORE},
        {"Host": "node-c", "Score": 10},  # clipped to the protocol's range
        {"Host": "node-d", "Score": 2},  # round half to even, as Python's round
    ]
    unknown = prioritize_result(["node-a"], None)
    assert unknown.root[0].Score == NEUTRAL_EXTENDER_SCORE


def test_prioritize_spreads_the_headroom_above_the_pods_minimum_over_the_eleven_levels() -> None:
    """With a minimum of 0.8, P 0.86 and 0.94 are different answers (3 and 7), not both 9 as round(10 x P)
    would have them; a node under the minimum scores 0, an unscored one stays neutral, and a pod without a
    minimum gets round(10 x P)."""
    names = ["at-min", "low", "high", "top", "under", "unknown"]
    scores = candidate_scores(names, [0.8, 0.86, 0.94, 1.0, 0.5, None])
    assert extender_scores(scores, 0.8) == [0, 3, 7, 10, 0, NEUTRAL_EXTENDER_SCORE]
    assert extender_scores(scores, 0.0) == [8, 9, 9, 10, 5, NEUTRAL_EXTENDER_SCORE]
    assert extender_scores(scores) == extender_scores(scores, 0.0)
    assert extender_scores(scores, 1.0) == [0, 0, 0, 10, 0, NEUTRAL_EXTENDER_SCORE]  # only a host at P = 1
    body = json.loads(prioritize_body(names, scores, 0.8))
    assert [entry["Score"] for entry in body] == [0, 3, 7, 10, 0, NEUTRAL_EXTENDER_SCORE]
    assert prioritize_result(names, scores, 0.8).root[2].Score == 7


def test_the_prioritize_body_escapes_any_node_name_as_json_does() -> None:
    names = ['node "quoted"', "nœud-\u00e9", "back\\slash", "tab\there", ""]
    body = prioritize_body(names, candidate_scores(names, [0.5, 0.91, None, 0.0, 1.0]))
    assert json.loads(body) == [
        {"Host": 'node "quoted"', "Score": 5},
        {"Host": "nœud-\u00e9", "Score": 9},
        {"Host": "back\\slash", "Score": NEUTRAL_EXTENDER_SCORE},
        {"Host": "tab\there", "Score": 0},
        {"Host": "", "Score": 10},
    ]
    assert prioritize_body([], None) == "[]"
