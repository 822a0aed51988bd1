"""Helpers for collector tests: fixture trees (hybrid v1+v2, pure v2) and real cgroups for live tests.

A uniquely named module (not conftest) so that test files can import it without a tests package.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cotenant.collectors.base import Roots
from cotenant.collectors.targets import CgroupLayout

FIXTURES = Path(__file__).parent / "fixtures"
LAYOUTS = ("hybrid", "v2")
CGROUP_ROOT = Path("/sys/fs/cgroup")
COLLECT = [sys.executable, "-m", "cotenant.collectors"]


def fixture_roots(layout: str, base: Path = FIXTURES) -> Roots:
    return Roots(procfs=base / layout / "proc", cgroup=base / layout / "cgroup")


def live_available() -> bool:
    return (os.geteuid() == 0 and (CGROUP_ROOT / "cpuacct").is_dir()) or (
        CGROUP_ROOT / "cgroup.controllers"
    ).is_file()


@contextmanager
def real_cgroup(name: str | None = None) -> Iterator[str]:
    """A cgroup named ``cotenant-test-<uuid>`` in every hierarchy of this machine, always removed."""
    name = name or f"cotenant-test-{uuid.uuid4().hex[:8]}"
    made: list[Path] = []
    for root in hierarchy_roots():
        if (root / "cgroup.procs").is_file():
            (root / name).mkdir()
            made.append(root / name)
            if root.name == "cpuset":  # a new cpuset is empty until given CPUs and memory nodes
                (root / name / "cpuset.cpus").write_text((root / "cpuset.effective_cpus").read_text())
                (root / name / "cpuset.mems").write_text((root / "cpuset.effective_mems").read_text())
    try:
        yield name
    finally:
        for path in made:
            for pid in (path / "cgroup.procs").read_text().split():
                subprocess.run(["kill", "-9", pid], check=False)
        for path in made:
            for _ in range(50):
                try:
                    path.rmdir()
                    break
                except OSError:
                    subprocess.run(["sleep", "0.1"], check=False)


def hierarchy_roots() -> list[Path]:
    """Every cgroup hierarchy of this machine, as the collector finds them."""
    return CgroupLayout.detect(Roots(cgroup=CGROUP_ROOT)).hierarchy_roots()


def v2_root() -> Path:
    root = CgroupLayout.detect(Roots(cgroup=CGROUP_ROOT)).v2_root
    return root if root is not None else CGROUP_ROOT / "unified"
