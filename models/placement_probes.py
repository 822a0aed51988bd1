"""Placement from measured sensitivity and pressure (Bubble-Up, Paragon), with telemetry as the fallback.

A workload's input row is its normalised profile summary followed by its probe deficits (``probe:sens_*``,
``probe:press_*``: 1 - P against each calibrated aggressor, of each fixed victim beside it; NaN where not
measured) and ``probe:measured`` (``datasets.tensors.placement_inputs``). Its **embedding** is
``[deficits, demand]``: the measured deficits, or, for a workload never probed (an incumbent known only by its
telemetry, a newcomer registered without probes), the deficits a *describer* estimates from its profile
summary; and its CPU demand (the summary's CPU-usage mean). A host is the sum of its incumbents' embeddings
(DeepSets, as every placement model here), so ``head(own, others, count)`` sees, for the workload whose P it
predicts: its own sensitivity and demand, the others' summed pressure and demand, their count, and per
resource the product of its sensitivity and their pressure (the factorised law of Paragon's classification),
and the utilisation share ``-log min(1, cores / summed CPU demand)`` (the utilisation heuristic as a term: the
factorised law with that weight at 1 and every other at 0 *is* the heuristic, so learning starts from it).
The share reads demand in cores (the normaliser's mean and scale of the demand column, kept at fit time) and
each training run's node's cores (``RunTable.run_cores``: the machine's, or fewer where a lab plan pinned the
run): a model fit on nodes of several sizes reads every run on its own, and answers for the size it is told
(``serve_on_hosts_of``; the most common training size until then).

The proportional share treats every tenant alike; the kernel does not. Sibling cgroups of equal weight share
the cores max-min fairly (CFS group scheduling): a tenant demanding less than the fair level gets all it asks,
the others split the rest. So a two-thread build beside a one-thread job on two cores gets one core (P 0.5)
while the job keeps its core (P 1), where the proportional share says 0.67 for both. The head also reads this
**fair share**, ``-log(allocation / demand)``. The water level needs every tenant's demand, not only the sum:
each embedding carries its demand capped at a grid of levels (``FAIR_LEVELS`` x cores), whose DeepSets sum
over a host is the others' allocation at each level, and the level where own + others reach the cores is
interpolated between grid points (exact where demands fall on the grid). On bundled v2's leave-programs-out
folds this took the model from 12.86 to 9.46 pp MAE (constant: 20.89; proportional heuristic: 12.91), with the
factorised head chosen in every fold: level with the fair-share heuristic itself (9.48), which is what the
learned part has yet to beat.

The head's family is chosen on the training programs by grouped cross-validation (each training program held
out in turn, never a test program): gradient-boosted trees or a factorised law ``P = exp(-w . interactions)``
with ``w >= 0``; every candidate's validation MAE is kept in the model (``candidates_mae``). The cheapest
family whose MAE is within ``head_tolerance`` of the best is taken: the extender scores thousands of rows per
call, and boosted trees cost more per row than the factorised law (300 trees: ~9 ms for 500 hosts against
~0.5 ms; the default 50, see ``boosting_iterations``). A ridge head (``head="ridge"``) is no longer a
candidate of ``auto``: it is unbounded where programs differ from the training ones, and on bundled v2 the
grouped CV took it in one leave-programs-out fold, which then scored 40 pp MAE on its held-out programs
(boosting: 15 pp).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import numpy as np
from cotenant.datasets.probe_inputs import metric_group_of, resource_of
from cotenant.models.base import P_FLOOR, DataShape, ModelConfig, ModelSpec, UnsuitableData, register
from pydantic import Field, model_validator

PROBE_PREFIX = "probe:"  # as datasets.tensors names them (kept here so that loading needs no Polars)
PROBE_MEASURED = PROBE_PREFIX + "measured"
PROBE_LIVE = PROBE_PREFIX + "live"
PROBE_LATENCY = PROBE_PREFIX + "latency"  # 1: the workload's metric is a latency (datasets.tensors)
PROBE_FLAGS = (PROBE_MEASURED, PROBE_LIVE, PROBE_LATENCY)  # inputs that are not probe deficits
# The profile metric whose mean is a workload's CPU demand (as the utilisation reference reads it).
CPU_DEMAND_METRICS = ("cgroup_cpu_usage_seconds_per_second", "cpu_usage_seconds_per_second")
# Water levels, as fractions of the host's cores, at which each workload's capped demand is embedded (the fair
# share's grid: finer at low levels, where many small tenants meet).
FAIR_LEVELS = (1 / 16, 1 / 8, 1 / 4, 3 / 8, 1 / 2, 5 / 8, 3 / 4, 7 / 8, 1.0)
Head = Literal["boosting", "factorised", "ridge"]
HEADS_BY_COST: tuple[Head, ...] = ("factorised", "ridge", "boosting")  # cheapest to score first
AUTO_HEADS: tuple[Head, ...] = ("boosting", "factorised")  # bounded where programs are new (docstring)


# ``service_queue``'s weight where no training workload measures a latency: the queue's own slowdown.
QUEUE_WEIGHT = 1.0
# The reference demand rides in the describer as one more output, scaled down so that it barely weighs in the
# trees' splits (which the deficits decide) while each leaf still holds its workloads' mean demand.
REFERENCE_DEMAND_WEIGHT = 1e-3


class ProbePlacementConfig(ModelConfig):
    head: Literal["auto", "boosting", "factorised", "ridge"] = "auto"
    describer_trees: int = 200
    seed: int = 0
    # Incumbents reach the service without their probes (estimated from telemetry): the head also learns from
    # every training run with its neighbours' probes withheld, so that it is trained on what it is served.
    estimated_neighbours: bool = True
    # Relative CV-MAE margin within which a cheaper head family is preferred (module docstring).
    head_tolerance: float = Field(default=0.05, ge=0.0, le=1.0)
    # The boosted head's size: its scoring cost grows with the trees (the extender scores every candidate
    # host's newcomer and incumbents per call: 2,000 rows for 500 hosts of 3 tenants cost 7.4 ms with 300
    # trees). On bundled v2's leave-programs-out validation programs 50 trees at rate 0.3 score 13.51 pp
    # against 13.43 pp for 300 at 0.05 (100 at 0.15: 13.47), within ``head_tolerance``: the cheaper one.
    boosting_iterations: int = Field(default=50, ge=1)
    boosting_learning_rate: float = Field(default=0.3, gt=0.0, le=1.0)
    # Charge the CPU probe pair (own CPU sensitivity x the others' CPU pressure) only as far as the fair share
    # leaves the workload short of its demand: x (1 - fair share), 0 on a host whose cores suffice. The lab's
    # CPU aggressor always contends for the probed workload's core; a tenant capped below its fair share
    # (a CPU quota, a rate-limited service) is not slowed by it. Chosen on bundled v2's validation programs:
    # 9.01 pp against 10.87 without (5 leave-programs-out folds; one fold's validation MAE 18.55 -> 9.25).
    contended_cpu_pair: bool = True
    # Scale a pressure estimated from telemetry to the workload's own CPU demand: the describer also says what
    # demand the workloads its telemetry resembles had when their pressure was measured, and an estimate is
    # multiplied by own / that demand (at most 1). A tenant throttled to a fraction of a core (a CPU quota, a
    # rate-limited service) does that fraction of its program's work and exerts that fraction of its pressure;
    # its telemetry lies outside every training workload's (all measured at full speed), where the describer
    # answers an average program's full pressure (the A/B test's quota-limited tenants: every one ~0.25
    # cache pressure). Measured probes, and estimates of workloads like the training ones, stay as they are.
    pressure_at_demand: bool = False
    # Charge having neighbours in proportion to the CPU they use instead of as a constant: the law's intercept
    # is dropped and two terms take its place, the others' CPU demand as a share of the host's cores, alone
    # and times the workload's own CPU sensitivity (a latency-bound service waits behind whatever runs on
    # its core even when the fair share gives it all it asks). Without it the fitted intercept charges every
    # co-located workload the same: on the closed-loop data exp(-0.147), so a 0.15-core job beside a
    # 0.09-core service was predicted at 0.84 (measured 1.0) and the A/B test's extender refused 7 of 12
    # tenants. With it, neighbours that use no CPU and exert no pressure cost nothing (P = 1).
    neighbour_load: bool = False
    # With ``neighbour_load``: also charge the chance that a request waking on the workload's node finds every
    # core busy with its neighbours, ``min(1, load) ** cores`` (each core busy with probability ``load``, the
    # share of the node they use), alone and times own CPU sensitivity. The same share costs more on a node
    # with fewer cores to escape to: a rate-limited service kept P 0.73 beside half of two cores' worth of
    # neighbours and fell to 0.44-0.65 beside half of one CPU's (the A/B test's hosts). The term is what
    # lets one law fit nodes of several sizes (``host_cores`` per run).
    core_wait: bool = False
    # Charge a workload whose metric is a latency (requests at an offered load, ``probe:latency``) the
    # waiting of a queue: a request is served by what CPU the neighbours leave it, so its response time grows
    # as 1 / (1 - utilisation) of that capacity, and once its offered load exceeds it the queue grows for as
    # long as the run lasts (P ~ 0). A batch job beside the same neighbours only gets a smaller share (the
    # fair-share term). The term is the queue's slowdown against running alone, ``-log((1 - d / a) /
    # (1 - d / cores))``, for own demand ``d`` and ``a`` the CPU the max-min fair share would give the
    # workload if it asked for the whole node; times the latency flag, so that it costs nothing to others.
    # Its weight is learnt with the others where training workloads measure a latency, else the queue's own
    # (1). On the closed-loop data's validation programs the learnt weight scores 11.04 pp against 12.01 at
    # 1 throughout (without the term: 11.67), though it rests on few runs (the services in a fold's training
    # set: 9 of 594 runs once runs with held-out neighbours are dropped; weight 6.3 there). A flag not given
    # (an incumbent, a profile registered without it) is the describer's majority vote, 0 or 1: the share of
    # latency workloads among those the telemetry resembles (0.26-0.39 for batch programs never seen) times
    # a queue's collapse sank them (test programs described without their flags: 21.4 pp against 12.6).
    service_queue: bool = False
    # With ``neighbour_load`` and ``service_queue``: charge a batch workload (latency flag 0) the neighbours'
    # load only as far as the fair share leaves it short of its demand, x (1 - fair share), as
    # ``contended_cpu_pair`` does for the CPU probe pair; a service keeps the whole charge (its requests
    # wait behind whatever runs on its core even when the fair share gives it all it asks). A batch job held
    # to a CPU quota below its fair share gets its quota beside neighbours that leave room: the lab's capped
    # batch jobs measured a median P of 1.0 on nodes filled up to twice their cores by quotas, where the
    # pooled law, its load weights learnt mostly from uncapped programs, charged them 8-16 pp (the A/B test's
    # refusals: batch tenants predicted 0.77-0.92 that measured 0.91-1.0). On the closed-loop data's
    # validation programs 10.78 pp against 11.04 without (test programs 10.89 against 11.60); 8.76 against
    # 8.87 (test 8.80 against 9.34) once every run's neighbours were linked to their profiles.
    contended_batch_load: bool = False
    # Charge the shared-resource probe pairs (cache, memory bandwidth, I/O: own sensitivity x the others'
    # pressure) only as far as the neighbours can run at the same time as the workload: while it runs on one
    # core the others have the node's other ``cores - 1``, so of their summed CPU demand ``D`` at most
    # ``min(1, (cores - 1) / D)`` overlaps it. Pressures and sensitivities are measured side by side on the
    # lab's two cores; on a node of one CPU the neighbours only take turns with the workload (what is left is
    # the fair share, and a service's queue), and two one-core neighbours on two cores are one core's worth
    # of concurrent pressure, not two. The lab's capped batch jobs on one CPU measured a median P of 1.0 up to
    # a node filled 1.5 times by quotas, where the law charged them 5-20 pp through the cache and memory
    # bandwidth pairs (the A/B test's stream 0.80, sqlite 0.81, xz 0.82 predicted; 1.0, 1.0, 0.96 measured).
    # Rejected on the closed-loop data's validation programs: 11.53 pp against 10.78 without (with
    # contended_batch_load; test programs 11.28 against 10.89): the memory-bound programs gain
    # (stressng_stream 12.9 -> 11.1, xz 14.4 -> 12.7), the I/O- and cache-bound ones lose more (fio 9.6 ->
    # 13.9, zstd 6.7 -> 9.4). With every run's neighbours linked to their profiles: 9.38 against 8.76.
    concurrent_pressure: bool = False
    # Give the shared-resource probe pairs two weights instead of one: the pair times the share of the
    # neighbours' CPU time that can overlap the workload's (``concurrent_pressure``'s share), and the pair
    # times the rest, the neighbours' time that only takes turns with it (a context switch still leaves a
    # polluted cache behind, memory bandwidth is not shared by turns). The law learns how much taking
    # turns costs instead of assuming nothing (``concurrent_pressure``) or as much as running alongside
    # (neither option): the training data has nodes of one CPU (all turns) and of two. Rejected on the
    # closed-loop data's validation programs: 11.51 pp against 10.78 without (with contended_batch_load;
    # test programs 11.36 against 10.89), the same trade as concurrent_pressure's: memory-bound programs gain
    # (stressng_stream 12.9 -> 11.7, xz 14.4 -> 12.9), I/O- and cache-bound ones lose (fio 9.6 -> 14.6).
    # With every run's neighbours linked to their profiles: 9.36 against 8.76 (test 9.10 against 8.80).
    turn_taking_pairs: bool = False

    @model_validator(mode="after")
    def _core_wait_reads_the_load(self) -> ProbePlacementConfig:
        if self.turn_taking_pairs and self.concurrent_pressure:
            raise ValueError(
                "turn_taking_pairs: weighs the turn-taking share that concurrent_pressure drops; choose one"
            )
        if self.core_wait and not self.neighbour_load:
            raise ValueError("core_wait: charges the neighbours' load, so it needs neighbour_load=true too")
        if self.contended_batch_load and not (self.neighbour_load and self.service_queue):
            raise ValueError(
                "contended_batch_load: gates the neighbours' load by the latency flag, so it needs "
                "neighbour_load=true and service_queue=true too"
            )
        return self


def probe_resource(column: str) -> str:
    """``probe:sens_membw_2`` / ``probe:press_io`` -> ``membw`` / ``io``."""
    return resource_of(column.removeprefix(PROBE_PREFIX))


def probe_group(column: str) -> str:
    return "other" if column in PROBE_FLAGS else metric_group_of(column.removeprefix(PROBE_PREFIX))


def _demand_column(names: list[str], feature_groups: list[str]) -> int | None:
    for metric in CPU_DEMAND_METRICS:
        if f"{metric}__mean" in names:
            return names.index(f"{metric}__mean")
    cpu_means = [i for i, (n, g) in enumerate(zip(names, feature_groups, strict=True)) if g == "cpu"]
    cpu_means = [
        i for i in cpu_means if names[i].endswith("__mean") and not names[i].startswith(PROBE_PREFIX)
    ]
    return cpu_means[0] if cpu_means else None


class ProbePlacementModel:
    """Describer + head (module docstring). Plain attributes and scikit-learn estimators, saved with skops."""

    # Set by ``fit`` (None: fit without the demand's scale or the host's cores; older artifacts lack them).
    demand_scale_: tuple[float, float] | None
    host_cores_: float | None
    fair_share_: bool

    def __init__(
        self,
        head: str = "auto",
        describer_trees: int = 200,
        seed: int = 0,
        estimated_neighbours: bool = True,
        head_tolerance: float = 0.05,
        boosting_iterations: int = 50,
        boosting_learning_rate: float = 0.3,
        contended_cpu_pair: bool = True,
        pressure_at_demand: bool = False,
        neighbour_load: bool = False,
        core_wait: bool = False,
        service_queue: bool = False,
        contended_batch_load: bool = False,
        concurrent_pressure: bool = False,
        turn_taking_pairs: bool = False,
    ) -> None:
        self.head = head
        self.turn_taking_pairs = turn_taking_pairs
        self.concurrent_pressure = concurrent_pressure
        self.service_queue = service_queue
        self.contended_batch_load = contended_batch_load
        self.neighbour_load = neighbour_load
        self.core_wait = core_wait
        self.contended_cpu_pair = contended_cpu_pair
        self.pressure_at_demand = pressure_at_demand
        self.describer_trees = describer_trees
        self.seed = seed
        self.estimated_neighbours = estimated_neighbours
        self.head_tolerance = head_tolerance
        self.boosting_iterations = boosting_iterations
        self.boosting_learning_rate = boosting_learning_rate

    # ---- layout ------------------------------------------------------------------------------------------
    def _layout(self, names: list[str], feature_groups: list[str]) -> None:
        self.names = list(names)
        self.summary_columns = [i for i, n in enumerate(names) if not n.startswith(PROBE_PREFIX)]
        self.deficit_columns = [
            i for i, n in enumerate(names) if n.startswith(PROBE_PREFIX) and n not in PROBE_FLAGS
        ]
        if any(flag not in names for flag in (PROBE_MEASURED, PROBE_LIVE)) or not self.deficit_columns:
            raise ValueError(
                "placement-probes: the table has no sensitivity/pressure probes (lab probe runs)"
            )
        self.measured_column = names.index(PROBE_MEASURED)
        self.live_column = names.index(PROBE_LIVE)
        self.latency_column = (
            names.index(PROBE_LATENCY) if self.service_queue and PROBE_LATENCY in names else None
        )
        self.demand_column = _demand_column(names, feature_groups)
        deficits = [names[i] for i in self.deficit_columns]
        # Pairs (own sensitivity at its strongest level, others' pressure) per resource measured both ways.
        pressure = {
            probe_resource(n): j for j, n in enumerate(deficits) if n.startswith(PROBE_PREFIX + "press_")
        }
        strongest: dict[str, tuple[int, int]] = {}
        for j, n in enumerate(deficits):
            if n.startswith(PROBE_PREFIX + "sens_"):
                level = int(n.rsplit("_", 1)[1])
                resource = probe_resource(n)
                if resource not in strongest or level > strongest[resource][0]:
                    strongest[resource] = (level, j)
        self.pairs = [(strongest[r][1], pressure[r]) for r in sorted(strongest) if r in pressure]
        self.pressure_deficits = sorted(pressure.values())

    @property
    def embedding_width(self) -> int:
        # deficits, demand, capped demands, the latency flag (where read), the measured flag
        return len(self.deficit_columns) + 2 + len(self._fair_levels()) + int(self._reads_latency())

    def _reads_latency(self) -> bool:
        """Whether the law charges a latency's queue (``service_queue``): it needs the flag's column and the
        fair share's grid (older artifacts: never)."""
        return getattr(self, "latency_column", None) is not None and len(self._fair_levels()) > 0

    def _fair_levels(self) -> np.ndarray:
        """The water levels in cores (``FAIR_LEVELS`` x the host's cores), or none for a model fit without
        the fair share (older artifacts keep their embedding layout)."""
        if not getattr(self, "fair_share_", False) or self.host_cores_ is None:
            return np.zeros(0)
        return np.asarray(FAIR_LEVELS, dtype=np.float64) * self.host_cores_

    def _demand_cores(self, standardised: np.ndarray) -> np.ndarray:
        """Standardised demand column -> cores, never negative (needs ``demand_scale_``)."""
        mean, std = self.demand_scale_  # type: ignore[misc]
        return np.maximum(np.nan_to_num(standardised) * std + mean, 0.0)

    # ---- embedding ----------------------------------------------------------------------------------------
    def embed(self, rows: np.ndarray) -> np.ndarray:
        """``rows [..., F]`` (normalised summary, probe deficits, flags) -> ``[..., E]``: the deficits
        (measured, else estimated), the demand, its capped levels, whether the metric is a latency (given,
        else estimated; where the law reads it), and whether the workload's probes were measured (its own
        interval is wider when not; the head never reads that flag)."""
        flat = rows.reshape(-1, rows.shape[-1]).astype(np.float64)
        deficits = flat[:, self.deficit_columns].copy()
        measured = np.nan_to_num(flat[:, self.measured_column]) >= 0.5
        live = np.nan_to_num(flat[:, self.live_column]) >= 0.5
        missing = ~measured[:, None] | np.isnan(deficits)
        latency = flat[:, self.latency_column].copy() if self._reads_latency() else None
        unknown = missing.any(axis=1) | (np.isnan(latency) if latency is not None else False)
        # Unmeasured probes (and a latency flag not given) are estimated from the telemetry the row
        # summarises, by the describer trained on that kind of telemetry: a live, contended window (an
        # incumbent) or a solo profile.
        for describer, kind in ((self.live_describer_, live), (self.describer_, ~live)):
            needs = unknown & kind
            if needs.any():
                estimated = forest_mean(describer, np.nan_to_num(flat[needs][:, self.summary_columns]))
                estimated_deficits, estimated_latency = self._described(estimated, flat[needs])
                deficits[needs] = np.where(missing[needs], estimated_deficits, deficits[needs])
                if latency is not None and estimated_latency is not None:
                    latency[needs] = np.where(np.isnan(latency[needs]), estimated_latency, latency[needs])
        demand = flat[:, [self.demand_column]] if self.demand_column is not None else np.zeros((len(flat), 1))
        levels = self._fair_levels()
        capped = np.minimum(self._demand_cores(demand), levels) if len(levels) else np.zeros((len(flat), 0))
        flags = [np.nan_to_num(latency)[:, None]] if latency is not None else []
        out = np.concatenate([deficits, np.nan_to_num(demand), capped, *flags, measured[:, None]], axis=1)
        return out.reshape(*rows.shape[:-1], self.embedding_width).astype(np.float32)

    def _described(self, estimated: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """The describer's outputs ``[N, D (+ 1) (+ 1)]`` -> the estimated deficits ``[N, D]``, the pressures
        scaled to each row's own demand where the reference demand rides along (``pressure_at_demand``),
        and the estimated latency flag ``[N]`` (None for a describer fit without it)."""
        estimated = estimated.reshape(len(rows), -1)
        deficits = len(self.deficit_columns)
        out = estimated[:, :deficits].copy()
        latency = None
        position = deficits
        if getattr(self, "latency_column", None) is not None:
            latency = (estimated[:, position] >= 0.5).astype(np.float64)  # a vote, not a fraction (config)
            position += 1
        if estimated.shape[1] == position:
            return out, latency
        assert self.demand_column is not None  # the reference demand is fit only beside a demand column
        own = self._demand_cores(rows[:, self.demand_column])
        reference = estimated[:, position] / REFERENCE_DEMAND_WEIGHT
        share = np.clip(own / np.maximum(reference, 1e-6), 0.0, 1.0)
        out[:, self.pressure_deficits] *= share[:, None]
        return out, latency

    def features(self, own: np.ndarray, others: np.ndarray, count: np.ndarray) -> np.ndarray:
        """The one feature function of the head, for training and serving alike: ``own [N, E]``, the sum of
        the others' embeddings ``[N, E]``, their ``count [N]`` -> ``[N, H]``: the workload's deficits and
        demand, the others' pressure and demand, their count, then ``interactions``."""
        d = len(self.deficit_columns)
        counts = np.asarray(count, dtype=np.float64).reshape(-1, 1)
        return np.concatenate(
            [
                np.asarray(own[:, : d + 1], dtype=np.float64),
                np.asarray(others[:, [*self.pressure_deficits, d]], dtype=np.float64),
                counts,
                self.interactions(own, others, count),
            ],
            axis=1,
        )

    def interactions(self, own: np.ndarray, others: np.ndarray, count: np.ndarray) -> np.ndarray:
        """The factorised law's inputs, the last columns of ``features``: per resource own sensitivity x the
        others' pressure, the demand product, and the utilisation and fair-share terms where there are. Only
        the columns they read are gathered (``head_columns``)."""
        own_columns, others_columns = self.head_columns()
        return self.interactions_of_parts(
            np.asarray(own[:, own_columns], np.float64),
            np.asarray(others[:, others_columns], np.float64),
            count,
        )

    def head_columns(self) -> tuple[list[int], list[int]]:
        """The embedding columns the factorised law reads, of the workload itself and of the others' sum: per
        probe pair the sensitivity (own) or the pressure (others), then the demand and the capped demands."""
        d = len(self.deficit_columns)
        shared = list(range(d, d + 1 + len(self._fair_levels())))
        latency = [shared[-1] + 1] if self._reads_latency() else []  # own only: the others' is never read
        return [*(s for s, _ in self.pairs), *shared, *latency], [*(q for _, q in self.pairs), *shared]

    def interactions_of_parts(
        self, own_part: np.ndarray, others_part: np.ndarray, count: np.ndarray
    ) -> np.ndarray:
        """``interactions`` from the ``head_columns`` already gathered (float64): the extender precomputes the
        hosts' side of them once per host state (``ProbesBackend.host_parts``)."""
        levels = self._fair_levels()
        pairs = len(self.pairs)
        own_demand, others_demand = own_part[:, pairs : pairs + 1], others_part[:, pairs : pairs + 1]
        counts = np.asarray(count, dtype=np.float64).reshape(-1, 1)
        products = own_part[:, :pairs] * others_part[:, :pairs]
        turns: list[np.ndarray] = []
        if self._splits_pairs():
            shared = self._shared_pairs()
            overlap = self._overlap(others_demand, counts)
            if self._weighs_turns():
                turns = [products[:, shared] * (1.0 - overlap)]
            products[:, shared] *= overlap
        fair: list[np.ndarray] = []
        own_capped = own_part[:, pairs + 1 : pairs + 1 + len(levels)]
        others_capped = others_part[:, pairs + 1 : pairs + 1 + len(levels)]
        queue: list[np.ndarray] = []
        load_gate: np.ndarray | None = None
        if len(levels):
            share = fair_share(own_capped, others_capped, levels, float(self.host_cores_ or 0.0))
            fair = [-np.log(np.maximum(share, P_FLOOR))[:, None]]
            if getattr(self, "contended_cpu_pair", False) and (cpu := self._cpu_pair()) is not None:
                products[:, cpu] *= 1.0 - share
            if self._reads_latency():
                latency = own_part[:, pairs + 1 + len(levels)]
                queue = [(latency * self._queue_slowdown(own_capped, others_capped, levels))[:, None]]
                if getattr(self, "contended_batch_load", False):
                    load_gate = (latency + (1.0 - latency) * (1.0 - share))[:, None]
        return np.concatenate(
            [
                products,
                *turns,
                own_demand * others_demand,
                *self._utilisation_term(own_demand, others_demand, counts),
                *fair,
                *self._load_terms(own_part[:, :pairs], others_demand, counts, load_gate),
                *queue,
            ],
            axis=1,
        )

    def _queue_slowdown(
        self, own_capped: np.ndarray, others_capped: np.ndarray, levels: np.ndarray
    ) -> np.ndarray:
        """``-log`` of a queue's response time alone over beside the others (``service_queue``), ``[N]``:
        ``(1 - d / a) / (1 - d / cores)`` for own demand ``d`` and ``a`` the CPU the max-min fair share
        leaves a workload asking for the whole node; at or past ``a`` the queue only grows (``P_FLOOR``)."""
        cores = float(self.host_cores_)  # type: ignore[arg-type]
        whole_node = np.broadcast_to(levels, own_capped.shape)  # a demand of every core, capped at each level
        room = fair_share(whole_node, others_capped, levels, cores) * cores
        demand = own_capped[:, -1]
        beside = np.clip(1.0 - demand / np.maximum(room, 1e-12), 0.0, 1.0)
        alone = np.clip(1.0 - demand / cores, 1e-3, 1.0)
        return -np.log(np.clip(beside / alone, P_FLOOR, 1.0))

    def _splits_pairs(self) -> bool:
        """Whether the shared-resource pairs are read by their overlap with the workload's CPU time
        (``concurrent_pressure`` or ``turn_taking_pairs``; needs the host's cores)."""
        splits = getattr(self, "concurrent_pressure", False) or getattr(self, "turn_taking_pairs", False)
        return bool(splits) and self._can_read_cores()

    def _weighs_turns(self) -> bool:
        """Whether the turn-taking share of each shared-resource pair is a law input of its own
        (``turn_taking_pairs``)."""
        return self._splits_pairs() and bool(getattr(self, "turn_taking_pairs", False))

    def _shared_pairs(self) -> list[int]:
        """Positions of the shared-resource pairs (all but the CPU pair) among ``pairs``."""
        return [i for i in range(len(self.pairs)) if i != self._cpu_pair()]

    def _overlap(self, others_demand: np.ndarray, count: np.ndarray) -> np.ndarray:
        """The share of the others' CPU time that can overlap the workload's (``concurrent_pressure``),
        ``[N, 1]``: the node's other ``cores - 1`` over their summed demand, at most 1 (0 on one CPU)."""
        spare = max(float(self.host_cores_) - 1.0, 0.0)  # type: ignore[arg-type]
        others = self._others_cores(others_demand, count)
        return np.clip(spare / np.maximum(others, 1e-9), 0.0, 1.0)

    def _charges_load(self) -> bool:
        """Whether the law reads the neighbours' load (``neighbour_load``) and so has no intercept: only for a
        model fit with the demand's scale and the host's cores (older artifacts: never)."""
        return bool(getattr(self, "neighbour_load", False)) and self._can_read_cores()

    def _can_read_cores(self) -> bool:
        return (
            getattr(self, "demand_scale_", None) is not None
            and getattr(self, "host_cores_", None) is not None
        )

    def _load_terms(
        self,
        own_sensitivity: np.ndarray,
        others_demand: np.ndarray,
        count: np.ndarray,
        gate: np.ndarray | None = None,
    ) -> list[np.ndarray]:
        """``[load, own CPU sensitivity x load]`` (``[N, 1]`` each; the product only where CPU is probed),
        the load being the others' CPU demand as a share of the host's cores, then with ``core_wait`` the
        same two for the chance that every core is busy, ``min(1, load) ** cores``; none without
        ``neighbour_load``. Each charge is multiplied by ``gate [N, 1]`` where given
        (``contended_batch_load``)."""
        if not self._charges_load():
            return []
        cores = float(self.host_cores_)  # type: ignore[arg-type]
        load = self._others_cores(others_demand, count) / cores
        charges = [load]
        if getattr(self, "core_wait", False):
            charges.append(np.minimum(load, 1.0) ** cores)
        if gate is not None:
            charges = [charge * gate for charge in charges]
        cpu = self._cpu_pair()
        if cpu is None:
            return charges
        sensitivity = own_sensitivity[:, cpu : cpu + 1]
        return [term for charge in charges for term in (charge, sensitivity * charge)]

    def _others_cores(self, others_demand: np.ndarray, count: np.ndarray) -> np.ndarray:
        """The others' summed CPU demand in cores, never negative: their embedding sums ``count``
        standardised demands (needs ``demand_scale_``)."""
        mean, std = self.demand_scale_  # type: ignore[misc]
        return np.maximum(others_demand * std + count * mean, 0.0)

    def _load_width(self) -> int:
        if not self._charges_load():
            return 0
        return (1 + int(getattr(self, "core_wait", False))) * (1 + int(self._cpu_pair() is not None))

    def _cpu_pair(self) -> int | None:
        """Position of the CPU resource among ``pairs`` (None when CPU is not probed both ways)."""
        resources = [probe_resource(self.names[self.deficit_columns[s]]) for s, _ in self.pairs]
        return resources.index("cpu") if "cpu" in resources else None

    def _utilisation_term(
        self, own_demand: np.ndarray, others_demand: np.ndarray, count: np.ndarray
    ) -> list[np.ndarray]:
        """``[-log min(1, cores / summed demand)]`` (``[N, 1]``), or nothing for a model fit without the
        demand's scale (older artifacts keep their feature layout)."""
        if not self._can_read_cores():
            return []
        mean, std = self.demand_scale_  # type: ignore[misc]
        cores = float(self.host_cores_)  # type: ignore[arg-type]
        total = np.maximum(own_demand * std + mean, 0.0) + self._others_cores(others_demand, count)
        share = np.minimum(1.0, cores / np.maximum(total, 1e-9))  # nobody demanding anything: 1
        return [-np.log(np.maximum(share, P_FLOOR))]

    def serve_on_hosts_of(self, cores: float) -> bool:
        """Read every candidate host as ``cores`` CPUs (the shares' denominator and the water levels' scale)
        instead of the training host's; before any workload is embedded. False for a model without the
        share terms (nothing reads the host's size)."""
        if getattr(self, "host_cores_", None) is None:
            return False
        self.host_cores_ = float(cores)
        return True

    @staticmethod
    def measured(embedding: np.ndarray) -> np.ndarray:
        """Whether each embedded workload's probes were measured (``[N]`` bool)."""
        return np.asarray(embedding[:, -1] >= 0.5)

    def withhold_probes(self, rows: np.ndarray) -> np.ndarray:
        """The rows as if their workloads had never been probed (how the unprobed interval is calibrated),
        their latency flags not given either (as the service knows its incumbents)."""
        out = rows.copy()
        out[..., self.deficit_columns] = np.nan
        out[..., self.measured_column] = 0.0
        if getattr(self, "latency_column", None) is not None:
            out[..., self.latency_column] = np.nan
        return out

    def _interactions(self, features: np.ndarray) -> np.ndarray:
        """``interactions`` read back from full ``features`` rows (their last columns)."""
        utilisation = int(self._can_read_cores())
        fair = int(len(self._fair_levels()) > 0)
        queue = int(self._reads_latency())
        turns = len(self._shared_pairs()) if self._weighs_turns() else 0
        width = len(self.pairs) + turns + 1 + utilisation + fair + self._load_width() + queue
        return features[:, -width:]

    # ---- fitting -----------------------------------------------------------------------------------------
    def fit(
        self,
        newcomer: np.ndarray,
        neighbours: np.ndarray,
        mask: np.ndarray,
        labels: np.ndarray,
        groups: np.ndarray,
        names: list[str],
        feature_groups: list[str],
        live: np.ndarray | None = None,
        feature_scale: tuple[np.ndarray, np.ndarray] | None = None,
        host_cores: float | np.ndarray | None = None,
    ) -> ProbePlacementModel:
        """``live [R, F]``: training runs' targets as live windows (``datasets.tensors.live_rows``,
        normalised), for the describer of incumbents known only by their telemetry; without them the solo
        profiles' describer serves both. ``feature_scale`` (the normaliser's mean and scale of every column)
        and ``host_cores`` (the training host's cores, or each run's node's: ``[R]``, NaN where unknown)
        give the utilisation share; without either the head goes without it. A model fit on nodes of
        several sizes reads each run's shares on its own node's cores, and answers for the most common size
        until told otherwise (``serve_on_hosts_of``)."""
        from sklearn.model_selection import GroupKFold

        self._layout(names, feature_groups)
        column = self.demand_column
        cores = node_cores(host_cores, len(labels))
        self.demand_scale_ = None
        self.host_cores_ = None
        if feature_scale is not None and cores is not None and column is not None:
            self.demand_scale_ = (float(feature_scale[0][column]), float(feature_scale[1][column]))
            known, counts = np.unique(cores[~np.isnan(cores)], return_counts=True)
            self.host_cores_ = float(known[np.argmax(counts)])
        self.fair_share_ = self.host_cores_ is not None
        workloads = np.unique(np.concatenate([newcomer, neighbours[mask]]).astype(np.float64), axis=0)
        self.describer_ = self._fit_describer(workloads)
        self.live_describer_ = (
            self._fit_describer(live) if live is not None and len(live) else self.describer_
        )
        x = self._head_inputs(newcomer, neighbours, mask, cores)
        if self.estimated_neighbours:
            withheld = self._head_inputs(newcomer, self.withhold_probes(neighbours), mask, cores)
            x = np.concatenate([x, withheld])
            labels, groups = np.concatenate([labels, labels]), np.concatenate([groups, groups])
        folds = max(2, min(5, len(np.unique(groups))))
        candidates: list[Head] = list(AUTO_HEADS) if self.head == "auto" else [self.head]  # type: ignore[list-item]
        self.candidates_mae: dict[str, float] = {}
        self.out_of_fold_residuals_: dict[str, np.ndarray] = {}
        if len(np.unique(groups)) >= 2:
            for candidate in candidates:
                predicted = np.zeros(len(labels))
                for train, held in GroupKFold(folds).split(x, labels, groups):
                    predicted[held] = self._predict_head(
                        self._fit_head(candidate, x[train], labels[train]), candidate, x[held]
                    )
                residuals = labels - predicted
                self.candidates_mae[candidate] = float(np.mean(np.abs(residuals)))
                self.out_of_fold_residuals_[candidate] = residuals
        self.head_family_ = candidates[0]
        if self.candidates_mae:
            best = min(self.candidates_mae.values())
            close = [
                h
                for h in HEADS_BY_COST
                if self.candidates_mae.get(h, np.inf) <= (1 + self.head_tolerance) * best
            ]
            self.head_family_ = close[0]
        self.head_ = self._fit_head(self.head_family_, x, labels)
        return self

    def out_of_fold_residuals(self) -> np.ndarray:
        return self.out_of_fold_residuals_.get(self.head_family_, np.zeros(1))

    def _fit_describer(self, rows: np.ndarray) -> Any:
        """Telemetry summary -> deficits, on the rows whose workloads were measured."""
        from sklearn.ensemble import ExtraTreesRegressor

        rows = rows.astype(np.float64)
        measured = rows[np.nan_to_num(rows[:, self.measured_column]) >= 0.5]
        if not len(measured):
            raise UnsuitableData("placement-probes: no training workload has measured probes")
        targets = measured[:, self.deficit_columns]
        fill = np.nanmedian(targets, axis=0)
        targets = np.where(np.isnan(targets), np.nan_to_num(fill), targets)
        if getattr(self, "latency_column", None) is not None:
            targets = np.column_stack([targets, np.nan_to_num(measured[:, self.latency_column])])
        column = self.demand_column
        if (
            getattr(self, "pressure_at_demand", False)
            and self.demand_scale_ is not None
            and column is not None
        ):
            # the demand each workload's pressure was measured at: what an estimate is scaled from (embed)
            demand = self._demand_cores(measured[:, column])
            targets = np.column_stack([targets, demand * REFERENCE_DEMAND_WEIGHT])
        describer = ExtraTreesRegressor(
            n_estimators=self.describer_trees, min_samples_leaf=1, random_state=self.seed, n_jobs=1
        )
        return describer.fit(np.nan_to_num(measured[:, self.summary_columns]), targets)

    def _head_inputs(
        self, newcomer: np.ndarray, neighbours: np.ndarray, mask: np.ndarray, cores: np.ndarray | None = None
    ) -> np.ndarray:
        def inputs(rows: np.ndarray | slice) -> np.ndarray:
            own = self.embed(newcomer[rows])
            others = (self.embed(neighbours[rows]) * mask[rows][..., None]).sum(axis=1)
            return self.features(own, others, mask[rows].sum(axis=1))

        return self.on_nodes(cores, len(newcomer), inputs)

    def on_nodes(
        self, cores: np.ndarray | None, rows: int, answer: Callable[[np.ndarray | slice], np.ndarray]
    ) -> np.ndarray:
        """``answer(indices)`` for each group of the ``rows`` whose nodes have the same cores (``cores
        [rows]``, NaN: the size the model reads now), read as hosts of that size meanwhile; the answers in
        row order. Rows all on one size (or no ``cores``, or a model that does not read the host's size)
        are answered in one call on ``slice(None)``: views, no copy of the batch."""
        if cores is None or getattr(self, "host_cores_", None) is None:
            return answer(slice(None))
        serving = float(self.host_cores_)  # type: ignore[arg-type]
        sizes = np.where(np.isnan(cores), serving, cores)
        unique = np.unique(sizes)
        out: np.ndarray | None = None
        try:
            if len(unique) == 1:
                self.host_cores_ = float(unique[0])
                return answer(slice(None))
            for size in unique:
                self.host_cores_ = float(size)
                indices = np.flatnonzero(sizes == size)
                part = answer(indices)
                if out is None:
                    out = np.zeros((rows, *part.shape[1:]), dtype=part.dtype)
                out[indices] = part
        finally:
            self.host_cores_ = serving
        return out if out is not None else answer(slice(None))

    def _fit_head(self, family: str, x: np.ndarray, labels: np.ndarray) -> Any:
        if family == "boosting":
            from sklearn.ensemble import HistGradientBoostingRegressor

            return HistGradientBoostingRegressor(
                max_iter=self.boosting_iterations,
                learning_rate=self.boosting_learning_rate,
                max_leaf_nodes=15,
                min_samples_leaf=10,
                l2_regularization=1.0,
                random_state=self.seed,
            ).fit(x, labels)
        if family == "factorised":
            from sklearn.linear_model import LinearRegression

            slowdown = -np.log(np.clip(labels, P_FLOOR, 1.0))
            law = LinearRegression(positive=True, fit_intercept=not self._charges_load())
            interactions = self._interactions(x)
            law.fit(interactions, slowdown)
            if self._reads_latency() and not np.any(interactions[:, -1] > 0):
                law.coef_[-1] = QUEUE_WEIGHT  # no training workload waits in a queue: the queue's own weight
            return law
        from sklearn.linear_model import RidgeCV
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        return make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-3, 3, 13))).fit(x, labels)

    def _predict_head(self, head: Any, family: str, x: np.ndarray) -> np.ndarray:
        if family == "factorised":
            return _factorised_p(head, self._interactions(x))
        return np.clip(head.predict(x), P_FLOOR, 1.0)

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Median P from head features (``features``): what the tabular backend's ``quantiles`` calls."""
        return self._predict_head(self.head_, self.head_family_, features)

    def predict_parts(self, own_part: np.ndarray, others_part: np.ndarray, count: np.ndarray) -> np.ndarray:
        """Median P of the factorised law from gathered ``head_columns`` (``interactions_of_parts``)."""
        return _factorised_p(
            self.head_, np.nan_to_num(self.interactions_of_parts(own_part, others_part, count))
        )

    def predict_rows(self, own: np.ndarray, others: np.ndarray, count: np.ndarray) -> np.ndarray:
        """Median P from embeddings, as ``predict(features(...))`` (NaN read as 0, as the backend does); the
        factorised law reads only its interactions, so the other feature columns are not built."""
        if self.head_family_ == "factorised":
            return _factorised_p(self.head_, np.nan_to_num(self.interactions(own, others, count)))
        return self.predict(np.nan_to_num(self.features(own, others, count)))


