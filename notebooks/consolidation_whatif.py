# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Consolidation what-if: how many workloads fit on H hosts at a minimum-P SLO?
#
# For capacity planners. Workloads arrive one by one (drawn with a seed from the solo profiles of the fleet
# telemetry, the `bundled` dataset by default); each asks for CPU and memory equal to its solo profile's mean
# usage. Two online policies place the same stream on a fleet of identical hosts:
#
# - **requests-only** bin packing: the most-allocated host where the requests fit (Kubernetes'
#   `MostAllocated` scoring); interference is not looked at.
# - **degradation-aware**: among occupied hosts where the requests fit and the newcomer and every incumbent
#   stay at or above the SLO `min_p`, the one with the best predicted score (the service's rule: the lower of
#   the newcomer's P and the worst incumbent's P after the placement); an empty host only when no occupied one
#   qualifies; otherwise the workload is refused.
#
# P is predicted by the placement model (the MLflow champion, or one trained here); a tenant alone on a host
# has P = 1 by definition. We compare workloads placed, hosts used, the predicted P of every tenant (and how
# many fall below the SLO: violations), then sweep the SLO: workloads placed on the fleet, and hosts needed to
# place the whole stream.

# %%
import itertools
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated

import matplotlib.pyplot as plt
import numpy as np
import polars as pl
from cotenant.datasets import load_source
from cotenant.models.base import MEDIAN, QUANTILES
from cotenant.models.predictor import HostEncoding, Predictor
from cotenant.training.tracking import REGISTERED
from pydantic import BaseModel, Field, model_validator

from cotenant.demo import profile_series

plt.switch_backend("Agg")  # charts go to PNG files; no display needed

# %% tags=["parameters"]
source = "bundled"  # fleet telemetry: a cotenant.datasets source spec (bundled, a lab directory, ...)
n_workloads = 60  # incoming stream, drawn from the solo profiles of the source
n_hosts = 10  # the fleet the policies place the stream on
host_cpu_cores = 4.0
host_memory_gib = 16.0
min_p = 0.8  # the SLO: predicted P of every tenant at least this
slo_sweep = [0.5, 0.6, 0.7, 0.8, 0.9]
max_hosts = 60  # largest fleet tried when searching the hosts needed for the whole stream
seed = 7  # draws the stream
tracking_uri = ""  # MLflow store with the placement champion; empty or without one: train a model here
training_epochs = 40  # for a model trained here (the recipe of the first champion)
cpu_request_metric = "cgroup_cpu_usage_seconds_per_second"  # cores
memory_request_metric = "tasks_vm_r_s_s_bytes"  # bytes
output_json = "consolidation_whatif.json"  # key values for tests and downstream reports
figures_dir = ""  # where PNG charts go; empty: next to output_json


# %%
class Scenario(BaseModel):
    """The parameters, checked before any work: a bad one fails here, named in the message."""

    source: str = Field(min_length=1)
    n_workloads: int = Field(ge=1)
    n_hosts: int = Field(ge=1)
    host_cpu_cores: float = Field(gt=0)
    host_memory_gib: float = Field(gt=0)
    min_p: float = Field(gt=0, le=1)
    slo_sweep: list[Annotated[float, Field(gt=0, le=1)]] = Field(min_length=1)
    max_hosts: int = Field(ge=1)
    seed: int
    tracking_uri: str
    training_epochs: int = Field(ge=1)
    cpu_request_metric: str
    memory_request_metric: str

    @model_validator(mode="after")
    def search_covers_the_fleet(self) -> "Scenario":
        if self.max_hosts < self.n_hosts:
            raise ValueError(f"max_hosts ({self.max_hosts}) must be >= n_hosts ({self.n_hosts})")
        return self


scenario = Scenario(**{name: globals()[name] for name in Scenario.model_fields})  # the parameters, by name
sweep = sorted(set(scenario.slo_sweep))

# %% [markdown]
# ## The fleet telemetry and the requests of the workloads

