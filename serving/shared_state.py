"""Where writes go: host telemetry and workload profiles, kept in this process or shared by replicas in Redis.

``LocalState`` (the embedded default, one replica) applies a push to this process's stores at once.

``RedisState`` lets any number of replicas answer for any node. Every write is appended to one Redis stream
(an event log: ``<prefix>:events``) and each replica applies the log, in the log's order, to its own
``HostStore`` and ``ProfileStore`` from a background thread. Queries therefore read local memory only (the
extender's latency does not pay a Redis round trip) and every replica holds the same windows, because every
replica applied the same pushes in the same order with the same receive times (the entry's id is its time).
A compact push's summaries are encoded once, by the replica that received it, and the encodings travel with
them (with the champion that made them): the others store them instead of running the model again. Summaries
and encodings are not in the log: each host's latest ones are one key (``<prefix>:compact:<host>``, written
before the entry, expiring with the log's retention) that the entry points to. A compact push supersedes the
last one whole, so Redis holds one push's summaries per host, not every push of the retention window (a
5,000-node fleet pushing 20 pods every 5 s would keep ~10 GB of summaries over 300 s); a replica applying an
entry reads the host's latest summaries, the same ones every replica ends with.
A push returns once this replica has applied it, so a collector reads its own write on the replica it pushed
to; another replica follows within one blocking read (milliseconds).

What survives what:
- a replica restart: on start a replica replays the log's retained tail (``state_retention_s``; older entries
  are trimmed at each write) and loads every profile (a hash, never trimmed);
- a Redis restart or outage: while Redis is unreachable, pushes answer 503 and every host is answered
  neutrally with the reason (``HostStore.outage``); nothing crashes. When Redis is back, a replica that finds
  a new epoch (Redis lost its data) forgets what it held and replays what is there: hosts return as their
  collectors push again. With Redis persistence on, the same epoch continues where it stopped.
- concurrent pushes to several replicas: the log orders them; every replica applies that one order.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import secrets
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np
from cotenant.collectors.lanes import HOST_TARGET
from cotenant.collectors.summaries import pack, unpack
from cotenant.serving.hosts import (
    CompactSummary,
    HostStore,
    IngestOutcome,
    SummaryEncodings,
    screen_push,
)
from cotenant.serving.models import LoadedModel
from cotenant.serving.profiles import Profile, ProfileStore
from cotenant.serving.schemas import IngestSample

log = logging.getLogger(__name__)

PlacementSource = Callable[[], LoadedModel | None]
# How long a push may wait for this replica's log reader to apply it before the reply goes out anyway.
APPLY_WAIT_S = 5.0
# The log reader's blocking read; also how soon it notices a stop.
READ_BLOCK_MS = 1_000
READ_BATCH = 1_000
RECONNECT_DELAY_S = 0.5
# How much longer than the log's retention a host's latest compact summaries are kept.
COMPACT_GRACE_S = 60


class StateUnavailable(RuntimeError):
    """The shared state cannot take writes now (the service answers 503 with this message)."""


class HostStateWriter(Protocol):
    def ingest(
        self,
        host: str,
        samples: Sequence[IngestSample],
        summaries: Sequence[CompactSummary] = (),
        profiles: Mapping[str, str] | None = None,
    ) -> IngestOutcome: ...

    def register_profile(
        self,
        profile_id: str,
        telemetry: dict[str, list[float]],
        probes: dict[str, float] | None = None,
        latency: bool | None = None,
    ) -> Profile: ...

    def close(self) -> None: ...


class LocalState:
    """One replica: writes go straight into this process's stores."""

    def __init__(self, hosts: HostStore, profiles: ProfileStore, placement: PlacementSource) -> None:
        self.hosts, self.profiles, self.placement = hosts, profiles, placement

    def ingest(
        self,
        host: str,
        samples: Sequence[IngestSample],
        summaries: Sequence[CompactSummary] = (),
        profiles: Mapping[str, str] | None = None,
    ) -> IngestOutcome:
        return self.hosts.ingest(host, samples, self.placement(), summaries=summaries, profiles=profiles)

    def register_profile(
        self,
        profile_id: str,
        telemetry: dict[str, list[float]],
        probes: dict[str, float] | None = None,
        latency: bool | None = None,
    ) -> Profile:
        return self.profiles.register(profile_id, telemetry, self.placement(), probes, latency)

    def close(self) -> None:
        pass


