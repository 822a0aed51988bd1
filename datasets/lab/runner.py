"""Executes one run of a plan: target and neighbours in their own cgroups, phases timed, output parsed.

Neighbours start ``warmup_s`` before the target and are killed only after its last phase, so every second of
the target's measurement is co-located. Everything a run starts lives in the run's cgroup subtree, which is
killed and removed at the end whatever happened.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cotenant.datasets.lab.cgroups import Cgroup, CgroupHierarchy, cpu_list, kill_tree, pin_cpus
from cotenant.datasets.lab.plan import Plan, RoleConfig, RunSpec
from cotenant.datasets.lab.quiet import BackgroundLoad
from cotenant.datasets.lab.records import RunCgroups, RunRecord
from cotenant.datasets.lab.workloads import ParseError, WorkContext, Workload

SERVICE_START_TIMEOUT_S = 10.0
# A time-bounded tool may finish late when starved of CPU (start-up, final report); past this it is hung.
PHASE_GRACE_S = 15.0
NEIGHBOUR_SLACK = 3  # a neighbour's own time bound, in target durations


class RunFailed(RuntimeError):
    """A run produced no valid measurement; the message says which role and phase, and where the log is."""


@dataclass(frozen=True)
class RunSettings:
    warmup_s: float


def _start(command: list[str], cgroup: Cgroup, log: Path, workload: str) -> subprocess.Popen[bytes]:
    with log.open("ab") as output:
        try:
            return subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                # Own process group, joined to the cgroup before exec: no instruction runs outside it.
                start_new_session=True,
                preexec_fn=lambda: cgroup.join(os.getpid()),
            )
        except OSError as error:  # a missing binary, a directory, no permission
            raise RunFailed(f"{workload}: cannot start {command[0]!r}: {error.strerror or error}") from error


def _signal_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)


class Role:
    """One workload configuration in one cgroup for one run."""

    def __init__(
        self, name: str, config: RoleConfig, workload: Workload, cgroup: Cgroup, scratch: Path, log_dir: Path
    ) -> None:
        self.name = name
        self.config = config
        self.cgroup = cgroup
        self.workload = workload
        self.log_dir = log_dir
        self.context = WorkContext(
            scratch=scratch,
            role_dir=log_dir / f"{name}.d",
            runtime_dir=Path(tempfile.mkdtemp(prefix=f"cotenant-lab-{name}-")),
        )
        self.processes: list[subprocess.Popen[bytes]] = []

    def setup(self) -> None:
        self.cgroup.create(self.config.cpus, self.config.memory_mib, self.config.cpu_shares)
        self.context.role_dir.mkdir(parents=True, exist_ok=True)
        command = self.workload.service_command(self.context)
        if command is None:
            return
        self.processes.append(
            _start(command, self.cgroup, self.log_dir / f"{self.name}-service.log", self.config.workload)
        )
        deadline = time.monotonic() + SERVICE_START_TIMEOUT_S
        while not self.workload.service_ready(self.context):
            if self.processes[-1].poll() is not None or time.monotonic() > deadline:
                raise RunFailed(
                    f"{self.name}: {self.config.workload} server did not start; see {self.log_dir}"
                )
            time.sleep(0.01)

    def start_background(self, seconds: int) -> None:
        """A neighbour: one phase at its level lasting the whole co-run (killed when the target is done)."""
        log = self.log_dir / f"{self.name}.log"
        command = self.workload.phase_command(self.config.phase_levels[0], seconds, self.context)
        self.processes.append(_start(command, self.cgroup, log, self.config.workload))

    def run_phases(self) -> list[float]:
        """The target: each phase in turn, returning each phase's parsed performance."""
        seconds = self.config.phase_s
        results = []
        for index, level in enumerate(self.config.phase_levels):
            log = self.log_dir / f"{self.name}-phase{index}.log"
            command = self.workload.phase_command(level, seconds, self.context)
            process = _start(command, self.cgroup, log, self.config.workload)
            self.processes.append(process)
            self._wait_phase(process, seconds, log)
            if not self.workload.stop_at_deadline and process.returncode != 0:
                # A run that failed must not be measured as a fast one (error paths are quick).
                raise RunFailed(
                    f"{self.name} phase {index} ({self.config.workload}): {command[0]} exited with "
                    f"{process.returncode}; log {log}"
                )
            try:
                value = self.workload.parse(log.read_text(errors="replace"))
            except ParseError as error:
                raise RunFailed(
                    f"{self.name} phase {index} ({self.config.workload}): {error}; log {log}"
                ) from error
            if value <= 0:
                # Nothing to take a ratio of: a solo of 0 would label every co-run against it at the floor.
                raise RunFailed(
                    f"{self.name} phase {index} ({self.config.workload}): measured {value:g} "
                    f"{self.workload.unit}, no work its metric counts (too little memory or CPU for it?); "
                    f"log {log}"
                )
            results.append(value)
        return results

    def _wait_phase(self, process: subprocess.Popen[bytes], seconds: int, log: Path) -> None:
        if self.workload.stop_at_deadline:
            try:
                process.wait(timeout=seconds)
                return
            except subprocess.TimeoutExpired:
                _signal_group(process, signal.SIGINT)
        try:
            process.wait(timeout=PHASE_GRACE_S if self.workload.stop_at_deadline else seconds + PHASE_GRACE_S)
        except subprocess.TimeoutExpired as error:
            _signal_group(process, signal.SIGKILL)
            process.wait()
            raise RunFailed(
                f"{self.name}: {self.config.workload} did not finish in time; log {log}"
            ) from error

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                _signal_group(process, signal.SIGKILL)
        for process in self.processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=5)


