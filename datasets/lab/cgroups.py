"""Container-like cgroups for lab workloads, on hybrid (v1 + cgroup2 ``unified``) and pure-v2 hosts.

On a hybrid host the limits live in v1 (``cpu.cfs_quota_us``/``cpu.cfs_period_us``,
``memory.limit_in_bytes``) and the same relative path is created under the cgroup2 mount too, for PSI and
``cpu.stat``; a process joins all of them. On a pure-v2 host ``cpu.max`` and ``memory.max`` are used. Killing
uses ``cgroup.kill`` where the kernel has it and otherwise signals every pid in ``cgroup.procs``, so nothing a
workload forked survives a run.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from cotenant.collectors.base import Roots
from cotenant.collectors.targets import V1_CONTROLLERS, CgroupLayout

DEFAULT_ROOT = Path("/sys/fs/cgroup")
# Every v1 controller the collector reads, but cpuset: a process can join a v1 cpuset only once the group's
# cpus and mems are set, and lab roles share the host's CPUs.
JOINED_V1_CONTROLLERS = tuple(name for name in V1_CONTROLLERS if name != "cpuset")
CFS_PERIOD_US = 100_000
LAB_PREFIX = "cotenant-lab-"


class CgroupError(RuntimeError):
    pass


@dataclass(frozen=True)
class CgroupHierarchy:
    """Where the hierarchies of this host are mounted. ``v1`` maps controller -> mount; ``unified`` is the
    cgroup2 mount (the root itself on a pure-v2 host)."""

    v1: dict[str, Path]
    unified: Path | None

    @property
    def pure_v2(self) -> bool:
        return not self.v1

    def directories(self, relative: str) -> list[Path]:
        """Every directory a cgroup with this relative path has, limits-bearing hierarchies first."""
        paths = [mount / relative for mount in self.v1.values()]
        if self.unified is not None:
            paths.append(self.unified / relative)
        return paths


def detect_hierarchy(root: Path = DEFAULT_ROOT) -> CgroupHierarchy:
    """This host's hierarchies, as the collector detects them (one rule for both)."""
    layout = CgroupLayout.detect(Roots(cgroup=root))
    v1 = {name: path for name, path in layout.v1_roots.items() if name in JOINED_V1_CONTROLLERS}
    if layout.v2_root is None and ("cpu" not in v1 or "memory" not in v1):
        raise CgroupError(f"no cgroup v2 root and no v1 cpu+memory hierarchies under {root}")
    return CgroupHierarchy(v1=v1, unified=layout.v2_root)


class Cgroup:
    """One workload's cgroup (the same relative path in every hierarchy)."""

    def __init__(self, hierarchy: CgroupHierarchy, relative: str) -> None:
        self.hierarchy = hierarchy
        self.relative = relative

    def create(self, cpus: float, memory_mib: int, cpu_shares: int | None = None) -> None:
        """The cgroup with its CPU quota and memory limit; with ``cpu_shares`` also its CPU weight (v1 shares,
        converted for v2 as ``v2_weight`` does), else the kernel's default (a nice-0 process's)."""
        if self.hierarchy.pure_v2:
            self._enable_v2_controllers()
        for directory in self.hierarchy.directories(self.relative):
            directory.mkdir(parents=True, exist_ok=True)
        quota = max(1000, round(cpus * CFS_PERIOD_US))
        memory = memory_mib * 1024 * 1024
        if self.hierarchy.pure_v2:
            assert self.hierarchy.unified is not None
            base = self.hierarchy.unified / self.relative
            (base / "cpu.max").write_text(f"{quota} {CFS_PERIOD_US}")
            (base / "memory.max").write_text(str(memory))
        else:
            cpu = self.hierarchy.v1["cpu"] / self.relative
            (cpu / "cpu.cfs_period_us").write_text(str(CFS_PERIOD_US))
            (cpu / "cpu.cfs_quota_us").write_text(str(quota))
            (self.hierarchy.v1["memory"] / self.relative / "memory.limit_in_bytes").write_text(str(memory))
        if cpu_shares is not None:
            write_cpu_weight(self.hierarchy, self.relative, cpu_shares, v2_weight(cpu_shares))

    def _enable_v2_controllers(self) -> None:
        # A v2 controller is available to a child only when every ancestor enables it in subtree_control;
        # only the controllers the parent offers can be enabled (io is often missing in containers).
        assert self.hierarchy.unified is not None
        current = self.hierarchy.unified
        for part in [*Path(self.relative).parts[:-1], None]:
            offered = (current / "cgroup.controllers").read_text().split()
            wanted = [name for name in ("cpu", "memory", "io", "pids") if name in offered]
            if wanted:
                (current / "cgroup.subtree_control").write_text(" ".join(f"+{name}" for name in wanted))
            if part is None:
                break
            current = current / part
            current.mkdir(exist_ok=True)

    def join(self, pid: int) -> None:
        """Moves ``pid`` into this cgroup in every hierarchy (its future children follow)."""
        for directory in self.hierarchy.directories(self.relative):
            (directory / "cgroup.procs").write_text(str(pid))

    def pids(self) -> set[int]:
        found: set[int] = set()
        for directory in self.hierarchy.directories(self.relative):
            found |= read_pids(directory)
        return found


