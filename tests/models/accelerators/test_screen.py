"""The admission screen: device models' table forms give their own numbers, and the screen's sure verdicts are
the admission test's (the placements' equality with the plain rules is `test_incremental_placement.py`)."""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence

import numpy as np
import pytest
from cotenant.models.accelerators import ClusterSpec, NodeSpec, load_apps
from cotenant.models.accelerators.base import UTILISATION_LIMIT, NodeLoad, device_model_name_for, node_load
from cotenant.models.accelerators.device_models import (
    DEVICE_MODELS,
    JoiningLoad,
    LoadTable,
    ModelLoad,
    RefusalBound,
)
from cotenant.models.accelerators.profiles import ibis_data_dir
from cotenant.models.accelerators.report import differing, stream
from cotenant.models.accelerators.screen import (
    BOUND_FROM_NODES,
    GROUP_FIELDS,
    SCREEN_TOLERANCE,
    AdmissionScreen,
)

TABLED = DEVICE_MODELS.named()  # every device model; those without a table form are skipped below
IBIS = ibis_data_dir()
APPS = {
    "gpu": load_apps(IBIS / "gpu_workload1.yaml").apps,
    "tpu": load_apps(IBIS / "edgetpu_workload1.yaml").apps,
}


def random_loads(rng: random.Random, count: int) -> list[ModelLoad]:
    loads = []
    for index in range(count):
        service = rng.uniform(1.0, 60.0)
        measured = rng.random()
        loads.append(
            ModelLoad(
                model=f"m{index}",
                rate_per_ms=rng.uniform(0.0005, 0.04),
                service_ms=service,
                switch_overhead_ms=rng.choice([0.0, rng.uniform(1.0, 20.0)]),
                # a profile with no measured moment, with one, or with both (same and switched)
                second_moment_ms2=None if measured < 0.4 else service**2 * rng.uniform(1.0, 1.5),
                switch_second_moment_ms2=None if measured < 0.7 else service**2 * rng.uniform(1.5, 2.5),
                client_overhead_ms=rng.choice([0.0, rng.uniform(0.1, 5.0)]),
            )
        )
    return loads


def as_table(rows: list[list[ModelLoad]], width: int) -> LoadTable:
    arrays = {name: np.zeros((len(rows), width)) for name in GROUP_FIELDS}
    present = np.zeros((len(rows), width), dtype=bool)
    for row, loads in enumerate(rows):
        for slot, group in enumerate(loads):
            present[row, slot] = True
            for name, array in arrays.items():
                value = getattr(group, name)
                array[row, slot] = np.nan if value is None else value
    return LoadTable(present=present, **arrays)


@pytest.mark.parametrize("name", TABLED)
def test_a_table_form_gives_its_device_models_numbers(name: str) -> None:
    table_model = DEVICE_MODELS.metadata[name].get("table")
    if table_model is None:
        pytest.skip(f"{name} has no table form: its nodes are never screened")
    rng = random.Random(7)
    # one to five models per device, from nearly idle to saturated (utilisation past 1: inf)
    rows = [random_loads(rng, rng.randint(1, 5)) for _ in range(300)]
    prediction = table_model(as_table(rows, width=6))
    saturated = 0
    for row, loads in enumerate(rows):
        expected = DEVICE_MODELS[name](loads)
        assert prediction.utilisation[row] == pytest.approx(expected.utilisation, rel=1e-12)
        for slot, group in enumerate(loads):
            want = expected.response_ms[group.model]
            if math.isinf(want):
                assert np.isinf(prediction.response_ms[row, slot])
            else:
                assert prediction.response_ms[row, slot] == pytest.approx(want, rel=1e-12)
        saturated += expected.utilisation >= 1.0
    assert 10 < saturated < 290  # both regimes were exercised


def test_the_tables_cover_the_default_device_models() -> None:
    # The default GPU and TPU models are what most clusters run: without table forms nothing is screened.
    assert DEVICE_MODELS.metadata["gpu_ps_exact"].get("table") is not None
    assert DEVICE_MODELS.metadata["edgetpu_fcfs"].get("table") is not None


