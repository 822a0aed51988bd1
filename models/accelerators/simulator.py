"""Discrete-event simulation of a placement: Poisson arrivals per app through an M/M/1 CPU frontend, the
network, and the node's accelerator (processor sharing on time-sliced GPUs, FCFS with model-switch overhead
on edgeTPUs; the servers are in `queues`).

A small event loop rather than SimPy: processor sharing changes every job's remaining time at each arrival and
departure, which SimPy's resource queues do not express. Policies are judged on these outcomes, not on the
model that placed them.

The verdict is a point rule on a precise mean: an app violates when its simulated mean latency (the quantity
the models predict) is over its SLO. The judge must favour neither side, so the mean must be precise next to
the margins an admission test leaves (a correct admission may sit 1 ms under a 60 ms SLO, while 30 s of a
5 req/s app measure its mean to about +-3 ms). Each node therefore runs (seeded; requests arriving in the
warm-up are dropped, since empty queues flatter everyone) for `horizon_s`, then longer, until every app's
95% batch-means half-width is below `precision` x its SLO, or `max_horizon_s` is reached; apps still short
of it are judged on the point estimate anyway and flagged (`SimulatedApp.settled` false).
With `stop_when_decided` an app also counts as settled once its whole interval lies on one side of its SLO:
the point estimate lies inside the interval, so a longer run would not change that verdict (at the 95% level);
without it, a saturated node (whose mean never converges) always runs to the cap. The early stop trusts the
interval, so the first run is long (300 s): in 60 s a quiet stretch looks both fast and steady, and a loaded
Jetson's ResNet-50 whose long-run mean is 153-156 ms read 130 +- 10 ms against its 150 ms SLO.

Each app draws its arrivals, frontend times and device work from its own seeded streams, so a longer run
extends the same sample path and an app joining a node leaves the incumbents' requests as they were.

A simulation is also capped at a budget of expected arrivals in all (each occupied node gets an equal share,
as its apps' summed rate times its horizon): `MAX_SIMULATED_REQUESTS` offline (reports, the command line),
`SERVED_SIMULATED_REQUESTS` for a request the service answers while its caller waits; a request could
otherwise ask for 1e300 requests per second, or a precision no run reaches, and hold a worker for minutes.
Apps cut short by it are flagged like those cut short by `max_horizon_s`.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from functools import lru_cache
from typing import Annotated, Any, Literal

import numpy as np
from cotenant.models.accelerators.base import Unbounded, device_model_name_for
from cotenant.models.accelerators.policies.base import Placement
from cotenant.models.accelerators.profiles import FRONTEND_MS, AppProfile, NodeSpec
from cotenant.models.accelerators.queues import fcfs_departures, fcfs_with_switch, processor_sharing
from pydantic import BaseModel, BeforeValidator, Field
from scipy import stats

__all__ = [
    "SimulatedApp",
    "SimulationConfig",
    "SimulationResult",
    "fcfs_with_switch",
    "mean_halfwidth",
    "processor_sharing",
    "simulate",
    "simulate_node",
    "simulate_node_precisely",
]

ServiceDistribution = Literal["deterministic", "exponential"]
BATCHES = 20  # batch means: batches of whole seconds of traffic are close to independent at these loads
ARRIVAL_BLOCK = 1024  # interarrival draws per block: fixed blocks keep a longer run's prefix identical
MAX_SIMULATED_REQUESTS = 4_000_000  # expected arrivals in one simulation, all nodes together
# Processor sharing replays about half a million requests a second on one core: a served simulation stays
# near a second
SERVED_SIMULATED_REQUESTS = 400_000
# Every app's run seeds its own streams and sorts its own requests, a fixed cost as large as replaying about
# this many requests: migration periods of a microsecond are work although they send few requests, so
# `migration` charges it to the budget for each app in each period
APP_RUN_COST_REQUESTS = 1_000
MAX_HORIZON_S = 86_400.0


def _whole_number(value: Any) -> Any:
    """JSON has one number type: 3.0 is the integer 3 (3.5 is still refused)."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


WholeNumber = Annotated[int, BeforeValidator(_whole_number)]


class SimulationConfig(BaseModel):
    horizon_s: float = Field(
        default=300.0, gt=0, le=MAX_HORIZON_S, description="first run of each node, simulated seconds"
    )
    max_horizon_s: float = Field(
        default=7200.0,
        gt=0,
        le=MAX_HORIZON_S,
        description="cap on a node's run; a larger horizon_s runs once",
    )
    precision: float = Field(
        default=0.01, gt=0, description="target half-width of each app's mean, as a fraction of its SLO"
    )
    stop_when_decided: bool = True
    confidence: float = Field(default=0.95, gt=0, lt=1)
    warmup_s: float = Field(default=5.0, ge=0, description="requests arriving earlier are not counted")
    seed: WholeNumber = 0
    service: ServiceDistribution = "deterministic"
    migration: bool = False
    migration_period_s: float = Field(default=10.0, gt=0)
    migration_window: WholeNumber = Field(default=20, gt=0)