def node_cores(host_cores: float | np.ndarray | None, rows: int) -> np.ndarray | None:
    """Each of ``rows`` runs' node size in cores (``[rows]``, NaN where unknown) from one size for all or
    one per run; None where no run's is known."""
    if host_cores is None:
        return None
    cores = np.broadcast_to(np.asarray(host_cores, dtype=np.float64), (rows,)).copy()
    cores[~(cores > 0)] = np.nan
    return None if np.isnan(cores).all() else cores


def forest_mean(forest: Any, rows: np.ndarray) -> np.ndarray:
    """A fitted scikit-learn regression forest's prediction, ``forest.predict(rows)`` to the last bit.

    Serving describes each incumbent whose window changed on every telemetry push, a few rows at a time.
    ``predict`` validates the input and dispatches each tree through joblib, ~40 us per tree: 8 ms for the
    200-tree describer on one push's rows. Each tree's own ``tree_.predict`` on float32 rows (the dtype the
    forest itself converts to), summed in the same order and divided, is the same number in ~0.4 ms."""
    x = np.ascontiguousarray(rows, dtype=np.float32)
    total = np.zeros((len(x), forest.n_outputs_))
    for tree in forest.estimators_:
        total += tree.tree_.predict(x).reshape(len(x), -1)
    total /= len(forest.estimators_)
    return total if forest.n_outputs_ > 1 else total[:, 0]


