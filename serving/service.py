"""The BentoML service: thin HTTP methods over the plain modules of ``cotenant.serving``.

Start it with ``cotenant serve``, which runs
``bentoml serve cotenant.serving.service:InterferencePredictionService``; settings come from
``COTENANT_SERVE_*`` environment variables (``config.py``). Champions load in ``__init__`` (never at import)
and a watcher swaps new ones in; host state and profiles live in this worker's memory, so the service runs
one worker (docs/serving.md).
"""

from __future__ import annotations

import gc
import hmac
import logging
import sys
import time
from collections import Counter
from http import HTTPStatus
from typing import Any, cast

import bentoml
from bentoml.exceptions import BentoMLException, NotFound, UnprocessableEntity
from starlette.responses import Response

with bentoml.importing():
    from cotenant.collectors.summaries import PACKING, SUMMARIES, packed_chars, unpack
    from cotenant.models import accelerators
    from cotenant.models.accelerators.profiles import AppProfile, DeviceKind
    from cotenant.serving import extender, scoring
    from cotenant.serving.catalogue import NoCatalogue, UnknownModel, resolve_apps
    from cotenant.serving.config import ServiceSettings
    from cotenant.serving.contract import unavailable
    from cotenant.serving.docs_page import DocsPageMiddleware
    from cotenant.serving.extender import ExtenderArgs, ExtenderFilterResult, HostPriorityList
    from cotenant.serving.hosts import CompactOnly, CompactSummary, HostStore
    from cotenant.serving.metrics import PlacementBatch, ServiceMetrics
    from cotenant.serving.middleware import RequestLimitsMiddleware
    from cotenant.serving.models import Champions, ChampionSource, ChampionStore, LoadedModel
    from cotenant.serving.profiles import Profile, ProfileStore, telemetry_to_series
    from cotenant.serving.schemas import (
        MAX_PACKED_CHARS,
        AcceleratorLatencies,
        AcceleratorLatencyRequest,
        AcceleratorPlacementRequest,
        AppRequest,
        DegradationRequest,
        DegradationResult,
        FeatureSchemaView,
        HostDegradationRequest,
        HostList,
        HostView,
        IngestRequest,
        IngestResult,
        ProfileSummary,
        RegisterProfileRequest,
        ScorePlacementRequest,
        ScorePlacementResult,
        WorkloadInputs,
    )
    from cotenant.serving.shadow import ShadowRequest, ShadowScorer
    from cotenant.serving.shared_state import HostStateWriter, LocalState, RedisState, StateUnavailable

log = logging.getLogger(__name__)
# The worker's thread switch interval (Python's default: 5 ms); see the constructor.
INTERPRETER_SWITCH_S = 0.001


class Unauthorized(BentoMLException):
    error_code = HTTPStatus.UNAUTHORIZED


class PayloadTooLarge(BentoMLException):
    error_code = HTTPStatus.REQUEST_ENTITY_TOO_LARGE


class Conflict(BentoMLException):
    """The request contradicts itself in a way its schema cannot say (two apps with one name)."""

    error_code = HTTPStatus.CONFLICT


def bearer_matches(authorization: str | None, token: str) -> bool:
    """Constant-time check of ``Authorization: Bearer <token>``; an unset token refuses everything."""
    if not token or not authorization or not authorization.startswith("Bearer "):
        return False
    return hmac.compare_digest(authorization.removeprefix("Bearer ").encode(), token.encode())