def with_cpuset(hierarchy: CgroupHierarchy, root: Path = DEFAULT_ROOT) -> CgroupHierarchy:
    """The hierarchy with the v1 cpuset controller joined too, so that cgroups can be pinned to CPUs
    (``pin_cpus``); a pure-v2 hierarchy as it is (its cpuset lives in the unified tree)."""
    if hierarchy.pure_v2:
        return hierarchy
    cpuset = root / "cpuset"
    if not (cpuset / "cpuset.cpus").exists():
        raise CgroupError(f"no cpuset hierarchy at {cpuset}: pinning cgroups to CPUs needs one")
    return CgroupHierarchy(v1={**hierarchy.v1, "cpuset": cpuset}, unified=hierarchy.unified)


def without_cpuset(hierarchy: CgroupHierarchy) -> CgroupHierarchy:
    """The hierarchy without the v1 cpuset controller: for a process on no node (the collector), since a
    new v1 cpuset takes no process until its CPUs and memory nodes are set."""
    unpinned = {name: mount for name, mount in hierarchy.v1.items() if name != "cpuset"}
    return CgroupHierarchy(v1=unpinned, unified=hierarchy.unified)


def cpu_list(first: int, count: int) -> str:
    """``count`` CPUs from ``first`` as a cpuset list: "3", "0-3"."""
    return str(first) if count == 1 else f"{first}-{first + count - 1}"


def pin_cpus(hierarchy: CgroupHierarchy, relative: str, cpus: str) -> None:
    """Creates ``relative`` in every hierarchy with its processes, and every cgroup created under it later,
    restricted to ``cpus`` (a cpuset list: "1", "0-3"): a node of that size. Needs the cpuset controller
    (``with_cpuset``)."""
    if hierarchy.pure_v2:
        assert hierarchy.unified is not None
        current = hierarchy.unified
        for part in Path(relative).parts:
            # A v2 cgroup has cpuset files once its parent enables the controller for its children; the
            # cgroups below it, which do not enable it, run on its CPUs.
            offered = (current / "cgroup.controllers").read_text().split()
            if "cpuset" not in offered:
                raise CgroupError(f"{current}: the cpuset controller is not offered; cannot pin CPUs")
            (current / "cgroup.subtree_control").write_text("+cpuset")
            current = current / part
            current.mkdir(exist_ok=True)
        (current / "cpuset.cpus").write_text(cpus)
        return
    if "cpuset" not in hierarchy.v1:
        raise CgroupError(f"pinning {relative} to CPUs needs the cpuset hierarchy (with_cpuset)")
    for directory in hierarchy.directories(relative):
        directory.mkdir(parents=True, exist_ok=True)
    current = hierarchy.v1["cpuset"]
    for part in Path(relative).parts:
        parent, current = current, current / part
        for name in ("cpuset.cpus", "cpuset.mems"):
            # A new v1 cpuset starts with no CPUs and no memory nodes, and nothing can join it until both
            # are set: the ancestors take their parent's.
            if not (current / name).read_text().strip():
                (current / name).write_text((parent / name).read_text().strip())
    (current / "cpuset.cpus").write_text(cpus)
    (current / "cgroup.clone_children").write_text("1")  # cgroups created under it start on its CPUs


