"""Shadow mode: the placement challenger scores live requests beside the champion, and is never served.

Each placement request (``/score_placement``, and the extender's ``/filter`` and ``/prioritize``) is handed,
after its reply is built, to one background thread through a bounded queue (a full queue drops the request
and counts it: shadowing never slows the served path). The thread encodes the newcomer and every scored
candidate host's incumbents with the challenger (its own cache, keyed by each host's data version, so the
champion's snapshots are untouched), scores the placement, and compares with what was served: the
newcomer's P, the host's score, and whether both models rank the same host first. Running figures go to an
MLflow run (experiment ``cotenant-shadow``, one run per champion/challenger pair) every ``log_interval_s``
and on ``flush``.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from cotenant.models.base import MEDIAN
from cotenant.serving.hosts import HostStore, encode_incumbents
from cotenant.serving.models import LoadedModel
from cotenant.serving.profiles import Profile
from cotenant.serving.schemas import HostPlacement
from cotenant.serving.scoring import CandidateScores

log = logging.getLogger(__name__)
EXPERIMENT = "cotenant-shadow"


@dataclass(frozen=True)
class ShadowRequest:
    """What the champion answered for the hosts it scored (known, fresh, an empty host included)."""

    newcomer: Profile  # as registered (its probes and latency flag), or its inline telemetry alone
    hosts: list[str]
    newcomer_p: np.ndarray  # [H] the champion's median P of the newcomer on each host
    score: np.ndarray  # [H] the champion's score of each host
    champion_version: str
    challenger: LoadedModel

    @classmethod
    def of_placements(
        cls,
        newcomer: Profile,
        served: list[HostPlacement],
        champion_version: str,
        challenger: LoadedModel,
    ) -> ShadowRequest:
        """From an explained reply (``/score_placement``)."""
        answered = [p for p in served if p.status in ("scored", "empty_host") and p.newcomer is not None]
        hosts = [p.host for p in answered]
        newcomer_p = np.array([p.newcomer.p for p in answered if p.newcomer is not None])
        score = np.array([p.score for p in answered])
        return cls(newcomer, hosts, newcomer_p, score, champion_version, challenger)

    @classmethod
    def of_candidates(
        cls,
        newcomer: Profile,
        scores: CandidateScores,
        champion_version: str,
        challenger: LoadedModel,
    ) -> ShadowRequest:
        """From the extender's vectorised scores (``/filter``, ``/prioritize``)."""
        positions = np.flatnonzero(scores.scored)
        hosts = [scores.hosts[i] for i in positions.tolist()]
        newcomer_p = scores.newcomer_p[positions]
        score = scores.score[positions]
        return cls(newcomer, hosts, newcomer_p, score, champion_version, challenger)


@dataclass
class ShadowFigures:
    """Running comparison of one champion/challenger pair on live requests."""

    requests: int = 0
    dropped: int = 0  # requests not shadowed: the queue was full
    hosts: int = 0  # scored hosts compared
    newcomer_p_difference: float = 0.0  # summed |challenger - champion|
    score_difference: float = 0.0
    same_best_host: int = 0  # requests where both rank the same host first

    def metrics(self) -> dict[str, float]:
        hosts, requests = max(self.hosts, 1), max(self.requests, 1)
        return {
            "shadow_requests": float(self.requests),
            "shadow_dropped": float(self.dropped),
            "shadow_hosts": float(self.hosts),
            "shadow_mean_abs_newcomer_p_difference": self.newcomer_p_difference / hosts,
            "shadow_mean_abs_score_difference": self.score_difference / hosts,
            "shadow_same_best_host_share": self.same_best_host / requests,
        }


@dataclass
class _Pair:
    champion_version: str
    challenger_version: str
    figures: ShadowFigures = field(default_factory=ShadowFigures)
    run_id: str | None = None
    logged_step: int = -1


