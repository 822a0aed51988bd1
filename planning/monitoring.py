"""Current P of every tenant by the monitoring model: fed with a recorded co-run's telemetry when the dataset
holds a run of that tenant beside exactly these neighbours, otherwise with solo profiles (the tenant's own,
its neighbours') and no host series. Each answer says which."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import polars as pl
from cotenant.datasets.table import RunTable
from cotenant.datasets.tensors import probe_results
from cotenant.planning.rescheduling import Fleet, State

ALONE, RECORDED, SOLO = "alone", "co-run telemetry", "solo profiles"


class MonitoringView:
    def __init__(self, table: RunTable, predictor: Any, solo: Mapping[str, Mapping[str, np.ndarray]]) -> None:
        self.table, self.predictor, self.solo = table, predictor, solo
        runs = table.runs.filter(pl.col("target_profile").is_not_null()).sort("run_id")
        self.recorded: dict[tuple[str, tuple[str, ...]], str] = {}  # (tenant, sorted neighbours) -> first run
        for run_id, target, others in zip(
            runs["run_id"], runs["target_profile"], runs["neighbour_profiles"], strict=True
        ):
            self.recorded.setdefault((target, tuple(sorted(others))), run_id)
        self._p: dict[tuple[str, tuple[str, ...]], tuple[float, str]] = {}

    def p(self, profile: str, others: tuple[str, ...]) -> tuple[float, str]:
        """P of a tenant beside ``others`` (sorted profile ids), and where its input series came from."""
        key = (profile, others)
        if key in self._p:
            return self._p[key]
        if not others:
            self._p[key] = (1.0, ALONE)
            return self._p[key]
        # The workloads' probes as the lab measured them, for a model that reads them (include_probes).
        probes = probe_results(self.table, profile)
        neighbour_probes = [probe_results(self.table, other) for other in others]
        if key in self.recorded:
            table = self.table
            frame = table.telemetry.filter(pl.col("run_id") == self.recorded[key]).sort("second")
            target = {m: frame[f"self__{m}"].to_numpy() for m in table.metrics}
            neighbours = {m: frame[f"neighbour_mean__{m}"].to_numpy() for m in table.metrics}
            host = {c.removeprefix("host__"): frame[c].to_numpy() for c in table.host_columns}
            estimate = self.predictor.predict_degradation(
                target, [neighbours], host, self.solo.get(profile), probes, neighbour_probes
            )
            self._p[key] = (estimate.p, RECORDED)
        else:  # no host series: the model fills them with its training mean (its solo-relative rates too:
            # the tenant's solo series stands in for its co-run one here, which would read as never slowed)
            estimate = self.predictor.predict_degradation(
                self.solo[profile], [self.solo[o] for o in others], None, None, probes, neighbour_probes
            )
            self._p[key] = (estimate.p, SOLO)
        return self._p[key]

    def of(self, fleet: Fleet, state: State) -> dict[str, tuple[float, str]]:
        view = {}
        for tenant, request in fleet.tenants.items():
            neighbours = [fleet.tenants[o].profile_id for o in fleet.on(state, state[tenant]) if o != tenant]
            view[tenant] = self.p(request.profile_id, tuple(sorted(neighbours)))
        return view
