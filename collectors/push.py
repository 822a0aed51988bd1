"""``--push``: send samples to the cotenant service without ever blocking sampling.

The sampling thread only appends to a bounded deque (the oldest batch is dropped, and counted, when the
service is down for long); a background thread posts batches to ``POST URL/ingest`` with a bearer token,
retrying with exponential backoff. Body (docs/architecture.md section 5):
``{"host": str, "samples": [{"timestamp": iso8601, "target": str, "metrics": {name: float}}]}``, and with
``--profile TARGET=PROFILE_ID`` the links ``"profiles": {target: profile_id}``.

``--compact``: every ``push_interval_s`` the batch carries the host's rows as they are and, per workload
target, only what the placement champion needs: its metrics' summaries over the last window, packed
(``collectors/summaries.py``; about 1-2 KB a target instead of a row a second), in the feature schema the
service published at ``POST URL/feature_schema``. When the champion changes the service answers that batch
409: the pusher sends the same seconds as raw rows, fetches the new schema and goes on compact. While no
schema can be had (no champion yet, or one that needs more than a compact push carries) it pushes raw.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import httpx
from cotenant.collectors.lanes import HOST_TARGET
from cotenant.collectors.rows import Row

if TYPE_CHECKING:
    from cotenant.collectors.summaries import FeatureSchema

log = logging.getLogger(__name__)


def ingest_body(host: str, epoch_ms: int, tables: dict[str, dict[str, Row]]) -> dict[str, Any]:
    """One tick as the ingest body: host and cgroup rows, nulls left out (the collector table stays local)."""
    timestamp = datetime.fromtimestamp(epoch_ms / 1000, tz=UTC).isoformat()
    samples = [
        {"timestamp": timestamp, "target": target, "metrics": {k: v for k, v in row.items() if v is not None}}
        for table in ("host", "cgroup")
        for target, row in tables.get(table, {}).items()
    ]
    return {"host": host, "samples": samples}


# The key under which a compact batch keeps its raw seconds (never sent; what a 409 sends instead).
RAW_FALLBACK = "_raw"
# How long a pusher without a feature schema waits before asking the service again.
SCHEMA_RETRY_S = 60.0


class CompactWindows:
    """Per workload target, the last ``window_seconds`` rows of the schema's metrics, summarised on demand."""

    def __init__(self, schema: FeatureSchema) -> None:
        import numpy as np
        from cotenant.collectors.ratios import SHARES

        self.np = np
        self.schema = schema
        self.column = {metric: i for i, metric in enumerate(schema.metrics)}
        # shares the schema asks for, computed from each second's rates as the service computes them
        self.shares = {name: inputs for name, inputs in SHARES.items() if name in self.column}
        self.rows: dict[str, deque[Any]] = {}

    def add(self, target: str, row: Row) -> None:
        from cotenant.collectors.ratios import share_of

        vector = self.np.full(len(self.column), self.np.nan, dtype=self.np.float64)
        for name, value in row.items():
            column = self.column.get(name)
            if column is not None and value is not None:
                vector[column] = value
        for name, inputs in self.shares.items():
            share = share_of(inputs, row)
            if share is not None:
                vector[self.column[name]] = share
        window = self.rows.get(target)
        if window is None:
            window = self.rows[target] = deque(maxlen=self.schema.window_seconds)
        window.append(vector)

    def summaries(self, targets: set[str], timestamp: str) -> list[dict[str, Any]]:
        """The targets' summaries; targets not among them have left the host and are forgotten. A target with
        no second here yet (its seconds went to the windows of a schema replaced mid-interval, when the
        service's champion changed) has no summary this interval: the raw fallback still carries it."""
        from cotenant.collectors.summaries import pack, summarise

        for gone in set(self.rows) - targets:
            del self.rows[gone]
        return [
            {
                "target": target,
                "timestamp": timestamp,
                "seconds": len(self.rows[target]),
                "values": pack(summarise(self.np.stack(self.rows[target]))),
            }
            for target in sorted(targets)
            if target in self.rows
        ]


def fetch_schema(client: httpx.Client, url: str) -> FeatureSchema | None:
    """The champion's feature schema, or None (logged) when the service has none to give now."""
    from cotenant.collectors.summaries import FeatureSchema

    try:
        response = client.post(url.rstrip("/") + "/feature_schema")
        response.raise_for_status()
        body = response.json()
        return FeatureSchema(body["schema_id"], list(body["metrics"]), int(body["window_seconds"]))
    except (httpx.HTTPError, KeyError, TypeError, ValueError) as error:
        log.warning("no compact feature schema from %s (%s): pushing raw samples", url, error)
        return None


