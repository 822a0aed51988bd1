"""Reactive migration in the simulator: every period, an app whose last `migration_window` requests average
over its SLO moves to the first node that passes the admission test.

Queues restart empty each period (an approximation), and the run length is `horizon_s` as given: moves change
the placement mid-run, so there is no single steady state whose mean a longer run would make precise. Apps are
still judged by the point rule, and flagged unsettled when their interval is wider than asked for.
"""

from __future__ import annotations

import numpy as np
from cotenant.models.accelerators.base import admits
from cotenant.models.accelerators.policies.base import Placement
from cotenant.models.accelerators.profiles import AppProfile
from cotenant.models.accelerators.simulator import (
    SimulationConfig,
    SimulationResult,
    simulate_node,
    summarise,
)


def simulate_with_migration(placement: Placement, config: SimulationConfig) -> SimulationResult:
    nodes = {node.name: node for node in placement.cluster.nodes}
    hosted = {name: list(apps) for name, apps in placement.hosted.items()}
    # each period restarts with empty queues; a fifth of it is enough to drop their flattering start
    window = config.model_copy(
        update={
            "horizon_s": config.migration_period_s,
            "warmup_s": min(config.warmup_s, config.migration_period_s / 5),
            "migration": False,
        }
    )
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
    simulated_s = periods * config.migration_period_s
    results = [
        summarise(app, name, np.concatenate(collected[app.name]), config, simulated_s)
        for name, apps in hosted.items()
        for app in apps
    ]
    return SimulationResult(apps=results, migrations=migrations)
