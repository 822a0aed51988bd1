"""Lab plans: a YAML file validated by pydantic, expanded into an ordered, seeded list of runs.

The order is a pure function of the plan, so a resumed lab maps run ids onto the same executions. Solo
references and neighbour profiles are spread through the plan rather than run first, because this machine's
background load drifts: references taken only at the start would bias every later label.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from pathlib import Path

import yaml
from cotenant.datasets.lab.records import RunKind, Scenario
from cotenant.datasets.lab.schedules import ScheduleSpec, schedule_levels
from cotenant.datasets.lab.workloads import WORKLOADS
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


class PlanError(ValueError):
    """A plan that cannot run; the message names the file and the field."""


class Limits(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cpus: float = Field(default=1.0, gt=0, le=64, description="CPU quota in cores (cfs quota / period)")
    memory_mib: int = Field(default=1024, ge=16)


class TargetSpec(BaseModel):
    """A target workload: static levels and/or named dynamic schedules, each one target configuration."""

    model_config = ConfigDict(extra="forbid")

    workload: str
    levels: list[int] = Field(default_factory=list)
    schedules: list[str] = Field(default_factory=list)
    limits: Limits | None = None


class NeighbourSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    workload: str
    level: int = Field(ge=1)
    limits: Limits | None = None


class CorunSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    count: int = Field(ge=0, description="co-located executions in total, spread evenly over target configs")
    sizes: list[int] = Field(default=[1, 2, 3], description="neighbour set sizes, cycled")

    @model_validator(mode="after")
    def _check_sizes(self) -> CorunSpec:
        if self.count and (not self.sizes or any(size < 1 or size > 3 for size in self.sizes)):
            raise ValueError("sizes must be a non-empty list of neighbour counts between 1 and 3")
        return self


class Plan(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    seed: int = 0
    duration_s: int = Field(ge=2, le=3600, description="wall time of each target execution")
    warmup_s: float = Field(
        default=0.5, ge=0, le=30, description="neighbours start this long before the target"
    )
    solo_repeats: int = Field(default=3, ge=1, description="solo references per target configuration")
    neighbour_solo: bool = Field(default=True, description="record a solo profile of every neighbour config")
    limits: Limits = Field(default_factory=Limits)
    prioritise_lab: bool = Field(
        default=True,
        description="highest CPU weight for the lab's cgroup, so other processes on the host perturb it less",
    )
    schedules: dict[str, ScheduleSpec] = Field(default_factory=dict)
    targets: list[TargetSpec] = Field(min_length=1)
    neighbours: dict[str, NeighbourSpec] = Field(default_factory=dict)
    coruns: CorunSpec = Field(default_factory=lambda: CorunSpec(count=0))

    @model_validator(mode="after")
    def _check_references(self) -> Plan:
        for index, target in enumerate(self.targets):
            if target.workload not in WORKLOADS:
                raise ValueError(
                    f"targets[{index}].workload: unknown workload {target.workload!r}; "
                    f"known: {', '.join(sorted(WORKLOADS))}"
                )
            if not target.levels and not target.schedules:
                raise ValueError(f"targets[{index}]: give at least one of levels or schedules")
            for name in target.schedules:
                if name not in self.schedules:
                    raise ValueError(f"targets[{index}].schedules: {name!r} is not defined under schedules")
        for name, neighbour in self.neighbours.items():
            if neighbour.workload not in WORKLOADS:
                raise ValueError(f"neighbours.{name}.workload: unknown workload {neighbour.workload!r}")
        if self.coruns.count and len(self.neighbours) < max(self.coruns.sizes):
            raise ValueError(
                f"coruns.sizes: a set of {max(self.coruns.sizes)} needs as many neighbours, "
                f"the plan defines {len(self.neighbours)}"
            )
        return self

    def digest(self) -> str:
        """A stable hash of the plan's content (not of its formatting)."""
        return hashlib.sha256(json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()


def load_plan(path: Path) -> Plan:
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise PlanError(f"{path}: cannot read the plan: {error}") from error
    try:
        return Plan.model_validate(data)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in issue['loc']) or '<plan>'}: {issue['msg']}"
            for issue in error.errors()
        )
        raise PlanError(f"{path}: invalid plan: {problems}") from error


@dataclass(frozen=True)
class RoleConfig:
    """One workload configuration as it runs in one cgroup: the unit solo references match on."""

    workload: str
    phase_levels: tuple[int, ...]
    schedule: str | None
    cpus: float
    memory_mib: int

    @property
    def scenario(self) -> Scenario:
        return "static" if self.schedule is None else "dynamic"

    @property
    def load(self) -> str:
        levels = "-".join(str(level) for level in self.phase_levels)
        return f"level {self.phase_levels[0]}" if self.schedule is None else f"{self.schedule} {levels}"

    @property
    def config_key(self) -> str:
        load = (
            f"level={self.phase_levels[0]}"
            if self.schedule is None
            else f"{self.schedule}={self.load.split()[1]}"
        )
        return f"{self.workload}/{load}/cpus={self.cpus:g}/mem={self.memory_mib}"