# The lab's weight: 16 nice-0 processes' worth. In the root cgroup every process is a scheduling entity of
# its own while a child cgroup is one entity for all its tasks, so the lab needs more than the default to keep
# its share on a busy host; but not the maximum (262,144 shares, which an earlier campaign used): the kernel's
# own per-CPU workers are nice-0 processes in the root cgroup, and against the maximum they get under 1% of a
# CPU when the lab fills both cores: that campaign's kernel log shows them stalled for up to 57 s ("workqueue
# lockup"), with every program frozen meanwhile and deferred frees piling up until a redis cgroup hit its
# memory limit (the likely cause: nothing else starves them). At 16x they keep about 10%.
LAB_WEIGHT_FACTOR = 16
V1_SHARES = LAB_WEIGHT_FACTOR * 1024  # cpu.shares of a nice-0 process: 1024
V2_WEIGHT = LAB_WEIGHT_FACTOR * 100  # cpu.weight of a nice-0 process: 100


def prioritise(hierarchy: CgroupHierarchy, relative: str) -> None:
    """Gives a top-level group a high CPU weight (``LAB_WEIGHT_FACTOR``) over the host's other processes."""
    if hierarchy.pure_v2:
        assert hierarchy.unified is not None
        control = hierarchy.unified / "cgroup.subtree_control"
        control.write_text("+cpu")
    write_cpu_weight(hierarchy, relative, V1_SHARES, V2_WEIGHT)


def write_cpu_weight(hierarchy: CgroupHierarchy, relative: str, v1_shares: int, v2_cpu_weight: int) -> None:
    """cpu.shares on a v1 host, cpu.weight on a pure-v2 one."""
    if hierarchy.pure_v2:
        assert hierarchy.unified is not None
        (hierarchy.unified / relative / "cpu.weight").write_text(str(v2_cpu_weight))
    else:
        (hierarchy.v1["cpu"] / relative / "cpu.shares").write_text(str(v1_shares))


# kubelet's arithmetic (pkg/kubelet/cm: MilliCPUToShares, and the runtime's shares -> cgroup v2 weight):
# a container's cpu.shares are its CPU request in milli-CPUs x 1024 / 1000, at least 2.
MIN_SHARES = 2
MAX_SHARES = 262_144


