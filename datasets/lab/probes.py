"""Sensitivity and pressure probes: how a new application is onboarded without a co-run campaign.

Following Bubble-Up and Paragon, an application is run against calibrated aggressors, one contended resource
each (CPU, caches, memory bandwidth, memory capacity, disk I/O, loopback network) at two intensities: its P
under each is its **sensitivity** vector. Each workload that may be a neighbour is in turn measured by fixed
**victims** (the same stress-ng instruments at level 1): a victim's P beside it is its **pressure** on that
resource. Aggressors and victims are instruments, not applications: they appear in every training fold, so a
held-out program's probes describe it without revealing any other held-out program.

The default set lives here (one owner); a plan's ``probes`` section may override it.
"""

from __future__ import annotations

from cotenant.datasets.lab.limits import Limits
from pydantic import BaseModel, ConfigDict, Field


class AggressorSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    workload: str
    levels: list[int] = Field(min_length=1)
    limits: Limits | None = None


class VictimSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    workload: str
    level: int = Field(default=1, ge=1)
    limits: Limits | None = None


def default_aggressors() -> dict[str, AggressorSpec]:
    return {
        "cpu": AggressorSpec(workload="pressure_cpu", levels=[1, 2]),
        "cache": AggressorSpec(workload="pressure_cache", levels=[1, 2]),
        "membw": AggressorSpec(workload="pressure_membw", levels=[1, 2]),
        "memory": AggressorSpec(workload="pressure_vm", levels=[1, 2]),
        "io": AggressorSpec(workload="pressure_io", levels=[1, 2]),
        "network": AggressorSpec(workload="pressure_net", levels=[1, 2]),
    }


def default_victims() -> dict[str, VictimSpec]:
    return {
        "cpu": VictimSpec(workload="pressure_cpu"),
        "cache": VictimSpec(workload="pressure_cache"),
        "membw": VictimSpec(workload="pressure_membw"),
        "io": VictimSpec(workload="pressure_io"),
    }


class ProbeSpec(BaseModel):
    """Which probes a plan runs. Aggressors have intensities (``levels``: workers, a core each unless
    ``limits`` are given); victims' limits default to the plan's."""

    model_config = ConfigDict(extra="forbid")

    sensitivity: bool = Field(default=True, description="each application against each aggressor level")
    pressure: bool = Field(default=True, description="each neighbour and application beside each victim")
    # A campaign pooled after one that measured its neighbours' pressure need not measure it again (a pooled
    # table keeps each configuration's first pressure vector): False measures only its applications'.
    pressure_of_neighbours: bool = Field(
        default=True, description="False: only the applications' pressure, not the neighbours'"
    )
    aggressors: dict[str, AggressorSpec] = Field(default_factory=default_aggressors)
    victims: dict[str, VictimSpec] = Field(default_factory=default_victims)


def probe_feature(resource: str, level: int) -> str:
    """The name of one sensitivity input (``sens_membw_2``): P against that aggressor at that level."""
    return f"sens_{resource}_{level}"


def pressure_feature(resource: str) -> str:
    """The name of one pressure input (``press_cache``): the victim's P beside the workload."""
    return f"press_{resource}"
