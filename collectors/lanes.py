"""Reading the sources of one tick: one thread after another source, a fresh thread past a stuck one.

A tick's sources are read one after another by a *lane*, a daemon thread: threads gave no parallelism here
(the GIL), only switching cost, and on an overloaded host every extra wake-up also waits for a CPU. The main
thread watches the lane: when a source holds it longer than its fair share of the time left before the
tick's deadline, the lane is abandoned to that source and a fresh lane reads the remaining sources. The stuck
source's result still counts if it is in by the deadline; until it returns it is not started again (it costs
only its own columns). Lanes are daemon threads, so a read stuck in the kernel never holds the process at
exit.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from cotenant.collectors.base import CgroupSource, CgroupTarget, HostSource, Roots, Source, SourceUnavailable
from cotenant.collectors.targets import is_alive

log = logging.getLogger(__name__)
HOST_TARGET = "host"


@dataclass
class SourceResult:
    values: dict[str, tuple[dict[str, float], float]]  # target -> (raw values, monotonic read time)
    vanished: list[str]
    errors: int
    duration: float  # wall seconds
    cpu_seconds: float  # CPU time of the reading thread


def read_source(source: Source, targets: Sequence[CgroupTarget], roots: Roots) -> SourceResult:
    """Every target of one source; a failing target costs only its own values."""
    started, cpu_started = time.monotonic(), time.thread_time()
    values: dict[str, tuple[dict[str, float], float]] = {}
    vanished: list[str] = []
    errors = 0
    if isinstance(source, HostSource):
        values[HOST_TARGET] = (source.read(), time.monotonic())
    else:
        assert isinstance(source, CgroupSource)
        for target in targets:
            try:
                values[target.name] = (source.read(target), time.monotonic())
            except (FileNotFoundError, ProcessLookupError):
                if is_alive(target, roots):
                    errors += 1
                else:
                    vanished.append(target.name)
            except SourceUnavailable:
                raise
            except Exception as error:  # one target's failure must not cost the others
                errors += 1
                log.debug("source %s failed on %s: %s", source.name, target.name, error)
    duration = time.monotonic() - started
    return SourceResult(values, vanished, errors, duration, time.thread_time() - cpu_started)


@dataclass
class _Batch:
    """One tick's work: sources not yet started (taken in order under ``lock``) and the results so far."""

    pending: list[Source]
    targets: list[CgroupTarget]
    results: dict[str, SourceResult | BaseException] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Lane:
    def __init__(self, roots: Roots, number: int) -> None:
        self.roots = roots
        self.batch: _Batch | None = None
        self.current: str | None = None  # the source being read, guarded by the batch lock
        self.current_since = 0.0
        self.abandoned = False
        self.idle = threading.Event()
        self.idle.set()
        self._work = threading.Event()
        self._stopping = False
        threading.Thread(target=self._loop, name=f"source-lane-{number}", daemon=True).start()

    def assign(self, batch: _Batch) -> None:
        self.batch, self.abandoned = batch, False
        self.idle.clear()
        self._work.set()

    def stop(self) -> None:
        self._stopping = True
        self._work.set()

    def _loop(self) -> None:
        while True:
            self._work.wait()
            self._work.clear()
            if self._stopping:
                return
            batch = self.batch
            assert batch is not None
            while True:
                with batch.lock:
                    if self.abandoned or not batch.pending:
                        self.current = None
                        break
                    source = batch.pending.pop(0)
                    self.current, self.current_since = source.name, time.monotonic()
                try:
                    result: SourceResult | BaseException = read_source(source, batch.targets, self.roots)
                except BaseException as error:  # reported by the main thread as this source's failure
                    result = error
                with batch.lock:
                    batch.results[source.name] = result
                    self.current = None
            self.idle.set()


class Lanes:
    """Reads each tick's sources on lanes; ``busy`` names sources still stuck in an earlier read."""

    def __init__(self, roots: Roots) -> None:
        self.roots = roots
        self.lanes: list[_Lane] = []

    def busy(self) -> set[str]:
        return {lane.current for lane in self.lanes if lane.current is not None and not lane.idle.is_set()}

    def read(
        self, sources: Sequence[Source], targets: list[CgroupTarget], deadline: float
    ) -> dict[str, SourceResult | BaseException]:
        """Results of the sources that finished by ``deadline`` (monotonic); stuck sources are not started."""
        stuck = self.busy()
        batch = _Batch([s for s in sources if s.name not in stuck], targets)
        if not batch.pending:
            return {}
        lane = self._idle_lane()
        lane.assign(batch)
        while (now := time.monotonic()) < deadline:
            with batch.lock:
                pending = len(batch.pending)
                # the current source may take a fair share of the time that was left when it started
                since = now if lane.current is None else lane.current_since
                share_end = since + (deadline - since) / (pending + 1)
                overran = lane.current is not None and pending > 0 and now >= share_end
                lane.abandoned = lane.abandoned or overran  # it finishes its current source, then stops
            if overran:
                lane = self._idle_lane()
                lane.assign(batch)  # the remaining sources go on without waiting for the stuck one
            elif lane.idle.wait(max(0.0, min(share_end, deadline) - now)):
                break
        for straggler in [each for each in self.lanes if each.batch is batch and not each.idle.is_set()]:
            straggler.idle.wait(max(0.0, deadline - time.monotonic()))  # an overrun that may yet be in time
        with batch.lock:
            batch.pending.clear()  # past the deadline nothing more is started for this tick
            for each in self.lanes:
                if each.batch is batch:
                    each.abandoned = True
            return dict(batch.results)

    def _idle_lane(self) -> _Lane:
        for lane in self.lanes:
            if lane.idle.is_set():
                return lane
        lane = _Lane(self.roots, len(self.lanes))
        self.lanes.append(lane)
        return lane

    def stop(self) -> None:
        for lane in self.lanes:
            lane.stop()