@pytest.mark.parametrize("bound_from_nodes", [1, BOUND_FROM_NODES])  # with refusal bounds, and without
@pytest.mark.parametrize(
    ("kind", "device_model"),
    [("gpu", None), ("gpu", "gpu_ps_ibis"), ("tpu", None), ("tpu", "edgetpu_fcfs_ibis"), ("gpu", "gpu_mps")],
)
def test_the_screens_sure_verdicts_are_the_admission_tests(
    kind: str, device_model: str | None, bound_from_nodes: int
) -> None:
    rng = random.Random(11)
    nodes = [
        NodeSpec(name=f"n{index}", kind=kind, memory_mb=1e6, device_model=device_model) for index in range(60)
    ]
    cluster = ClusterSpec(nodes=nodes)
    apps = differing(stream(APPS[kind], 600), seed=5)
    loads: list[NodeLoad] = []
    screen = AdmissionScreen(cluster, loads.__getitem__, bound_from_nodes=bound_from_nodes)
    for position, node in enumerate(nodes):  # nodes from idle to full, each with its own mix of models
        hosted = rng.sample(apps, rng.randint(0, 8))
        loads.append(node_load(node, hosted, cluster.network_ms))
        screen.changed(position)
    told = untold = 0
    for app in rng.sample(apps, 80):
        admits, refuses = screen.verdicts(app, np.arange(len(nodes)))
        assert not (admits & refuses).any()
        for position, load in enumerate(loads):
            truth = load.admits(app)
            if admits[position] or refuses[position]:
                assert admits[position] == truth, (app.name, position)
                told += 1
            else:
                untold += 1
    if device_model == "gpu_mps":  # no table form: every verdict is the test's
        assert told == 0
    else:
        assert untold < 0.01 * (told + untold), "the screen should settle all but the closest calls"
        assert told > 0


def test_a_rewritten_row_forgets_the_models_that_left() -> None:
    node = NodeSpec(name="n", kind="gpu", memory_mb=1e6)
    cluster = ClusterSpec(nodes=[node])
    apps = differing(stream(APPS["gpu"], 12), seed=1)
    fewer = node_load(node, apps[:1], cluster.network_ms)
    current = [node_load(node, apps, cluster.network_ms)]
    screen = AdmissionScreen(cluster, current.__getitem__, width=1)  # widened as models join
    screen.changed(0)
    screen.verdicts(apps[0], np.array([0]))  # the row is written with every app's model
    current[0] = fewer
    screen.changed(0)
    fresh = AdmissionScreen(cluster, lambda _: fewer)
    fresh.changed(0)
    for app in apps:
        ours, theirs = screen.verdicts(app, np.array([0])), fresh.verdicts(app, np.array([0]))
        assert (ours[0] == theirs[0]).all() and (ours[1] == theirs[1]).all()
        if ours[0][0] or ours[1][0]:
            assert ours[0][0] == fewer.admits(app)


BOUNDED = [name for name in TABLED if DEVICE_MODELS.metadata[name].get("bound") is not None]
DRAWS = 12000


def switching_loads(rng: random.Random) -> list[ModelLoad]:
    return [
        ModelLoad(
            model=f"m{index}",
            rate_per_ms=rng.uniform(0.002, 0.02),
            service_ms=rng.uniform(1.0, 12.0),
            switch_overhead_ms=rng.uniform(8.0, 20.0),
            client_overhead_ms=rng.choice([0.0, rng.uniform(0.1, 5.0)]),
        )
        for index in range(rng.randint(1, 4))
    ]


def test_the_default_device_models_have_refusal_bounds() -> None:
    # A cluster filled front to back screens every full node for every app; without a bound each is a table.
    assert {"gpu_ps_exact", "edgetpu_fcfs"} <= set(BOUNDED)


