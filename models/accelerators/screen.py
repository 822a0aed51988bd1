"""The admission test of one app on many nodes at once, for placement to skip the nodes whose verdict is sure.

A placement tests every node it considers for every app; apps that all differ (each its own rate or SLO) get
no verdict re-used, so that is a test per app and node (3000 apps on 300 nodes: 500 000, 10 s). The queue
part of the test (utilisation and every model's response against its tightest budget, `NodeLoad.admits`)
depends on a node's model groups only, so the screen keeps them as a table (a row per node, a column per
model slot) and runs the device model's table form (`TableDeviceModel`, registered as ``table=``) over
every candidate node with the app joined. Its sums run in another order than the device model's, so a
verdict within `SCREEN_TOLERANCE` of a limit is left to the test itself: placements are the ones the test
alone gives. Nodes whose device model has no table form (MPS) are never screened.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from typing import Any

import numpy as np
from cotenant.models.accelerators.base import (
    UTILISATION_LIMIT,
    NodeLoad,
    device_model_name_for,
    latency_budget_ms,
    model_load,
)
from cotenant.models.accelerators.device_models import DEVICE_MODELS, LoadTable, TableDeviceModel
from cotenant.models.accelerators.profiles import AppProfile, ClusterSpec, NodeSpec

# Relative distance from a limit within which the screen leaves a verdict to the admission test: the table
# and the device model differ by rounding (~1e-15 relative), far inside it.
SCREEN_TOLERANCE = 1e-9
# What the table keeps per model group: `LoadTable`'s arrays but `present`, named as `ModelLoad`'s fields
# (None: NaN), and beside them the group's tightest budget.
GROUP_FIELDS = tuple(field.name for field in fields(LoadTable) if field.name != "present")
VALUE_FIELDS = (*GROUP_FIELDS, "budget_ms")
RATE, BUDGET = VALUE_FIELDS.index("rate_per_ms"), VALUE_FIELDS.index("budget_ms")


class AdmissionScreen:
    """Every node's model groups as a table. A node marked `changed` is read again from `load_of` when a
    screen next runs, so that placements that never screen (small clusters, the exact search) pay a set
    insertion per change, not a row rewrite."""

    def __init__(self, cluster: ClusterSpec, load_of: Callable[[int], NodeLoad], width: int = 4) -> None:
        nodes = cluster.nodes
        self._network_ms = cluster.network_ms
        self._load_of = load_of
        self._stale: set[int] = set()
        # Nodes alike for the screen: the same kind, device model and frontend give an app the same budget
        # and the same formula; the first such node stands for them.
        keys = [(node.kind, device_model_name_for(node), node.frontend_ms) for node in nodes]
        class_of: dict[tuple[Any, ...], int] = {}
        self._classes: list[tuple[NodeSpec, TableDeviceModel | None]] = []
        for node, key in zip(nodes, keys, strict=True):
            if key not in class_of:
                class_of[key] = len(self._classes)
                self._classes.append((node, DEVICE_MODELS.metadata[key[1]].get("table")))
        self._class_of = np.array([class_of[key] for key in keys], dtype=np.int64)
        # Per node a row of model slots, and always one column more than the widest row has, for an app's
        # model where the node has none: column `_most_models` is empty in every row, so a candidate's table
        # is its rows' first `_most_models + 1` columns (no copy widened per app).
        self._present = np.zeros((len(nodes), width + 1), dtype=bool)
        self._values = np.zeros((len(VALUE_FIELDS), len(nodes), width + 1))  # VALUE_FIELDS by slot
        self._slot_of: dict[str, np.ndarray] = {}  # model -> per node its column, -1 where not loaded
        self._row_models: list[list[str]] = [[] for _ in nodes]
        self._most_models = 0  # the widest row yet: every column from it on is empty

    def changed(self, position: int) -> None:
        """The node at `position` gained or lost an app."""
        self._stale.add(position)

    def _rewrite(self, position: int, load: NodeLoad) -> None:
        """Row `position` rewritten from the node's admission state."""
        for model in self._row_models[position]:
            self._slot_of[model][position] = -1
        models = list(load.loads)
        if len(models) >= self._present.shape[1]:
            self._widen(2 * len(models))
        self._present[position] = False
        self._values[:, position] = 0.0
        for slot, model in enumerate(models):
            group = load.loads[model]
            self._present[position, slot] = True
            for index, name in enumerate(GROUP_FIELDS):
                value = getattr(group, name)
                self._values[index, position, slot] = np.nan if value is None else value
            self._values[BUDGET, position, slot] = load.budgets_ms[model]
            if model not in self._slot_of:
                self._slot_of[model] = np.full(len(self._row_models), -1, dtype=np.int64)
            self._slot_of[model][position] = slot
        self._row_models[position] = models
        self._most_models = max(self._most_models, len(models))

    def _widen(self, width: int) -> None:
        extra = width + 1 - self._present.shape[1]
        self._present = np.pad(self._present, ((0, 0), (0, extra)))
        self._values = np.pad(self._values, ((0, 0), (0, 0), (0, extra)))

    def verdicts(self, app: AppProfile, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For the nodes at `positions` (whose memory holds `app`: callers check memory first), whether the
        queue part of the admission test surely admits `app`, and whether it surely refuses it; neither
        where the verdict is too close to call or the node's device model has no table form."""
        for position in self._stale:
            self._rewrite(position, self._load_of(position))
        self._stale.clear()
        admits = np.zeros(len(positions), dtype=bool)
        refuses = np.zeros(len(positions), dtype=bool)
        classes = self._class_of[positions]
        for index, (node, table_model) in enumerate(self._classes):
            if table_model is None or node.kind not in app.devices:
                continue
            chosen = np.flatnonzero(classes == index)
            if len(chosen):
                verdicts = self._class_verdicts(app, node, table_model, positions[chosen])
                admits[chosen], refuses[chosen] = verdicts
        return admits, refuses

    def _class_verdicts(
        self, app: AppProfile, node: NodeSpec, table_model: TableDeviceModel, rows: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        joining = model_load(app, node.kind)
        budget = latency_budget_ms(node, app, self._network_ms)
        # copies (the app joins them) of the rows' used columns and the empty one after them
        spare = self._most_models
        present, values = self._present[rows, : spare + 1], self._values[:, rows, : spare + 1]
        slots = self._slot_of.get(app.model)
        slot = slots[rows] if slots is not None else np.full(len(rows), -1)
        joins = np.flatnonzero(slot >= 0)  # its model's group there: the rates add up, the tighter budget
        values[RATE, joins, slot[joins]] += joining.rate_per_ms
        values[BUDGET, joins, slot[joins]] = np.minimum(values[BUDGET, joins, slot[joins]], budget)
        new = np.flatnonzero(slot < 0)  # its model's first copy there, in the empty column
        present[new, spare] = True
        for index, name in enumerate(GROUP_FIELDS):
            value = getattr(joining, name)
            values[index, new, spare] = np.nan if value is None else value
        values[BUDGET, new, spare] = budget
        budgets = values[BUDGET]
        table = LoadTable(present, *values[: len(GROUP_FIELDS)])
        prediction = table_model(table)
        response, utilisation = prediction.response_ms, prediction.utilisation
        margin = SCREEN_TOLERANCE * (1.0 + np.abs(np.where(np.isfinite(budgets), budgets, 0.0)))
        with np.errstate(invalid="ignore"):
            within = ~present | (response < budgets - margin)
            over = present & ~(response < budgets + margin)
        limit_margin = SCREEN_TOLERANCE * UTILISATION_LIMIT
        admits = (utilisation <= UTILISATION_LIMIT - limit_margin) & within.all(axis=1)
        refuses = (utilisation > UTILISATION_LIMIT + limit_margin) | over.any(axis=1)
        return admits, refuses