@bentoml.service(name="cotenant", workers=1, traffic={"timeout": 30})
class InterferencePredictionService:
    def __init__(self) -> None:
        self.settings = ServiceSettings.from_env()
        shared = bool(self.settings.state_url)
        self.hosts = HostStore(
            self.settings.window_samples,
            self.settings.stale_after_s,
            self.settings.max_hosts,
            # Replicas age hosts by the shared log's timestamps, so they need the wall clock.
            clock=time.time if shared else time.monotonic,
        )
        self.profiles = ProfileStore()
        self.medians = scoring.MedianCache(self.settings.median_cache_workloads)
        self.metrics = ServiceMetrics()
        self.shadow = (
            ShadowScorer(self.hosts, self.settings.tracking_uri, self.settings.shadow_log_interval_s)
            if self.settings.shadow_alias
            else None
        )
        self.champions = ChampionStore(ChampionSource(self.settings), on_swap=self._on_swap)
        self.champions.refresh()
        self.champions.start_watching(self.settings.watch_interval_s)
        self.state: HostStateWriter = (
            RedisState(
                self.settings.state_url,
                self.hosts,
                self.profiles,
                lambda: self.champions.champions.placement,
                self.settings.state_retention_s,
                self.settings.state_prefix,
            )
            if shared
            else LocalState(self.hosts, self.profiles, lambda: self.champions.champions.placement)
        )
        # What is loaded by now (torch, MLflow, the champions: about a million objects) lives as long as the
        # worker. Frozen, it is skipped by the collector's full passes, which otherwise scan all of it in the
        # middle of some request: those pauses were the extender's p99 tail.
        gc.collect()
        gc.freeze()
        # Ingest and the extender share one interpreter lock: at Python's default 5 ms switch interval a
        # query that arrives while a push is being encoded waits up to 5 ms for each turn.
        sys.setswitchinterval(INTERPRETER_SWITCH_S)

    def __is_ready__(self) -> bool:
        return self.champions.ready

    def _on_swap(self, champions: Champions) -> None:
        self.metrics.model_versions(champions.versions())

    # ---- guards --------------------------------------------------------------------------------------------
    def _authorise(self, ctx: bentoml.Context) -> None:
        if not bearer_matches(ctx.request.headers.get("authorization"), self.settings.token):
            raise Unauthorized("a valid bearer token is required")

    def _model(self, task: str) -> LoadedModel:
        loaded: LoadedModel | None = getattr(self.champions.champions, task)
        if loaded is None:
            raise unavailable(self.champions.missing(task))
        return loaded

    # ---- writes (token) ------------------------------------------------------------------------------------
    @bentoml.api
    def ingest(self, payload: IngestRequest, /, ctx: bentoml.Context) -> IngestResult:
        """Collector push (``cotenant collect --push``): samples into the host's window, host re-encoded."""
        self._authorise(ctx)
        summaries = self._compact_summaries(payload)
        try:
            outcome = self.state.ingest(payload.host, payload.samples, summaries, payload.profiles)
        except StateUnavailable as error:
            raise unavailable(str(error)) from error
        self.metrics.ingested(payload.host, outcome.accepted + outcome.summaries)
        return IngestResult(
            host=payload.host,
            accepted=outcome.accepted,
            summaries=outcome.summaries,
            targets=outcome.targets,
            skipped=outcome.skipped,
        )

    def _compact_summaries(self, payload: IngestRequest) -> list[CompactSummary]:
        """A compact push's summaries, checked against the champion's feature schema (409 when another)."""
        if not payload.summaries:
            return []
        placement = self._model("placement")
        schema = self.hosts.feature_schema(placement)
        if payload.schema_id != schema.schema_id:
            raise Conflict(
                f"schema_id: {payload.schema_id!r} is not the feature schema of placement champion "
                f"version {placement.version} ({schema.schema_id!r}): fetch /feature_schema or push raw "
                "samples"
            )
        decoded = []
        for position, summary in enumerate(payload.summaries):
            try:
                values = unpack(summary.values, schema.size)
            except ValueError as error:
                raise UnprocessableEntity(f"summaries[{position}].values: {error}") from error
            decoded.append(
                CompactSummary(summary.target, summary.timestamp, summary.seconds, schema.schema_id, values)
            )
        return decoded

    @bentoml.api
    def feature_schema(self) -> FeatureSchemaView:
        """What a compact push (``cotenant collect --push URL --compact``) sends per target for the placement
        champion now served; 409 when that champion needs more than a compact push carries."""
        placement = self._model("placement")
        schema = self.hosts.feature_schema(placement)
        if packed_chars(schema.size) > MAX_PACKED_CHARS:
            raise Conflict(
                f"placement champion version {placement.version} needs {schema.size} values per target, "
                f"more than a compact push carries ({MAX_PACKED_CHARS} packed characters): push raw samples"
            )
        return FeatureSchemaView(
            schema_id=schema.schema_id,
            model_version=placement.version,
            metrics=schema.metrics,
            statistics=list(SUMMARIES),
            window_seconds=schema.window_seconds,
            packing=PACKING,
            values_per_target=schema.size,
        )

    @bentoml.api
    def register_profile(self, payload: RegisterProfileRequest, /, ctx: bentoml.Context) -> ProfileSummary:
        """A workload's solo telemetry under an id, encoded now for placement queries."""
        self._authorise(ctx)
        try:
            profile = self.state.register_profile(
                payload.profile_id, payload.telemetry, payload.probes, payload.latency
            )
        except OverflowError as error:
            raise PayloadTooLarge(str(error)) from error
        except StateUnavailable as error:
            raise unavailable(str(error)) from error
        used, ignored = profile.inputs(self.champions.champions.placement)
        return ProfileSummary(
            profile_id=profile.profile_id,
            metrics=sorted(profile.series),
            seconds=profile.seconds,
            inputs="probes" if used else "telemetry",
            probes_used=used,
            probes_ignored=ignored,
        )

    # ---- reads ---------------------------------------------------------------------------------------------
    @bentoml.api
    def predict_degradation(self, payload: DegradationRequest, /) -> DegradationResult:
        """Monitoring: P now for a target from its own and its neighbours' telemetry, sent inline."""
        model = self._model("monitoring")
        profile = self._profile("profile_id", payload.profile_id) if payload.profile_id is not None else None
        neighbour_probes = (
            [self._profile("neighbour_profile_ids", name).probes for name in payload.neighbour_profile_ids]
            if payload.neighbour_profile_ids is not None
            else None
        )
        estimate = model.predictor.predict_degradation(
            telemetry_to_series(payload.target),
            [telemetry_to_series(n) for n in payload.neighbours],
            telemetry_to_series(payload.host) if payload.host else None,
            profile.series if profile is not None else None,
            profile.probes if profile is not None else None,
            neighbour_probes,
        )
        return DegradationResult(
            estimate=scoring.estimate_view(estimate),
            model_version=model.version,
            neighbours=len(payload.neighbours),
            missing=list(estimate.missing),
            profile_id=payload.profile_id,
        )

    @bentoml.api
    def predict_host_degradation(self, payload: HostDegradationRequest, /) -> DegradationResult:
        """Monitoring for a target on a host whose telemetry the service receives."""
        model = self._model("monitoring")
        if self.hosts.outage is not None:
            raise unavailable(f"host state unavailable: {self.hosts.outage}")
        try:
            found = self.hosts.series(payload.host, payload.target)
        except CompactOnly as error:
            raise Conflict(str(error)) from error
        if found is None:
            raise NotFound(f"unknown host/target {payload.host}/{payload.target}")
        own, neighbours, host_series, neighbour_links = found
        profile_id: str | None = payload.profile_id
        profile: Profile | None
        if payload.profile_id is not None:
            profile = self._profile("profile_id", payload.profile_id)
        else:
            # The collector's link: a profile it names that was never registered (or was since lost) leaves
            # the answer without it, listed in ``missing``; the caller asked for nothing unknown.
            profile_id = self.hosts.profile_of(payload.host, payload.target)
            profile = self.profiles.get(profile_id) if profile_id is not None else None
            profile_id = profile_id if profile is not None else None
        # The neighbours' probes through their collector's links, as the target's (unlinked: missing).
        linked = [self.profiles.get(name) if name is not None else None for name in neighbour_links]
        estimate = model.predictor.predict_degradation(
            own,
            neighbours,
            host_series,
            profile.series if profile is not None else None,
            profile.probes if profile is not None else None,
            [neighbour.probes if neighbour is not None else None for neighbour in linked],
        )
        view = scoring.estimate_view(estimate)
        self.metrics.predicted(payload.host, payload.target, "monitoring", view.p)
        return DegradationResult(
            estimate=view,
            model_version=model.version,
            neighbours=len(neighbours),
            host=payload.host,
            target=payload.target,
            missing=list(estimate.missing),
            profile_id=profile_id,
        )

    def _profile(self, field_name: str, profile_id: str) -> Profile:
        """A registered solo profile named by the request's ``field_name`` (404 naming the field when it is
        unknown)."""
        profile = self.profiles.get(profile_id)
        if profile is None:
            raise NotFound(f"{field_name}: unknown profile {profile_id!r}")
        return profile

    @bentoml.api
    def score_placement(self, payload: ScorePlacementRequest, /) -> ScorePlacementResult:
        """Placement: per candidate host the newcomer's and the worst incumbent's P, feasibility, a score."""
        model = self._model("placement")
        self._check_candidates(len(payload.hosts))
        workload = payload.workload
        if workload.profile_id is not None:
            profile = self.profiles.get(workload.profile_id)
            if profile is None:
                raise NotFound(f"unknown profile {workload.profile_id!r}")
            newcomer = self.profiles.encoding(profile, model)
            inputs: WorkloadInputs = "probes" if profile.inputs(model)[0] else "telemetry"
        else:
            profile = Profile(profile_id="inline", series=telemetry_to_series(workload.telemetry or {}))
            newcomer = profile.encode(model)
            inputs = "telemetry"
        placements = scoring.score_hosts(newcomer, payload.hosts, self.hosts, model, payload.min_performance)
        self.metrics.placements(profile.profile_id, placements)
        challenger = self.champions.champions.placement_shadow
        if challenger is not None and self.shadow is not None:  # scored in the background, never served
            self.shadow.submit(ShadowRequest.of_placements(profile, placements, model.version, challenger))
        return ScorePlacementResult(
            placements=placements, model_version=model.version, newcomer_inputs=inputs
        )

    @bentoml.api
    def list_hosts(self) -> HostList:
        """Every host the service holds telemetry for, with its targets and staleness."""
        views = []
        for state in list(self.hosts.hosts.values()):
            snapshot = state.snapshot
            if snapshot is None:
                continue
            views.append(
                HostView(
                    host=state.host,
                    targets=list(snapshot.incumbents),
                    last_seen=snapshot.last_seen_wall,
                    age_s=self.hosts.age_s(state.last_seen),
                    stale=self.hosts.is_stale(state.last_seen),
                    profiles={t: p for t, p in state.profiles.items() if t in snapshot.incumbents},
                )
            )
        return HostList(hosts=sorted(views, key=lambda v: v.host), stale_after_s=self.settings.stale_after_s)

    # ---- accelerators (analytic models and policies) ------------------------------------------------------
    @bentoml.api
    def predict_accelerator_latency(self, payload: AcceleratorLatencyRequest, /) -> AcceleratorLatencies:
        """Predicted end-to-end latency of every app sharing one accelerator (analytic device models)."""
        apps = self._profiled(payload.apps, payload.device.kind)
        try:
            latencies = accelerators.predict_latencies(payload.device, apps, payload.network_ms)
        except (KeyError, ValueError) as error:  # e.g. an app with no profile for the device: the input
            raise UnprocessableEntity(f"device/apps: {error}") from error
        return AcceleratorLatencies(latencies=latencies)

    @bentoml.api
    def place_on_accelerators(self, payload: AcceleratorPlacementRequest, /) -> accelerators.PlacementResult:
        """Place apps on a cluster of accelerators with a policy; optionally simulate the placement."""
        if payload.policy not in accelerators.POLICIES:
            known = ", ".join(sorted(accelerators.POLICIES))
            raise UnprocessableEntity(f"policy: unknown {payload.policy!r}; known: {known}")
        counts = Counter(app.name for app in payload.apps)
        if repeated := sorted(name for name, count in counts.items() if count > 1):
            raise Conflict(f"apps: names must be unique; repeated: {', '.join(map(repr, repeated[:10]))}")
        request = accelerators.PlacementRequest.model_validate(
            {**payload.model_dump(exclude={"apps"}), "apps": self._profiled(payload.apps)}
        )
        try:
            return accelerators.serve_request(request)
        except (KeyError, ValueError) as error:
            raise UnprocessableEntity(f"apps/cluster: {error}") from error

    def _profiled(self, apps: list[AppRequest], kind: DeviceKind | None = None) -> list[AppProfile]:
        """Apps named by model get their profiles from the accelerator champion (404: a model it lacks)."""
        try:
            return resolve_apps(apps, self.champions.champions.accelerators, kind)
        except NoCatalogue as error:
            raise unavailable(str(error)) from error
        except UnknownModel as error:
            raise NotFound(str(error)) from error

    # ---- Kubernetes scheduler extender ---------------------------------------------------------------------
    # kube-scheduler calls these with every feasible node on each pod's scheduling cycle: they score through
    # the vectorised path (medians only, arrays) and explain only the nodes that fail the filter.
    @bentoml.api(route="/filter")
    def filter_nodes(self, args: ExtenderArgs, /) -> ExtenderFilterResult:
        """Extender filter verb: nodes fail by the extender rule (``extender_rule``: under the minimum P, or
        expected to cost at least one SLO miss)."""
        pod, _, scores = self._extender_scores(args, "filter")
        failed: dict[str, str] = {}
        positions = extender.infeasible_positions(scores, pod.min_performance)
        if scores is not None and positions:
            explained = scores.explain(positions, pod.min_performance)
            for position, placement in zip(positions, explained, strict=True):
                misses = None if scores.expected_misses is None else float(scores.expected_misses[position])
                failed[placement.host] = extender.failure_reason(placement, misses)
        return extender.filter_result(args, failed)

    @bentoml.api(route="/prioritize", output_spec=HostPriorityList)
    def prioritize_nodes(self, args: ExtenderArgs, /) -> Response:
        """Extender prioritize verb: a 0-10 score per node, neutral (5) where the pod or node is unknown."""
        pod, names, scores = self._extender_scores(args, "prioritize")
        # Encoded here in one pass (the published schema stays HostPriorityList): BentoML's generic output
        # path re-walks a 500-item model on every call of kube-scheduler's hottest request.
        body = extender.prioritize_body(names, scores, pod.min_performance)
        return Response(body, media_type="application/json")

    def _extender_scores(
        self, args: ExtenderArgs, verb: str
    ) -> tuple[extender.PodRequest, list[str], scoring.CandidateScores | None]:
        pod = extender.read_pod(args.Pod, self.settings)
        names = extender.node_names(args)
        self._check_candidates(len(names))
        placement = self.champions.champions.placement
        profile = self.profiles.get(pod.profile_id) if pod.profile_id is not None else None
        if pod.profile_id is not None and profile is None:
            pod.reasons.append(f"unknown profile {pod.profile_id!r}")
        if placement is None:
            pod.reasons.append(self.champions.missing("placement"))
        if profile is None or placement is None:
            self.metrics.neutral(verb, "pod", len(names))
            log.info("extender %s %s: neutral for all nodes: %s", verb, pod.pod, "; ".join(pod.reasons))
            return pod, names, None
        newcomer = self.profiles.encoding(profile, placement)
        misses_below = pod.min_performance if self.settings.extender_rule == "expected_misses" else None
        # the kept medians serve the medians rule only (score_candidates scores expected misses whole)
        kept = None
        if misses_below is None:
            kept = self.medians.workload(profile.profile_id, placement, newcomer)
        scores = scoring.score_candidates(newcomer, names, self.hosts, placement, kept, misses_below)
        if scores.unscored:
            reasons = scores.neutral_reasons()
            self.metrics.neutral(verb, "host", len(reasons))
            log.info(
                "extender %s %s: neutral for %d nodes, e.g. %s",
                verb,
                pod.pod,
                len(reasons),
                next(iter(reasons.items())),
            )
        self.metrics.placement_batch(
            PlacementBatch(profile.profile_id, names, scores.newcomer_p, scores.worst_incumbent_p)
        )
        challenger = self.champions.champions.placement_shadow
        if challenger is not None and self.shadow is not None:  # scored in the background, never served
            self.shadow.submit(ShadowRequest.of_candidates(profile, scores, placement.version, challenger))
        return pod, names, scores

    def _check_candidates(self, count: int) -> None:
        if count > self.settings.max_candidates:
            raise PayloadTooLarge(f"{count} candidate hosts; at most {self.settings.max_candidates}")


# The decorator returned a bentoml Service; mypy sees the class, hence the cast.
SERVICE = cast("bentoml.Service[Any]", InterferencePredictionService)
SERVICE.add_asgi_middleware(
    RequestLimitsMiddleware,
    api_routes=frozenset(method.route for method in SERVICE.apis.values()),
)
SERVICE.add_asgi_middleware(DocsPageMiddleware)
