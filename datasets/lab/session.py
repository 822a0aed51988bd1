"""A lab session: runs a plan into an output directory, resumably, and always cleans up.

``DIR/runs.jsonl`` is the journal: a run is done once its record is appended there (fsynced), so a stop or a
crash resumes at the first unfinished run. The session refuses a directory made by another plan, a directory
another process is using, and leftover lab cgroups whose owner is gone (``clean_stale`` or ``cotenant lab
clean`` removes them). Ctrl-C and SIGTERM unwind through the same clean-up as a normal end.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

from cotenant.datasets.lab.canary import (
    STEADY_RETRY_S,
    STEADY_WAIT_S,
    CanaryFailed,
    CanarySpec,
    describe_spread,
    measure_speed,
    measure_steadiness,
)
from cotenant.datasets.lab.cgroups import (
    LAB_PREFIX,
    CgroupError,
    CgroupHierarchy,
    detect_hierarchy,
    kill_tree,
    lab_groups,
    owner_pid,
    pid_alive,
    prioritise,
    tree_pids,
    with_cpuset,
    without_cpuset,
)
from cotenant.datasets.lab.labels import NoiseWatch
from cotenant.datasets.lab.plan import (
    Plan,
    PlanPart,
    RunSpec,
    expand_plan,
    load_plan,
    phase_check,
    write_plan,
)
from cotenant.datasets.lab.quiet import wait_for_quiet
from cotenant.datasets.lab.records import RunRecord, append_record, read_journal
from cotenant.datasets.lab.runner import RunFailed, RunSettings, execute_run

ProgressCallback = Callable[[int, int, RunSpec | None, str], None]


class LabError(RuntimeError):
    """The lab cannot start or go on; the message says why and what to do."""


class CollectorFailed(LabError):
    """The telemetry collector exited: runs measured on would have no telemetry (useless to the monitoring
    models, and nothing in their records would say so)."""


class LabInterrupted(KeyboardInterrupt):
    """SIGTERM, turned into an exception so that clean-up runs exactly as for Ctrl-C."""


@dataclass
class LabResult:
    done: int
    skipped: int
    failed: list[str] = field(default_factory=list)
    telemetry: bool = False
    noise: str = ""  # the running noise floor when it ended (``NoiseWatch.describe``)
    steadiness: dict[str, float] | None = None  # the pre-flight's canary spreads, % (``--max-speed-spread``)
    stopped: str | None = None  # why it stopped before the end (the running noise floor passed its limit)


def lab_id(plan: Plan, out: Path) -> str:
    return hashlib.sha256(f"{plan.digest()}:{out.resolve()}".encode()).hexdigest()[:8]


@contextmanager
def _directory_lock(out: Path) -> Iterator[None]:
    lock = (out / ".lab.lock").open("w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as error:
        lock.close()
        raise LabError(f"{out} is being written by another lab run") from error
    try:
        yield
    finally:
        fcntl.flock(lock, fcntl.LOCK_UN)
        lock.close()


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM and SIGINT both stop the lab through the same clean-up. SIGINT is set explicitly: a lab
    started in the background by a script inherits it ignored, and ``kill -INT`` would do nothing."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise LabInterrupted(f"signal {signum}")

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def check_leftovers(
    hierarchy: CgroupHierarchy, own_group: str, *, allow_concurrent: bool, clean_stale: bool
) -> list[str]:
    """Removes this directory's own leftovers (we hold its lock, so their owner is gone) and other labs'
    leftovers that hold no process (a lab killed outright leaves its directories; empty, they disturb no
    measurement); refuses other leftovers, whose programs would still be running beside ours."""
    removed = []
    for group in lab_groups(hierarchy):
        owner = owner_pid(hierarchy, group)
        alive = owner is not None and owner != os.getpid() and pid_alive(owner)
        if group == own_group and not alive:
            kill_tree(hierarchy, group)
            removed.append(group)
        elif alive:
            if not allow_concurrent:
                raise LabError(
                    f"another lab run (pid {owner}) is active in cgroup {group}: co-running labs "
                    "would interfere with each other's measurements"
                )
        elif clean_stale or not tree_pids(hierarchy, group):
            kill_tree(hierarchy, group)
            removed.append(group)
        else:
            raise LabError(
                f"leftover lab cgroup {group} from a run that is gone; remove it with "
                "`cotenant lab clean` (or pass --clean-stale)"
            )
    return removed


def clean_all(hierarchy: CgroupHierarchy | None = None) -> list[str]:
    """Kills and removes every lab cgroup whose owning process is gone (in the cpuset hierarchy too, where
    pinned runs and A/B test hosts leave theirs)."""
    if hierarchy is None:
        hierarchy = detect_hierarchy()
        with suppress(CgroupError):
            hierarchy = with_cpuset(hierarchy)
    removed = []
    for group in lab_groups(hierarchy):
        owner = owner_pid(hierarchy, group)
        if owner is None or not pid_alive(owner):
            kill_tree(hierarchy, group)
            removed.append(group)
    return removed


COLLECTOR_START_TIMEOUT_S = 180.0
# ``cotenant collect`` itself, without importing every other area's CLI on the way (the full ``cotenant``
# entry point takes minutes to start on a loaded 2-core host, the collect command alone seconds).
COLLECTOR_ENTRY = "import typer; from cotenant.collectors.cli import collect; typer.run(collect)"
COLLECTOR_LOG_LINES = 3  # of its log, in the error saying it exited


def collector_command(arguments: list[str]) -> list[str]:
    """The collector's command line. ``-P``: ``-c`` would put the working directory first on ``sys.path``,
    and from a checkout of this repository (whose ``cotenant/`` folder is not the installed package) the
    collector then failed to import ``cotenant.collectors`` and exited at once."""
    return [sys.executable, "-P", "-c", COLLECTOR_ENTRY, *arguments]


def collector_failure(process: subprocess.Popen[bytes], log: Path) -> str | None:
    """None while the collector runs; once it has exited, its exit code and its log's last lines."""
    code = process.poll()
    if code is None:
        return None
    lines = log.read_text(errors="replace").strip().splitlines() if log.exists() else []
    said = " | ".join(lines[-COLLECTOR_LOG_LINES:]) or "nothing"
    return f"the telemetry collector exited with code {code}; its log ({log}) ends: {said}"


