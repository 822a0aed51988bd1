"""Which cgroups (and processes) are sampled: names resolved to their v2 and v1 directories.

A target name is a path relative to the hierarchy roots (``cotenant-lab/r0007/target``), the same on pure-v2
hosts (``/sys/fs/cgroup/<name>``) and on hybrid ones (``/sys/fs/cgroup/unified/<name>`` plus
``/sys/fs/cgroup/<controller>/<name>``). Processes are targets named ``pid:<n>``.
"""

from __future__ import annotations

import glob
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from cotenant.collectors.base import CgroupTarget, KernelFiles, Roots

log = logging.getLogger(__name__)

V1_CONTROLLERS = ("cpu", "cpuacct", "cpuset", "memory", "blkio", "pids", "perf_event")
PID_PREFIX = "pid:"


class TargetError(Exception):
    """An explicit target that does not exist or cannot be read; the message names it."""


@dataclass(frozen=True)
class CgroupLayout:
    """The hierarchy roots of this machine: the cgroup2 root (if any) and each mounted v1 controller."""

    v2_root: Path | None
    v1_roots: dict[str, Path]

    @classmethod
    def detect(cls, roots: Roots) -> CgroupLayout:
        base = roots.cgroup
        if (base / "cgroup.controllers").is_file():
            return cls(v2_root=base, v1_roots={})  # pure v2 (production hosts)
        v2_root = base / "unified" if (base / "unified" / "cgroup.controllers").is_file() else None
        v1_roots = {c: base / c for c in V1_CONTROLLERS if (base / c / "cgroup.procs").is_file()}
        return cls(v2_root=v2_root, v1_roots=v1_roots)

    def hierarchy_roots(self) -> list[Path]:
        return ([self.v2_root] if self.v2_root else []) + list(self.v1_roots.values())

    def resolve(self, name: str) -> CgroupTarget | None:
        """The target with every directory that exists for ``name``; None when it exists nowhere."""
        relative = name.strip("/")
        if ".." in relative.split("/"):
            raise TargetError(f"cgroup {name!r}: '..' is not allowed in a target name")
        # strings and os.path: this runs for every target every tick, and pathlib costs more than the stat
        suffix = f"/{relative}" if relative else ""
        v2 = self.v2_root / relative if self.v2_root and os.path.isdir(f"{self.v2_root}{suffix}") else None
        v1 = {c: root / relative for c, root in self.v1_roots.items() if os.path.isdir(f"{root}{suffix}")}
        if v2 is None and not v1:
            return None
        return CgroupTarget(name=relative or "/", v2=v2, v1=v1)

    def glob(self, pattern: str) -> list[str]:
        """Names matching ``pattern`` in any hierarchy (``lab-*/**``: those cgroups and their descendants)."""
        names: set[str] = set()
        for root in self.hierarchy_roots():
            base = str(root)
            pattern_path = f"{glob.escape(base)}/{pattern.strip('/')}"
            for path in glob.glob(pattern_path, recursive=True, include_hidden=True):
                if os.path.isdir(path):  # matches are f"{base}/{name}" (the root itself "base/")
                    names.add(path[len(base) + 1 :].rstrip("/") or ".")
        return sorted(names)


def pid_target(pid: int) -> CgroupTarget:
    return CgroupTarget(name=f"{PID_PREFIX}{pid}")


def target_pid(target: CgroupTarget) -> int | None:
    """The process id of a ``pid:<n>`` target, else None."""
    if target.name.startswith(PID_PREFIX):
        return int(target.name.removeprefix(PID_PREFIX))
    return None


def member_pids(target: CgroupTarget, roots: Roots, files: KernelFiles | None = None) -> list[int]:
    """Processes of a target: the pid itself, or the cgroup's ``cgroup.procs`` (v2, else a v1 hierarchy).

    With ``files`` the ``cgroup.procs`` descriptor stays open between samples.
    """
    pid = target_pid(target)
    if pid is not None:
        if not (roots.procfs / str(pid)).is_dir():
            raise ProcessLookupError(f"process {pid} exited")
        return [pid]
    directory = target.v2 or target.v1.get("cpuacct") or next(iter(target.v1.values()), None)
    if directory is None:
        return []
    path = f"{directory}/cgroup.procs"
    text = files.read(path) if files is not None else (directory / "cgroup.procs").read_text()
    if text is None:
        raise FileNotFoundError(f"{path} vanished")
    return [int(line) for line in text.split()]


def is_alive(target: CgroupTarget, roots: Roots) -> bool:
    pid = target_pid(target)
    if pid is not None:
        return (roots.procfs / str(pid)).is_dir()
    paths = ([target.v2] if target.v2 else []) + list(target.v1.values())
    return any(path.is_dir() for path in paths)


@dataclass
class TargetSelector:
    """Explicit cgroups and PIDs (errors when missing at start) plus globs re-evaluated every tick."""

    layout: CgroupLayout
    roots: Roots
    cgroups: tuple[str, ...] = ()
    globs: tuple[str, ...] = ()
    pids: tuple[int, ...] = ()

    def validate(self) -> None:
        """Fail fast, naming the target, for explicit cgroups or PIDs that do not exist or cannot be read."""
        for name in self.cgroups:
            target = self.layout.resolve(name)
            if target is None:
                roots = ", ".join(str(r) for r in self.layout.hierarchy_roots()) or "no cgroup hierarchy"
                raise TargetError(f"cgroup {name!r} does not exist under {roots}")
            for path in ([target.v2] if target.v2 else []) + list(target.v1.values()):
                try:
                    (path / "cgroup.procs").read_text()
                except OSError as error:
                    raise TargetError(f"cgroup {name!r} is not readable at {path}: {error}") from error
        for pid in self.pids:
            if not (self.roots.procfs / str(pid)).is_dir():
                raise TargetError(f"process {pid} does not exist")

    def current(self, warned: set[str]) -> dict[str, CgroupTarget]:
        """The targets to sample this tick; glob members that cannot be read are skipped with one warning."""
        targets: dict[str, CgroupTarget] = {}
        for name in self.cgroups:
            target = self.layout.resolve(name)
            if target is not None:
                targets[target.name] = target
        for pattern in self.globs:
            for name in self.layout.glob(pattern):
                if name in targets:
                    continue
                try:
                    target = self.layout.resolve(name)
                except TargetError as error:
                    if name not in warned:
                        warned.add(name)
                        log.warning("skipping glob member %s: %s", name, error)
                    continue
                if target is not None:
                    targets[target.name] = target
        for pid in self.pids:
            if (self.roots.procfs / str(pid)).is_dir():
                target = pid_target(pid)
                targets[target.name] = target
        return targets
