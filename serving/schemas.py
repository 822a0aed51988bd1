"""Request and response types of the REST API (pydantic: they are the OpenAPI schema)."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, Self, get_args

from cotenant.models.accelerators import AppLatency, AppProfile, NodeSpec, PlacementRequest
from cotenant.models.accelerators.profiles import MAX_APPS, DeviceKind, DeviceProfile
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

MAX_SECONDS = 86_400
# Metric names are the collectors' column names. Any string is accepted, because OpenAPI 3.0 cannot constrain
# a map's keys: a name the model does not know is ignored like any other metric it was not trained on.
MetricName = str
# metric name (collector column name) -> per-second values, oldest first
Telemetry = Annotated[
    dict[MetricName, Annotated[list[float], Field(min_length=1, max_length=MAX_SECONDS)]],
    Field(min_length=1, max_length=1_000),
]
Name = Annotated[str, Field(min_length=1, max_length=253)]
Performance = Annotated[float, Field(ge=0.0, le=1.0)]


class JsonRequest(BaseModel):
    """A request body, validated as its schema reads: JSON types are not coerced (``false`` is not the number
    0, ``1`` not ``true``, ``"3"`` not 3), in every nested model. BentoML parses each body with
    ``model_validate_json`` on a subclass of the declared type, so strictness is applied there; pydantic's
    ``strict`` setting in a model's config would not reach the models nested in it."""

    @classmethod
    def model_validate_json(
        cls,
        json_data: str | bytes | bytearray,
        *,
        strict: bool | None = None,
        **options: Any,
    ) -> Self:
        return super().model_validate_json(json_data, strict=True if strict is None else strict, **options)


class StrictModel(JsonRequest):
    model_config = ConfigDict(extra="forbid")


# A sample stamped further ahead of the service's clock than this is skipped (``HostStore.ingest``).
MAX_CLOCK_AHEAD_S = 300.0
# Beyond this magnitude a metric value is a sensor or encoding fault (an exabyte per second), not telemetry.
MAX_METRIC_MAGNITUDE = 1e18


class IngestSample(StrictModel):
    timestamp: datetime
    target: Name
    metrics: dict[MetricName, float | None] = Field(
        max_length=1_000,
        description=f"non-finite values and magnitudes above {MAX_METRIC_MAGNITUDE:g} count as missing",
    )

    @field_validator("timestamp")
    @classmethod
    def _utc_when_unzoned(cls, value: datetime) -> datetime:
        return value if value.tzinfo else value.replace(tzinfo=UTC)

    @field_validator("metrics")
    @classmethod
    def _faults_are_missing(cls, values: dict[str, float | None]) -> dict[str, float | None]:
        return {
            name: value
            if value is not None and math.isfinite(value) and abs(value) <= MAX_METRIC_MAGNITUDE
            else None
            for name, value in values.items()
        }

    def has_values(self) -> bool:
        return any(value is not None for value in self.metrics.values())


# A compact target summary's packed values (``collectors.summaries.pack``: 2 bytes a value, base64): at most
# this many characters, so that a target costs at most about 2 KB of a push.
MAX_PACKED_CHARS = 1_900
BASE64 = r"^[A-Za-z0-9+/]*={0,2}$"


class TargetSummary(StrictModel):
    """One target's telemetry window as the placement champion needs it (``--compact`` pushes)."""

    target: Name
    timestamp: datetime = Field(description="the last second the summary covers")
    seconds: int = Field(ge=1, le=MAX_SECONDS, description="seconds of telemetry the summary covers")
    values: str = Field(
        max_length=MAX_PACKED_CHARS,
        pattern=BASE64,
        description="the schema's per-metric summaries, packed (see /feature_schema)",
    )

    @field_validator("timestamp")
    @classmethod
    def _utc_when_unzoned(cls, value: datetime) -> datetime:
        return value if value.tzinfo else value.replace(tzinfo=UTC)


