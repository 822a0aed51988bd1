"""The admission test of one app on many nodes at once, for placement to skip the nodes whose verdict is sure.

A placement tests every node it considers for every app; apps that all differ (each its own rate or SLO) get
no verdict re-used, so that is a test per app and node (3000 apps on 300 nodes: 500 000, 10 s). The queue
part of the test (utilisation and every model's response against its tightest budget, `NodeLoad.admits`)
depends on a node's model groups only, so the screen keeps them as a table (a row per node, a column per
model slot) and runs the device model's table form (`TableDeviceModel`, registered as ``table=``) over
every candidate node with the app joined. Its sums run in another order than the device model's, so a
verdict within `SCREEN_TOLERANCE` of a limit is left to the test itself: placements are the ones the test
alone gives. Nodes whose device model has no table form (MPS) are never screened.

Two shortcuts before the table, for a cluster filled front to back (whose full nodes refuse nearly every app
and whose idle nodes all look alike): a device model's `RefusalBound` (registered as ``bound=``) refuses
from a few numbers kept per node, and idle nodes of a class are judged once for all of them.
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
from cotenant.models.accelerators.device_models import (
    DEVICE_MODELS,
    JoiningLoad,
    LoadTable,
    RefusalBound,
    TableDeviceModel,
)
from cotenant.models.accelerators.profiles import AppProfile, ClusterSpec, NodeSpec

# Relative distance from a limit within which the screen leaves a verdict to the admission test: the table
# and the device model differ by rounding (~1e-15 relative), far inside it.
SCREEN_TOLERANCE = 1e-9
# The utilisation at or below which the screen admits and above which it refuses (the table's and a bound's
# alike); between them the admission test decides.
ADMITTED_TO_UTILISATION = UTILISATION_LIMIT - SCREEN_TOLERANCE * UTILISATION_LIMIT
REFUSED_ABOVE_UTILISATION = UTILISATION_LIMIT + SCREEN_TOLERANCE * UTILISATION_LIMIT
# Busy nodes from which a refusal bound is read before the table: a bound costs about 50 us per app whatever
# the nodes, the table 0.3-0.4 us per node (measured on 2 cores; FCFS's and PS's bounds refuse ~99% of the
# full nodes), so on fewer nodes the bound costs more than the table rows it saves.
BOUND_FROM_NODES = 160
# What the table keeps per model group: `LoadTable`'s arrays but `present`, named as `ModelLoad`'s fields
# (None: NaN), and beside them the group's tightest budget.
GROUP_FIELDS = tuple(field.name for field in fields(LoadTable) if field.name != "present")
VALUE_FIELDS = (*GROUP_FIELDS, "budget_ms")
RATE, BUDGET = VALUE_FIELDS.index("rate_per_ms"), VALUE_FIELDS.index("budget_ms")
SERVICE, CLIENT = VALUE_FIELDS.index("service_ms"), VALUE_FIELDS.index("client_overhead_ms")
SWITCH = VALUE_FIELDS.index("switch_overhead_ms")


class AdmissionScreen:
    """Every node's model groups as a table. A node marked `changed` is read again from `load_of` when a
    screen next runs, so that placements that never screen (small clusters, the exact search) pay a set
    insertion per change, not a row rewrite."""

    def __init__(
        self,
        cluster: ClusterSpec,
        load_of: Callable[[int], NodeLoad],
        width: int = 4,
        bound_from_nodes: int = BOUND_FROM_NODES,
    ) -> None:
        nodes = cluster.nodes
        self._bound_from_nodes = bound_from_nodes
        self._network_ms = cluster.network_ms
        self._load_of = load_of
        self._stale: set[int] = set()
        # Nodes alike for the screen: the same kind, device model and frontend give an app the same budget
        # and the same formula; the first such node stands for them.
        keys = [(node.kind, device_model_name_for(node), node.frontend_ms) for node in nodes]
        class_of: dict[tuple[Any, ...], int] = {}
        self._classes: list[tuple[NodeSpec, TableDeviceModel | None]] = []
        self._bounds: list[RefusalBound | None] = []
        for node, key in zip(nodes, keys, strict=True):
            if key not in class_of:
                class_of[key] = len(self._classes)
                self._classes.append((node, DEVICE_MODELS.metadata[key[1]].get("table")))
                self._bounds.append(DEVICE_MODELS.metadata[key[1]].get("bound"))
        self._class_of = np.array([class_of[key] for key in keys], dtype=np.int64)
        # Per node its bound's terms (`RefusalBound.terms`), NaN where it holds no model or has no bound.
        widest = max((bound.width for bound in self._bounds if bound is not None), default=0)
        self._terms = np.full((len(nodes), widest), np.nan)
        # Per node a row of model slots, and always one column more than the widest row has, for an app's
        # model where the node has none: column `_most_models` is empty in every row, so a candidate's table
        # is its rows' first `_most_models + 1` columns (no copy widened per app).
        self._present = np.zeros((len(nodes), width + 1), dtype=bool)
        self._values = np.zeros((len(VALUE_FIELDS), len(nodes), width + 1))  # VALUE_FIELDS by slot
        self._slot_of: dict[str, np.ndarray] = {}  # model -> per node its column, -1 where not loaded
        self._row_models: list[list[str]] = [[] for _ in nodes]
        self._idle = np.ones(len(nodes), dtype=bool)  # per node, whether it holds no model
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
        self._idle[position] = not models
        bound = self._bounds[self._class_of[position]]
        self._terms[position] = np.nan
        if bound is not None and models:
            self._terms[position, : bound.width] = bound.terms(list(load.loads.values()), load.budgets_ms)
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
            if not len(chosen):
                continue
            # Idle nodes of a class are alike with the app joined: the admission test on one of them is the
            # verdict of all (a cluster filled front to back has most of its nodes idle, behind the front),
            # and one test costs less than a table.
            idle = self._idle[positions[chosen]]
            busy, alike = chosen[~idle], chosen[idle]
            if len(alike):
                verdict = self._load_of(int(positions[alike[0]])).admits(app)
                admits[alike], refuses[alike] = verdict, not verdict
            bound = self._bounds[index]
            if bound is not None and len(busy) >= self._bound_from_nodes:  # its sure refusals need no table
                surely = self._bound_refuses(app, node, bound, positions[busy])
                refuses[busy[surely]] = True
                busy = busy[~surely]
            if len(busy):
                admits[busy], refuses[busy] = self._class_verdicts(app, node, table_model, positions[busy])
        return admits, refuses

    def _bound_refuses(
        self, app: AppProfile, node: NodeSpec, bound: RefusalBound, rows: np.ndarray
    ) -> np.ndarray:
        """Per row (busy nodes alike to `node`), whether `bound` surely refuses `app` there."""
        own = model_load(app, node.kind)
        slot = self._slots(app.model, rows)
        joins = slot >= 0
        column = np.where(joins, slot, 0)

        def group(field: int, own_value: float) -> np.ndarray:
            return np.where(joins, self._values[field, rows, column], own_value)

        joining = JoiningLoad(
            rate_per_ms=own.rate_per_ms,
            service_ms=group(SERVICE, own.service_ms),
            switch_overhead_ms=group(SWITCH, own.switch_overhead_ms),
            client_overhead_ms=group(CLIENT, own.client_overhead_ms),
            group_rate_per_ms=group(RATE, 0.0),
            group_budget_ms=group(BUDGET, np.inf),
            group_slot=slot,
            budget_ms=latency_budget_ms(node, app, self._network_ms),
            second_moment_ms2=np.nan if own.second_moment_ms2 is None else own.second_moment_ms2,
            switch_second_moment_ms2=(
                np.nan if own.switch_second_moment_ms2 is None else own.switch_second_moment_ms2
            ),
        )
        utilisation, late = bound(self._terms[rows, : bound.width], joining, SCREEN_TOLERANCE)
        with np.errstate(invalid="ignore"):
            return late | (utilisation > REFUSED_ABOVE_UTILISATION)

    def _slots(self, model: str, rows: np.ndarray) -> np.ndarray:
        """Per row, the column of `model`'s group (-1 where the node does not hold it)."""
        slots = self._slot_of.get(model)
        return slots[rows] if slots is not None else np.full(len(rows), -1)

    def _class_verdicts(
        self, app: AppProfile, node: NodeSpec, table_model: TableDeviceModel, rows: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        joining = model_load(app, node.kind)
        budget = latency_budget_ms(node, app, self._network_ms)
        # copies (the app joins them) of the rows' used columns and the empty one after them
        spare = self._most_models
        present, values = self._present[rows, : spare + 1], self._values[:, rows, : spare + 1]
        slot = self._slots(app.model, rows)
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
        admits = (utilisation <= ADMITTED_TO_UTILISATION) & within.all(axis=1)
        refuses = (utilisation > REFUSED_ABOVE_UTILISATION) | over.any(axis=1)
        return admits, refuses
