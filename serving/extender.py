"""The Kubernetes scheduler extender protocol (filter and prioritize verbs) mapped onto placement scoring.

kube-scheduler's Go structs (k8s.io/kube-scheduler/extender/v1) carry no JSON tags, so the keys are the
capitalised field names. Only what the verbs use is kept from the request: the pod's name, labels and
annotations (its spec and status are skipped unparsed, ``extra="ignore"``) and the node names; full nodes
(``Nodes``, when the extender is not nodeCacheCapable) keep every field because ``filter`` echoes them back.
Nothing here fails scheduling: an unknown profile, an unknown or stale host, or a missing champion gives
every node a pass and the neutral score, with the reason logged.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Annotated

import numpy as np
from cotenant.serving.config import ServiceSettings
from cotenant.serving.schemas import HostPlacement, JsonRequest
from cotenant.serving.scoring import CandidateScores
from pydantic import BaseModel, ConfigDict, Field, RootModel

MAX_EXTENDER_SCORE = 10  # extenderv1.MaxExtenderPriority
NEUTRAL_EXTENDER_SCORE = MAX_EXTENDER_SCORE // 2


class KubeModel(BaseModel):
    model_config = ConfigDict(extra="allow")


class ObjectMeta(KubeModel):
    name: str = ""
    namespace: str | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None


class PodMeta(ObjectMeta):
    # A pod's managedFields and ownerReferences are never read: parsing them into dicts costs every call.
    model_config = ConfigDict(extra="ignore")


class Pod(BaseModel):
    model_config = ConfigDict(extra="ignore")

    metadata: PodMeta = Field(default_factory=PodMeta)


class Node(KubeModel):
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)


class NodeList(KubeModel):
    items: list[Node] | None = None


class ExtenderArgs(JsonRequest, KubeModel):
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
    Score: Annotated[int, Field(ge=0, le=MAX_EXTENDER_SCORE)]


class HostPriorityList(RootModel[list[HostPriority]]):
    """The prioritize reply; a model of its own so that pydantic-core validates and serialises it in one
    pass each (a bare ``list`` return goes through BentoML's generic root wrapper and ``json.dumps``)."""


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


def infeasible_positions(scores: CandidateScores | None, min_performance: float) -> list[int]:
    """Request positions of scored nodes that fail (neutral nodes always pass): by the ``medians`` rule
    where the score falls below the minimum; by the ``expected_misses`` rule (``scores.expected_misses``
    given) where placing the pod is expected to cost at least the one miss that leaving it pending costs."""
    if scores is None:
        return []
    if scores.expected_misses is not None:
        return np.flatnonzero(scores.scored & (scores.expected_misses >= 1.0)).tolist()
    return np.flatnonzero(scores.scored & (scores.raw < min_performance)).tolist()


def filter_result(args: ExtenderArgs, failed: dict[str, str]) -> ExtenderFilterResult:
    """Nodes named in ``failed`` (node -> reason) fail; every other node passes, echoed as it came."""
    if args.NodeNames is not None:
        return ExtenderFilterResult(
            NodeNames=[n for n in args.NodeNames if n not in failed], FailedNodes=failed
        )
    items = args.Nodes.items if args.Nodes is not None and args.Nodes.items else []
    kept = NodeList(items=[node for node in items if node.metadata.name not in failed])
    return ExtenderFilterResult(Nodes=kept, FailedNodes=failed)


def failure_reason(placement: HostPlacement, expected_misses: float | None = None) -> str:
    parts = []
    if placement.newcomer is not None:
        parts.append(f"newcomer P {placement.newcomer.p:.2f}")
    if placement.worst_incumbent is not None:
        parts.append(
            f"worst incumbent {placement.worst_incumbent_target} P {placement.worst_incumbent.p:.2f}"
        )
    driver = f", driven by {placement.driving_resource}" if placement.driving_resource else ""
    if expected_misses is not None:
        return (
            f"cotenant: placing here is expected to cost {expected_misses:.2f} SLO misses, no fewer than "
            f"leaving the pod pending (1): predicted {' and '.join(parts)}{driver}"
        )
    return f"cotenant: predicted {' and '.join(parts)} below the minimum{driver}"


def extender_scores(scores: CandidateScores, min_performance: float = 0.0) -> list[int]:
    """0-10 per candidate in request order: the score's headroom above the pod's minimum P, spread over the
    protocol's eleven levels; neutral where a node was not scored.

    kube-scheduler allows an extender eleven integer levels. Nodes under the minimum fail ``filter``, so
    spending levels below it wastes them: with a minimum of 0.8, ``round(10 x P)`` leaves the nodes that pass
    three levels (8, 9, 10) and calls a node at 0.86 and one at 0.94 equal. Without a minimum (0) this is
    ``round(10 x P)``; a node under the minimum scores 0. By the ``expected_misses`` rule the levels spread
    the misses a node is expected to cost over the one that filter allows: ``round(10 x (1 - misses))``.
    """
    if scores.expected_misses is not None:
        headroom = 1.0 - np.nan_to_num(scores.expected_misses, nan=1.0)
    elif min_performance < 1.0:
        headroom = (scores.score - min_performance) / (1.0 - min_performance)
    else:
        headroom = (scores.score >= 1.0).astype(np.float64)
    scaled = np.clip(np.rint(headroom * MAX_EXTENDER_SCORE), 0, MAX_EXTENDER_SCORE).astype(np.int64)
    scaled[~scores.scored] = NEUTRAL_EXTENDER_SCORE
    return list(scaled.tolist())


def prioritize_body(names: list[str], scores: CandidateScores | None, min_performance: float = 0.0) -> str:
    """The reply as JSON, scores in the order kube-scheduler sent the nodes; neutral for every node when the
    pod is unknown. Written entry by entry from the request's names (escaped as ``json.dumps`` escapes them)
    and the integer scores: no model round trip per node, and no dict per node for ``json.dumps`` to walk
    (5,000 nodes: ~1 ms instead of ~4 ms)."""
    if scores is None:
        values = [NEUTRAL_EXTENDER_SCORE] * len(names)
    else:
        values = extender_scores(scores, min_performance)
    quoted = json.encoder.encode_basestring_ascii
    pairs = zip(names, values, strict=True)
    entries = [f'{{"Host":{quoted(name)},"Score":{score}}}' for name, score in pairs]
    return "[" + ",".join(entries) + "]"


def prioritize_result(
    names: list[str], scores: CandidateScores | None, min_performance: float = 0.0
) -> HostPriorityList:
    """``prioritize_body`` as the typed ``[{"Host", "Score"}]`` model (its schema is the API's)."""
    return HostPriorityList.model_validate_json(prioritize_body(names, scores, min_performance))