def encode_samples(samples: Sequence[IngestSample]) -> bytes:
    """Screened samples as compact JSON (validated already: the log reader trusts them)."""
    return json.dumps(
        [[s.timestamp.timestamp(), s.target, s.metrics] for s in samples], separators=(",", ":")
    ).encode()


def decode_samples(data: bytes) -> list[IngestSample]:
    return [
        IngestSample.model_construct(timestamp=datetime.fromtimestamp(ts, UTC), target=name, metrics=values)
        for ts, name, values in json.loads(data)
    ]


def encode_summaries(summaries: Sequence[CompactSummary]) -> bytes:
    return json.dumps(
        [[s.target, s.timestamp.timestamp(), s.seconds, s.schema_id, pack(s.values)] for s in summaries],
        separators=(",", ":"),
    ).encode()


def decode_summaries(data: bytes) -> list[CompactSummary]:
    return [
        CompactSummary(target, datetime.fromtimestamp(ts, UTC), seconds, schema, unpack(packed))
        for target, ts, seconds, schema, packed in json.loads(data)
    ]


def pack_compact(summaries: Sequence[CompactSummary], encoded: SummaryEncodings | None) -> bytes:
    """A compact push's summaries and, when the receiving replica encoded them, their encodings."""
    packed = {
        "summaries": encode_summaries(summaries).decode(),
        "encodings": pack_encodings(encoded).decode() if encoded is not None else None,
    }
    return json.dumps(packed, separators=(",", ":")).encode()


def unpack_compact(data: bytes) -> tuple[list[CompactSummary], SummaryEncodings | None]:
    packed = json.loads(data)
    encodings = packed.get("encodings")
    return decode_summaries(packed["summaries"].encode()), (
        unpack_encodings(encodings.encode()) if encodings else None
    )


def pack_encodings(encoded: SummaryEncodings) -> bytes:
    """Encodings as JSON: the champion's key, the targets, one float32 array (base64) of their vectors."""
    targets = list(encoded.vectors)
    stacked = np.stack([encoded.vectors[t] for t in targets]).astype("<f4")
    data = base64.b64encode(stacked.tobytes()).decode("ascii")
    header = {"model": encoded.model_key, "targets": targets, "shape": list(stacked.shape), "data": data}
    return json.dumps(header, separators=(",", ":")).encode()


def unpack_encodings(data: bytes) -> SummaryEncodings:
    header = json.loads(data)
    values = np.frombuffer(base64.b64decode(header["data"]), dtype="<f4").reshape(header["shape"])
    return SummaryEncodings(header["model"], dict(zip(header["targets"], values, strict=True)))


def changed_targets(kept: Sequence[IngestSample]) -> list[str]:
    """The targets whose windows a push of screened samples changes (as ``HostStore.apply`` reports them)."""
    return sorted({s.target for s in kept if s.target == HOST_TARGET or s.has_values()})


def entry_seconds(entry_id: bytes) -> float:
    """A stream entry's id is ``<unix ms>-<sequence>``: the time Redis appended it."""
    return int(entry_id.split(b"-", 1)[0]) / 1000.0


def id_key(entry_id: bytes) -> tuple[int, int]:
    ms, sequence = entry_id.split(b"-", 1)
    return int(ms), int(sequence)