class ShadowScorer:
    def __init__(
        self, hosts: HostStore, tracking_uri: str, log_interval_s: float = 60.0, queue_size: int = 64
    ) -> None:
        self.hosts = hosts
        self.tracking_uri = tracking_uri
        self.log_interval_s = log_interval_s
        self._queue: queue.Queue[ShadowRequest | None] = queue.Queue(maxsize=queue_size)
        # worker thread only: (model key, host) -> (the host's data version, its encoding by the challenger)
        self._encodings: dict[tuple[str, str], tuple[int, Any]] = {}
        self._encoded_by: str | None = None
        self._pair: _Pair | None = None
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._pending = 0
        self._thread = threading.Thread(target=self._work, name="shadow-scorer", daemon=True)
        self._thread.start()
        self._last_log = time.monotonic()

    def submit(self, request: ShadowRequest) -> None:
        with self._lock:
            pair = self._pair_for(request.champion_version, request.challenger.version)
            try:
                self._queue.put_nowait(request)
                self._pending += 1
            except queue.Full:
                pair.figures.dropped += 1

    def figures(self) -> ShadowFigures | None:
        with self._lock:
            return None if self._pair is None else ShadowFigures(**vars(self._pair.figures))

    def flush(self, timeout_s: float = 30.0) -> None:
        """Wait until every submitted request is scored, then log the figures."""
        with self._idle:
            self._idle.wait_for(lambda: self._pending == 0, timeout=timeout_s)
        self._log()

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=10)
        self._log()

    def _pair_for(self, champion: str, challenger: str) -> _Pair:
        if self._pair is None or (self._pair.champion_version, self._pair.challenger_version) != (
            champion,
            challenger,
        ):
            self._pair = _Pair(champion, challenger)  # a new pair: new figures, a new run
        return self._pair

    def _work(self) -> None:
        while (request := self._queue.get()) is not None:
            try:
                self._compare(request)
            except Exception:  # a failing shadow must never reach the served path
                log.exception("shadow scoring failed")
            finally:
                with self._idle:
                    self._pending -= 1
                    self._idle.notify_all()
            if time.monotonic() - self._last_log >= self.log_interval_s:
                self._log()

    def _host_encoding(self, challenger: LoadedModel, host: str) -> Any | None:
        if self._encoded_by != challenger.key:  # a new challenger: the old one's encodings are of no use
            self._encodings.clear()
            self._encoded_by = challenger.key
        found = self.hosts.incumbent_series(host)
        if found is None:
            return None
        version, incumbents = found
        key = (challenger.key, host)
        cached = self._encodings.get(key)
        if cached is None or cached[0] != version:
            # as the store encodes a champion's incumbents: live windows, in one call
            predictor = challenger.predictor
            summaries = [predictor.raw_summary(series) for series in incumbents]
            vectors = list(encode_incumbents(predictor, summaries)) if summaries else []
            cached = self._encodings[key] = (version, predictor.encode_host(vectors))
        return cached[1]

    def _compare(self, request: ShadowRequest) -> None:
        challenger = request.challenger
        encodings = [self._host_encoding(challenger, host) for host in request.hosts]
        kept = [i for i, encoding in enumerate(encodings) if encoding is not None]
        if not kept:
            return
        newcomer = request.newcomer.encode(challenger)
        quantiles, _, offsets = challenger.predictor.score_placement_arrays(
            newcomer, [encodings[i] for i in kept], explain=False
        )
        medians = quantiles[:, MEDIAN].astype(np.float64)
        newcomer_p = medians[offsets[:-1]]
        scores = np.clip([medians[a:b].min() for a, b in itertools.pairwise(offsets)], 0.0, 1.0)
        served_p, served_score = request.newcomer_p[kept], request.score[kept]
        pairs = kept
        with self._lock:
            figures = self._pair_for(request.champion_version, challenger.version).figures
            figures.requests += 1
            figures.hosts += len(pairs)
            figures.newcomer_p_difference += float(np.abs(newcomer_p - served_p).sum())
            figures.score_difference += float(np.abs(scores - served_score).sum())
            figures.same_best_host += int(np.argmax(scores) == int(np.argmax(served_score)))

    def _log(self) -> None:
        with self._lock:
            pair = self._pair
            if pair is None or pair.figures.requests == pair.logged_step:
                return
            metrics, step = pair.figures.metrics(), pair.figures.requests
        self._last_log = time.monotonic()
        try:
            from mlflow import MlflowClient

            client = MlflowClient(tracking_uri=self.tracking_uri)
            if pair.run_id is None:
                experiment = client.get_experiment_by_name(EXPERIMENT)
                experiment_id = (
                    experiment.experiment_id if experiment else client.create_experiment(EXPERIMENT)
                )
                run = client.create_run(
                    experiment_id,
                    run_name=f"champion-v{pair.champion_version}-vs-challenger-v{pair.challenger_version}",
                    tags={
                        "champion_version": pair.champion_version,
                        "challenger_version": pair.challenger_version,
                    },
                )
                pair.run_id = run.info.run_id
            for name, value in metrics.items():
                client.log_metric(pair.run_id, name, value, step=step)
            pair.logged_step = step
        except Exception:  # the tracking store being away must not stop shadowing
            log.exception("could not log the shadow figures to %s", self.tracking_uri)
