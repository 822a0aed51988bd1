"""The Kubernetes scheduler extender protocol (filter and prioritize verbs) mapped onto placement scoring.

kube-scheduler's Go structs (k8s.io/kube-scheduler/extender/v1) carry no JSON tags, so the keys are the
capitalised field names. Objects are parsed leniently (``extra="allow"``): only names, labels and annotations
are read, and nodes are echoed back untouched. Nothing here fails scheduling: an unknown profile, an unknown
or stale host, or a missing champion gives every node a pass and the neutral score, with the reason logged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cotenant.serving.config import ServiceSettings
from cotenant.serving.schemas import HostPlacement
from pydantic import BaseModel, ConfigDict, Field

MAX_EXTENDER_SCORE = 10  # extenderv1.MaxExtenderPriority
NEUTRAL_EXTENDER_SCORE = MAX_EXTENDER_SCORE // 2


class KubeModel(BaseModel):
    model_config = ConfigDict(extra="allow")


class ObjectMeta(KubeModel):
    name: str = ""
    namespace: str | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None


class Pod(KubeModel):
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)


class Node(KubeModel):
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)


class NodeList(KubeModel):
    items: list[Node] | None = None


class ExtenderArgs(KubeModel):
    """What kube-scheduler POSTs to ``{urlPrefix}/{verb}``.

    ``Nodes`` (a full v1.NodeList) unless the extender is nodeCacheCapable, then ``NodeNames``.
    """

    Pod: Pod
    Nodes: NodeList | None = None
    NodeNames: list[str] | None = None


class ExtenderFilterResult(BaseModel):
    Nodes: NodeList | None = None
    NodeNames: list[str] | None = None
    FailedNodes: dict[str, str] = Field(default_factory=dict)
    FailedAndUnresolvableNodes: dict[str, str] = Field(default_factory=dict)
    Error: str = ""


class HostPriority(BaseModel):
    Host: str
    Score: int = Field(ge=0, le=MAX_EXTENDER_SCORE)


def node_names(args: ExtenderArgs) -> list[str]:
    if args.NodeNames is not None:
        return list(args.NodeNames)
    if args.Nodes is not None and args.Nodes.items:
        return [node.metadata.name for node in args.Nodes.items]
    return []


def pod_value(pod: Pod, key: str) -> str | None:
    """A label, else an annotation, of the pod."""
    for source in (pod.metadata.labels, pod.metadata.annotations):
        if source and key in source:
            return source[key]
    return None


@dataclass
class PodRequest:
    """The extender's view of a pod: which profile, which minimum P, and why not, if it cannot be scored."""

    pod: str
    profile_id: str | None
    min_performance: float
    reasons: list[str] = field(default_factory=list)


def read_pod(pod: Pod, settings: ServiceSettings) -> PodRequest:
    name = f"{pod.metadata.namespace or 'default'}/{pod.metadata.name}"
    request = PodRequest(pod=name, profile_id=pod_value(pod, settings.profile_key), min_performance=0.0)
    request.min_performance = settings.default_min_performance
    raw_min = pod_value(pod, settings.min_performance_key)
    if raw_min is not None:
        try:
            value = float(raw_min)
            if not 0.0 <= value <= 1.0:
                raise ValueError
            request.min_performance = value
        except ValueError:
            request.reasons.append(f"{settings.min_performance_key}={raw_min!r} is not in [0, 1]; ignored")
    if request.profile_id is None:
        request.reasons.append(f"pod has no {settings.profile_key} label or annotation")
    return request


def filter_result(args: ExtenderArgs, placements: list[HostPlacement] | None) -> ExtenderFilterResult:
    """Infeasible nodes fail with the predicted P and the driving resource; every other node passes."""
    failed: dict[str, str] = {}
    for placement in placements or []:
        if placement.feasible is False:
            failed[placement.host] = failure_reason(placement)
    if args.NodeNames is not None:
        return ExtenderFilterResult(
            NodeNames=[n for n in args.NodeNames if n not in failed], FailedNodes=failed
        )
    items = args.Nodes.items if args.Nodes is not None and args.Nodes.items else []
    kept = NodeList(items=[node for node in items if node.metadata.name not in failed])
    return ExtenderFilterResult(Nodes=kept, FailedNodes=failed)


def failure_reason(placement: HostPlacement) -> str:
    parts = []
    if placement.newcomer is not None:
        parts.append(f"newcomer P {placement.newcomer.p:.2f}")
    if placement.worst_incumbent is not None:
        parts.append(
            f"worst incumbent {placement.worst_incumbent_target} P {placement.worst_incumbent.p:.2f}"
        )
    driver = f", driven by {placement.driving_resource}" if placement.driving_resource else ""
    return f"cotenant: predicted {' and '.join(parts)} below the minimum{driver}"


def extender_score(placement: HostPlacement) -> int:
    if placement.status != "scored":
        return NEUTRAL_EXTENDER_SCORE
    return max(0, min(MAX_EXTENDER_SCORE, round(placement.score * MAX_EXTENDER_SCORE)))


def prioritize_result(names: list[str], placements: list[HostPlacement] | None) -> list[HostPriority]:
    """Scores in the order kube-scheduler sent the nodes; neutral for any node not scored."""
    by_host = {placement.host: placement for placement in placements or []}
    return [
        HostPriority(
            Host=name, Score=extender_score(by_host[name]) if name in by_host else NEUTRAL_EXTENDER_SCORE
        )
        for name in names
    ]


def neutral_reasons(placements: list[HostPlacement]) -> dict[str, Any]:
    return {p.host: p.reason for p in placements if p.status != "scored"}