def start_collector(
    hierarchy: CgroupHierarchy,
    group: str,
    out: Path,
    log: Path,
    arguments: list[str] | None = None,
    name: str = "collector",
) -> subprocess.Popen[bytes]:
    """``cotenant collect`` over every role cgroup of the lab (``<group>/<run>/<role>``) into ``out``, or with
    other ``arguments`` (the A/B test's per-host agents push to the service).

    It runs in ``<group>/<name>``: inside the prioritised lab group it keeps its 1 s cadence on a busy
    host, and at depth one it is not matched by a ``<group>/*/*`` glob.
    """
    # On no node: the collector watches every run and host from a cgroup of its own, outside the cpuset that
    # pins them (where a new cgroup would take no process until its CPUs are set).
    home = without_cpuset(hierarchy).directories(f"{group}/{name}")
    for directory in home:
        directory.mkdir(parents=True, exist_ok=True)

    def join_collector_cgroup() -> None:
        for directory in home:
            (directory / "cgroup.procs").write_text(str(os.getpid()))

    if arguments is None:
        arguments = ["--cgroup-glob", f"{group}/*/*", "--out", str(out)]
    command = collector_command(arguments)
    with log.open("ab") as output:
        process = subprocess.Popen(
            command,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=join_collector_cgroup,
        )
    # The first runs must not go unobserved: wait until the collector says it samples (or gives up).
    deadline = time.monotonic() + COLLECTOR_START_TIMEOUT_S
    while process.poll() is None and time.monotonic() < deadline:
        if "collecting" in log.read_text(errors="replace"):
            break
        time.sleep(0.5)
    failure = collector_failure(process, log)
    if failure is not None:
        raise CollectorFailed(failure)
    return process


def stop_collector(process: subprocess.Popen[bytes]) -> None:
    # SIGINT first: the collector flushes its last segment on a clean stop.
    for sig, wait_s in ((signal.SIGINT, 15.0), (signal.SIGKILL, 5.0)):
        if process.poll() is not None:
            return
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            continue