class IngestRequest(StrictModel):
    """What ``cotenant collect --push`` sends: one host's samples, any targets, any seconds; with
    ``--compact``, its workload targets as summaries in the champion's feature schema instead."""

    host: Name
    samples: list[IngestSample] = Field(max_length=100_000)
    schema_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="the feature schema of the summaries (/feature_schema); another one, or none: 409",
    )
    summaries: list[TargetSummary] = Field(default_factory=list, max_length=10_000)
    profiles: dict[Name, Name] | None = Field(
        default=None,
        max_length=10_000,
        description="each workload target's registered solo profile (target -> profile_id), as the host's "
        "collector knows them (cotenant collect --profile TARGET=PROFILE_ID): host monitoring then reads a "
        "target's rates against its profile without the caller naming it. A push that carries them replaces "
        "the host's earlier links; one without keeps them",
    )


class FeatureSchemaView(BaseModel):
    """What a compact push must carry per target for the placement champion now served."""

    schema_id: str
    model_version: str
    metrics: list[str]
    statistics: list[str] = Field(description="per metric, in this order")
    window_seconds: int = Field(description="the summaries cover the target's last this many seconds")
    packing: str
    values_per_target: int


# Why a sample was not stored; the reply counts each, and every other sample of the request is kept.
SkipReason = Literal["no_values", "ahead_of_clock"]


class IngestResult(BaseModel):
    host: str
    accepted: int = Field(description="samples stored")
    summaries: int = Field(default=0, description="target summaries stored (compact pushes)")
    targets: list[str] = Field(description="targets whose windows changed")
    skipped: dict[SkipReason, int] = Field(
        default_factory=dict,
        description=f"samples not stored, by reason: no usable value, or stamped more than "
        f"{MAX_CLOCK_AHEAD_S:g} s ahead of the service's clock",
    )


# A workload's probe results (``cotenant lab probe``'s probes.json, its sensitivity and pressure rows merged):
# P by probe name (``sens_membw_2``, ``press_io``). Names the placement champion does not read are reported.
ProbeResults = Annotated[dict[Annotated[str, Field(max_length=64)], Performance], Field(max_length=256)]
# What a placement answer describes the newcomer by: its measured probes, or estimates from its telemetry.
WorkloadInputs = Literal["probes", "telemetry"]


class RegisterProfileRequest(StrictModel):
    profile_id: Name
    telemetry: Telemetry
    probes: ProbeResults | None = Field(
        default=None,
        description="the workload's sensitivity and pressure probe results (P by probe name), when measured",
    )
    latency: bool | None = Field(
        default=None,
        description="whether the workload's metric is a latency (requests served at an offered load): a "
        "placement champion that charges a latency the waiting of a queue reads it; omitted, it is estimated "
        "from the telemetry",
    )


class ProfileSummary(BaseModel):
    profile_id: str
    metrics: list[str]
    seconds: int
    inputs: WorkloadInputs = Field(
        default="telemetry",
        description="probes: the placement champion reads this workload's measured probes; telemetry: it "
        "estimates them from the profile (intervals are then wider)",
    )
    probes_used: list[str] = Field(default_factory=list)
    probes_ignored: list[str] = Field(default_factory=list, description="given, but not read by the champion")


class EstimateView(BaseModel):
    p: float
    lower: float
    upper: float
    drivers: dict[str, float]
    driving_resource: str | None


class DegradationRequest(StrictModel):
    """Monitoring with telemetry inline: the target's and its neighbours' co-run series."""

    target: Telemetry
    neighbours: list[Telemetry] = Field(default_factory=list, max_length=256)
    host: Telemetry | None = None
    # The target's solo profile as registered (``/register_profile``): a model reading the target's rates
    # relative to running alone gets them from it; without it they are reported missing.
    profile_id: Name | None = None
    # The registered profiles of the workloads beside the target: a model reading the workloads' probes (the
    # target's sensitivity, the sum of its neighbours' pressure) gets the neighbours' from them; without
    # them those inputs are reported missing. One per neighbour workload, whatever the number of series in
    # ``neighbours`` (a caller may send the neighbours' telemetry as one mean series).
    neighbour_profile_ids: list[Name] | None = Field(default=None, max_length=256)


class HostDegradationRequest(StrictModel):
    """Monitoring for a target the service already receives telemetry for."""

    host: Name
    target: Name
    # The target's registered solo profile, as for /predict_degradation; omitted, the one the host's collector
    # linked to the target (IngestRequest.profiles), if any.
    profile_id: Name | None = None


