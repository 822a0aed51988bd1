"""The closed-loop A/B test's plan, placement policies and scoring: what ``cotenant lab abtest`` decides and
reports, apart from running anything (``abtest_run.py`` runs it).

A stream of tenants arrives one by one; each policy places it on one of the hosts through the same questions
kube-scheduler asks a scheduler extender (which nodes fit, how each scores) or, for the baselines, through
kube-scheduler's own scorers on resource requests:

- ``cotenant``: the extender's ``filter`` (nodes where the newcomer or an incumbent would fall below the SLO
  fail) then ``prioritize`` (the highest score wins); no node left means the tenant is refused;
- ``most_allocated``: requests-only bin packing (NodeResourcesFit MostAllocated): the fullest node that fits;
- ``least_allocated``: spreading (LeastAllocated): the emptiest node that fits;
- ``random``: any node that fits, seeded.

Capacity (CPU and memory requests) is respected by every policy: a tenant that fits nowhere is refused.
Every policy breaks ties between equally scored nodes at random (seeded), as kube-scheduler's ``selectHost``
does.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, get_args

import numpy as np
from cotenant.datasets.lab.command import CommandSpec
from cotenant.datasets.lab.workloads import WORKLOADS
from pydantic import BaseModel, ConfigDict, Field, model_validator

Policy = Literal["cotenant", "most_allocated", "least_allocated", "random"]
CpuWeights = Literal["equal", "requests"]
POLICIES: tuple[Policy, ...] = ("cotenant", "most_allocated", "least_allocated", "random")


class Requests(BaseModel):
    """What a tenant asks the scheduler for (its limits are the same: a Guaranteed pod)."""

    model_config = ConfigDict(extra="forbid")

    cpus: float = Field(gt=0, le=64)
    memory_mib: int = Field(ge=16)


class TenantSpec(BaseModel):
    """A pod of the stream: scheduled by its ``requests``; it may use up to its ``limits`` (Burstable, as most
    pods are: the CPU it bursts into is where co-located tenants interfere). No limits: the host's CPUs, and
    its memory request."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=40, pattern=r"^[a-z0-9][a-z0-9-]*$")
    workload: str
    level: int = Field(ge=1)
    requests: Requests
    limits: Requests | None = None


class HostSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    count: int = Field(default=2, ge=2, le=64)
    cpus: int = Field(default=1, ge=1, description="cores per host: a disjoint cpuset of this many CPUs")
    memory_mib: int = Field(default=2048, ge=64)


