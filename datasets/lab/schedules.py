"""Load schedules: the level (threads, clients, workers) of each phase of a run.

A schedule is computed once from the plan (seeded), so the same schedule is replayed identically alone and
co-located: the solo reference and the co-run see exactly the same sequence of phases.
"""

from __future__ import annotations

import math
import random
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

ScheduleKind = Literal["static", "monotonic", "periodic", "random"]


class ScheduleSpec(BaseModel):
    """A load schedule over ``phases`` equal phases of one run, levels within [low, high]."""

    model_config = ConfigDict(extra="forbid")

    kind: ScheduleKind
    low: int = Field(ge=1)
    high: int = Field(ge=1)
    phases: int = Field(default=4, ge=1, le=64)
    periods: float = Field(default=1.0, gt=0, description="periodic: full cycles over the run")
    descending: bool = Field(default=False, description="monotonic: ramp down instead of up")
    seed: int = Field(default=0, description="random: combined with the plan seed")

    @model_validator(mode="after")
    def _check_range(self) -> ScheduleSpec:
        if self.high < self.low:
            raise ValueError(f"high ({self.high}) must be >= low ({self.low})")
        return self


def schedule_levels(spec: ScheduleSpec, plan_seed: int) -> list[int]:
    """The level of each phase. Pure and deterministic in (spec, plan_seed)."""
    span = spec.high - spec.low
    if spec.kind == "static":
        return [spec.low] * spec.phases
    if spec.kind == "monotonic":
        steps = [spec.low + round(span * i / max(spec.phases - 1, 1)) for i in range(spec.phases)]
        return steps[::-1] if spec.descending else steps
    if spec.kind == "periodic":
        return [
            spec.low + round(span * (1 - math.cos(2 * math.pi * spec.periods * i / spec.phases)) / 2)
            for i in range(spec.phases)
        ]
    rng = random.Random(f"{plan_seed}:{spec.seed}:{spec.low}:{spec.high}:{spec.phases}")
    return [rng.randint(spec.low, spec.high) for _ in range(spec.phases)]