class DegradationResult(BaseModel):
    estimate: EstimateView
    model_version: str
    neighbours: int
    host: str | None = None
    target: str | None = None
    # The model's inputs the request could not give (filled with the training mean), e.g. the ``vs_solo__``
    # ones when no profile_id was named: an answer resting on fewer inputs than the model was trained on.
    missing: list[str] = Field(default_factory=list)
    profile_id: str | None = Field(
        default=None,
        description="the solo profile the target's rates were read against: named in the request, or linked "
        "by the host's collector; null when none (its inputs are then in missing)",
    )


def _exactly_one_of(*fields: str) -> Callable[[dict[str, Any]], None]:
    """Publish a validator's "exactly one of" rule in the JSON schema, so generated clients know it (a field
    given as null counts as absent, as the validator reads it)."""

    def given(name: str) -> dict[str, Any]:
        return {"required": [name], "properties": {name: {"not": {"enum": [None]}}}}

    def extend(schema: dict[str, Any]) -> None:
        schema["oneOf"] = [
            {**given(name), "not": {"anyOf": [given(other) for other in fields if other != name]}}
            for name in fields
        ]

    return extend


class WorkloadRef(StrictModel):
    """A workload by registered profile id, or its solo telemetry inline (exactly one)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_exactly_one_of("profile_id", "telemetry"))

    profile_id: Name | None = None
    telemetry: Telemetry | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> WorkloadRef:
        if (self.profile_id is None) == (self.telemetry is None):
            raise ValueError("give exactly one of profile_id or telemetry")
        return self


class ScorePlacementRequest(StrictModel):
    workload: WorkloadRef
    hosts: list[Name] = Field(min_length=1)
    min_performance: Performance = 0.0


PlacementStatus = Literal["scored", "unknown_host", "stale_host", "empty_host", "state_unavailable"]


class HostPlacement(BaseModel):
    host: str
    status: PlacementStatus
    reason: str | None = None
    newcomer: EstimateView | None = None
    worst_incumbent: EstimateView | None = None
    worst_incumbent_target: str | None = None
    driving_resource: str | None = None
    feasible: bool | None = None
    # In [0, 1], higher is better: the lower of the newcomer's and the worst incumbent's predicted P.
    score: float


class ScorePlacementResult(BaseModel):
    placements: list[HostPlacement]
    model_version: str
    newcomer_inputs: WorkloadInputs = "telemetry"


class HostView(BaseModel):
    host: str
    targets: list[str]
    last_seen: datetime
    age_s: float
    stale: bool
    profiles: dict[str, str] = Field(
        default_factory=dict,
        description="each target's registered solo profile, as its collector linked them",
    )


class HostList(BaseModel):
    hosts: list[HostView]
    stale_after_s: float


def _apps_profiled_for_the_device(schema: dict[str, Any]) -> None:
    """Publish "every app has a profile for the device's kind" in the JSON schema: one branch per kind."""
    schema["oneOf"] = [
        {
            "properties": {
                "device": {"properties": {"kind": {"enum": [kind]}}},
                "apps": {"items": {"properties": {"devices": {"required": [kind]}}}},
            }
        }
        for kind in get_args(DeviceKind)
    ]


class AppRequest(AppProfile):
    """An app with its device profiles, or naming a model of the registered catalogue
    (``cotenant-accelerators``, made by ``cotenant accelerators fit``) and leaving them out."""

    devices: dict[DeviceKind, DeviceProfile] | None = Field(
        default=None,
        min_length=1,
        description="omitted or null: the profiles of `model` in the registered accelerator catalogue",
    )


class AcceleratorLatencyRequest(StrictModel):
    """Analytic latency of apps sharing one accelerator (``cotenant.models.accelerators``); every app has a
    profile for the device's kind."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_apps_profiled_for_the_device)

    device: NodeSpec
    apps: list[AppRequest] = Field(min_length=1, max_length=1_000)
    network_ms: float = Field(default=10.0, ge=0)


class AcceleratorPlacementRequest(JsonRequest, PlacementRequest):
    """Placement of apps onto an accelerator cluster (``cotenant.models.accelerators.place``)."""

    apps: list[AppRequest] = Field(max_length=MAX_APPS, description="app names are unique")


class AcceleratorLatencies(BaseModel):
    latencies: list[AppLatency]


class Readiness(BaseModel):
    ready: bool
    models: dict[str, str | None]
    detail: dict[str, Any] = Field(default_factory=dict)
