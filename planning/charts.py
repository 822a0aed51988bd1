"""The what-if studies' charts, returned as figures: a notebook shows them inline and saves them."""

from __future__ import annotations

from typing import Any

import numpy as np
from cotenant.planning.consolidation import POLICIES
from cotenant.planning.consolidation import Study as ConsolidationStudy
from cotenant.planning.rescheduling import Planner, State
from cotenant.planning.rescheduling import Study as ReschedulingStudy


def consolidation_charts(result: ConsolidationStudy, min_p: float, title: str) -> dict[str, Any]:
    """The predicted P of every tenant per policy at the SLO; placed and hosts needed over the sweep."""
    import matplotlib.pyplot as plt

    slos = [point.min_p for point in result.sensitivity["requests_only"]]
    spread_figure, spread = plt.subplots(figsize=(6, 3.6))
    slo_figure, (placed, needed) = plt.subplots(1, 2, figsize=(10, 3.6))
    for policy in POLICIES:
        spread.hist(
            result.at_slo[policy].predicted_p,
            bins=20,
            range=(0, 1),
            histtype="step",
            linewidth=2,
            label=policy,
        )
        points = result.sensitivity[policy]
        placed.plot(slos, [p.placed for p in points], marker="o", label=f"{policy}: placed")
        needed.plot(slos, [p.hosts_needed or np.nan for p in points], marker="o", label=policy)
    under = [p.violations for p in result.sensitivity["requests_only"]]
    placed.plot(slos, under, marker="x", linestyle=":", label="requests_only: tenants under the SLO")
    spread.axvline(min_p, color="black", linestyle="--", label=f"SLO: min P {min_p}")
    spread.set(xlabel="predicted P of each tenant", ylabel="tenants", title=title)
    placed.set(xlabel="SLO: minimum predicted P", ylabel="workloads on the planned fleet")
    needed.set(xlabel="SLO: minimum predicted P", ylabel="hosts needed for the whole stream")
    for axis in (spread, placed, needed):
        axis.legend(fontsize=7)
    for figure in (spread_figure, slo_figure):
        figure.tight_layout()
    return {"consolidation_predicted_p": spread_figure, "consolidation_slo": slo_figure}


def rescheduling_charts(result: ReschedulingStudy, planner: Planner, start: State) -> dict[str, Any]:
    """Worst and mean P over the greedy plan's moves (with the exact optimum and the monitoring re-check);
    each host's worst rated P before and after the plan."""
    import matplotlib.pyplot as plt

    fleet, greedy = planner.fleet, result.greedy
    moves_figure, axis = plt.subplots(figsize=(6, 3.6))
    steps = range(len(greedy.values))
    axis.plot(steps, [w for w, _ in greedy.values], marker="o", label="greedy: worst P (placement model)")
    axis.plot(steps, [m for _, m in greedy.values], marker="o", linestyle="--", label="greedy: mean P")
    axis.plot(steps, result.worst_monitored(fleet.rated), marker="s", label="greedy: worst P (monitoring)")
    if result.exact:
        axis.plot(
            range(len(result.exact)), [v[0] for v, _ in result.exact], marker="^", label="exact: worst P"
        )
    axis.set(xlabel="moves", ylabel="predicted P", xticks=range(max(len(greedy.values), len(result.exact))))
    axis.legend(fontsize=7)
    hosts_figure, axis = plt.subplots(figsize=(max(6.0, 0.8 * len(fleet.hosts)), 3.6))
    for offset, (label, state) in zip(
        (-0.2, 0.2), (("before", start), ("after", greedy.states[-1])), strict=True
    ):
        view = planner.p_of(state)
        rated_on = [[view[t] for t in fleet.on(state, h) if t in fleet.rated] for h in fleet.hosts]
        worst = [min(p, default=1.0) for p in rated_on]
        axis.bar(np.arange(len(fleet.hosts)) + offset, worst, width=0.4, alpha=0.6, label=f"worst P {label}")
        for h, shown in enumerate(rated_on):
            axis.scatter([h + offset] * len(shown), shown, s=12, c="k")
    axis.set_xticks(range(len(fleet.hosts)), fleet.hosts, rotation=40)
    axis.set(ylabel="predicted P (dots: rated tenants)")
    axis.legend(fontsize=7)
    for figure in (moves_figure, hosts_figure):
        figure.tight_layout()
    return {"rescheduling_p_vs_moves": moves_figure, "rescheduling_hosts_before_after": hosts_figure}


def edge_charts(
    sizing: dict[str, dict[str, Any]],
    trend: dict[str, dict[str, list[int | None]]],
    app_counts: list[int],
    n_apps: int,
) -> dict[str, Any]:
    """Per device kind: nodes by each policy's own rule and with zero simulated violations; and the nodes
    needed as the app count grows."""
    import matplotlib.pyplot as plt

    kinds = list(sizing)
    nodes_figure, axes = plt.subplots(1, len(kinds), figsize=(5 * len(kinds), 3.6), squeeze=False)
    for axis, kind in zip(axes[0], kinds, strict=True):
        policies = list(sizing[kind])
        positions = np.arange(len(policies))
        by_rule = [sizing[kind][p]["by_rule"] or 0 for p in policies]
        needed = [sizing[kind][p]["zero_violation"] or 0 for p in policies]
        axis.bar(positions - 0.2, by_rule, width=0.4, label="by the policy's own rule")
        axis.bar(positions + 0.2, needed, width=0.4, label="zero simulated violations")
        axis.set_xticks(list(positions), policies, rotation=40)
        axis.set(ylabel="nodes (0 = not within max_nodes)", title=f"{kind}: {n_apps} apps")
        axis.legend(fontsize=7)
    trend_figure, axes = plt.subplots(1, len(kinds), figsize=(5 * len(kinds), 3.4), squeeze=False)
    for axis, kind in zip(axes[0], kinds, strict=True):
        for policy, nodes in trend[kind].items():
            axis.plot(app_counts, [n if n is not None else np.nan for n in nodes], marker="o", label=policy)
        axis.set(xlabel="apps", ylabel="nodes, zero violations", title=kind)
        axis.legend(fontsize=7)
    for figure in (nodes_figure, trend_figure):
        figure.tight_layout()
    return {"edge_fleet_sizing_nodes": nodes_figure, "edge_fleet_sizing_trend": trend_figure}
