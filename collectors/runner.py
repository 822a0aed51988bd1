"""The sampling loop: wall-clock aligned ticks, isolated sources, derive, rows to the writer and sinks.

Sources are read on lanes (``cotenant.collectors.lanes``): one after another normally, a fresh thread past a
source that overruns its share of the tick. A source that raises or overruns the deadline costs its own
columns for that tick (and is reported in the ``collector`` table), never the sample.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from cotenant.collectors import CGROUP_SOURCES, HOST_SOURCES, instantiate
from cotenant.collectors.base import (
    CgroupSource,
    CgroupTarget,
    MetricSpec,
    Source,
    SourceUnavailable,
)
from cotenant.collectors.config import CollectorConfig
from cotenant.collectors.derive import DerivePlan, derive
from cotenant.collectors.lanes import HOST_TARGET, Lanes, SourceResult
from cotenant.collectors.rows import UNAVAILABLE_KEY, Row
from cotenant.collectors.selfstats import SelfObserver, TickReport
from cotenant.collectors.targets import CgroupLayout, TargetSelector

if TYPE_CHECKING:
    from cotenant.collectors.writer import SegmentWriter

log = logging.getLogger(__name__)
__all__ = ["HOST_TARGET", "Collector", "CollectorConfig", "Sink"]
Sink = Callable[[int, dict[str, dict[str, Row]]], None]  # (epoch ms, {table: {target: row}})


class Collector:
    def __init__(self, config: CollectorConfig, sinks: Sequence[Sink] = ()) -> None:
        self.config = config
        self.sinks = list(sinks)
        self.layout = CgroupLayout.detect(config.roots)
        self.selector = TargetSelector(
            self.layout, config.roots, config.cgroups, config.cgroup_globs, config.pids
        )
        self.selector.validate()
        self.sources: list[Source] = []
        self.unavailable: dict[str, str] = {}  # whole sources that could not open, with the reason
        self.unavailable_specs: dict[str, list[str]] = {}
        self.pending_forget: dict[str, list[CgroupTarget]] = {}  # applied when the source's thread is idle
        self.specs: dict[str, dict[str, MetricSpec]] = {}
        self.plans: dict[str, DerivePlan] = {}
        for registry in (HOST_SOURCES, CGROUP_SOURCES):
            for name in sorted(registry):
                if config.sources is None or name in config.sources:
                    self._open(name, instantiate(registry[name], config.roots))
        self.observer = SelfObserver([s.name for s in self.sources] + list(self.unavailable), config.interval)
        self.writer: SegmentWriter | None = None
        if config.out is not None:
            # Imported only here: Parquet brings Polars and numpy, which an agent that pushes never needs.
            from cotenant.collectors.writer import SegmentWriter

            self.writer = SegmentWriter(config.out, self.table_columns(), config.segment_seconds)
        if self.writer is not None:
            self.writer.set_metadata("collector", UNAVAILABLE_KEY, json.dumps(self.unavailable_metrics()))
        self.previous: dict[tuple[str, str], tuple[dict[str, float], float]] = {}
        self.carried: dict[tuple[str, str], tuple[Row, float]] = {}  # per-process rows and their read time
        self.process_read_at: dict[str, float] = {}  # wall-clock tick of each per-process source's last read
        self.process_targets: dict[str, set[str]] = {}  # and the targets present then
        self.known_targets: dict[str, CgroupTarget] = {}
        self.warned: set[str] = set()
        self.lanes = Lanes(config.roots)

    def _open(self, name: str, source: Source) -> None:
        try:
            self.unavailable_specs[name] = [spec.name for spec in source.specs()]
            source.open()
        except SourceUnavailable as error:
            self.unavailable[name] = str(error)
            log.warning("source %s unavailable: %s", name, error)
            return
        except Exception as error:  # a broken source is reported, the others still run
            self.unavailable[name] = f"{type(error).__name__}: {error}"
            log.warning("source %s failed to open: %s", name, error)
            return
        self.sources.append(source)
        self.specs[name] = {spec.name: spec for spec in source.specs()}
        self.plans[name] = DerivePlan.of(self.specs[name])

    def table_columns(self) -> dict[str, list[str]]:
        columns: dict[str, list[str]] = {"host": [], "cgroup": [], "collector": self.observer.columns()}
        for source in self.sources:
            table = "host" if source.scope == "host" else "cgroup"
            columns[table] += [spec.derived_name for spec in self.specs[source.name].values()]
        return columns

    def run(self, stop: threading.Event) -> int:
        """Sample until ``stop`` is set or the duration has passed; returns the number of ticks taken."""
        interval = self.config.interval
        first = math.ceil(time.time() / interval) * interval  # aligned to wall-clock multiples of interval
        duration = self.config.duration
        last_index = None if duration is None else math.floor(duration / interval + 1e-9)
        index = ticks = 0
        try:
            # times are first + index * interval (never accumulated), so the cadence does not drift
            while last_index is None or index <= last_index:
                scheduled = first + index * interval
                if stop.wait(max(0.0, scheduled - time.time())):
                    break
                lateness = time.time() - scheduled
                skipped = int(lateness // interval)
                if skipped:  # overran whole intervals: skip them rather than bunch samples together
                    index += skipped
                    scheduled = first + index * interval
                    lateness -= skipped * interval
                self.tick(scheduled, lateness, skipped)
                ticks += 1
                index += 1
        finally:
            self.close()
        return ticks

    def tick(self, scheduled: float, lateness: float, skipped: int) -> None:
        started = time.monotonic()
        epoch_ms = round(scheduled * 1000)
        targets = self.selector.current(self.warned)
        for gone in set(self.known_targets) - set(targets):
            self._forget(gone)
        self.known_targets = dict(targets)
        self._apply_pending_forgets()
        deadline = started + self.config.interval * self.config.read_timeout_share
        due = [source for source in self.sources if self._due(source, scheduled, targets)]
        results = self.lanes.read(due, list(targets.values()), deadline)
        tables: dict[str, dict[str, Row]] = {"host": {}, "cgroup": {}}
        report = TickReport(lateness=lateness, skipped=skipped, targets=len(targets))
        for source in self.sources:
            if source not in due:
                self._carry(source, targets, scheduled, tables["cgroup"], report)
                continue
            result = results.get(source.name)
            if not isinstance(result, SourceResult):
                if isinstance(result, BaseException):
                    log.debug("source %s failed: %s", source.name, result)
                report.source(source.name, None, ok=False)  # failed, overran the deadline or still stuck
                continue
            report.cpu(source.name, result.cpu_seconds)
            report.source(source.name, result.duration, ok=result.errors == 0)
            report.ages[source.name] = 0.0
            for name in result.vanished:
                self._forget(name)
                self.known_targets.pop(name, None)
            table = "host" if source.scope == "host" else "cgroup"
            for target, (values, read_at) in result.values.items():
                key = (source.name, target)
                before = self.previous.get(key)
                self.previous[key] = (values, read_at)
                dt = read_at - before[1] if before else 0.0
                derived = derive(before[0] if before else None, values, dt, self.plans[source.name])
                if derived is not None:
                    tables[table].setdefault(target, {}).update(derived)
                    if source.reads_processes:
                        self.carried[key] = (derived, scheduled)
        writer = self.writer
        if writer is not None:
            for table, rows in tables.items():
                for target, row in rows.items():
                    writer.add(table, epoch_ms, target, row)
        unavailable = self.unavailable_metrics()
        report.unavailable = {name: len(metrics) for name, metrics in unavailable.items()}
        tables["collector"] = {"collector": self.observer.row(report, time.monotonic() - started)}
        if writer is not None:
            writer.set_metadata("collector", UNAVAILABLE_KEY, json.dumps(unavailable))
            writer.add("collector", epoch_ms, "collector", tables["collector"]["collector"])
        for sink in self.sinks:
            sink(epoch_ms, tables)
        if writer is not None and writer.due(time.time()):
            writer.flush(time.time())

    def _due(self, source: Source, scheduled: float, targets: dict[str, CgroupTarget]) -> bool:
        """Every source every tick, but per-process ones every ``process_interval`` (and at once for a new
        target, so that its first rate is due one period after it appears)."""
        if not source.reads_processes:
            return True
        last = self.process_read_at.get(source.name)
        period = self.config.process_interval - self.config.interval / 2  # a tick early rather than late
        elapsed = last is not None and scheduled - last >= period
        read_targets = self.process_targets.get(source.name, set())
        if last is None or elapsed or any(name not in read_targets for name in targets):
            self.process_read_at[source.name] = scheduled
            self.process_targets[source.name] = set(targets)
            return True
        return False

    def _carry(
        self,
        source: Source,
        targets: dict[str, CgroupTarget],
        scheduled: float,
        rows: dict[str, Row],
        report: TickReport,
    ) -> None:
        """The last rows of a per-process source not read this tick, for the targets still present."""
        age: float | None = None
        for name in targets:
            carried = self.carried.get((source.name, name))
            if carried is not None:
                rows.setdefault(name, {}).update(carried[0])
                age = max(age or 0.0, scheduled - carried[1])
        report.source(source.name, None, ok=True)
        report.ages[source.name] = age

    def _apply_pending_forgets(self) -> None:
        """Release what sources hold for gone targets, in the main thread while no lane reads the source."""
        busy = self.lanes.busy()
        for source in self.sources:
            if source.name in busy or not isinstance(source, CgroupSource):
                continue
            for target in self.pending_forget.pop(source.name, []):
                try:
                    source.forget(target)
                except Exception as error:
                    log.debug("source %s could not forget %s: %s", source.name, target.name, error)

    def unavailable_metrics(self) -> dict[str, dict[str, str]]:
        """Per source, the metrics it cannot emit here and why (a whole source: every metric it has)."""
        missing: dict[str, dict[str, str]] = {}
        for source in self.sources:
            reasons = getattr(source, "unavailable", None)
            if isinstance(reasons, dict):
                missing[source.name] = {str(metric): str(reason) for metric, reason in reasons.items()}
        for name, reason in self.unavailable.items():
            missing[name] = dict.fromkeys(self.unavailable_specs.get(name, []), reason)
        return missing

    def _forget(self, name: str) -> None:
        target = self.known_targets.get(name)
        log.info("target %s is gone", name)
        for source in self.sources:
            self.previous.pop((source.name, name), None)
            self.carried.pop((source.name, name), None)
            if isinstance(source, CgroupSource) and target is not None:
                # the source's own thread may be reading: it forgets before its next read
                self.pending_forget.setdefault(source.name, []).append(target)

    def close(self) -> None:
        try:
            if self.writer is not None:
                self.writer.flush(time.time())
        finally:
            if self.writer is not None:
                self.writer.close()
            busy = self.lanes.busy()
            self.lanes.stop()
            for source in self.sources:
                if source.name in busy:
                    continue  # its lane may still use what close would release; exit frees it
                try:
                    source.close()
                except Exception as error:
                    log.debug("source %s did not close: %s", source.name, error)
