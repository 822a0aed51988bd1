"""Extender protocol mapping on kube-scheduler's own request shapes (a full v1.Pod and v1.NodeList)."""

from __future__ import annotations

import json

from conftest import fixture_json
from cotenant.serving.config import ServiceSettings
from cotenant.serving.extender import (
    NEUTRAL_EXTENDER_SCORE,
    ExtenderArgs,
    filter_result,
    node_names,
    prioritize_result,
    read_pod,
)
from cotenant.serving.schemas import EstimateView, HostPlacement


def estimate(p: float, driver: str = "cpu") -> EstimateView:
    return EstimateView(p=p, lower=p - 0.1, upper=p + 0.05, drivers={driver: 1.0}, driving_resource=driver)


def scored(host: str, p: float, feasible: bool) -> HostPlacement:
    return HostPlacement(
        host=host,
        status="scored",
        newcomer=estimate(p),
        worst_incumbent=estimate(p + 0.1, "io"),
        worst_incumbent_target="kubepods/pod0",
        driving_resource="cpu",
        feasible=feasible,
        score=p,
    )


def test_full_pod_and_node_list_parse_and_keep_their_fields() -> None:
    args = ExtenderArgs.model_validate(
        {"Pod": fixture_json("pod.json"), "Nodes": fixture_json("nodelist.json")}
    )
    assert node_names(args) == ["node-a", "node-b", "node-c"]
    pod = read_pod(args.Pod, ServiceSettings(tracking_uri="sqlite://"))
    assert pod.pod == "shop/web-frontend-7d4b9c8f6-x2kqp"
    assert pod.profile_id == "web" and pod.min_performance == 0.05 and pod.reasons == []
    echoed = filter_result(args, None).model_dump(exclude_none=True)
    assert echoed["Nodes"]["items"][0]["status"]["allocatable"]["cpu"] == "7910m"  # nodes come back whole


def test_profile_key_is_configurable_and_bad_minimum_is_ignored_with_a_reason() -> None:
    pod = fixture_json("pod.json")
    pod["metadata"]["annotations"]["example.com/workload"] = "batch"
    pod["metadata"]["annotations"]["cotenant.io/min-performance"] = "high"
    settings = ServiceSettings(tracking_uri="sqlite://", profile_key="example.com/workload")
    request = read_pod(ExtenderArgs.model_validate({"Pod": pod, "NodeNames": []}).Pod, settings)
    assert request.profile_id == "batch"
    assert request.min_performance == 0.0 and "not in [0, 1]" in request.reasons[0]


def test_filter_fails_infeasible_nodes_with_a_reason_in_both_request_forms() -> None:
    placements = [scored("node-a", 0.9, True), scored("node-b", 0.3, False)]
    by_list = ExtenderArgs.model_validate(
        {"Pod": fixture_json("pod.json"), "Nodes": fixture_json("nodelist.json")}
    )
    result = filter_result(by_list, placements)
    assert [n.metadata.name for n in result.Nodes.items or []] == ["node-a", "node-c"]
    assert "newcomer P 0.30" in result.FailedNodes["node-b"] and "cpu" in result.FailedNodes["node-b"]
    by_name = ExtenderArgs.model_validate(
        {"Pod": fixture_json("pod.json"), "NodeNames": ["node-a", "node-b"]}
    )
    named = filter_result(by_name, placements)
    assert named.NodeNames == ["node-a"] and named.Nodes is None


def test_reply_keys_are_kube_schedulers_capitalised_field_names() -> None:
    args = ExtenderArgs.model_validate({"Pod": fixture_json("pod.json"), "NodeNames": ["node-a"]})
    reply = json.loads(filter_result(args, []).model_dump_json())
    assert set(reply) == {"Nodes", "NodeNames", "FailedNodes", "FailedAndUnresolvableNodes", "Error"}
    scores = prioritize_result(["node-a", "node-b"], [scored("node-a", 0.83, True)])
    assert [s.model_dump() for s in scores] == [
        {"Host": "node-a", "Score": 8},
        {"Host": "node-b", "Score": NEUTRAL_EXTENDER_SCORE},
    ]
    unknown = prioritize_result(["node-a"], None)
    assert unknown[0].Score == NEUTRAL_EXTENDER_SCORE