def _factorised_p(head: Any, interactions: np.ndarray) -> np.ndarray:
    """The factorised law ``P = exp(-w . interactions)``, kept in (0, 1]. ``head.predict``'s own arithmetic
    (``X @ coef_ + intercept_`` on float64 rows) without its input validation, which costs more than the
    product itself on the extender's few changed hosts per request."""
    rows = np.ascontiguousarray(interactions, dtype=np.float64)
    return np.clip(np.exp(-(rows @ head.coef_ + head.intercept_)), P_FLOOR, 1.0)


def fair_share(
    own_capped: np.ndarray, others_capped: np.ndarray, levels: np.ndarray, cores: float
) -> np.ndarray:
    """Max-min fair allocation / demand of each row's own workload (``[N]``, 1 when the cores suffice).

    ``own_capped [N, L]``: its demand capped at each water level ``levels [L]`` (ascending, the last = the
    cores); ``others_capped [N, L]``: the others' capped demands summed. Allocated CPU at level ``x`` is
    own + others capped there; the water level is where that reaches ``cores``, interpolated linearly between
    grid points (from 0 at level 0)."""
    own_capped, others_capped = np.asarray(own_capped, np.float64), np.asarray(others_capped, np.float64)
    rows = len(own_capped)
    grid = np.concatenate([[0.0], levels])
    allocated = np.concatenate([np.zeros((rows, 1)), own_capped + others_capped], axis=1)  # [N, L + 1]
    demand = own_capped[:, -1]
    crowded = allocated[:, -1] > cores  # nobody waits when the summed demand fits
    upper = np.argmax(allocated >= cores, axis=1).clip(1, len(grid) - 1)  # first grid point at the cores
    lower = upper - 1
    below, above = allocated[np.arange(rows), lower], allocated[np.arange(rows), upper]
    fraction = np.clip((cores - below) / np.maximum(above - below, 1e-12), 0.0, 1.0)
    level = grid[lower] + fraction * (grid[upper] - grid[lower])
    share = np.minimum(demand, level) / np.maximum(demand, 1e-12)
    return np.where(crowded & (demand > 0), np.clip(share, 0.0, 1.0), 1.0)


def build(config: ProbePlacementConfig, shape: DataShape) -> ProbePlacementModel:
    return ProbePlacementModel(
        config.head,
        config.describer_trees,
        config.seed,
        config.estimated_neighbours,
        config.head_tolerance,
        config.boosting_iterations,
        config.boosting_learning_rate,
        config.contended_cpu_pair,
        config.pressure_at_demand,
        config.neighbour_load,
        config.core_wait,
        config.service_queue,
        config.contended_batch_load,
        config.concurrent_pressure,
        config.turn_taking_pairs,
    )


register(
    ModelSpec(
        "placement-probes",
        "placement",
        "probes",
        ProbePlacementConfig,
        build,
        "placement from measured sensitivity x pressure probes (telemetry-estimated where unprobed)",
    )
)
