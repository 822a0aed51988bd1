"""Reactive migration in the simulator: every period, an app whose last `migration_window` requests average
over its SLO moves to the first node that passes the admission test.

Queues restart empty each period (an approximation), and the run length is `horizon_s` as given: moves change
the placement mid-run, so there is no single steady state whose mean a longer run would make precise. Apps are
still judged by the point rule, and flagged unsettled when their interval is wider than asked for. The run is
shortened to the simulator's request budget, and has at most `MAX_PERIODS` periods, and at most as many as the
budget pays for at `APP_RUN_COST_REQUESTS` per app and period (longer ones past that).
"""

from __future__ import annotations

import numpy as np
from cotenant.models.accelerators.policies.base import Placement
from cotenant.models.accelerators.profiles import AppProfile
from cotenant.models.accelerators.simulator import (
    APP_RUN_COST_REQUESTS,
    MAX_SIMULATED_REQUESTS,
    SimulationConfig,
    SimulationResult,
    affordable_seconds,
    simulate_node,
    summarise,
)

MAX_PERIODS = 1_000


def simulate_with_migration(
    placement: Placement, config: SimulationConfig, max_requests: float = MAX_SIMULATED_REQUESTS
) -> SimulationResult:
    nodes = {node.name: node for node in placement.cluster.nodes}
    # a copy whose apps move, keeping each node's admission state as they do; its tests are paid from the
    # placement's budget (a served request's: `AdmissionBudgetExceeded` past it)
    moving = Placement(
        placement.cluster, hosted=placement.hosted, max_admission_tests=placement.max_admission_tests
    )
    moving.admission_tests = placement.admission_tests
    hosted = moving.hosted
    every_app = [app for apps in hosted.values() for app in apps]
    horizon_s = min(config.horizon_s, affordable_seconds(every_app, max_requests))
    affordable_periods = int(max_requests / (APP_RUN_COST_REQUESTS * max(1, len(every_app))))
    periods = max(1, min(MAX_PERIODS, affordable_periods, round(horizon_s / config.migration_period_s)))
    period_s = horizon_s / periods
    # each period restarts with empty queues; a fifth of it is enough to drop their flattering start
    window = config.model_copy(
        update={"horizon_s": period_s, "warmup_s": min(config.warmup_s, period_s / 5), "migration": False}
    )
    collected: dict[str, list[np.ndarray]] = {}
    migrations = 0
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
            target = moving.first_admitting(app, besides=source)
            if target is not None:
                moving.unhost(nodes[source], app)
                moving.host(target, app)
                migrations += 1
    simulated_s = periods * period_s
    results = [
        summarise(app, name, np.concatenate(collected[app.name]), config, simulated_s)
        for name, apps in hosted.items()
        for app in apps
    ]
    return SimulationResult(apps=results, migrations=migrations)