class SimulatedApp(BaseModel):
    app: str
    node: str
    requests: int
    simulated_s: float
    mean_ms: Unbounded
    mean_halfwidth_ms: Unbounded  # half-width of the batch-means confidence interval of mean_ms
    p95_ms: Unbounded
    slo_ms: float
    over_slo_fraction: float
    violated: bool  # the point estimate of the mean latency is over the SLO
    precise: bool  # the half-width reached precision x SLO
    settled: bool  # precise, or (stop_when_decided) the whole interval lies on one side of the SLO


class SimulationResult(BaseModel):
    apps: list[SimulatedApp]
    migrations: int = 0

    @property
    def violations(self) -> int:
        return sum(app.violated for app in self.apps)

    @property
    def unsettled(self) -> list[SimulatedApp]:
        """Apps judged on a point estimate less precise than asked for (the run hit `max_horizon_s`)."""
        return [app for app in self.apps if not app.settled]


def _poisson_arrivals(rate_per_ms: float, horizon_ms: float, rng: np.random.Generator) -> np.ndarray:
    blocks, last = [], 0.0
    while last <= horizon_ms:
        block = last + np.cumsum(rng.exponential(1.0 / rate_per_ms, ARRIVAL_BLOCK))
        blocks.append(block)
        last = float(block[-1])
    arrivals = np.concatenate(blocks)
    return arrivals[arrivals < horizon_ms]


def simulate_node(
    node: NodeSpec, apps: Sequence[AppProfile], network_ms: float, config: SimulationConfig, seed: int
) -> dict[str, np.ndarray]:
    """End-to-end latencies (ms, in arrival order, warm-up dropped) per app on one node over `horizon_s`."""
    if not apps:
        return {}
    horizon_ms = config.horizon_s * 1000.0
    frontend_mean = node.frontend_ms or FRONTEND_MS[node.kind]
    entered, reached, owners, models, services, overheads, extra = [], [], [], [], [], [], []
    # one seed stream per app (by position), split into arrivals, frontend times and device work
    streams = np.random.SeedSequence(seed).spawn(len(apps))
    for position, (app, stream) in enumerate(zip(apps, streams, strict=True)):
        arrival_rng, frontend_rng, work_rng = (np.random.default_rng(s) for s in stream.spawn(3))
        profile = app.on(node.kind)
        arrivals = _poisson_arrivals(app.input_rate / 1000.0, horizon_ms, arrival_rng)
        count = len(arrivals)
        frontend = frontend_rng.exponential(frontend_mean, count)
        at_device = fcfs_departures(arrivals, frontend) + network_ms
        if config.service == "exponential":
            work = work_rng.exponential(profile.service_ms, count)
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
    kind = device_model_name_for(node).split("_")[0]
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
    # split by app in one sort (stable: each app's requests stay in arrival order), not a pass per app
    by_app = counted[np.argsort(owner[counted], kind="stable")]
    bounds = np.searchsorted(owner[by_app], np.arange(len(apps) + 1))
    return {app.name: total[by_app[bounds[p] : bounds[p + 1]]] for p, app in enumerate(apps)}


def mean_halfwidth(latencies: np.ndarray, confidence: float) -> float:
    """Batch-means confidence half-width of the mean of an autocorrelated series (in arrival order)."""
    if len(latencies) < 2 * BATCHES:
        return float("inf")  # too few requests to say anything
    # np.array_split's batches (the first len % BATCHES one longer), summed in one pass rather than a mean
    # per batch: a served simulation summarises thousands of apps
    size, longer = divmod(len(latencies), BATCHES)
    sizes = np.full(BATCHES, size)
    sizes[:longer] += 1
    means = np.add.reduceat(latencies, np.concatenate(([0], np.cumsum(sizes[:-1])))) / sizes
    return float(_batch_means_quantile(confidence) * means.std(ddof=1) / np.sqrt(BATCHES))


@lru_cache(maxsize=64)
def _batch_means_quantile(confidence: float) -> float:
    """Student's t quantile of the batch-means interval (scipy's ppf takes milliseconds; asked per app)."""
    return float(stats.t.ppf(0.5 + confidence / 2.0, BATCHES - 1))