def execute_run(
    spec: RunSpec,
    plan: Plan,
    settings: RunSettings,
    hierarchy: CgroupHierarchy,
    group: str,
    scratch: Path,
    logs: Path,
    background: BackgroundLoad | None = None,
) -> RunRecord:
    """Runs ``spec`` and returns its record; raises RunFailed. Always removes the run's cgroups."""
    run_group = f"{group}/{spec.run_id}"
    log_dir = logs / spec.run_id
    if log_dir.exists():
        # A retried run (after a failure or a resume) parses fresh output; the earlier attempt is kept aside.
        attempt = 1
        while (logs / f"{spec.run_id}.attempt{attempt}").exists():
            attempt += 1
        log_dir.rename(logs / f"{spec.run_id}.attempt{attempt}")
    log_dir.mkdir(parents=True)
    target = Role(
        "target",
        spec.target,
        plan.workload(spec.target.workload),
        Cgroup(hierarchy, f"{run_group}/target"),
        scratch,
        log_dir,
    )
    neighbours = [
        Role(
            f"neighbour-{index}",
            config,
            plan.workload(config.workload),
            Cgroup(hierarchy, f"{run_group}/neighbour-{index}"),
            scratch,
            log_dir,
        )
        for index, config in enumerate(spec.neighbours, start=1)
    ]
    try:
        if plan.host_cpus is not None:
            # The run's roles are created under it and inherit its CPUs: a node of that size.
            pin_cpus(hierarchy, run_group, cpu_list(0, plan.host_cpus))
        for role in [*neighbours, target]:
            role.setup()
        if neighbours:
            # Neighbours are stopped when the target ends; their own bound is only a safety net, generous
            # because a contended target's phases can overrun (start-up, a last unit of work, its report):
            # a target outliving its neighbours would measure its tail alone.
            background_s = math.ceil(
                settings.warmup_s + NEIGHBOUR_SLACK * spec.target.duration_s + PHASE_GRACE_S
            )
            for neighbour in neighbours:
                neighbour.start_background(background_s)
            time.sleep(settings.warmup_s)
        started = datetime.now(UTC)
        phases = target.run_phases()
        ended = datetime.now(UTC)
        for neighbour in neighbours:
            for process in neighbour.processes:
                if process.poll() is not None and process.returncode != 0:
                    raise RunFailed(
                        f"{neighbour.name} ({neighbour.config.workload}) exited early "
                        f"with {process.returncode}; logs in {log_dir}"
                    )
    finally:
        for role in [target, *neighbours]:
            role.stop()
        kill_tree(hierarchy, run_group)
        for role in [target, *neighbours]:
            # Sockets and temporary files (stress-ng --hdd leaves its files behind when killed).
            shutil.rmtree(role.context.role_dir, ignore_errors=True)
            shutil.rmtree(role.context.runtime_dir, ignore_errors=True)
    workload = target.workload
    return RunRecord(
        run_id=spec.run_id,
        kind=spec.kind,
        application=spec.target.workload,
        config_key=spec.target.config_key,
        scenario=spec.target.scenario,
        load=spec.target.load,
        schedule=spec.target.schedule,
        neighbours=[config.config_key for config in spec.neighbours],
        repeat=spec.repeat,
        started_at=started,
        ended_at=ended,
        cgroups=RunCgroups(target=target.cgroup.relative, neighbours=[n.cgroup.relative for n in neighbours]),
        performance=sum(phases) / len(phases),
        performance_unit=workload.unit,
        higher_is_better=workload.higher_is_better,
        background=background,
        references=list(spec.references),
        host_cores=plan.host_cpus,
        cpu_shares=run_cpu_shares(spec),
    )


def run_cpu_shares(spec: RunSpec) -> list[int | None] | None:
    """The weights the run's cgroups had (``RunRecord.cpu_shares``), None where all had the default."""
    shares = [config.cpu_shares for config in (spec.target, *spec.neighbours)]
    return None if all(value is None for value in shares) else shares