@dataclass(frozen=True)
class RunSpec:
    run_id: str
    kind: RunKind
    target: RoleConfig
    neighbours: tuple[RoleConfig, ...]
    repeat: int


def target_configs(plan: Plan) -> list[RoleConfig]:
    configs: list[RoleConfig] = []
    for target in plan.targets:
        limits = target.limits or plan.limits
        for level in target.levels:
            configs.append(RoleConfig(target.workload, (level,), None, limits.cpus, limits.memory_mib))
        for name in target.schedules:
            levels = tuple(schedule_levels(plan.schedules[name], plan.seed))
            configs.append(RoleConfig(target.workload, levels, name, limits.cpus, limits.memory_mib))
    return configs


def neighbour_configs(plan: Plan) -> dict[str, RoleConfig]:
    return {
        name: RoleConfig(
            spec.workload,
            (spec.level,),
            None,
            (spec.limits or plan.limits).cpus,
            (spec.limits or plan.limits).memory_mib,
        )
        for name, spec in plan.neighbours.items()
    }


def expand_plan(plan: Plan) -> list[RunSpec]:
    """Every execution of the plan in run order, with ids ``r0001``, ``r0002``, ..."""
    rng = random.Random(plan.seed)
    targets = target_configs(plan)
    neighbours = neighbour_configs(plan)
    names = sorted(neighbours)
    # (position in [0, 1), kind, target, neighbours, repeat): positions interleave references with co-runs.
    slots: list[tuple[float, RunKind, RoleConfig, tuple[RoleConfig, ...], int]] = []
    coruns = []
    for index in range(plan.coruns.count):
        size = plan.coruns.sizes[index % len(plan.coruns.sizes)]
        chosen = tuple(neighbours[name] for name in sorted(rng.sample(names, size)))
        coruns.append((targets[index % len(targets)], chosen))
    rng.shuffle(coruns)
    for index, (target, chosen) in enumerate(coruns):
        slots.append(((index + 0.5) / max(len(coruns), 1), "corun", target, chosen, 0))
    for config_index, target in enumerate(targets):
        offset = (config_index + 0.5) / len(targets)
        for repeat in range(plan.solo_repeats):
            slots.append(((repeat + offset) / plan.solo_repeats - 1e-9, "solo", target, (), repeat))
    if plan.neighbour_solo:
        distinct = list(dict.fromkeys(neighbours[name] for name in names))
        for index, config in enumerate(distinct):
            slots.append(((index + 0.25) / len(distinct), "neighbour_solo", config, (), 0))
    slots.sort(key=lambda slot: slot[0])
    return [
        RunSpec(f"r{number:04d}", kind, target, chosen, repeat)
        for number, (_, kind, target, chosen, repeat) in enumerate(slots, start=1)
    ]


@dataclass(frozen=True)
class PlanSummary:
    runs: int
    solo: int
    corun: int
    neighbour_solo: int
    target_configs: int
    applications: int
    dynamic_configs: int
    estimated_s: float


def summarise(plan: Plan, overhead_s: float = 1.0) -> PlanSummary:
    """Counts and an estimated wall time (run durations + warm-ups + a per-run overhead)."""
    runs = expand_plan(plan)
    targets = target_configs(plan)
    count = {kind: sum(1 for run in runs if run.kind == kind) for kind in ("solo", "corun", "neighbour_solo")}
    estimated = sum(plan.duration_s + overhead_s + (plan.warmup_s if run.neighbours else 0) for run in runs)
    return PlanSummary(
        runs=len(runs),
        solo=count["solo"],
        corun=count["corun"],
        neighbour_solo=count["neighbour_solo"],
        target_configs=len(targets),
        applications=len({config.workload for config in targets}),
        dynamic_configs=sum(1 for config in targets if config.schedule is not None),
        estimated_s=estimated,
    )


def phase_check(config: RoleConfig, duration_s: int) -> None:
    """Each phase must be long enough for its tool (raises PlanError)."""
    workload = WORKLOADS[config.workload]
    seconds = duration_s // len(config.phase_levels)
    if seconds < workload.min_phase_s:
        raise PlanError(
            f"{config.config_key}: {len(config.phase_levels)} phases in duration_s={duration_s} leave "
            f"{seconds} s per phase; {config.workload} needs at least {workload.min_phase_s} s"
        )