class RedisState:
    """Replicas sharing host state and profiles through one Redis (module docstring)."""

    def __init__(
        self,
        url: str,
        hosts: HostStore,
        profiles: ProfileStore,
        placement: PlacementSource,
        retention_s: float,
        prefix: str = "cotenant",
        client: Any = None,
    ) -> None:
        import redis  # only replicas that share state need the client library loaded

        self._redis_errors = (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError)
        self.url = url
        self.hosts, self.profiles, self.placement = hosts, profiles, placement
        self.retention_s = retention_s
        self.events = f"{prefix}:events"
        self.profiles_key = f"{prefix}:profiles"
        self.epoch_key = f"{prefix}:epoch"
        self.compact_prefix = f"{prefix}:compact:"
        # Any: redis-py types each reply as a union of decoded and raw shapes; this client reads raw bytes.
        self.client: Any = client or redis.Redis.from_url(
            # RESP2: replies as lists, the shape ``_follow`` reads
            url,
            protocol=2,
            socket_connect_timeout=1.0,
            socket_timeout=READ_BLOCK_MS / 1000.0 + 4.0,
        )
        self._epoch: bytes | None = None
        self._last_id = b"0-0"
        self._applied = threading.Condition()
        self._encoding = threading.Lock()
        self._stop = threading.Event()
        self.hosts.outage = "not connected to the shared state store yet"
        self._reader = threading.Thread(target=self._follow, name="cotenant-state-log", daemon=True)
        self._reader.start()

    # ---- writes --------------------------------------------------------------------------------------------
    def ingest(
        self,
        host: str,
        samples: Sequence[IngestSample],
        summaries: Sequence[CompactSummary] = (),
        profiles: Mapping[str, str] | None = None,
    ) -> IngestOutcome:
        kept, kept_summaries, skipped = screen_push(samples, summaries, datetime.now(UTC))
        fields = {"kind": "ingest", "host": host, "samples": encode_samples(kept)}
        if profiles is not None:  # the collector's links travel with its push, in the log's order
            fields["profiles"] = json.dumps(dict(profiles), separators=(",", ":")).encode()
        compact = None
        if kept_summaries:
            # Encoded once, here: every replica would otherwise run the same model on the same summaries
            # (a fleet's ingest cost would not fall as replicas are added).
            placement = self.placement()
            with self._encoding:  # one push encoded at a time: concurrent pushes must not crowd out queries
                encoded = self.hosts.encode_summaries(placement, kept_summaries) if placement else None
            compact = pack_compact(kept_summaries, encoded)
            fields["compact"] = self.compact_key(host)
        entry = self._publish(fields, compact)
        self._wait_applied(entry)
        targets = sorted({*changed_targets(kept), *(summary.target for summary in kept_summaries)})
        return IngestOutcome(targets, len(kept) - skipped.get("no_values", 0), skipped, len(kept_summaries))

    def register_profile(
        self,
        profile_id: str,
        telemetry: dict[str, list[float]],
        probes: dict[str, float] | None = None,
        latency: bool | None = None,
    ) -> Profile:
        self.profiles.check_room(profile_id)  # before anything reaches the shared log
        stored = {"telemetry": telemetry, "probes": probes or {}, "latency": latency}
        payload = json.dumps(stored, separators=(",", ":"))
        try:
            self.client.hset(self.profiles_key, profile_id, payload)
        except self._redis_errors as error:
            raise StateUnavailable(f"shared state store unreachable: {error}") from error
        entry = self._publish({"kind": "profile", "profile_id": profile_id})
        self._wait_applied(entry)
        profile = self.profiles.get(profile_id)
        if profile is None:  # applied by the reader normally; under a stuck reader, register it here too
            profile = self.profiles.register(profile_id, telemetry, self.placement(), probes, latency)
        return profile

    @property
    def applied_through(self) -> bytes:
        """The log entry this replica has applied up to: two replicas at the same entry hold the same state
        (a replica that has seen a push's host or link may still be encoding it, answering one push old)."""
        with self._applied:
            return self._last_id

    def close(self) -> None:
        self._stop.set()
        self._reader.join(timeout=READ_BLOCK_MS / 1000.0 + 5.0)
        self.client.close()

    def compact_key(self, host: str) -> str:
        return f"{self.compact_prefix}{host}"

    def _publish(self, fields: dict[str, Any], compact: bytes | None = None) -> bytes:
        """Append an entry to the log (after the host's latest compact summaries, when the push has some)."""
        if self.hosts.outage is not None:
            raise StateUnavailable(self.hosts.outage)
        oldest_ms = int((time.time() - self.retention_s) * 1000)
        try:
            if compact is None:
                entry: bytes = self.client.xadd(self.events, fields, minid=oldest_ms, approximate=True)
            else:
                # One round trip; the key outlives every retained entry that points to it.
                writes = self.client.pipeline(transaction=True)
                writes.set(fields["compact"], compact, ex=math.ceil(self.retention_s) + COMPACT_GRACE_S)
                writes.xadd(self.events, fields, minid=oldest_ms, approximate=True)
                entry = writes.execute()[1]
        except self._redis_errors as error:
            raise StateUnavailable(f"shared state store unreachable: {error}") from error
        return entry

    def _wait_applied(self, entry: bytes) -> None:
        target = id_key(entry)
        with self._applied:
            done = self._applied.wait_for(lambda: id_key(self._last_id) >= target, timeout=APPLY_WAIT_S)
        if not done:
            log.warning("the shared log's reader has not applied %s after %ss", entry.decode(), APPLY_WAIT_S)

    # ---- the log reader ------------------------------------------------------------------------------------
    def _follow(self) -> None:
        while not self._stop.is_set():
            try:
                if self.hosts.outage is not None:
                    self._catch_up()
                    self.hosts.outage = None
                    log.info("shared state: following %s from %s", self.events, self._last_id.decode())
                replies = self.client.xread(
                    {self.events: self._last_id}, count=READ_BATCH, block=READ_BLOCK_MS
                )
                for _, entries in replies or []:
                    self._apply_all(entries)
                # When idle, check that Redis still holds this epoch's data (a restart breaks the connection
                # and is caught below; a flush is seen only here).
                if not replies and self.client.get(self.epoch_key) != self._epoch:
                    self.hosts.outage = "the shared state store lost its data; reloading"
            except self._redis_errors as error:
                if self.hosts.outage is None:
                    log.warning("shared state store unreachable: %s", error)
                self.hosts.outage = f"shared state store unreachable: {error}"
                self._stop.wait(RECONNECT_DELAY_S)
            except Exception:  # a bad entry must not stop the reader: it is logged and skipped
                log.exception("shared state: could not apply an entry after %s", self._last_id.decode())
                self._stop.wait(RECONNECT_DELAY_S)

    def _catch_up(self) -> None:
        """(Re)connect: a new epoch forgets what this replica held; then replay the log's retained tail."""
        self.client.set(self.epoch_key, secrets.token_hex(8), nx=True)
        epoch = self.client.get(self.epoch_key)
        if epoch != self._epoch:
            if self._epoch is not None:
                log.warning("shared state store has a new epoch: forgetting hosts and profiles, reloading")
            self.hosts.reset()
            self.profiles.clear()
            self._epoch, self._last_id = epoch, b"0-0"
            placement = self.placement()
            for profile_id, stored in self.client.hgetall(self.profiles_key).items():
                self._register_stored(profile_id.decode(), stored, placement)
        oldest_ms = int((time.time() - self.retention_s) * 1000)
        start = self._last_id if self._last_id != b"0-0" else b"%d" % oldest_ms
        while True:
            entries = self.client.xrange(self.events, min=start, count=READ_BATCH)
            entries = [(entry_id, fields) for entry_id, fields in entries if entry_id != self._last_id]
            if not entries:
                return
            self._apply_all(entries)
            start = self._last_id

    def _apply_all(self, entries: list[tuple[bytes, dict[bytes, bytes]]]) -> None:
        placement = self.placement()
        # The compact summaries the entries point to, in one round trip (a host's latest: every entry of the
        # same host in this batch gets the same ones).
        keys = sorted({fields[b"compact"] for _, fields in entries if b"compact" in fields})
        compact = dict(zip(keys, self.client.mget(keys), strict=True)) if keys else {}
        for entry_id, fields in entries:
            try:
                self._apply(entry_id, fields, placement, compact)
            except Exception:  # one malformed entry costs that entry only
                log.exception("shared state: skipped entry %s", entry_id.decode())
            with self._applied:
                self._last_id = entry_id
                self._applied.notify_all()

    def _register_stored(self, profile_id: str, stored: bytes, placement: LoadedModel | None) -> None:
        profile = json.loads(stored)
        self.profiles.register(
            profile_id, profile["telemetry"], placement, profile.get("probes"), profile.get("latency")
        )

    def _apply(
        self,
        entry_id: bytes,
        fields: dict[bytes, bytes],
        placement: LoadedModel | None,
        compact: dict[bytes, bytes | None],
    ) -> None:
        kind = fields.get(b"kind")
        if kind == b"ingest":
            host = fields[b"host"].decode()
            summaries: list[CompactSummary] = []
            encoded = None
            stored = compact.get(fields.get(b"compact", b""))  # None: none, or expired with its host
            if stored is not None:
                summaries, encoded = unpack_compact(stored)
            elif b"summaries" in fields:  # written by a replica of an earlier version: the push in the entry
                summaries = decode_summaries(fields[b"summaries"])
                encoded = unpack_encodings(fields[b"encodings"]) if b"encodings" in fields else None
            samples = decode_samples(fields[b"samples"])
            profiles = json.loads(fields[b"profiles"]) if b"profiles" in fields else None
            self.hosts.apply(host, samples, placement, entry_seconds(entry_id), summaries, encoded, profiles)
        elif kind == b"profile":
            profile_id = fields[b"profile_id"].decode()
            stored = self.client.hget(self.profiles_key, profile_id)
            if stored is not None:
                self._register_stored(profile_id, stored, placement)
        else:
            log.warning("shared state: entry %s of unknown kind %r skipped", entry_id.decode(), kind)
