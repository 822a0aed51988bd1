"""The container-like limits of one lab cgroup (plans, probes)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Limits(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cpus: float = Field(default=1.0, gt=0, le=64, description="CPU quota in cores (cfs quota / period)")
    memory_mib: int = Field(default=1024, ge=16)
