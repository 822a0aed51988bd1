from __future__ import annotations

from pathlib import Path

import pytest
from collector_testkit import fixture_roots
from cotenant.collectors.base import Roots
from cotenant.collectors.targets import CgroupLayout, TargetError, TargetSelector


def test_hybrid_layout_maps_name_to_v2_and_v1_dirs() -> None:
    roots = fixture_roots("hybrid")
    layout = CgroupLayout.detect(roots)
    assert layout.v2_root == roots.cgroup / "unified"
    target = layout.resolve("lab/a")
    assert target is not None and target.v2 == roots.cgroup / "unified" / "lab" / "a"
    assert set(target.v1) == {"cpu", "cpuacct", "cpuset", "memory", "blkio", "pids"}


def test_pure_v2_layout_has_no_v1() -> None:
    roots = fixture_roots("v2")
    layout = CgroupLayout.detect(roots)
    target = layout.resolve("lab/a")
    assert layout.v2_root == roots.cgroup and target is not None and target.v1 == {}


def test_glob_finds_cgroup_and_descendants(layout: str) -> None:
    assert CgroupLayout.detect(fixture_roots(layout)).glob("lab/**") == ["lab", "lab/a"]


def test_unknown_cgroup_is_a_clear_error(layout: str) -> None:
    roots = fixture_roots(layout)
    selector = TargetSelector(CgroupLayout.detect(roots), roots, cgroups=("no/such",))
    with pytest.raises(TargetError, match="no/such"):
        selector.validate()


def test_dotdot_is_refused() -> None:
    with pytest.raises(TargetError, match=r"\.\."):
        CgroupLayout.detect(fixture_roots("v2")).resolve("../etc")


def test_pid_targets(tmp_path: Path) -> None:
    roots = fixture_roots("v2")
    selector = TargetSelector(CgroupLayout.detect(roots), roots, pids=(4242, 999999))
    assert list(selector.current(set())) == ["pid:4242"]
    with pytest.raises(TargetError, match="999999"):
        selector.validate()
    assert Roots()  # default roots construct


def test_v1_perf_event_mount_is_a_controller_of_targets(tmp_path: Path) -> None:
    """Hosts with a v1 perf_event mount give the perf source its cgroup directory there."""
    for controller in ("cpuacct", "perf_event"):
        (tmp_path / controller / "lab").mkdir(parents=True)
        (tmp_path / controller / "cgroup.procs").write_text("")
    layout = CgroupLayout.detect(Roots(procfs=tmp_path / "proc", cgroup=tmp_path))
    target = layout.resolve("lab")
    assert target is not None and target.v1["perf_event"] == tmp_path / "perf_event" / "lab"


def test_glob_hierarchies_build_the_same_targets_as_resolve(layout: str) -> None:
    found = CgroupLayout.detect(fixture_roots(layout)).glob_hierarchies("lab/*")
    detected = CgroupLayout.detect(fixture_roots(layout))
    assert list(found) == ["lab/a"]
    assert detected.target("lab/a", found["lab/a"]) == detected.resolve("lab/a")


def test_glob_matches_hidden_names_and_reports_each_directory_once(tmp_path: Path) -> None:
    for name in ("lab/.hidden/x", "lab/b", "other"):
        (tmp_path / "cpuacct" / name).mkdir(parents=True)
    (tmp_path / "cpuacct" / "lab" / "file").write_text("not a cgroup")
    (tmp_path / "cpuacct" / "cgroup.procs").write_text("")
    layout = CgroupLayout.detect(Roots(procfs=tmp_path / "proc", cgroup=tmp_path))
    assert layout.glob("lab/*") == ["lab/.hidden", "lab/b"]
    assert layout.glob("lab/**/**") == ["lab", "lab/.hidden", "lab/.hidden/x", "lab/b"]
    assert layout.glob("l?b/[.]*/x") == ["lab/.hidden/x"]
    assert layout.glob("missing/*") == []


@pytest.mark.parametrize(
    ("layout_name", "given"),
    [
        ("v2", "{root}/lab/a"),
        ("v2", "{root}/lab/a/"),
        ("hybrid", "{root}/lab/a"),  # the mount base
        ("hybrid", "{root}/unified/lab/a"),
        ("hybrid", "{root}/memory/lab/a"),
        ("hybrid", "lab/a"),
        ("hybrid", "/lab/a"),  # a leading slash is the hierarchy root, as before
    ],
)
def test_absolute_paths_as_users_copy_them_are_accepted(layout_name: str, given: str) -> None:
    roots = fixture_roots(layout_name)
    name = given.format(root=roots.cgroup)
    selector = TargetSelector(CgroupLayout.detect(roots), roots, cgroups=(name,), globs=(f"{name}/*",))
    selector.validate()
    assert selector.cgroups[0].strip("/") == "lab/a"
    assert "lab/a" in selector.current(set())


def test_an_absolute_path_elsewhere_is_still_an_error_naming_it() -> None:
    roots = fixture_roots("v2")
    selector = TargetSelector(CgroupLayout.detect(roots), roots, cgroups=("/elsewhere/lab/a",))
    with pytest.raises(TargetError, match="/elsewhere/lab/a"):
        selector.validate()
