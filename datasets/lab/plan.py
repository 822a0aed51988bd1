"""Lab plans: a YAML file validated by pydantic, expanded into an ordered, seeded list of runs.

The order is a pure function of the plan, so a resumed lab maps run ids onto the same executions. Solo
references, neighbour profiles and probes are spread through the plan rather than run first, because a
machine's background load drifts: references taken only at the start would bias every later label, and a
campaign stopped part-way holds a little of everything.

A plan may define its own ``commands`` (a user's command line, a regular expression for its metric, the
metric's direction and unit), used as targets or neighbours like catalogue workloads, and a ``probes``
section (``probes.py``): each application measured against calibrated aggressors (its sensitivity) and each
neighbour measured by fixed victims (its pressure).

A plan may be measured in ``part``s (``cotenant lab run PLAN --part 2/8``): each part holds every solo
reference and neighbour profile, a share of the co-runs (whole rounds over the targets, so every target gets
its share) and the probes of a share of the applications and neighbours (all of one's probes in one part).
A part is measured in one sitting on one machine and labelled against its own solos; parts measured on
different machines are packed together as separate campaigns (``cotenant datasets pack``), so no label
compares runs of two machines. Run ids are those of the whole plan.

With ``parts_by: targets`` a part holds a share of the target configurations instead, with everything that
labels them: their co-runs, their solo references and their sensitivity probes (victims' solos and neighbour
profiles stay in every part, and pressure runs are shared out by neighbour as before). Every part of the
default kind repeats every configuration's solo references, which in a plan with six solos of 29
configurations is half its runs; sharing out the targets measures each solo once for the whole plan, so the
same lab time holds about twice the co-runs. A campaign stopped part-way then lacks some targets entirely
rather than holding a little of each.

With ``adjacent_references`` a plan measures each label's solo references next to it instead of spread
through the plan: the labelled runs of one target configuration (co-runs, probes, pressure runs) are measured
in blocks, a solo of that configuration before the first, after every ``runs_between`` and after the last, and
each run is labelled against the solos on either side of it. The machine's speed wanders over minutes to tens
of minutes, so references a minute away are quieter than references spread over the campaign. The solos
between are labelled against the solos on either side of them too (twice as far apart as a labelled run is
from its own): the noise floor is measured the way labels are made, and errs high.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml
from cotenant.datasets.lab.canary import CanarySpec
from cotenant.datasets.lab.cgroups import kubelet_cpu_shares
from cotenant.datasets.lab.command import CommandSpec, CommandWorkload
from cotenant.datasets.lab.limits import Limits
from cotenant.datasets.lab.probes import AggressorSpec, ProbeSpec
from cotenant.datasets.lab.quiet import QuietSpec
from cotenant.datasets.lab.records import RunKind, Scenario
from cotenant.datasets.lab.schedules import ScheduleSpec, schedule_levels
from cotenant.datasets.lab.workloads import WORKLOADS, Workload
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


class PlanError(ValueError):
    """A plan that cannot run; the message names the file and the field."""


# A tenant's CPU request weighs its cgroup as kubelet weighs a pod's (cpu.shares = 1024 per requested CPU):
# under contention on a Kubernetes node a tenant asking 0.2 CPU gets five times the CPU of one asking 0.04.
CPU_REQUEST_HELP = (
    "the CPU request (cores) kubelet would weigh this tenant's cgroup by (cpu.shares = 1024 per CPU); null: "
    "the kernel's default weight"
)


class TargetSpec(BaseModel):
    """A target workload: static levels and/or named dynamic schedules, each one target configuration."""

    model_config = ConfigDict(extra="forbid")

    workload: str
    levels: list[int] = Field(default_factory=list)
    schedules: list[str] = Field(default_factory=list)
    limits: Limits | None = None
    cpu_request: float | None = Field(default=None, gt=0, le=64, description=CPU_REQUEST_HELP)


class NeighbourSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    workload: str
    level: int = Field(ge=1)
    limits: Limits | None = None
    cpu_request: float | None = Field(default=None, gt=0, le=64, description=CPU_REQUEST_HELP)


# Neighbours of one co-run at most. The bundled plans use 1-3 (a newcomer beside a few tenants); plans of
# tenants capped at fractions of a core (plans/crowded.yaml) need more to fill a host, as the closed loop's
# hosts fill.
MAX_CORUN_NEIGHBOURS = 8


class CorunSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    count: int = Field(ge=0, description="co-located executions in total, spread evenly over target configs")
    sizes: list[int] = Field(default=[1, 2, 3], description="neighbour set sizes, cycled")

    @model_validator(mode="after")
    def _check_sizes(self) -> CorunSpec:
        if self.count and (
            not self.sizes or any(size < 1 or size > MAX_CORUN_NEIGHBOURS for size in self.sizes)
        ):
            raise ValueError(
                f"sizes must be a non-empty list of neighbour counts between 1 and {MAX_CORUN_NEIGHBOURS}"
            )
        return self


class PlanPart(BaseModel):
    """Part ``index`` of ``count`` (1-based), written ``index/count``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    index: int = Field(ge=1)
    count: int = Field(ge=1)

    @model_validator(mode="after")
    def _check_index(self) -> PlanPart:
        if self.index > self.count:
            raise ValueError(f"part {self.index} of {self.count}: the index must be at most the count")
        return self

    @classmethod
    def parse(cls, text: str) -> PlanPart:
        index, slash, count = text.partition("/")
        if not slash or not index.strip().isdigit() or not count.strip().isdigit():
            raise ValueError(f"{text!r}: write a part as INDEX/COUNT, e.g. 2/8")
        return cls(index=int(index), count=int(count))

    def holds(self, share: int | None) -> bool:
        """Whether a run of ``share`` (None: every part's, like solo references) is in this part."""
        return share is None or share % self.count == self.index - 1

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


