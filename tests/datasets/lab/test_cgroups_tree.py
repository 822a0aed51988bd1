"""The cgroup writes on a fixture tree laid out like each kind of host (no root needed)."""

from __future__ import annotations

from pathlib import Path

from cotenant.datasets.lab.cgroups import Cgroup, detect_hierarchy, prioritise


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