# %%
table = load_source(scenario.source)
for parameter in ("cpu_request_metric", "memory_request_metric"):
    if getattr(scenario, parameter) not in table.profile_metrics:
        raise ValueError(
            f"{parameter}: {getattr(scenario, parameter)!r} is not in the profiles of {source!r}"
        )
means = table.profiles.group_by("profile_id").agg(
    pl.col(scenario.cpu_request_metric).mean().alias("cpu_cores"),
    (pl.col(scenario.memory_request_metric).mean() / 2**30).alias("memory_gib"),
)
unmeasured = means.filter(pl.col("cpu_cores").is_null() | pl.col("memory_gib").is_null())["profile_id"]
if len(unmeasured):
    raise ValueError(f"profile {unmeasured[0]!r} of {source!r} has no values of the request metrics")
requests = {row["profile_id"]: (row["cpu_cores"], row["memory_gib"]) for row in means.iter_rows(named=True)}
rng = np.random.default_rng(scenario.seed)
stream_ids = [str(p) for p in rng.choice(sorted(requests), scenario.n_workloads)]
trained_max_tenants = int(table.runs["n_neighbours"].max() or 0) + 1  # more on one host: extrapolation
print(f"{len(requests)} profiles; training runs had at most {trained_max_tenants} tenants on a host")

# %% [markdown]
# ## The placement model, and how far to trust it
#
# The next cell prints the error of the model on applications it never saw in training
# (leave-applications-out), next to a constant guess (the training mean P) on the same runs. Read every
# predicted P below with that error in mind: a violation is a *predicted* P under the SLO.

# %%
PLACEMENT_MODEL = REGISTERED["placement"]


@dataclass
class ModelReport:
    origin: str
    held_out_mae_pp: float | None  # mean absolute error of P in percentage points, held-out applications
    held_out_coverage: float | None  # share of held-out labels inside the predicted interval
    held_out_applications: list[str]
    fallback_reason: str | None = None  # why no champion was used
    constant_guess_mae_pp: float | None = None  # the same error for the training mean P, for scale


def load_champion(uri: str) -> tuple[Predictor, ModelReport] | str:
    """The placement champion of an MLflow store, loaded as the service loads it; else why not."""
    if not uri:
        return "no tracking_uri given"
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).is_file():
        return f"no MLflow store at {uri}"  # and none is created there
    from cotenant.serving.config import ServiceSettings
    from cotenant.serving.models import ChampionSource

    champions = ChampionSource(ServiceSettings(tracking_uri=uri, watch_interval_s=0))
    version = champions.champion_version(PLACEMENT_MODEL)
    if version is None:
        return f"{uri} has no {PLACEMENT_MODEL}@champion"
    try:
        loaded: Predictor = champions.load(PLACEMENT_MODEL, version).predictor
    except (
        Exception
    ) as error:  # e.g. artifacts gone from the store: say so, and answer with a model of our own
        return f"{PLACEMENT_MODEL} version {version} in {uri} could not be loaded: {error}"
    run = champions.client.get_run(champions.client.get_model_version(PLACEMENT_MODEL, version).run_id)
    return loaded, ModelReport(
        origin=f"models:/{PLACEMENT_MODEL}@champion (version {version}) from {uri}",
        held_out_mae_pp=run.data.metrics.get("test_mae"),
        held_out_coverage=run.data.metrics.get("test_coverage"),
        held_out_applications=[a for a in run.data.params.get("test_apps", "").split(",") if a],
    )


def train_here(reason: str) -> tuple[Predictor, ModelReport]:
    from cotenant.training.config import TrainConfig
    from cotenant.training.run import train

    print(f"training a placement model here: {reason}")
    epochs = scenario.training_epochs
    # tracking_uri "none": nothing is written to any MLflow store, ./var included
    config = TrainConfig(model="placement", source=source, epochs=epochs, tracking_uri="none", progress=False)
    trained = train(config, table=table)
    return trained.outcome.predictor, ModelReport(
        origin=f"trained here ({epochs} epochs, leave-applications-out split)",
        held_out_mae_pp=trained.metrics["mae"],
        held_out_coverage=trained.metrics["coverage"],
        held_out_applications=trained.split.test_apps,
        fallback_reason=reason,
    )


