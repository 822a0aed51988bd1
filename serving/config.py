"""Typed settings of the prediction service, read from ``COTENANT_SERVE_*`` environment variables.

``cotenant serve`` turns its options into these variables because ``bentoml serve`` starts the service
class in a fresh worker process: the environment is the one channel that reaches ``__init__`` there.
"""

from __future__ import annotations

import os
from typing import Any, Literal

from cotenant.training.tracking import CHAMPION_ALIAS, REGISTERED
from pydantic import BaseModel, ConfigDict, Field

from cotenant.paths import default_tracking_uri

ENV_PREFIX = "COTENANT_SERVE_"
# How the extender's filter and prioritize read a pod's minimum P. ``medians``: a node fails where the pod's
# or an incumbent's median P falls below it, and ranks by the lower median's headroom above it.
# ``expected_misses``: a node fails only where placing the pod is expected to cost at least one SLO miss, what
# leaving it pending costs, and ranks by fewest (serving/scoring.py ``host_expected_misses``); it places a
# pod no node would keep at its minimum where that harms the incumbents least, rather than leaving it pending.
ExtenderRule = Literal["medians", "expected_misses"]


class ServiceSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    tracking_uri: str = Field(default_factory=default_tracking_uri)
    monitoring_model: str = REGISTERED["monitoring"]
    placement_model: str = REGISTERED["placement"]
    accelerators_model: str = REGISTERED["accelerators"]  # a device-profile catalogue; optional
    alias: str = CHAMPION_ALIAS
    # The placement version under this alias scores live requests in the background, never served, and its
    # agreement with the champion goes to MLflow (serving/shadow.py); empty disables shadow mode.
    shadow_alias: str = "challenger"
    shadow_log_interval_s: float = Field(default=60.0, gt=0)
    # Ingest and profile registration need this bearer token; empty refuses every write (never open).
    token: str = ""
    # Seconds between polls of the champion aliases; 0 disables the watcher.
    watch_interval_s: float = Field(default=10.0, ge=0)
    # Per host and target, how many per-second samples are kept (the window models see).
    window_samples: int = Field(default=120, ge=2, le=86_400)
    # A host with no sample for this long is stale (neutral scores); a silent target leaves its host.
    stale_after_s: float = Field(default=30.0, gt=0)
    # Host state and profiles shared by replicas through this Redis (``redis://host:6379/0``); empty keeps
    # them in this process (one replica, the embedded default). See serving/shared_state.py.
    state_url: str = ""
    # How much of the shared log a (re)starting replica replays: at least the window plus the staleness bound.
    state_retention_s: float = Field(default=300.0, gt=0)
    # Key prefix in that Redis, so that several deployments can share one server.
    state_prefix: str = Field(default="cotenant", min_length=1)
    max_candidates: int = Field(default=5_000, ge=1)
    # The extender keeps each workload's medians on every host it was asked about, and scores again only
    # the hosts changed since (serving/scoring.py ``MedianCache``): for this many workloads (profile and
    # champion), at ~17 bytes per host each; 0 scores every request whole.
    median_cache_workloads: int = Field(default=256, ge=0)
    max_body_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    max_hosts: int = Field(default=20_000, ge=1)
    # The pod label or annotation naming the workload profile, and the one giving its minimum P.
    profile_key: str = "cotenant.io/profile"
    min_performance_key: str = "cotenant.io/min-performance"
    default_min_performance: float = Field(default=0.0, ge=0, le=1)
    extender_rule: ExtenderRule = "medians"
    # CPUs of every candidate host, for placement models that read the host's size (placement-probes' CPU
    # shares); 0 keeps the size of the host the model was trained on. Per-host sizes are not read yet.
    host_cores: float = Field(default=0.0, ge=0, le=4096)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> ServiceSettings:
        """Every field can be set as ``COTENANT_SERVE_<FIELD>``; a bad value names the variable."""
        environ = dict(os.environ) if environ is None else environ
        values: dict[str, Any] = {}
        for name in cls.model_fields:
            variable = ENV_PREFIX + name.upper()
            if variable in environ:
                values[name] = environ[variable]
        try:
            return cls.model_validate(values)
        except Exception as error:  # pydantic's message names the field; add the variable it came from
            raise ValueError(f"invalid {ENV_PREFIX}* setting: {error}") from error

    def to_env(self) -> dict[str, str]:
        return {ENV_PREFIX + name.upper(): str(value) for name, value in self.model_dump().items()}
