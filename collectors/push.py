"""``--push``: send samples to the cotenant service without ever blocking sampling.

The sampling thread only appends to a bounded deque (the oldest batch is dropped, and counted, when the
service is down for long); a background thread posts batches to ``POST URL/ingest`` with a bearer token,
retrying with exponential backoff. Body (docs/architecture.md section 5):
``{"host": str, "samples": [{"timestamp": iso8601, "target": str, "metrics": {name: float}}]}``.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from datetime import UTC, datetime
from typing import Any

import httpx
from cotenant.collectors.rows import Row

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


class Pusher:
    def __init__(
        self,
        url: str,
        token: str,
        host: str,
        max_batches: int = 300,
        timeout: float = 5.0,
        max_backoff: float = 30.0,
    ) -> None:
        self.endpoint = url.rstrip("/") + "/ingest"
        self.host = host
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
        if len(self.queue) == self.queue.maxlen:
            self.dropped += 1  # deque(maxlen) drops the oldest on append
        self.queue.append(ingest_body(self.host, epoch_ms, tables))
        self._wake.set()

    def _loop(self) -> None:
        backoff = 0.5
        while not self._stop.is_set():
            if not self.queue:
                self._wake.wait(1.0)
                self._wake.clear()
                continue
            body = self.queue[0]
            try:
                response = self._client.post(self.endpoint, json=body)
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