class AdjacentReferences(BaseModel):
    """Solo references measured next to the runs they label (see the module's docstring)."""

    model_config = ConfigDict(extra="forbid")

    runs_between: int = Field(
        default=2, ge=1, le=8, description="labelled runs between two solo references of their configuration"
    )
    block_runs: int = Field(
        default=6, ge=1, description="labelled runs of one configuration measured back to back in one block"
    )


class Plan(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    seed: int = 0
    duration_s: int = Field(ge=2, le=3600, description="wall time of each static target execution")
    dynamic_duration_s: int | None = Field(
        default=None, ge=2, le=3600, description="wall time of each dynamic execution (default: duration_s)"
    )
    warmup_s: float = Field(
        default=0.5, ge=0, le=30, description="neighbours start this long before the target"
    )
    solo_repeats: int = Field(
        default=3,
        ge=1,
        description="solo references per target configuration (with adjacent_references: of a configuration "
        "that has no labelled run in the part, its solo profile)",
    )
    adjacent_references: AdjacentReferences | None = Field(
        default=None,
        description="measure each label's solo references next to it, in blocks (null: spread them through "
        "the plan)",
    )
    neighbour_solo: bool = Field(default=True, description="record a solo profile of every neighbour config")
    limits: Limits = Field(default_factory=Limits)
    host_cpus: int | None = Field(
        default=None,
        ge=1,
        description="measure every run on this many of the machine's CPUs (a cpuset: CPUs 0 to N-1), as on a "
        "node of that size (null: on all of them)",
    )
    prioritise_lab: bool = Field(
        default=True,
        description="a high CPU weight for the lab's cgroup (16 processes' worth), so other processes on the "
        "host perturb it less",
    )
    quiet: QuietSpec | None = Field(
        default_factory=QuietSpec,
        description="wait before each run while the host is busier than this (null: never wait)",
    )
    canary: CanarySpec | None = Field(
        default=None,
        description="measure the machine's speed right before and after each run (canary.py; null: never)",
    )
    commands: dict[str, CommandSpec] = Field(default_factory=dict)
    schedules: dict[str, ScheduleSpec] = Field(default_factory=dict)
    targets: list[TargetSpec] = Field(min_length=1)
    neighbours: dict[str, NeighbourSpec] = Field(default_factory=dict)
    coruns: CorunSpec = Field(default_factory=lambda: CorunSpec(count=0))
    probes: ProbeSpec | None = None
    part: PlanPart | None = Field(default=None, description="measure only this part of the plan")
    parts_by: Literal["rounds", "targets"] = Field(
        default="rounds",
        description="what a part shares out: rounds of co-runs over every target (each part holds every "
        "solo) or the target configurations with their co-runs, solos and probes (the module's docstring)",
    )

    @model_validator(mode="after")
    def _check_references(self) -> Plan:
        for name in self.commands:
            if name in WORKLOADS:
                raise ValueError(f"commands.{name}: the name is a catalogue workload; choose another")
        known = sorted({*WORKLOADS, *self.commands})
        for index, target in enumerate(self.targets):
            if not self.knows(target.workload):
                raise ValueError(
                    f"targets[{index}].workload: unknown workload {target.workload!r}; "
                    f"known: {', '.join(known)}"
                )
            if not target.levels and not target.schedules:
                raise ValueError(f"targets[{index}]: give at least one of levels or schedules")
            for name in target.schedules:
                if name not in self.schedules:
                    raise ValueError(f"targets[{index}].schedules: {name!r} is not defined under schedules")
        for name, neighbour in self.neighbours.items():
            if not self.knows(neighbour.workload):
                raise ValueError(f"neighbours.{name}.workload: unknown workload {neighbour.workload!r}")
        if self.coruns.count and len(self.neighbours) < max(self.coruns.sizes):
            raise ValueError(
                f"coruns.sizes: a set of {max(self.coruns.sizes)} needs as many neighbours, "
                f"the plan defines {len(self.neighbours)}"
            )
        return self

    def knows(self, name: str) -> bool:
        return name in self.commands or name in WORKLOADS

    def workload(self, name: str) -> Workload:
        """The workload called ``name``: the plan's own command, else the catalogue's."""
        if name in self.commands:
            return CommandWorkload(name, self.commands[name])
        return WORKLOADS[name]()

    def duration_for(self, schedule: str | None) -> int:
        return self.duration_s if schedule is None else (self.dynamic_duration_s or self.duration_s)

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


def write_plan(plan: Plan, path: Path) -> Path:
    """The plan as YAML, every field spelt out, so that the file alone reproduces what was measured."""
    path.write_text(yaml.safe_dump(plan.model_dump(mode="json"), sort_keys=False))
    return path


@dataclass(frozen=True)
class RoleConfig:
    """One workload configuration as it runs in one cgroup: the unit solo references match on."""

    workload: str
    phase_levels: tuple[int, ...]
    schedule: str | None
    cpus: float
    memory_mib: int
    duration_s: int
    # the cgroup's cpu.shares (None: the kernel's default); not part of the configuration's key: a weight
    # only matters beside others, and a configuration's solo references run alone (each run records the
    # weights it ran with)
    cpu_shares: int | None = None

    @property
    def phase_s(self) -> int:
        return max(1, self.duration_s // len(self.phase_levels))

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
    # Solo runs of the target's configuration this run's label compares with (empty: every solo of it).
    references: tuple[str, ...] = ()


def static_config(
    plan: Plan, workload: str, level: int, limits: Limits | None, cpu_request: float | None = None
) -> RoleConfig:
    chosen = limits or plan.limits
    return RoleConfig(
        workload, (level,), None, chosen.cpus, chosen.memory_mib, plan.duration_s, request_shares(cpu_request)
    )


def request_shares(cpu_request: float | None) -> int | None:
    """kubelet's cpu.shares for a CPU request, None (the kernel's default weight) where none is given."""
    return None if cpu_request is None else kubelet_cpu_shares(cpu_request)


def target_configs(plan: Plan) -> list[RoleConfig]:
    configs: list[RoleConfig] = []
    for target in plan.targets:
        limits = target.limits or plan.limits
        for level in target.levels:
            configs.append(static_config(plan, target.workload, level, limits, target.cpu_request))
        for name in target.schedules:
            levels = tuple(schedule_levels(plan.schedules[name], plan.seed))
            configs.append(
                RoleConfig(
                    target.workload,
                    levels,
                    name,
                    limits.cpus,
                    limits.memory_mib,
                    plan.duration_for(name),
                    request_shares(target.cpu_request),
                )
            )
    return configs


def neighbour_configs(plan: Plan) -> dict[str, RoleConfig]:
    return {
        name: static_config(plan, spec.workload, spec.level, spec.limits, spec.cpu_request)
        for name, spec in plan.neighbours.items()
    }


def aggressor_config(plan: Plan, aggressor: AggressorSpec, level: int) -> RoleConfig:
    """An aggressor at one intensity: ``level`` workers with a core each unless its limits say otherwise, so
    that intensity 2 is twice the pressure rather than two workers sharing one core."""
    limits = aggressor.limits or Limits(cpus=float(level), memory_mib=plan.limits.memory_mib)
    return static_config(plan, aggressor.workload, level, limits)


def probe_runs(plan: Plan, targets: list[RoleConfig]) -> list[tuple[RunKind, RoleConfig, RoleConfig]]:
    """(kind, target, neighbour) of every probe: each application's probe config against each aggressor
    level (``probe``), then each victim beside each neighbour and each application (``pressure``)."""
    if plan.probes is None:
        return []
    probes = plan.probes
    first: dict[str, RoleConfig] = {}
    for config in sorted(targets, key=lambda config: config.schedule is not None):
        first.setdefault(config.workload, config)  # an application's first static config, else its first
    runs: list[tuple[RunKind, RoleConfig, RoleConfig]] = []
    if probes.sensitivity:
        for config in first.values():
            for aggressor in probes.aggressors.values():
                for level in aggressor.levels:
                    runs.append(("probe", config, aggressor_config(plan, aggressor, level)))
    if probes.pressure:
        pressed_neighbours = neighbour_configs(plan).values() if probes.pressure_of_neighbours else ()
        pressing = list(dict.fromkeys([*pressed_neighbours, *first.values()]))
        for victim in probes.victims.values():
            victim_config = static_config(plan, victim.workload, victim.level, victim.limits)
            for config in pressing:
                if config != victim_config:
                    runs.append(("pressure", victim_config, config))
    return runs


def victim_configs(plan: Plan) -> list[RoleConfig]:
    """Victims need solo references like targets (their P under a neighbour is the neighbour's pressure)."""
    if plan.probes is None or not plan.probes.pressure:
        return []
    return [static_config(plan, v.workload, v.level, v.limits) for v in plan.probes.victims.values()]


# (position in [0, 1), kind, target, neighbours, repeat, share): positions interleave runs of different
# kinds; the share says which part a run belongs to (None: every part).
Slot = tuple[float, RunKind, RoleConfig, tuple[RoleConfig, ...], int, int | None]


def expand_plan(plan: Plan) -> list[RunSpec]:
    """Every execution of the plan (of its ``part``, if it names one) in run order, with the whole plan's ids
    ``r0001``, ``r0002``, ..."""
    rng = random.Random(plan.seed)
    targets = target_configs(plan)
    referenced = list(dict.fromkeys([*targets, *victim_configs(plan)]))
    neighbours = neighbour_configs(plan)
    names = sorted(neighbours)
    by_target = plan.parts_by == "targets"
    target_shares = shares_of_targets(targets)
    labelled: list[Slot] = []
    coruns = []
    for index in range(plan.coruns.count):
        size = plan.coruns.sizes[index % len(plan.coruns.sizes)]
        chosen = tuple(neighbours[name] for name in sorted(rng.sample(names, size)))
        # Co-runs go by round over the targets (every part has each target's share), or with their target.
        target = targets[index % len(targets)]
        coruns.append((target, chosen, target_shares[target] if by_target else index // len(targets)))
    rng.shuffle(coruns)
    for index, (target, chosen, share) in enumerate(coruns):
        labelled.append(((index + 0.5) / max(len(coruns), 1), "corun", target, chosen, 0, share))
    probes = probe_runs(plan, targets)
    # One part measures all the probes of what it probes (an application's sensitivity, a neighbour's
    # pressure), so each vector comes from one machine.
    measured = list(
        dict.fromkeys(target if kind == "probe" else neighbour for kind, target, neighbour in probes)
    )
    # Probes are spread like co-runs but with their own offset, so neither kind bunches at one end.
    order = list(range(len(probes)))
    random.Random(plan.seed + 1).shuffle(order)
    for position, index in enumerate(order):
        kind, target, neighbour = probes[index]
        share = measured.index(target if kind == "probe" else neighbour)
        if by_target and kind == "probe":
            share = target_shares[target]  # beside the solos that label it
        labelled.append(((position + 0.25) / len(probes), kind, target, (neighbour,), 0, share))
    profiles: list[Slot] = []
    if plan.neighbour_solo:
        # A neighbour configuration that is also a target's has solo runs already: they are its profile.
        distinct = [
            config for config in dict.fromkeys(neighbours[name] for name in names) if config not in referenced
        ]
        for index, config in enumerate(distinct):
            profiles.append(((index + 0.25) / max(len(distinct), 1), "neighbour_solo", config, (), 0, None))
    shares = solo_shares(plan, target_shares)
    if plan.adjacent_references is not None:
        return _expand_in_blocks(plan, plan.adjacent_references, labelled, profiles, referenced, shares)
    slots = [*labelled, *_spread_solos(plan, referenced, shares), *profiles]
    slots.sort(key=lambda slot: slot[0])
    return [
        RunSpec(f"r{number:04d}", kind, target, chosen, repeat)
        for number, (_, kind, target, chosen, repeat, share) in enumerate(slots, start=1)
        if plan.part is None or plan.part.holds(share)
    ]


def solo_shares(plan: Plan, target_shares: dict[RoleConfig, int]) -> dict[RoleConfig, int]:
    """The part share of each configuration's solo references where parts share out targets (every part's
    otherwise): its target's share (``shares_of_targets``), unless it is also a probe victim, whose solos
    every part needs."""
    if plan.parts_by != "targets":
        return {}
    victims = set(victim_configs(plan))
    return {config: share for config, share in target_shares.items() if config not in victims}


def shares_of_targets(targets: list[RoleConfig]) -> dict[RoleConfig, int]:
    """Each target configuration's share where parts share out targets: the static ones dealt out first, then
    the dynamic ones, so that each part gets its share of the longer dynamic runs."""
    dealt = sorted(targets, key=lambda config: config.schedule is not None)  # stable: plan order within
    return {config: index for index, config in enumerate(dealt)}


def _spread_solos(plan: Plan, configs: list[RoleConfig], shares: dict[RoleConfig, int]) -> list[Slot]:
    """``solo_repeats`` solos of each configuration, spread evenly through the plan with staggered offsets;
    ``shares``: the part share of a configuration's solos (absent: every part)."""
    slots: list[Slot] = []
    for config_index, config in enumerate(configs):
        offset = (config_index + 0.5) / len(configs)
        share = shares.get(config)
        for repeat in range(plan.solo_repeats):
            slots.append(((repeat + offset) / plan.solo_repeats - 1e-9, "solo", config, (), repeat, share))
    return slots


def _expand_in_blocks(
    plan: Plan,
    adjacent: AdjacentReferences,
    labelled: list[Slot],
    profiles: list[Slot],
    referenced: list[RoleConfig],
    shares: dict[RoleConfig, int],
) -> list[RunSpec]:
    """The runs of every part in turn, numbered through (so ids are the whole plan's for its part count),
    each part's labelled runs in blocks of one configuration with their solo references inside."""
    count = plan.part.count if plan.part is not None else 1
    labelled = sorted(labelled, key=lambda slot: slot[0])
    specs: list[RunSpec] = []
    for index in range(1, count + 1):
        part = PlanPart(index=index, count=count)
        held = [slot for slot in labelled if part.holds(slot[5])]
        by_config: dict[RoleConfig, list[Slot]] = {}
        for slot in held:
            by_config.setdefault(slot[2], []).append(slot)
        blocks = [
            runs[start : start + adjacent.block_runs]
            for runs in by_config.values()
            for start in range(0, len(runs), adjacent.block_runs)
        ]
        random.Random(plan.seed + 2 + index).shuffle(blocks)
        # Profiles, and the solo profiles of this part's configurations with nothing to label here, go
        # between blocks.
        idle = [c for c in referenced if c not in by_config and part.holds(shares.get(c))]
        singles = sorted(
            [*profiles, *_spread_solos(plan, idle, shares)],
            key=lambda slot: slot[0],
        )
        units: list[tuple[float, list[Slot] | Slot]] = [
            *((position / max(len(blocks), 1), block) for position, block in enumerate(blocks)),
            *((single[0], single) for single in singles),
        ]
        units.sort(key=lambda unit: unit[0])
        part_specs: list[RunSpec] = []
        for _, unit in units:
            if isinstance(unit, tuple):
                _, kind, target, chosen, repeat, _ = unit
                part_specs.append(
                    RunSpec(f"r{len(specs) + len(part_specs) + 1:04d}", kind, target, chosen, repeat)
                )
            else:
                part_specs.extend(_block_runs(unit, adjacent.runs_between, len(specs) + len(part_specs)))
        specs.extend(part_specs)
        if plan.part is not None and index == plan.part.index:
            return part_specs
    return specs


def _block_runs(block: list[Slot], runs_between: int, numbered: int) -> list[RunSpec]:
    """One block: a solo of its configuration, then ``runs_between`` labelled runs and a solo, and so on, a
    solo last. Each run's references are the solos on either side of it."""
    config = block[0][2]
    layout: list[Slot | None] = [None]  # None: a solo reference
    for position, slot in enumerate(block, start=1):
        layout.append(slot)
        if position % runs_between == 0 or position == len(block):
            layout.append(None)
    ids = [f"r{numbered + position:04d}" for position in range(1, len(layout) + 1)]
    solos = [position for position, slot in enumerate(layout) if slot is None]
    specs: list[RunSpec] = []
    for position, entry in enumerate(layout):
        before = max((p for p in solos if p < position), default=None)
        after = min((p for p in solos if p > position), default=None)
        references = tuple(ids[p] for p in (before, after) if p is not None)
        if entry is None:
            repeat = solos.index(position)
            specs.append(RunSpec(ids[position], "solo", config, (), repeat, references))
        else:
            _, kind, target, chosen, repeat, _ = entry
            specs.append(RunSpec(ids[position], kind, target, chosen, repeat, references))
    return specs


@dataclass(frozen=True)
class PlanSummary:
    runs: int
    solo: int
    corun: int
    dynamic_coruns: int
    neighbour_solo: int
    probe: int
    pressure: int
    target_configs: int
    applications: int
    dynamic_configs: int
    estimated_s: float


# What a run costs beyond its target's duration and warm-up (the quiet gate's window, cgroups, starting and
# stopping programs, parsing, the journal): bundled_v4 part 2 measured 330 runs in 106.4 min of wall time,
# 9.9 min more than the durations and warm-ups with 1 s each, i.e. 2.8 s a run.
RUN_OVERHEAD_S = 2.8


def summarise(plan: Plan, overhead_s: float = RUN_OVERHEAD_S) -> PlanSummary:
    """Counts and an estimated wall time (run durations + warm-ups + a per-run overhead)."""
    runs = expand_plan(plan)
    targets = target_configs(plan)
    count = {
        kind: sum(1 for run in runs if run.kind == kind)
        for kind in ("solo", "corun", "neighbour_solo", "probe", "pressure")
    }
    estimated = sum(
        run.target.duration_s + overhead_s + (plan.warmup_s if run.neighbours else 0) for run in runs
    )
    return PlanSummary(
        runs=len(runs),
        solo=count["solo"],
        corun=count["corun"],
        dynamic_coruns=sum(1 for run in runs if run.kind == "corun" and run.target.schedule is not None),
        neighbour_solo=count["neighbour_solo"],
        probe=count["probe"],
        pressure=count["pressure"],
        target_configs=len(targets),
        applications=len({config.workload for config in targets}),
        dynamic_configs=sum(1 for config in targets if config.schedule is not None),
        estimated_s=estimated,
    )


def phase_check(plan: Plan, config: RoleConfig) -> None:
    """Each phase must be long enough for its tool (raises PlanError)."""
    workload = plan.workload(config.workload)
    if config.phase_s < workload.min_phase_s or config.duration_s < len(config.phase_levels):
        raise PlanError(
            f"{config.config_key}: {len(config.phase_levels)} phases in {config.duration_s} s leave "
            f"{config.phase_s} s per phase; {config.workload} needs at least {workload.min_phase_s} s"
        )