champion = load_champion(scenario.tracking_uri)
predictor, model_report = train_here(champion) if isinstance(champion, str) else champion
is_held_out = pl.col("application").is_in(model_report.held_out_applications)
held_out_labels = table.runs.filter(is_held_out)["label"]
if len(held_out_labels):
    training_mean = table.runs.filter(~is_held_out)["label"].mean()
    model_report.constant_guess_mae_pp = float((held_out_labels - training_mean).abs().mean()) * 100


def shown(value: float | None, spec: str) -> str:
    return "unknown" if value is None else format(value, spec)


report = model_report
print(
    f"model: {report.origin}\nheld-out MAE of P: {shown(report.held_out_mae_pp, '.1f')} pp on"
    f" {report.held_out_applications} (a constant guess: {shown(report.constant_guess_mae_pp, '.1f')} pp);"
    f" the {QUANTILES[-1] - QUANTILES[0]:.0%} interval holds {shown(report.held_out_coverage, '.0%')} of them"
)

# %% [markdown]
# ## Placing the stream
#
# Per policy on the `n_hosts` fleet at `min_p`: workloads placed, hosts used, violations (predicted P under
# the SLO), `lower_end_under_slo` (tenants whose predicted interval reaches under the SLO: within the model's
# error, the ones that may violate in reality) and tenants on hosts more crowded than any training run.


# %%
@dataclass(frozen=True)
class Workload:
    profile_id: str
    cpu_cores: float
    memory_gib: float
    embedding: np.ndarray  # [V, E] from Predictor.encode_profile


@dataclass
class Host:
    tenants: list[Workload] = field(default_factory=list)
    quantiles: np.ndarray = field(default_factory=lambda: np.zeros((0, len(QUANTILES))))  # [K, Q]
    encoding: HostEncoding | None = None

    def fits(self, workload: Workload) -> bool:
        cpu, memory = self.load_after(workload)
        return cpu <= scenario.host_cpu_cores + 1e-9 and memory <= scenario.host_memory_gib + 1e-9

    def load_after(self, workload: Workload) -> tuple[float, float]:
        tenants = [*self.tenants, workload]
        return sum(t.cpu_cores for t in tenants), sum(t.memory_gib for t in tenants)

    def admit(self, workload: Workload, quantiles: np.ndarray) -> None:
        """``quantiles`` [1 + K, Q]: the newcomer's row, then the incumbents' (score_placement's order)."""
        self.tenants.append(workload)
        self.quantiles = np.concatenate([quantiles[1:], quantiles[:1]])
        self.encoding = predictor.encode_host([t.embedding for t in self.tenants])


ALONE = np.ones((1, len(QUANTILES)))  # no neighbour, no interference: P = 1 by definition
series = {p: {m: np.asarray(v) for m, v in profile_series(table, p).items()} for p in set(stream_ids)}
embeddings = {p: predictor.encode_profile(profile) for p, profile in series.items()}
stream = [Workload(p, *requests[p], embeddings[p]) for p in stream_ids]


def score(newcomer: Workload, hosts: list[Host]) -> list[np.ndarray]:
    """Per host, predicted quantiles [1 + K, Q] of the newcomer and each incumbent if it were placed there."""
    occupied = [h for h in hosts if h.tenants]
    by_host: dict[int, np.ndarray] = {}
    if occupied:
        encodings = [h.encoding for h in occupied if h.encoding is not None]
        quantiles, _, offsets = predictor.score_placement_arrays(newcomer.embedding, encodings, explain=False)
        for host, start, end in zip(occupied, offsets[:-1], offsets[1:], strict=True):
            by_host[id(host)] = quantiles[start:end]
    return [by_host.get(id(h), ALONE) for h in hosts]


