"""Which cgroups (and processes) are sampled: names resolved to their v2 and v1 directories.

A target name is a path relative to the hierarchy roots (``cotenant-lab/r0007/target``), the same on pure-v2
hosts (``/sys/fs/cgroup/<name>``) and on hybrid ones (``/sys/fs/cgroup/unified/<name>`` plus
``/sys/fs/cgroup/<controller>/<name>``). Processes are targets named ``pid:<n>``.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path

from cotenant.collectors.base import CgroupTarget, KernelFiles, Roots

log = logging.getLogger(__name__)

V1_CONTROLLERS = ("cpu", "cpuacct", "cpuset", "memory", "blkio", "pids", "perf_event")
PID_PREFIX = "pid:"
V2_KEY = "v2"  # the cgroup2 hierarchy among the v1 controller names


class TargetError(Exception):
    """An explicit target that does not exist or cannot be read; the message names it."""


@dataclass(frozen=True)
class CgroupLayout:
    """The hierarchy roots of this machine: the cgroup2 root (if any) and each mounted v1 controller."""

    v2_root: Path | None
    v1_roots: dict[str, Path]
    base: Path | None = None  # where the hierarchies are mounted (/sys/fs/cgroup)

    @classmethod
    def detect(cls, roots: Roots) -> CgroupLayout:
        base = roots.cgroup
        if (base / "cgroup.controllers").is_file():
            return cls(v2_root=base, v1_roots={}, base=base)  # pure v2 (production hosts)
        v2_root = base / "unified" if (base / "unified" / "cgroup.controllers").is_file() else None
        v1_roots = {c: base / c for c in V1_CONTROLLERS if (base / c / "cgroup.procs").is_file()}
        return cls(v2_root=v2_root, v1_roots=v1_roots, base=base)

    def relative_name(self, name: str) -> str:
        """``name`` relative to the hierarchy roots. Users copy absolute paths from the cgroup filesystem
        (``/sys/fs/cgroup/kubepods.slice/...``, or ``/sys/fs/cgroup/memory/...`` on a hybrid host): a path
        under a hierarchy root, or under the mount base, loses that prefix; any other name is already
        relative (a leading '/' meaning the root)."""
        prefixes = [*self.hierarchy_roots(), *([self.base] if self.base else [])]
        for root in sorted(prefixes, key=lambda path: len(str(path)), reverse=True):  # most specific first
            text = str(root).rstrip("/")
            if name.rstrip("/") == text:
                return ""
            if name.startswith(text + "/"):
                return name[len(text) + 1 :].rstrip("/")
        return name

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

    def hierarchies(self) -> dict[str, Path]:
        """Each hierarchy root by key: ``v2`` and the v1 controller names."""
        return {**({V2_KEY: self.v2_root} if self.v2_root else {}), **self.v1_roots}

    def glob(self, pattern: str) -> list[str]:
        """Names matching ``pattern`` in any hierarchy (``lab-*/**``: those cgroups and their descendants)."""
        return sorted(self.glob_hierarchies(pattern))

    def glob_hierarchies(self, pattern: str) -> dict[str, list[str]]:
        """Names matching ``pattern`` (glob syntax, ``**`` recursive, hidden names included), each with the
        keys of the hierarchies it exists in, so that no further ``stat`` is needed to build its target."""
        parts = [part for part in pattern.strip("/").split("/") if part]
        found: dict[str, list[str]] = {}
        for key, root in self.hierarchies().items():
            for relative in _expand(str(root), parts):
                found.setdefault(relative or ".", []).append(key)
        return dict(sorted(found.items()))

    def target(self, name: str, keys: list[str]) -> CgroupTarget:
        """The target of ``name`` in the hierarchies ``keys`` (known to exist: from ``glob_hierarchies``)."""
        roots = self.hierarchies()
        relative = "" if name == "." else name
        v1 = {key: roots[key] / relative for key in keys if key != V2_KEY}
        v2 = roots[V2_KEY] / relative if V2_KEY in keys else None
        return CgroupTarget(name=relative or "/", v2=v2, v1=v1)


def _subdirectories(directory: str) -> list[str]:
    """Names of the directories in ``directory`` (d_type from the listing: no stat per entry)."""
    try:
        with os.scandir(directory) as entries:
            return [entry.name for entry in entries if entry.is_dir(follow_symlinks=False)]
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return []


def _descendants(directory: str, relative: str) -> list[str]:
    """``relative`` and every directory below it (what a ``**`` component matches)."""
    found = [relative]
    for name in _subdirectories(directory):
        found += _descendants(f"{directory}/{name}", f"{relative}/{name}" if relative else name)
    return found


def _expand(base: str, parts: list[str]) -> list[str]:
    """Relative paths of the directories under ``base`` matching the pattern components ``parts``.

    Written out rather than ``glob.glob`` because it runs every tick: ``scandir`` knows which entries are
    directories, where glob stats each match again (and its callers stat each name in every hierarchy).
    """
    level = [""]
    for part in parts:
        matched: list[str] = []
        for relative in level:
            directory = f"{base}/{relative}" if relative else base
            prefix = f"{relative}/" if relative else ""
            if part == "**":
                matched += _descendants(directory, relative)
            elif any(char in part for char in "*?["):
                matched += [prefix + name for name in _subdirectories(directory) if fnmatchcase(name, part)]
            elif os.path.isdir(f"{directory}/{part}"):
                matched.append(prefix + part)
        level = list(dict.fromkeys(matched))  # ``a/**/**`` reaches a directory twice
    return level


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
    # glob members as built last tick: the same name in the same hierarchies is the same target object
    _known: dict[tuple[str, tuple[str, ...]], CgroupTarget] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.cgroups = tuple(self.layout.relative_name(name) for name in self.cgroups)
        self.globs = tuple(self.layout.relative_name(pattern) for pattern in self.globs)

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
        known: dict[tuple[str, tuple[str, ...]], CgroupTarget] = {}
        for pattern in self.globs:
            for name, keys in self.layout.glob_hierarchies(pattern).items():
                if ".." in name.split("/"):  # a literal '..' in the pattern
                    if name not in warned:
                        warned.add(name)
                        log.warning("skipping glob member %s: '..' is not allowed in a target name", name)
                    continue
                where = (name, tuple(keys))
                target = self._known.get(where) or self.layout.target(name, keys)
                known[where] = target
                targets.setdefault(target.name, target)
        self._known = known
        for pid in self.pids:
            if (self.roots.procfs / str(pid)).is_dir():
                target = pid_target(pid)
                targets[target.name] = target
        return targets