def bound_refusals(name: str) -> dict[str, tuple[int, int]]:
    """Devices drawn at random with an app joining each (its model's group or a new one): asserts that a
    refusal by `name`'s bound is a refusal by the device model itself and that its utilisation never
    exceeds the device model's; gives per case the device model's refusals and the bound's among them, where
    the bound's terms hold. Cases: the app's model new there; loaded and the one nearest its budget before
    the app joins (whose slack a bound must not read at its effective service, which falls as it joins);
    loaded and another nearest; the device saturated before."""
    bound, device_model = DEVICE_MODELS.metadata[name]["bound"], DEVICE_MODELS[name]
    rng = random.Random(3)
    counts = {case: [0, 0] for case in ("new", "own nearest", "other nearest", "saturated")}
    unbounded = 0
    for _ in range(DRAWS):
        # half of the devices with modelled moments only and a reload that dwarfs the service (where a
        # joining group's own effective service falls the most)
        loads = random_loads(rng, rng.randint(1, 5)) if rng.random() < 0.5 else switching_loads(rng)
        budgets = {
            load.model: load.service_ms * rng.uniform(1.0, 8.0) + load.client_overhead_ms for load in loads
        }
        rate = rng.uniform(0.0005, 0.03)
        if rng.random() < 0.5:  # the app's model is loaded: its group's rate grows
            group = rng.choice(loads)
            joined = [
                ModelLoad(**{**vars(load), "rate_per_ms": load.rate_per_ms + rate}) if load is group else load
                for load in loads
            ]
        else:
            group = ModelLoad(**{**vars(random_loads(rng, 1)[0]), "model": "joining", "rate_per_ms": rate})
            joined = [*loads, group]
        others = [load.model for load in loads if load is not group]
        own_budget = group.service_ms * rng.uniform(1.0, 8.0) + group.client_overhead_ms
        before, after = device_model(loads), device_model(joined)
        draw = rng.random()
        if draw < 0.3 and after.utilisation < 1.0:  # every budget close to its response, either side
            budgets = {model: after.response_ms[model] * rng.uniform(0.97, 1.1) for model in budgets}
            own_budget = after.response_ms[group.model] * rng.uniform(0.97, 1.1)
        elif draw < 0.55 and after.utilisation < 1.0 and group.model in budgets:
            # only the joining group's budget binds, just above its response: its own service time may
            # fall as it joins (it follows itself more often), which a bound must allow for
            budgets = {model: 10.0 * after.response_ms[model] for model in budgets}
            budgets[group.model] = own_budget = after.response_ms[group.model] * 1.0001
        elif draw < 0.8 and after.utilisation < 1.0 and others:
            # the app joining pushes another model past its budget (or nearly: its budget between its
            # response before and a little past its response after); half of the time the joining group's
            # binds too, just above its response, and is then the nearest its budget before it joins
            budgets = {model: 10.0 * after.response_ms[model] for model in budgets}
            other = rng.choice(others)
            grows = after.response_ms[other] - before.response_ms[other]
            budgets[other] = before.response_ms[other] + rng.uniform(0.0, 1.1) * grows
            if rng.random() < 0.5:
                own_budget = after.response_ms[group.model] * 1.0001
                if group.model in budgets:
                    budgets[group.model] = own_budget
        budgets_after = {**budgets, group.model: min(own_budget, budgets.get(group.model, math.inf))}
        truly = after.utilisation > UTILISATION_LIMIT or any(
            after.response_ms[model] >= budget for model, budget in budgets_after.items()
        )
        joining = JoiningLoad(
            rate_per_ms=rate,
            service_ms=np.array([group.service_ms]),
            switch_overhead_ms=np.array([group.switch_overhead_ms]),
            client_overhead_ms=np.array([group.client_overhead_ms]),
            group_rate_per_ms=np.array([0.0 if group.model == "joining" else group.rate_per_ms]),
            group_budget_ms=np.array([budgets.get(group.model, math.inf)]),
            group_slot=np.array([loads.index(group) if group.model != "joining" else -1]),
            budget_ms=own_budget,
            second_moment_ms2=math.nan if group.second_moment_ms2 is None else group.second_moment_ms2,
            switch_second_moment_ms2=(
                math.nan if group.switch_second_moment_ms2 is None else group.switch_second_moment_ms2
            ),
        )
        terms = bound.terms(loads, budgets)
        utilisation, late = bound(terms[None, :], joining, SCREEN_TOLERANCE)
        surely = bool(late[0] or utilisation[0] > UTILISATION_LIMIT * (1.0 + SCREEN_TOLERANCE))
        assert not surely or truly, (loads, group, budgets_after)
        if np.isnan(terms).any():
            assert not surely
            unbounded += 1
            continue
        assert utilisation[0] <= after.utilisation * (1.0 + 1e-12)
        if before.utilisation >= 1.0:
            case = "saturated"
        elif group.model not in budgets:
            case = "new"
        else:
            nearest = min(budgets, key=lambda model: budgets[model] - before.response_ms[model])
            case = "own nearest" if nearest == group.model else "other nearest"
        counts[case][0] += truly
        counts[case][1] += surely
    assert unbounded < DRAWS
    return {case: (refused, caught) for case, (refused, caught) in counts.items()}