def kubelet_cpu_shares(request_cpus: float) -> int:
    """The cpu.shares kubelet gives a container (or a Burstable pod) requesting ``request_cpus``."""
    milli = round(request_cpus * 1000)
    return min(MAX_SHARES, max(MIN_SHARES, milli * 1024 // 1000))


def v2_weight(shares: int) -> int:
    """cgroup v1 shares [2, 262144] mapped onto v2's cpu.weight [1, 10000] as the container runtimes do."""
    return 1 + ((shares - MIN_SHARES) * 9999) // (MAX_SHARES - MIN_SHARES)


def read_pids(directory: Path) -> set[int]:
    """Pids in a cgroup directory and all its descendants."""
    found: set[int] = set()
    if not directory.is_dir():
        return found
    for procs in directory.rglob("cgroup.procs"):
        try:
            found |= {int(line) for line in procs.read_text().split()}
        except OSError:
            continue
    return found


def tree_pids(hierarchy: CgroupHierarchy, relative: str) -> set[int]:
    """Pids under ``relative`` in every hierarchy."""
    pids: set[int] = set()
    for directory in hierarchy.directories(relative):
        pids |= read_pids(directory)
    return pids


def kill_tree(hierarchy: CgroupHierarchy, relative: str, timeout_s: float = 5.0) -> None:
    """Kills every process under ``relative`` (all hierarchies) and removes the directories, deepest first."""
    if hierarchy.unified is not None:
        kill_file = hierarchy.unified / relative / "cgroup.kill"
        if kill_file.exists():
            with contextlib.suppress(OSError):
                kill_file.write_text("1")
    deadline = time.monotonic() + timeout_s
    while True:
        pids = tree_pids(hierarchy, relative)
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if time.monotonic() > deadline:
            raise CgroupError(f"processes {sorted(pids)} survived SIGKILL in {relative}")
        time.sleep(0.02)
    for directory in hierarchy.directories(relative):
        remove_directories(directory, timeout_s)


def release_memory(directory: Path) -> None:
    """Reclaims what an emptied cgroup still has charged (the page cache of files its programs wrote or first
    read), so that removing it frees it. Otherwise the kernel keeps it as a "dying" memory cgroup for as long
    as one of those pages lives: a campaign leaves thousands (2,100 after 880 runs of the v2 plan), and
    memory management walks them all. v1: ``memory.force_empty``; v2: ``memory.reclaim`` of what is there.
    Best effort: a page in use elsewhere stays, and so does its cgroup, as before."""
    force_empty = directory / "memory.force_empty"
    reclaim = directory / "memory.reclaim"
    with contextlib.suppress(OSError, ValueError):
        if force_empty.exists():
            force_empty.write_text("0")
        elif reclaim.exists():
            charged = int((directory / "memory.current").read_text())
            if charged:
                reclaim.write_text(str(charged))


def remove_directories(directory: Path, timeout_s: float) -> None:
    if not directory.is_dir():
        return
    children = sorted((path for path in directory.rglob("*") if path.is_dir()), key=lambda p: -len(p.parts))
    for path in [*children, directory]:
        release_memory(path)
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                path.rmdir()
                break
            except FileNotFoundError:
                break
            except OSError as error:
                # EBUSY while the kernel finishes tearing down the last exited task.
                if error.errno != errno.EBUSY or time.monotonic() > deadline:
                    raise CgroupError(f"cannot remove {path}: {error}") from error
                time.sleep(0.02)


def lab_groups(hierarchy: CgroupHierarchy) -> list[str]:
    """Top-level lab cgroups (``cotenant-lab-<id>``) present in any hierarchy."""
    names: set[str] = set()
    for mount in [*hierarchy.v1.values(), *([hierarchy.unified] if hierarchy.unified else [])]:
        if mount.is_dir():
            names |= {
                path.name for path in mount.iterdir() if path.is_dir() and path.name.startswith(LAB_PREFIX)
            }
    return sorted(names)


def owner_pid(hierarchy: CgroupHierarchy, group: str) -> int | None:
    """The pid of the lab process that owns ``group``: it marks itself with an empty child ``owner-<pid>``
    (cgroupfs holds no plain files), so any other process can tell a live lab from a leftover."""
    for mount in [*hierarchy.v1.values(), *([hierarchy.unified] if hierarchy.unified else [])]:
        base = mount / group
        if base.is_dir():
            for child in base.iterdir():
                if child.name.startswith("owner-") and child.name[6:].isdigit():
                    return int(child.name[6:])
    return None


def pid_alive(pid: int, procfs: Path = Path("/proc")) -> bool:
    """Whether ``pid`` runs; a zombie (killed, not yet reaped by its new parent) counts as gone."""
    try:
        stat = (procfs / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    # The state follows the parenthesised command name, which may itself contain spaces or parentheses.
    return stat[stat.rfind(")") + 2 :].split(" ", 1)[0] not in {"Z", "X"}