def summarise(
    app: AppProfile, node: str, latencies: np.ndarray, config: SimulationConfig, simulated_s: float
) -> SimulatedApp:
    """The point verdict on one app's latencies, with how far its precision can be trusted."""
    if len(latencies) == 0:  # no request counted: nothing says the app violates, nothing says it is safe
        mean, halfwidth, p95, over = 0.0, float("inf"), 0.0, 0.0
    else:
        mean, halfwidth = float(latencies.mean()), mean_halfwidth(latencies, config.confidence)
        p95, over = float(np.percentile(latencies, 95)), float((latencies > app.slo_ms).mean())
    precise = halfwidth <= config.precision * app.slo_ms
    decided = config.stop_when_decided and abs(mean - app.slo_ms) > halfwidth
    return SimulatedApp(
        app=app.name,
        node=node,
        requests=len(latencies),
        simulated_s=simulated_s,
        mean_ms=mean,
        mean_halfwidth_ms=halfwidth,
        p95_ms=p95,
        slo_ms=app.slo_ms,
        over_slo_fraction=over,
        violated=mean > app.slo_ms,
        precise=precise,
        settled=precise or decided,
    )


def _longer_horizon(horizon_s: float, pending: Sequence[SimulatedApp], config: SimulationConfig) -> float:
    """The half-width shrinks as 1/sqrt(counted time): aim for the slowest app, with 20% to spare."""
    counted = horizon_s - min(config.warmup_s, horizon_s / 2)
    shortfall = max((app.mean_halfwidth_ms / (config.precision * app.slo_ms)) ** 2 for app in pending)
    growth = min(max(1.2 * shortfall, 2.0), 16.0)  # bounded: the half-width estimate itself is noisy
    return min(config.warmup_s + counted * growth, max(config.max_horizon_s, config.horizon_s))


_CACHE: OrderedDict[str, list[SimulatedApp]] = OrderedDict()
_CACHE_SIZE = 4096


def clear_cache() -> None:
    """Forget every memoised node (a benchmark's repeats must each simulate)."""
    _CACHE.clear()


def affordable_seconds(apps: Sequence[AppProfile], max_requests: float) -> float:
    """The horizon in which ``apps`` send ``max_requests`` requests, expected."""
    return max_requests / max(sum(app.input_rate for app in apps), 1e-12)


def simulate_node_precisely(
    node: NodeSpec,
    apps: Sequence[AppProfile],
    network_ms: float,
    config: SimulationConfig,
    seed: int,
    max_requests: float = MAX_SIMULATED_REQUESTS,
) -> list[SimulatedApp]:
    """One node, run longer until every app is settled or the cap is reached (see the module docstring).

    Seeded and deterministic, so results are memoised: a policy judged on growing prefixes of a stream
    re-simulates only the node that changed."""
    parts = [node.model_dump_json(), *(app.model_dump_json() for app in apps), config.model_dump_json()]
    key = "|".join([*parts, str(network_ms), str(seed), str(max_requests)])
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return [app.model_copy() for app in _CACHE[key]]
    cap_s = min(max(config.max_horizon_s, config.horizon_s), affordable_seconds(apps, max_requests))
    horizon = min(config.horizon_s, cap_s)
    while True:
        run = config.model_copy(update={"horizon_s": horizon})
        latencies = simulate_node(node, apps, network_ms, run, seed)
        summaries = [summarise(app, node.name, latencies[app.name], run, horizon) for app in apps]
        pending = [app for app in summaries if not app.settled]
        if not pending or horizon >= cap_s:
            break
        horizon = min(_longer_horizon(horizon, pending, config), cap_s)
    _CACHE[key] = summaries
    if len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return [app.model_copy() for app in summaries]


def simulate(
    placement: Placement, config: SimulationConfig | None = None, max_requests: float = MAX_SIMULATED_REQUESTS
) -> SimulationResult:
    """The placement's outcome, simulated within ``max_requests`` (see the module docstring)."""
    config = config or SimulationConfig()
    if config.migration:
        from cotenant.models.accelerators.migration import simulate_with_migration

        return simulate_with_migration(placement, config, max_requests)
    nodes = {node.name: node for node in placement.cluster.nodes}
    results: list[SimulatedApp] = []
    share = max_requests / max(1, sum(bool(apps) for apps in placement.hosted.values()))
    for index, (name, apps) in enumerate(placement.hosted.items()):
        if apps:
            network = placement.cluster.network_ms
            seed = config.seed + index
            results += simulate_node_precisely(nodes[name], apps, network, config, seed, share)
    return SimulationResult(apps=results)
