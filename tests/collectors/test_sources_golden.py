"""Every source (except perf_event, tested on its own) against fixture trees, compared with golden outputs.

Set ``COTENANT_UPDATE_GOLDEN=1`` to rewrite the golden files after an intended change, then review the diff.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from collector_testkit import fixture_roots
from cotenant.collectors import CGROUP_SOURCES, HOST_SOURCES, instantiate
from cotenant.collectors.base import CgroupSource, HostSource, MetricKind
from cotenant.collectors.targets import CgroupLayout

GOLDEN = Path(__file__).parent / "golden"
SKIP = {"perf_event"}  # hardware counters: covered by test_perf_event.py with a mocked kernel


def read_everything(layout: str) -> dict[str, dict[str, dict[str, float]]]:
    roots = fixture_roots(layout)
    target = CgroupLayout.detect(roots).resolve("lab/a")
    assert target is not None
    out: dict[str, dict[str, dict[str, float]]] = {}
    for name in sorted(HOST_SOURCES):
        source = instantiate(HOST_SOURCES[name], roots)
        assert isinstance(source, HostSource)
        out[name] = {"host": source.read()}
    for name in sorted(set(CGROUP_SOURCES) - SKIP):
        source = instantiate(CGROUP_SOURCES[name], roots)
        assert isinstance(source, CgroupSource)
        source.open()
        out[name] = {"lab/a": source.read(target)}
    return out


@pytest.mark.parametrize("layout", ["hybrid", "v2"])
def test_sources_match_golden(layout: str) -> None:
    actual = read_everything(layout)
    path = GOLDEN / f"{layout}.json"
    if os.environ.get("COTENANT_UPDATE_GOLDEN") == "1":
        path.write_text(json.dumps(actual, indent=1, sort_keys=True) + "\n")
    expected = json.loads(path.read_text())
    assert actual.keys() == expected.keys()
    for source, targets in expected.items():
        for target, values in targets.items():
            assert actual[source][target] == pytest.approx(values, rel=1e-12), f"{source} on {target}"


@pytest.mark.parametrize("layout", ["hybrid", "v2"])
def test_every_value_is_declared_in_specs(layout: str) -> None:
    """A value a source emits but does not declare would be silently dropped by derive."""
    roots = fixture_roots(layout)
    declared = {
        spec.name
        for registry in (HOST_SOURCES, CGROUP_SOURCES)
        for name in registry
        if name not in SKIP
        for spec in instantiate(registry[name], roots).specs()
    }
    emitted = {
        k for targets in read_everything(layout).values() for values in targets.values() for k in values
    }
    assert emitted - declared == set()


def test_catalogue_is_well_formed() -> None:
    from cotenant.collectors import catalogue

    specs = catalogue(fixture_roots("hybrid"))
    names = [spec.derived_name for spec in specs]
    assert len(names) == len(set(names)), "derived column names must be unique"
    for spec in specs:
        assert spec.group, spec.name
        assert (spec.kind is MetricKind.COUNTER) == spec.name.endswith("_total"), spec.name
        assert spec.unit and spec.description, spec.name