def most_allocated(hosts: list[Host], workload: Workload) -> Host:
    """Kubernetes' MostAllocated bin packing: the fullest host after placement (ties: the first)."""

    def allocated(host: Host) -> float:
        cpu, memory = host.load_after(workload)
        return cpu / scenario.host_cpu_cores + memory / scenario.host_memory_gib

    return max(hosts, key=allocated)


def place(policy: str, size: int, slo: float) -> list[Host]:
    """Online placement of the whole stream on ``size`` empty hosts; refused workloads are dropped."""
    hosts = [Host() for _ in range(size)]
    for workload in stream:
        candidates = [h for h in hosts if h.fits(workload)]
        if candidates and policy == "requests_only":
            chosen = most_allocated(candidates, workload)
            chosen.admit(workload, score(workload, [chosen])[0])
        elif candidates:
            scored = score(workload, candidates)
            binding = np.array([q[:, MEDIAN].min() for q in scored])  # the service's score: the worst P
            # Consolidate: an empty host only when no occupied one takes the workload within the SLO (the best
            # score alone would first give every workload an empty host of its own, P = 1 there).
            feasible = binding >= slo
            occupied = feasible & np.array([bool(h.tenants) for h in candidates])
            pool = occupied if occupied.any() else feasible
            if pool.any():
                best = int(np.argmax(np.where(pool, binding, -np.inf)))
                candidates[best].admit(workload, scored[best])
    return hosts


@dataclass
class Outcome:
    placed: int
    hosts_used: int
    violations: int  # tenants whose predicted P is under the SLO
    lower_end_under_slo: int  # tenants whose predicted interval reaches under the SLO: at risk
    tenants_beyond_training_range: int  # on hosts with more tenants than any training run had
    median_p: float | None
    predicted_p: list[float]  # of every tenant, ascending


def outcome(hosts: list[Host], slo: float) -> Outcome:
    quantiles = np.concatenate([ALONE[:0], *(h.quantiles for h in hosts)])
    p = quantiles[:, MEDIAN]
    return Outcome(
        placed=len(p),
        hosts_used=sum(1 for h in hosts if h.tenants),
        violations=int((p < slo).sum()),
        lower_end_under_slo=int((quantiles[:, 0] < slo).sum()),
        tenants_beyond_training_range=sum(
            len(h.tenants) for h in hosts if len(h.tenants) > trained_max_tenants
        ),
        median_p=float(np.median(p)) if len(p) else None,
        predicted_p=[round(float(v), 4) for v in sorted(p)],
    )


POLICIES = ("requests_only", "degradation_aware")
at_slo = {
    policy: outcome(place(policy, scenario.n_hosts, scenario.min_p), scenario.min_p) for policy in POLICIES
}
for policy, policy_outcome in at_slo.items():
    print(f"{policy:<18}", {k: v for k, v in asdict(policy_outcome).items() if k != "predicted_p"})

# %% [markdown]
# ## Sensitivity to the SLO
#
# Workloads placed on the `n_hosts` fleet, and hosts needed to place the whole stream: the smallest fleet,
# from the lower bound of the requests up to `max_hosts`, on which the policy refuses nothing (None: none
# within it). Requests-only packing ignores the SLO: its placements stay, only its violations change.
#
# Both policies are online and greedy, so two expectations can fail on some streams: refusing one large
# workload can leave room for two small ones later, so a stricter SLO can place more, or degradation-aware
# placement more than requests-only packing. The cell lists every such case it finds (`greedy_surprises`).

# %%
lower_bound = max(
    1,
    math.ceil(sum(w.cpu_cores for w in stream) / scenario.host_cpu_cores),
    math.ceil(sum(w.memory_gib for w in stream) / scenario.host_memory_gib),
)


@dataclass
class SweepPoint:
    min_p: float
    placed: int  # on the n_hosts fleet
    violations: int  # there
    hosts_needed: int | None  # for the whole stream
    violations_on_hosts_needed: int | None