class Pusher:
    def __init__(
        self,
        url: str,
        token: str,
        host: str,
        max_batches: int = 300,
        timeout: float = 5.0,
        max_backoff: float = 30.0,
        compact: bool = False,
        push_interval_s: float = 5.0,
        profiles: Mapping[str, str] | None = None,
    ) -> None:
        self.url = url
        # Each workload target's registered solo profile (target -> profile_id), sent with every push: the
        # service's host monitoring reads a target against its profile without its callers naming it.
        self.profiles = dict(profiles or {})
        self.endpoint = url.rstrip("/") + "/ingest"
        self.host = host
        self.compact = compact
        self.push_interval_ms = int(push_interval_s * 1000)
        self.windows: CompactWindows | None = None
        self.fallbacks = 0  # compact batches the service refused (a new champion) and that went out raw
        self._schema_asked_ms = 0
        # This interval's raw bodies (what a compact batch replaces) and the time of its last tick.
        self._interval: list[dict[str, Any]] = []
        self._interval_last_ms = 0
        self._interval_targets: set[str] = set()
        self._interval_bucket = 0
        self.queue: deque[dict[str, Any]] = deque(maxlen=max_batches)
        self.dropped = 0
        self.sent = 0
        self.failures = 0
        self.max_backoff = max_backoff
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._client = httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=timeout)
        self._thread = threading.Thread(target=self._loop, name="push", daemon=True)
        self._thread.start()

    def __call__(self, epoch_ms: int, tables: dict[str, dict[str, Row]]) -> None:
        body = ingest_body(self.host, epoch_ms, tables)
        if not self.compact:
            self._enqueue(body)
            return
        if self.windows is None:
            self._wake.set()  # the push thread asks for a schema when one is due (never this thread)
        # Batches cover aligned intervals of the wall clock; one goes out when the next interval's first tick
        # comes (so a 5 s interval is 5 ticks at 1 Hz).
        bucket = epoch_ms // self.push_interval_ms
        if self._interval and bucket != self._interval_bucket:
            self._enqueue(self._compact_batch())
        self._interval_bucket = bucket
        self._interval.append(body)
        self._interval_last_ms = epoch_ms
        windows = self.windows
        if windows is not None:
            for target, row in tables.get("cgroup", {}).items():
                windows.add(target, row)
                self._interval_targets.add(target)

    def _compact_batch(self) -> dict[str, Any]:
        """This interval as one batch: host rows raw, workload targets summarised (raw without a schema);
        the raw seconds ride along (never sent) in case the service refuses the schema."""
        raw = {"host": self.host, "samples": [s for body in self._interval for s in body["samples"]]}
        windows, targets = self.windows, self._interval_targets
        self._interval, self._interval_targets = [], set()
        if windows is None:
            return raw
        timestamp = datetime.fromtimestamp(self._interval_last_ms / 1000, tz=UTC).isoformat()
        return {
            "host": self.host,
            "samples": [s for s in raw["samples"] if s["target"] == HOST_TARGET],
            "schema_id": windows.schema.schema_id,
            "summaries": windows.summaries(targets, timestamp),
            RAW_FALLBACK: raw,
        }

    def _enqueue(self, body: dict[str, Any]) -> None:
        if len(self.queue) == self.queue.maxlen:
            self.dropped += 1  # deque(maxlen) drops the oldest on append
        self.queue.append(body)
        self._wake.set()

    def _loop(self) -> None:
        backoff = 0.5
        while not self._stop.is_set():
            self._ask_for_schema_when_due()
            if not self.queue:
                self._wake.wait(1.0)
                self._wake.clear()
                continue
            body = self.queue[0]
            try:
                sent = {k: v for k, v in body.items() if k != RAW_FALLBACK}
                if self.profiles:
                    sent["profiles"] = self.profiles
                response = self._client.post(self.endpoint, json=sent)
                if response.status_code == httpx.codes.CONFLICT and RAW_FALLBACK in body:
                    self._schema_changed(body, response.text)
                    continue
                response.raise_for_status()
            except httpx.HTTPError as error:
                self.failures += 1
                log.warning("push to %s failed (%s); retrying in %.1f s", self.endpoint, error, backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, self.max_backoff)
                continue
            if self.queue and self.queue[0] is body:
                self.queue.popleft()
            self.sent += 1
            backoff = 0.5

    def _ask_for_schema_when_due(self) -> None:
        now_ms = int(time.time() * 1000)
        if self.compact and self.windows is None and now_ms - self._schema_asked_ms >= SCHEMA_RETRY_S * 1000:
            self._schema_asked_ms = now_ms
            schema = fetch_schema(self._client, self.url)
            self.windows = CompactWindows(schema) if schema is not None else None

    def _schema_changed(self, body: dict[str, Any], reason: str) -> None:
        """The service's champion changed: these seconds go out raw, and the next tick asks for the schema."""
        log.warning("compact push refused (%s): sending it raw and fetching the new schema", reason[:300])
        self.fallbacks += 1
        if self.queue and self.queue[0] is body:
            self.queue[0] = body[RAW_FALLBACK]
        self.windows = None
        self._schema_asked_ms = 0

    def close(self, drain_seconds: float = 2.0) -> None:
        """Give queued batches a moment to go out, then stop; what is left is counted as dropped."""
        self._wake.set()
        deadline = threading.Event()
        waited = 0.0
        while self.queue and waited < drain_seconds and self.failures == 0:
            deadline.wait(0.1)
            waited += 0.1
        self._stop.set()
        self._thread.join(timeout=self._client.timeout.read or 5.0)
        self.dropped += len(self.queue)
        self._client.close()
        if self.dropped:
            log.warning("push: %d batches dropped (service unreachable or too slow)", self.dropped)