def _prepare_directory(plan_path: Path, plan: Plan, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    stored = out / "plan.yaml"
    if stored.exists():
        made_by = load_plan(stored)
        if made_by.digest() != plan.digest():
            part = f" (part {made_by.part})" if made_by.part else ""
            raise LabError(
                f"{out} was made by a different plan{part} ({stored}); resume it with the same plan and "
                "part, or use a new --out directory"
            )
    elif (out / "runs.jsonl").exists():
        raise LabError(f"{out} holds runs.jsonl but no plan.yaml; use a new --out directory")
    elif plan.part is not None:
        write_plan(plan, stored)  # the part is part of what was measured
    else:
        shutil.copyfile(plan_path, stored)  # the user's file as written, comments included


def _check_journal(records: list[RunRecord], specs: dict[str, RunSpec], journal: Path) -> None:
    for record in records:
        spec = specs.get(record.run_id)
        if spec is None or spec.target.config_key != record.config_key:
            raise LabError(f"{journal}: run {record.run_id} ({record.config_key}) is not in this plan")


def run_lab(
    plan_path: Path,
    out: Path,
    *,
    allow_concurrent: bool = False,
    clean_stale: bool = False,
    telemetry: bool = True,
    max_runs: int | None = None,
    part: PlanPart | None = None,
    on_progress: ProgressCallback | None = None,
    max_noise_pp: float | None = None,
    max_speed_spread_pct: float | None = None,
    steady_wait_s: float = STEADY_WAIT_S,
) -> LabResult:
    """Runs (or resumes) ``plan_path`` into ``out``. ``max_runs`` stops after that many new runs (a pilot);
    ``part`` measures only that part of the plan (over the plan's own ``part``); ``max_noise_pp`` stops it
    (resumable) once the running noise floor of its solos passes that many pp (``NoiseWatch``);
    ``max_speed_spread_pct`` starts the first run only once the canary's samples spread no more than that
    (``wait_for_steady_machine``, at most ``steady_wait_s``)."""
    out = out.resolve()  # workloads chdir (redis --dir), so every path handed to them must be absolute
    plan = load_plan(plan_path)
    if part is not None:
        plan = plan.model_copy(update={"part": part})
    specs = expand_plan(plan)
    for config in {config for spec in specs for config in (spec.target, *spec.neighbours)}:
        phase_check(plan, config)
    machine_cpus = os.cpu_count() or 1
    if plan.host_cpus is not None and plan.host_cpus > machine_cpus:
        raise LabError(
            f"host_cpus: {plan.host_cpus} CPUs asked for, this machine has {machine_cpus}; "
            f"use at most {machine_cpus}"
        )
    _prepare_directory(plan_path, plan, out)
    journal = out / "runs.jsonl"
    group = LAB_PREFIX + lab_id(plan, out)
    hierarchy = detect_hierarchy()
    if plan.host_cpus is not None:
        try:
            hierarchy = with_cpuset(hierarchy)
        except CgroupError as error:
            raise LabError(f"host_cpus: {error}") from error
    with _directory_lock(out), sigterm_as_interrupt():
        records = read_journal(journal)
        by_id = {spec.run_id: spec for spec in specs}
        _check_journal(records, by_id, journal)
        done = {record.run_id for record in records}
        watch = NoiseWatch(limit_pp=max_noise_pp)
        for record in records:  # the journal's solos, earlier sessions' included, in the order measured
            watch.add(record)
        watch.new_sitting()
        check_leftovers(hierarchy, group, allow_concurrent=allow_concurrent, clean_stale=clean_stale)
        scratch, logs = out / "scratch", out / "logs"
        scratch.mkdir(exist_ok=True)
        logs.mkdir(exist_ok=True)
        marker = hierarchy.directories(f"{group}/owner-{os.getpid()}")[0]
        collector, collector_log = None, out / "collector.log"
        result = LabResult(done=0, skipped=len(done))
        try:
            marker.mkdir(parents=True)
            if plan.prioritise_lab:
                prioritise(hierarchy, group)
            for name in sorted(
                {config.workload for spec in specs for config in (spec.target, *spec.neighbours)}
            ):
                try:
                    plan.workload(name).prepare(scratch)
                except (OSError, subprocess.CalledProcessError) as error:
                    raise LabError(f"{name}: preparing its inputs failed: {error}") from error
            if telemetry:
                collector = start_collector(hierarchy, group, out / "telemetry", collector_log)
                result.telemetry = True
            cpus = machine_cpus
            if max_speed_spread_pct is not None:
                result.steadiness = wait_for_steady_machine(
                    plan.canary or CanarySpec(), cpus, max_speed_spread_pct, steady_wait_s, on_progress
                )
            _write_session_note(out, plan, group, result.telemetry, result.steadiness)
            settings = RunSettings(warmup_s=plan.warmup_s)
            pending = [spec for spec in specs if spec.run_id not in done]
            if max_runs is not None:
                pending = pending[:max_runs]
            for index, spec in enumerate(pending):
                _stop_if_collector_failed(collector, collector_log, f"before {spec.run_id}")
                background = None
                if plan.quiet is not None:
                    background = wait_for_quiet(
                        plan.quiet, cpus, on_wait=_waiting_report(on_progress, index, len(pending), spec)
                    )
                if on_progress:
                    on_progress(index, len(pending), spec, f"running; {watch.describe()}")
                try:
                    speed_before = measure_speed(plan.canary, cpus) if plan.canary else None
                    record = execute_run(spec, plan, settings, hierarchy, group, scratch, logs, background)
                    if plan.canary is not None:
                        speed = {
                            "speed_before": speed_before,
                            "speed_after": measure_speed(plan.canary, cpus),
                        }
                        record = record.model_copy(update=speed)
                except (RunFailed, CanaryFailed) as error:
                    result.failed.append(f"{spec.run_id}: {error}")
                    _note_failure(out, spec, str(error))
                    continue
                append_record(journal, record)
                result.done += 1
                watch.add(record)
                if watch.exceeded:
                    result.stopped = (
                        f"{watch.describe()} passed {max_noise_pp:g} pp after {record.run_id}: the machine "
                        "varies more than labels can bear (check it; the runs since it rose are in the "
                        "journal); run the same command to resume"
                    )
                    break
            _stop_if_collector_failed(collector, collector_log, "after the last run")
            result.noise = watch.describe()
            if on_progress:
                on_progress(len(pending), len(pending), None, "done")
            if len(read_journal(journal)) == len(specs):
                # The plan is complete: inputs kept for resumes (fio's 256 MiB file) are no longer needed.
                shutil.rmtree(scratch, ignore_errors=True)
        finally:
            if collector is not None:
                stop_collector(collector)
            kill_tree(hierarchy, group)
    return result


def _stop_if_collector_failed(collector: subprocess.Popen[bytes] | None, log: Path, when: str) -> None:
    """A lab measuring with telemetry stops once its collector has exited, where no more runs lose theirs."""
    failure = None if collector is None else collector_failure(collector, log)
    if failure is not None:
        raise CollectorFailed(
            f"{failure}. Stopped {when}: the runs measured are in the journal (the last one may lack "
            "telemetry from when the collector exited); fix it and run the same command to resume"
        )


def wait_for_steady_machine(
    spec: CanarySpec,
    cpus: int,
    max_spread_pct: float,
    max_wait_s: float,
    on_progress: ProgressCallback | None = None,
    retry_s: float = STEADY_RETRY_S,
) -> dict[str, float]:
    """The canary's spreads once none passes ``max_spread_pct``; LabError (nothing measured) when the machine
    has not become steady within ``max_wait_s``."""
    started, checks = time.monotonic(), 0
    while True:
        checks += 1
        try:
            spreads = measure_steadiness(spec, cpus)
        except CanaryFailed as error:
            raise LabError(f"--max-speed-spread: {error}") from error
        shown = describe_spread(spreads)
        if max(spreads.values()) <= max_spread_pct:
            return spreads
        waited = time.monotonic() - started
        if waited + retry_s > max_wait_s:
            raise LabError(
                f"the machine is unsteady: the canary's speed spread {shown} over its samples, more than "
                f"{max_spread_pct:g}% at each of {checks} checks over {waited / 60:.0f} min; no run was "
                "started. Labels measured now would carry the machine's wander; run the same command later "
                "to resume"
            )
        if on_progress:
            on_progress(0, 0, None, f"waiting for a steady machine (canary spread {shown})")
        time.sleep(retry_s)


def _waiting_report(
    on_progress: ProgressCallback | None, index: int, total: int, spec: RunSpec
) -> Callable[[float, float | None, float], None]:
    def report(busy: float, pressure: float | None, waited: float) -> None:
        if on_progress:
            shown = "-" if pressure is None else f"{pressure:.2f}"
            state = f"waiting {waited:.0f} s for a quiet host (busy {busy:.2f} cores, CPU pressure {shown})"
            on_progress(index, total, spec, state)

    return report


def _write_session_note(
    out: Path, plan: Plan, group: str, telemetry: bool, steadiness: dict[str, float] | None
) -> None:
    note = {
        "plan": plan.name,
        "plan_digest": plan.digest(),
        "cgroup_group": group,
        "telemetry": telemetry,
        "started_at": datetime.now(UTC).isoformat(),
        "host_cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "canary_spread_pct": steadiness,
    }
    with (out / "sessions.jsonl").open("a") as sessions:
        sessions.write(json.dumps(note) + "\n")


def _note_failure(out: Path, spec: RunSpec, message: str) -> None:
    with (out / "failures.jsonl").open("a") as failures:
        failures.write(json.dumps({"run_id": spec.run_id, "at": time.time(), "error": message}) + "\n")
