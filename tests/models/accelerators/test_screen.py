"""The admission screen: device models' table forms give their own numbers, and the screen's sure verdicts are
the admission test's (the placements' equality with the plain rules is `test_incremental_placement.py`)."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from cotenant.models.accelerators import ClusterSpec, NodeSpec, load_apps
from cotenant.models.accelerators.base import NodeLoad, node_load
from cotenant.models.accelerators.device_models import DEVICE_MODELS, LoadTable, ModelLoad
from cotenant.models.accelerators.profiles import ibis_data_dir
from cotenant.models.accelerators.report import differing, stream
from cotenant.models.accelerators.screen import GROUP_FIELDS, AdmissionScreen

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


@pytest.mark.parametrize(
    ("kind", "device_model"),
    [("gpu", None), ("gpu", "gpu_ps_ibis"), ("tpu", None), ("tpu", "edgetpu_fcfs_ibis"), ("gpu", "gpu_mps")],
)
def test_the_screens_sure_verdicts_are_the_admission_tests(kind: str, device_model: str | None) -> None:
    rng = random.Random(11)
    nodes = [
        NodeSpec(name=f"n{index}", kind=kind, memory_mb=1e6, device_model=device_model) for index in range(60)
    ]
    cluster = ClusterSpec(nodes=nodes)
    apps = differing(stream(APPS[kind], 600), seed=5)
    loads: list[NodeLoad] = []
    screen = AdmissionScreen(cluster, loads.__getitem__)
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
