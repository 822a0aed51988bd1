"""Discrete-event simulation of a placement: Poisson arrivals per app through an M/M/1 CPU frontend, the
network,
and the node's accelerator (processor sharing on time-sliced GPUs, FCFS with model-switch overhead on
edgeTPUs).

A small event loop rather than SimPy: processor sharing changes every job's remaining time at each arrival and
departure, which SimPy's resource queues do not express; FCFS is a Lindley recursion. Seeded and bounded by a
simulated horizon. Policies are judged on these outcomes, not on the model that placed them.

The verdict is statistical. The models predict a steady-state mean; a finite run estimates it with an error
that is large next to the margins an admission test leaves (150 requests of an app at 5 req/s over 30 s give
about +-3 ms on a 60 ms SLO, while a correct admission may sit 1 ms under it). Requests arriving during the
warm-up (queues start empty, which flatters everyone) are dropped, the mean gets a batch-means confidence
interval, and `violation_rule="confident"` (default) calls an app violated when the whole interval lies above
its SLO; `"point"` compares the point estimate alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
from cotenant.models.accelerators.base import DEFAULT_DEVICE_MODEL, admits
from cotenant.models.accelerators.policies.base import Placement
from cotenant.models.accelerators.profiles import FRONTEND_MS, AppProfile, NodeSpec
from pydantic import BaseModel, Field
from scipy import stats

ServiceDistribution = Literal["deterministic", "exponential"]
ViolationRule = Literal["confident", "point"]
BATCHES = 10  # batch means: 10 consecutive batches are close to independent for these loads


class SimulationConfig(BaseModel):
    horizon_s: float = Field(default=60.0, gt=0)
    seed: int = 0
    service: ServiceDistribution = "deterministic"
    migration: bool = False
    migration_period_s: float = Field(default=10.0, gt=0)
    migration_window: int = Field(default=20, gt=0)
    warmup_s: float = Field(default=2.0, ge=0, description="requests arriving earlier are not counted")
    violation_rule: ViolationRule = "confident"
    confidence: float = Field(default=0.95, gt=0, lt=1)


class SimulatedApp(BaseModel):
    app: str
    node: str
    requests: int
    mean_ms: float
    mean_halfwidth_ms: float  # half-width of the batch-means confidence interval of mean_ms
    p95_ms: float
    slo_ms: float
    over_slo_fraction: float
    violated: bool  # the app's mean latency exceeds its SLO (the quantity the models predict), see the rule


class SimulationResult(BaseModel):
    apps: list[SimulatedApp]
    migrations: int = 0

    @property
    def violations(self) -> int:
        return sum(app.violated for app in self.apps)


def fcfs_with_switch(
    arrivals: np.ndarray, models: Sequence[str], services: np.ndarray, overheads: np.ndarray
) -> np.ndarray:
    """Response times of an FCFS server; a request pays its model's reload when the previous one differed."""
    response = np.empty(len(arrivals))
    free_at, previous = 0.0, None
    for index in np.argsort(arrivals, kind="stable"):
        start = max(arrivals[index], free_at)
        work = services[index] + (overheads[index] if previous not in (None, models[index]) else 0.0)
        free_at = start + work
        previous = models[index]
        response[index] = free_at - arrivals[index]
    return response


def processor_sharing(arrivals: np.ndarray, services: np.ndarray) -> np.ndarray:
    """Response times under egalitarian processor sharing (each of n active jobs served at rate 1/n)."""
    order = np.argsort(arrivals, kind="stable")
    response = np.empty(len(arrivals))
    remaining: dict[int, float] = {}
    clock, position = 0.0, 0
    while position < len(order) or remaining:
        next_arrival = arrivals[order[position]] if position < len(order) else np.inf
        if remaining:
            job, work = min(remaining.items(), key=lambda item: item[1])
            next_departure = clock + work * len(remaining)
        else:
            next_departure = np.inf
        event = min(next_arrival, next_departure)
        if remaining:
            progress = (event - clock) / len(remaining)
            remaining = {key: value - progress for key, value in remaining.items()}
        clock = event
        if next_departure <= next_arrival:
            response[job] = clock - arrivals[job]
            del remaining[job]
        else:
            index = int(order[position])
            remaining[index] = float(services[index])
            position += 1
    return response


def _mm1_frontend(arrivals: np.ndarray, mean_ms: float, rng: np.random.Generator) -> np.ndarray:
    departures = np.empty(len(arrivals))
    free_at = 0.0
    for index, arrival in enumerate(arrivals):
        free_at = max(arrival, free_at) + rng.exponential(mean_ms)
        departures[index] = free_at
    return departures