def sweep_point(policy: str, slo: float) -> SweepPoint:
    on_fleet = outcome(place(policy, scenario.n_hosts, slo), slo)
    for size in range(lower_bound, scenario.max_hosts + 1):
        everything = outcome(place(policy, size, slo), slo)
        if everything.placed == len(stream):
            return SweepPoint(slo, on_fleet.placed, on_fleet.violations, size, everything.violations)
    return SweepPoint(slo, on_fleet.placed, on_fleet.violations, None, None)


sensitivity = {policy: [sweep_point(policy, slo) for slo in sweep] for policy in POLICIES}
for policy, points in sensitivity.items():
    print(policy, *points, sep="\n  ")
aware_points, packing_points = sensitivity["degradation_aware"], sensitivity["requests_only"]
greedy_surprises = {
    "stricter_slo_placed_more": [
        [lenient.min_p, strict.min_p]
        for lenient, strict in itertools.pairwise(aware_points)
        if strict.placed > lenient.placed
    ],
    "aware_placed_more_than_requests_only": [
        aware.min_p
        for aware, packing in zip(aware_points, packing_points, strict=True)
        if aware.placed > packing.placed
    ],
}
print("greedy surprises:", greedy_surprises)

# %% [markdown]
# ## Charts

# %%
out_json = Path(output_json)
charts = Path(figures_dir) if figures_dir else out_json.parent
charts.mkdir(parents=True, exist_ok=True)
figure, axis = plt.subplots(figsize=(6, 3.6))
for policy in POLICIES:
    axis.hist(at_slo[policy].predicted_p, bins=20, range=(0, 1), histtype="step", linewidth=2, label=policy)
axis.axvline(scenario.min_p, color="black", linestyle="--", label=f"SLO: min P {scenario.min_p}")
axis.set(xlabel="predicted P of each tenant", ylabel="tenants")
axis.set_title(f"{scenario.n_workloads} workloads offered to {scenario.n_hosts} hosts")
axis.legend(fontsize=7)
figure.tight_layout()
distribution_png = charts / "consolidation_predicted_p.png"
figure.savefig(distribution_png, dpi=90)

figure, (placed_axis, needed_axis) = plt.subplots(1, 2, figsize=(10, 3.6))
for policy, points in sensitivity.items():
    placed_axis.plot(sweep, [p.placed for p in points], marker="o", label=f"{policy}: placed")
    needed_axis.plot(sweep, [p.hosts_needed or math.nan for p in points], marker="o", label=policy)
violations = [p.violations for p in sensitivity["requests_only"]]
placed_axis.plot(sweep, violations, marker="x", linestyle=":", label="requests_only: tenants under the SLO")
placed_axis.set(xlabel="SLO: minimum predicted P", ylabel=f"workloads on {scenario.n_hosts} hosts")
needed_axis.set(xlabel="SLO: minimum predicted P", ylabel="hosts needed for the whole stream")
placed_axis.legend(fontsize=7)
needed_axis.legend(fontsize=7)
figure.tight_layout()
sensitivity_png = charts / "consolidation_slo_sensitivity.png"
figure.savefig(sensitivity_png, dpi=90)

# %% [markdown]
# ## Key values

# %%
key_values = {
    "scenario": scenario.model_dump(),
    "model": asdict(model_report),
    "trained_max_tenants": trained_max_tenants,
    "requests": {p: dict(zip(("cpu_cores", "memory_gib"), requests[p], strict=True)) for p in series},
    "stream": stream_ids,
    "hosts_lower_bound": lower_bound,
    "at_slo": {policy: asdict(policy_outcome) for policy, policy_outcome in at_slo.items()},
    "sensitivity": {policy: [asdict(p) for p in points] for policy, points in sensitivity.items()},
    "greedy_surprises": greedy_surprises,
    "figures": [str(distribution_png), str(sensitivity_png)],
}
out_json.parent.mkdir(parents=True, exist_ok=True)
out_json.write_text(json.dumps(key_values, indent=2))
