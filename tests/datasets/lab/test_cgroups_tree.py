"""The cgroup writes on a fixture tree laid out like each kind of host (no root needed)."""

from __future__ import annotations

from pathlib import Path

import pytest
from cotenant.datasets.lab.cgroups import (
    Cgroup,
    CgroupError,
    cpu_list,
    detect_hierarchy,
    pin_cpus,
    prioritise,
    with_cpuset,
)


def kernel_dir(path: Path, controllers: str) -> None:
    """What the kernel shows in a new v2 cgroup directory (here written by hand)."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "cgroup.procs").write_text("")
    (path / "cgroup.controllers").write_text(controllers)


def test_pure_v2_limits_and_controller_delegation(tmp_path: Path) -> None:
    for relative in ("", "lab", "lab/r0001"):
        kernel_dir(tmp_path / relative, "cpu memory pids")  # no io controller offered
    hierarchy = detect_hierarchy(tmp_path)
    assert hierarchy.pure_v2
    Cgroup(hierarchy, "lab/r0001/target").create(cpus=1.5, memory_mib=256)
    target = tmp_path / "lab/r0001/target"
    assert (target / "cpu.max").read_text() == "150000 100000"
    assert (target / "memory.max").read_text() == str(256 * 2**20)
    for relative in ("", "lab", "lab/r0001"):
        assert (tmp_path / relative / "cgroup.subtree_control").read_text() == "+cpu +memory +pids"
    prioritise(hierarchy, "lab")
    assert (tmp_path / "lab/cpu.weight").read_text() == "1600"  # 16 nice-0 processes, not the maximum


def test_hybrid_host_writes_v1_limits_and_mirrors_the_path_in_unified(tmp_path: Path) -> None:
    for controller in ("cpu", "cpuacct", "memory", "blkio", "pids"):
        (tmp_path / controller).mkdir()
        (tmp_path / controller / "cgroup.procs").write_text("")
    kernel_dir(tmp_path / "unified", "")  # the cgroup2 mount of a hybrid host: no controllers of its own
    hierarchy = detect_hierarchy(tmp_path)
    assert not hierarchy.pure_v2 and hierarchy.unified == tmp_path / "unified"
    cgroup = Cgroup(hierarchy, "lab/r0001/neighbour-1")
    cgroup.create(cpus=0.25, memory_mib=64)
    assert (tmp_path / "cpu/lab/r0001/neighbour-1/cpu.cfs_quota_us").read_text() == "25000"
    assert (tmp_path / "memory/lab/r0001/neighbour-1/memory.limit_in_bytes").read_text() == str(64 * 2**20)
    for controller in ("cpuacct", "blkio", "pids", "unified"):
        assert (tmp_path / controller / "lab/r0001/neighbour-1").is_dir()
    prioritise(hierarchy, "lab")
    assert (tmp_path / "cpu/lab/cpu.shares").read_text() == "16384"  # 16 nice-0 processes, not the maximum


def test_pinning_a_pure_v2_cgroup_delegates_cpuset_down_to_it(tmp_path: Path) -> None:
    for relative in ("", "lab", "lab/r0001"):
        kernel_dir(tmp_path / relative, "cpuset cpu memory pids")
    hierarchy = with_cpuset(detect_hierarchy(tmp_path), root=tmp_path)
    pin_cpus(hierarchy, "lab/r0001", cpu_list(0, 1))
    assert (tmp_path / "lab/r0001/cpuset.cpus").read_text() == "0"
    for relative in ("", "lab"):  # each parent lets its child have cpuset files
        assert (tmp_path / relative / "cgroup.subtree_control").read_text() == "+cpuset"
    kernel_dir(tmp_path / "other", "cpu memory")  # a parent that does not offer cpuset
    with pytest.raises(CgroupError, match="cpuset controller is not offered"):
        pin_cpus(hierarchy, "other/r0001", "0")


def test_pinning_a_v1_cpuset_fills_its_ancestors_and_passes_its_cpus_down(tmp_path: Path) -> None:
    for controller in ("cpu", "cpuacct", "memory", "cpuset"):
        (tmp_path / controller).mkdir()
        (tmp_path / controller / "cgroup.procs").write_text("")
    (tmp_path / "cpuset/cpuset.cpus").write_text("0-3\n")
    (tmp_path / "cpuset/cpuset.mems").write_text("0\n")
    for relative in ("lab", "lab/r0001"):  # a new v1 cpuset as the kernel makes it: no CPUs, no memory nodes
        (tmp_path / "cpuset" / relative).mkdir()
        for name in ("cpuset.cpus", "cpuset.mems"):
            (tmp_path / "cpuset" / relative / name).write_text("\n")
    plain = detect_hierarchy(tmp_path)
    assert "cpuset" not in plain.v1  # the lab's roles share the machine's CPUs unless a plan pins them
    with pytest.raises(CgroupError, match="needs the cpuset hierarchy"):
        pin_cpus(plain, "lab/r0001", "1")
    hierarchy = with_cpuset(plain, root=tmp_path)
    pin_cpus(hierarchy, "lab/r0001", cpu_list(2, 2))
    cpuset = tmp_path / "cpuset"
    assert [(cpuset / "lab" / name).read_text() for name in ("cpuset.cpus", "cpuset.mems")] == ["0-3", "0"]
    assert (cpuset / "lab/r0001/cpuset.cpus").read_text() == "2-3"
    assert (cpuset / "lab/r0001/cpuset.mems").read_text() == "0"
    assert (cpuset / "lab/r0001/cgroup.clone_children").read_text() == "1"  # its roles start on its CPUs
    for controller in ("cpu", "cpuacct", "memory"):
        assert (tmp_path / controller / "lab/r0001").is_dir()
    with pytest.raises(CgroupError, match="no cpuset hierarchy"):
        with_cpuset(plain, root=tmp_path / "elsewhere")