def simulate_node(
    node: NodeSpec, apps: Sequence[AppProfile], network_ms: float, config: SimulationConfig, seed: int
) -> dict[str, np.ndarray]:
    """End-to-end latencies (ms) per app on one node over the horizon."""
    if not apps:
        return {}
    rng = np.random.default_rng(seed)
    horizon_ms = config.horizon_s * 1000.0
    frontend_mean = node.frontend_ms or FRONTEND_MS[node.kind]
    entered, reached, owners, models, services, overheads, extra = [], [], [], [], [], [], []
    for position, app in enumerate(apps):
        profile = app.on(node.kind)
        count = rng.poisson(app.input_rate * config.horizon_s)
        arrivals = np.sort(rng.uniform(0.0, horizon_ms, count))
        at_device = _mm1_frontend(arrivals, frontend_mean, rng) + network_ms
        if config.service == "exponential":
            work = rng.exponential(profile.service_ms, count)
        else:
            work = np.full(count, profile.service_ms)
        entered.append(arrivals)
        reached.append(at_device)
        owners.append(np.full(count, position))
        models += [app.model] * count
        services.append(work)
        overheads.append(np.full(count, profile.switch_overhead_ms or 0.0))
        extra.append(np.full(count, profile.client_overhead_ms))
    arrival = np.concatenate(reached)
    kind = (node.device_model or DEFAULT_DEVICE_MODEL[node.kind]).split("_")[0]
    if kind == "edgetpu":
        device = fcfs_with_switch(arrival, models, np.concatenate(services), np.concatenate(overheads))
    elif kind == "gpu" and (node.device_model or "").endswith("mps"):
        raise ValueError(f"node {node.name}: the simulator has no MPS device; use a PS or FCFS node")
    else:
        device = processor_sharing(arrival, np.concatenate(services))
    started = np.concatenate(entered)
    total = arrival + device + np.concatenate(extra) - started
    owner = np.concatenate(owners)
    order = np.argsort(started, kind="stable")
    counted = order[started[order] >= min(config.warmup_s, config.horizon_s / 2) * 1000.0]
    return {app.name: total[counted][owner[counted] == position] for position, app in enumerate(apps)}


def mean_halfwidth(latencies: np.ndarray, confidence: float) -> float:
    """Batch-means confidence half-width of the mean of an autocorrelated series (in arrival order)."""
    if len(latencies) < 2 * BATCHES:
        return float("inf")  # too few requests to say anything
    means = np.array([batch.mean() for batch in np.array_split(latencies, BATCHES)])
    quantile = stats.t.ppf(0.5 + confidence / 2.0, BATCHES - 1)
    return float(quantile * means.std(ddof=1) / np.sqrt(BATCHES))


def is_violation(mean_ms: float, halfwidth_ms: float, slo_ms: float, rule: ViolationRule) -> bool:
    return mean_ms - (halfwidth_ms if rule == "confident" else 0.0) > slo_ms


def _summarise(app: AppProfile, node: str, latencies: np.ndarray, config: SimulationConfig) -> SimulatedApp:
    if len(latencies) == 0:
        return SimulatedApp(
            app=app.name,
            node=node,
            requests=0,
            mean_ms=0.0,
            mean_halfwidth_ms=float("inf"),
            p95_ms=0.0,
            slo_ms=app.slo_ms,
            over_slo_fraction=0.0,
            violated=False,
        )
    mean = float(latencies.mean())
    halfwidth = mean_halfwidth(latencies, config.confidence)
    # a series too short for an interval is judged on its point estimate rather than waved through
    rule = config.violation_rule if np.isfinite(halfwidth) else "point"
    return SimulatedApp(
        app=app.name,
        node=node,
        requests=len(latencies),
        mean_ms=mean,
        mean_halfwidth_ms=halfwidth,
        p95_ms=float(np.percentile(latencies, 95)),
        slo_ms=app.slo_ms,
        over_slo_fraction=float((latencies > app.slo_ms).mean()),
        violated=is_violation(mean, halfwidth, app.slo_ms, rule),
    )


def simulate(placement: Placement, config: SimulationConfig | None = None) -> SimulationResult:
    config = config or SimulationConfig()
    if config.migration:
        return _simulate_with_migration(placement, config)
    nodes = {node.name: node for node in placement.cluster.nodes}
    results = []
    for index, (name, apps) in enumerate(placement.hosted.items()):
        latencies = simulate_node(
            nodes[name], apps, placement.cluster.network_ms, config, config.seed + index
        )
        results += [_summarise(app, name, latencies[app.name], config) for app in apps]
    return SimulationResult(apps=results)


def _simulate_with_migration(placement: Placement, config: SimulationConfig) -> SimulationResult:
    """Reactive migration: every period, an app whose last `migration_window` requests average over its SLO
    moves
    to the first node that passes the admission test. Queues restart empty each period (an approximation)."""
    nodes = {node.name: node for node in placement.cluster.nodes}
    hosted = {name: list(apps) for name, apps in placement.hosted.items()}
    window = config.model_copy(update={"horizon_s": config.migration_period_s, "migration": False})
    collected: dict[str, list[np.ndarray]] = {}
    migrations, periods = 0, max(1, round(config.horizon_s / config.migration_period_s))
    for period in range(periods):
        late: list[tuple[str, AppProfile]] = []
        for index, (name, apps) in enumerate(hosted.items()):
            seed = config.seed + 1000 * period + index
            latencies = simulate_node(nodes[name], apps, placement.cluster.network_ms, window, seed)
            for app in apps:
                collected.setdefault(app.name, []).append(latencies[app.name])
                recent = latencies[app.name][-config.migration_window :]
                if len(recent) and recent.mean() > app.slo_ms:
                    late.append((name, app))
        for source, app in late:
            for target in placement.cluster.nodes:
                candidate = [*hosted[target.name], app]
                if (
                    target.name != source
                    and target.kind in app.devices
                    and admits(target, candidate, placement.cluster.network_ms)
                ):
                    hosted[source].remove(app)
                    hosted[target.name].append(app)
                    migrations += 1
                    break
    results = [
        _summarise(app, name, np.concatenate(collected[app.name]), config)
        for name, apps in hosted.items()
        for app in apps
    ]
    return SimulationResult(apps=results, migrations=migrations)