# Per case, the least share of the device model's refusals that its bound catches. Measured: FCFS's 0.90,
# 0.88, 0.95 and 1 (PS's all 1); 0.80 and 0.79 where loaded when every model's slack was read at its plain
# service there, 0.84 own nearest with the greatest slack for the next least, 0.83 new with the least slack
# misplaced.
CAUGHT = {"new": 0.88, "own nearest": 0.86, "other nearest": 0.92, "saturated": 0.99}


@pytest.mark.parametrize("name", BOUNDED)
def test_a_bounds_refusals_are_the_device_models(name: str) -> None:
    """Whatever a device's models, budgets and the app joining, a refusal by the bound is a refusal by the
    device model itself, and the bound refuses most of what the device model refuses wherever its terms hold,
    whichever model is the nearest its budget."""
    for case, (refused, caught) in bound_refusals(name).items():
        assert refused > 200 and caught >= CAUGHT[case] * refused, (case, refused, caught)


class Recording:
    """A bound that keeps the `JoiningLoad`s the screen gives it."""

    def __init__(self, bound: RefusalBound) -> None:
        self.bound, self.width = bound, bound.width
        self.joining: list[JoiningLoad] = []

    def terms(self, loads: Sequence[ModelLoad], budgets_ms: Mapping[str, float]) -> np.ndarray:
        return self.bound.terms(loads, budgets_ms)

    def __call__(
        self, terms: np.ndarray, joining: JoiningLoad, tolerance: float
    ) -> tuple[np.ndarray, np.ndarray]:
        self.joining.append(joining)
        return self.bound(terms, joining, tolerance)


# ids other than the bare kind: a test keyed "gpu" is taken for a CUDA test (tests/conftest.py)
@pytest.mark.parametrize("kind", ["gpu", "tpu"], ids=["gpu-nodes", "tpu-nodes"])
def test_a_screens_bound_refuses_only_what_the_admission_test_refuses(kind: str) -> None:
    """The screen's reading of a bound (each node's terms kept as apps join, the app's group there and its
    position among the loads the terms read, its budget) on nodes holding Ibis's apps: what it refuses the
    admission test refuses, and it refuses most of what the test refuses, whether or not the app's model is
    loaded there."""
    rng = random.Random(13)
    nodes = [NodeSpec(name=f"n{index}", kind=kind, memory_mb=1e6) for index in range(60)]
    apps = differing(stream(APPS[kind], 600), seed=7)
    loads = [node_load(node, rng.sample(apps, rng.randint(1, 8)), 10.0) for node in nodes]
    screen = AdmissionScreen(ClusterSpec(nodes=nodes), loads.__getitem__)
    for position in range(len(nodes)):
        screen.changed(position)
    screen.verdicts(apps[0], np.arange(len(nodes)))  # every row written
    bound = Recording(DEVICE_MODELS.metadata[device_model_name_for(nodes[0])]["bound"])
    refused, caught = {True: 0, False: 0}, {True: 0, False: 0}
    for app in rng.sample(apps, 120):
        surely = screen._bound_refuses(app, nodes[0], bound, np.arange(len(nodes)))
        slots = bound.joining[-1].group_slot
        for position, load in enumerate(loads):
            truth = load.admits(app)
            assert not (surely[position] and truth), (app.name, position)
            loaded = app.model in load.loads
            assert slots[position] == (list(load.loads).index(app.model) if loaded else -1)
            refused[loaded] += not truth
            caught[loaded] += bool(surely[position])
    for loaded in (True, False):  # both ways an app joins
        assert refused[loaded] > 100 and caught[loaded] > 0.5 * refused[loaded], (loaded, refused, caught)