class AbTestPlan(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    seed: int = 0
    hosts: HostSpec = Field(default_factory=HostSpec)
    duration_s: int = Field(default=20, ge=2, le=600, description="each measured execution")
    warmup_s: float = Field(default=2.0, ge=0, le=60)
    repeats: int = Field(default=3, ge=1, description="executions of each policy's final placement")
    solo_repeats: int = Field(default=2, ge=1)
    min_performance: float = Field(default=0.8, gt=0, le=1, description="the SLO: P >= this")
    settle_s: float = Field(
        default=8.0, ge=0, le=120, description="after placing a tenant, seconds of telemetry before the next"
    )
    policies: list[Policy] = Field(default_factory=lambda: list(POLICIES), min_length=1)
    # How cotenant's extender reads the SLO: the service's ``extender_rule`` (serving/config.py owns them).
    extender_rule: str = "medians"
    # How a host's CPU is shared between its tenants under contention: ``equal`` (every tenant's cgroup at the
    # kernel's default weight) or ``requests`` (each tenant's cpu.shares from its CPU request, as kubelet sets
    # a pod's: a service asking 0.2 CPU weighs five times a batch job asking 0.04).
    cpu_weights: CpuWeights = "equal"
    commands: dict[str, CommandSpec] = Field(default_factory=dict)
    tenants: list[TenantSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> AbTestPlan:
        names = [tenant.name for tenant in self.tenants]
        if repeated := sorted({n for n in names if names.count(n) > 1}):
            raise ValueError(f"tenants: names must be unique; repeated: {', '.join(repeated)}")
        from cotenant.serving.config import ExtenderRule  # serving's fact, read only to check the plan

        if self.extender_rule not in get_args(ExtenderRule):
            known_rules = ", ".join(get_args(ExtenderRule))
            raise ValueError(f"extender_rule: unknown rule {self.extender_rule!r}; known: {known_rules}")
        known = sorted({*WORKLOADS, *self.commands})
        for index, tenant in enumerate(self.tenants):
            if tenant.workload not in known:
                raise ValueError(
                    f"tenants[{index}].workload: unknown workload {tenant.workload!r}; "
                    f"known: {', '.join(known)}"
                )
            if tenant.requests.cpus > self.hosts.cpus or tenant.requests.memory_mib > self.hosts.memory_mib:
                raise ValueError(
                    f"tenants[{index}] ({tenant.name}): requests {tenant.requests.cpus:g} CPUs / "
                    f"{tenant.requests.memory_mib} MiB fit on no host ({self.hosts.cpus} CPUs / "
                    f"{self.hosts.memory_mib} MiB each)"
                )
        return self

    def host_names(self) -> list[str]:
        return [f"host-{index + 1}" for index in range(self.hosts.count)]

    def check_machine(self, cpu_count: int) -> None:
        """A plan asking for more CPUs than the machine has is refused before anything starts."""
        wanted = self.hosts.count * self.hosts.cpus
        if wanted > cpu_count:
            raise ValueError(
                f"hosts: {self.hosts.count} hosts x {self.hosts.cpus} CPUs need {wanted} CPUs; "
                f"this machine has {cpu_count}"
            )


# ---- placement -------------------------------------------------------------------------------------------
@dataclass
class HostLoad:
    """What a host has been given so far, in requests."""

    cpus: float
    memory_mib: int
    tenants: list[str] = field(default_factory=list)
    used_cpus: float = 0.0
    used_memory_mib: int = 0

    def fits(self, requests: Requests) -> bool:
        return (
            self.used_cpus + requests.cpus <= self.cpus + 1e-9
            and self.used_memory_mib + requests.memory_mib <= self.memory_mib
        )

    def allocated_after(self, requests: Requests) -> float:
        """kube-scheduler's NodeResourcesFit score input: the mean requested share of CPU and memory."""
        cpu = (self.used_cpus + requests.cpus) / self.cpus
        memory = (self.used_memory_mib + requests.memory_mib) / self.memory_mib
        return (cpu + memory) / 2

    def add(self, name: str, requests: Requests) -> None:
        self.tenants.append(name)
        self.used_cpus += requests.cpus
        self.used_memory_mib += requests.memory_mib


# The cotenant policy's question to the extender: (tenant, feasible hosts in order) -> {host: score} of the
# hosts that pass its filter (an empty answer refuses the tenant).
ExtenderScores = Callable[[TenantSpec, list[str]], dict[str, float]]


@dataclass(frozen=True)
class Placement:
    policy: Policy
    hosts: dict[str, list[str]]  # host -> tenants, in arrival order
    refused: list[str]
    # per decision: the tenant, the hosts that fitted, the chosen one (None: refused), the scores compared
    decisions: list[dict[str, object]]

    def host_of(self, tenant: str) -> str | None:
        return next((host for host, names in self.hosts.items() if tenant in names), None)


def choose(
    policy: Policy,
    tenant: TenantSpec,
    loads: dict[str, HostLoad],
    rng: random.Random,
    extender: ExtenderScores | None = None,
) -> tuple[str | None, dict[str, float]]:
    """The host a policy picks for ``tenant`` among those its requests fit (None: refused), and its scores."""
    fitting = [name for name, load in loads.items() if load.fits(tenant.requests)]
    if not fitting:
        return None, {}
    if policy == "cotenant":
        if extender is None:
            raise ValueError("the cotenant policy needs the extender's scores")
        scores = extender(tenant, fitting)
        passing = [name for name in fitting if name in scores]
        return (highest_scoring(passing, scores, rng) if passing else None), scores
    if policy == "random":
        return rng.choice(fitting), {}
    scores = {name: loads[name].allocated_after(tenant.requests) for name in fitting}
    sign = 1.0 if policy == "most_allocated" else -1.0
    return highest_scoring(fitting, {name: sign * score for name, score in scores.items()}, rng), scores


def highest_scoring(hosts: list[str], scores: dict[str, float], rng: random.Random) -> str:
    """One of the hosts with the highest score, uniformly at random, as kube-scheduler's ``selectHost``
    breaks ties (an extender's eleven levels tie often; always taking the first would pile ties onto it)."""
    top = max(scores[name] for name in hosts)
    return rng.choice([name for name in hosts if scores[name] == top])


def place_stream(
    plan: AbTestPlan,
    policy: Policy,
    extender: ExtenderScores | None = None,
    on_placed: Callable[[TenantSpec, str], None] | None = None,
) -> Placement:
    """Every tenant in arrival order, placed by ``policy``; ``on_placed`` runs after each placement (the live
    experiment starts the tenant there, so that the next decision sees its telemetry)."""
    loads = {name: HostLoad(plan.hosts.cpus, plan.hosts.memory_mib) for name in plan.host_names()}
    rng = random.Random(plan.seed)
    refused: list[str] = []
    decisions: list[dict[str, object]] = []
    for tenant in plan.tenants:
        fitting = [name for name, load in loads.items() if load.fits(tenant.requests)]
        host, scores = choose(policy, tenant, loads, rng, extender)
        decisions.append({"tenant": tenant.name, "fitting": fitting, "chosen": host, "scores": scores})
        if host is None:
            refused.append(tenant.name)
            continue
        loads[host].add(tenant.name, tenant.requests)
        if on_placed is not None:
            on_placed(tenant, host)
    return Placement(policy, {name: load.tenants for name, load in loads.items()}, refused, decisions)


# ---- scoring -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PolicyOutcome:
    policy: Policy
    placed: int
    refused: int
    mean_p: float
    worst_p: float
    slo_misses: int  # tenants under the SLO plus refused tenants
    prediction_mae_pp: float | None  # the champion's mean |predicted - measured| P over placed tenants


@dataclass(frozen=True)
class PredictionErrors:
    """The champion's answers (median, 80% interval) against measured P over some placed tenants."""

    tenants: int
    mae_pp: float
    bias_pp: float  # mean predicted - measured: negative when the champion is pessimistic
    coverage: float  # share of measured P inside the 80% interval


def prediction_errors(
    predicted: dict[str, Sequence[float]], measured: dict[str, Sequence[float]]
) -> PredictionErrors | None:
    """``predicted``: tenant -> (median, lower, upper); ``measured``: tenant -> P of each execution (their
    median is the tenant's P). None when no tenant has both."""
    pairs = [
        (predicted[t], float(np.median(values)))
        for t, values in measured.items()
        if t in predicted and len(values)
    ]
    if not pairs:
        return None
    errors = np.array([answer[0] - actual for answer, actual in pairs])
    inside = [answer[1] <= actual <= answer[2] for answer, actual in pairs]
    return PredictionErrors(
        len(pairs), float(np.abs(errors).mean() * 100), float(errors.mean() * 100), float(np.mean(inside))
    )


def outcome(
    placement: Placement,
    measured: dict[str, Sequence[float]],
    min_performance: float,
    predicted: dict[str, float] | None = None,
) -> PolicyOutcome:
    """Per policy: measured P per placed tenant (median of the repeats), the SLO's misses (a refused tenant
    counts as one), and the error of the champion's predictions for that placement."""
    p = {tenant: float(np.median(values)) for tenant, values in measured.items() if len(values)}
    placed = [tenant for names in placement.hosts.values() for tenant in names]
    values = np.array([p[tenant] for tenant in placed if tenant in p])
    misses = int((values < min_performance).sum()) + len(placement.refused)
    error = None
    if predicted:
        pairs = [(predicted[t], p[t]) for t in placed if t in predicted and t in p]
        error = float(np.mean([abs(a - b) for a, b in pairs]) * 100) if pairs else None
    return PolicyOutcome(
        placement.policy,
        len(placed),
        len(placement.refused),
        float(values.mean()) if len(values) else float("nan"),
        float(values.min()) if len(values) else float("nan"),
        misses,
        error,
    )
