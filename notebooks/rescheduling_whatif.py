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
# # Rescheduling what-if: which running workloads to move, and how few moves are enough?
#
# The question VM rescheduling systems answer: a fleet is running, some tenants are slowed down by their
# neighbours; which tenants should move, and where, to raise the **worst predicted P** (performance
# relative to running alone) with the fewest moves?
#
# - **Fleet state.** `n_hosts` hosts, each running the tenants of one recorded co-run of the dataset
#   (drawn with `seed`), plus `empty_hosts` of them left empty. A tenant asks for the CPUs and memory its
#   lab cgroup had (`cpus=`, `mem=` in its profile id); a host takes at most `host_cpus`,
#   `host_memory_mb` and `max_tenants_per_host` tenants.
# - **Current P** of every tenant comes from the monitoring model, fed with the co-run's recorded
#   telemetry when the dataset holds a run of that tenant beside exactly these neighbours; otherwise the
#   series are built from the solo profiles (the tenant's own, its neighbours') with no host series: the
#   table below says which, for every tenant.
# - **Hypotheticals** (a tenant moved from host a to host b) are scored with the placement model, which
#   predicts P for everyone on a host from solo profiles alone; a tenant alone on a host has P = 1 by
#   definition.
# - **Rated tenants.** Only workloads the dataset labels as targets have a P the models learnt; the lab's
#   pressure generators ran only as neighbours. They stay in the fleet (they slow others down, and moving
#   them away is a valid fix) but the worst and mean P below are over rated tenants only.
# - **Plans.** Greedy: each step takes the move that most raises the fleet's worst P (ties: mean P), and
#   stops when no move raises it by `min_gain` or `move_budget` moves are spent. Exact (small fleets):
#   every plan of up to `exact_moves` moves, the yardstick for greedy. The monitoring model then
#   re-checks the greedy plan.

# %%
import json
import math
import re
import warnings
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import polars as pl
from cotenant.datasets import load_source
from cotenant.models import MODELS
from cotenant.serving.config import ServiceSettings
from cotenant.serving.models import ChampionSource
from cotenant.training.config import TrainConfig
from cotenant.training.run import train
from cotenant.training.tracking import REGISTERED
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from cotenant.demo import profile_series

plt.switch_backend("Agg")  # charts go to PNG files; no display needed
warnings.filterwarnings("ignore", category=UserWarning)  # Lightning's and MLflow's notices on tiny runs

# %% tags=["parameters"]
n_hosts = 8  # hosts in the fleet, the empty ones included
empty_hosts = 1  # hosts with no tenant at the start (spare capacity)
host_cpus = 6.0  # CPUs a host offers to its tenants' requests
host_memory_mb = 4096  # memory a host offers, MB
max_tenants_per_host = 4  # the dataset's co-runs have at most 4 tenants: the models never saw more
move_budget = 6  # greedy stops after this many moves
min_gain = 0.005  # a move must raise the worst P by this much (half a point) to be worth it
exact_moves = 2  # exact search over plans of up to this many moves (0: skip)
exact_max_states = 200_000  # skip the exact search when it would visit more fleet states than this
seed = 0
source = "bundled"  # cotenant.datasets source of telemetry and solo profiles
tracking_uri = ""  # MLflow URI holding both tasks' champions; empty: train here
# trained when there is no champion: a single-threaded tree fits in seconds even on a busy machine, where
# OpenMP models (hist-gradient-boosting) and cloudformer take minutes
monitoring_model = "decision-tree"
monitoring_options: dict[
    str, Any
] = {}  # overrides of that model's typed config, e.g. {"search_iterations": 4}
placement_epochs = 20
output_json = "rescheduling_whatif.json"  # key values for tests and downstream reports
figures_dir = ""  # where PNG charts go; empty: next to output_json


# %%
Move = tuple[str, str, str]  # (tenant, from host, to host)
Value = tuple[float, float]  # (worst P, mean P) of the fleet: compared in this order


class Scenario(BaseModel):
    """The parameters, checked before any work: a bad value fails here, with its name."""

    model_config = ConfigDict(extra="forbid")
    n_hosts: int = Field(ge=2)
    empty_hosts: int = Field(ge=0)
    host_cpus: float = Field(gt=0)
    host_memory_mb: float = Field(gt=0)
    max_tenants_per_host: int = Field(ge=2)
    move_budget: int = Field(ge=0)
    min_gain: float = Field(ge=0, lt=1)
    exact_moves: int = Field(ge=0)
    exact_max_states: int = Field(ge=1)
    placement_epochs: int = Field(ge=1)
    monitoring_model: str
    monitoring_options: dict[str, Any]

    @model_validator(mode="after")
    def consistent(self) -> "Scenario":
        if self.empty_hosts >= self.n_hosts:
            raise ValueError(f"empty_hosts ({self.empty_hosts}) must be below n_hosts ({self.n_hosts})")
        spec = MODELS.get(self.monitoring_model)
        if spec is None or spec.task != "monitoring":
            known = sorted(name for name, s in MODELS.items() if s.task == "monitoring")
            raise ValueError(f"monitoring_model {self.monitoring_model!r} is not one of {known}")
        try:
            spec.config_type.model_validate(self.monitoring_options)
        except ValidationError as error:
            raise ValueError(f"monitoring_options do not fit {self.monitoring_model}: {error}") from error
        return self


scenario = Scenario.model_validate({name: globals()[name] for name in Scenario.model_fields})
table = load_source(source)

# %% [markdown]
# ## Models: the champions of `tracking_uri`, or small ones trained here
# Training goes to an MLflow store in this notebook's working directory, never to the project's `./var`.

# %%
local_uri = f"sqlite:///{Path.cwd() / 'rescheduling-mlflow.db'}"
recipes = {
    REGISTERED["monitoring"]: TrainConfig(model=monitoring_model, model_options=monitoring_options),
    REGISTERED["placement"]: TrainConfig(model="placement", epochs=placement_epochs),
}
predictors, model_sources = {}, {}
for name, recipe in recipes.items():
    origin = ChampionSource(ServiceSettings(tracking_uri=tracking_uri or local_uri))
    version = origin.champion_version(name)
    if version is None and tracking_uri:
        print(f"{tracking_uri} has no {name}@champion: using one trained here")
    if version is None:
        origin = ChampionSource(ServiceSettings(tracking_uri=local_uri))
        if (version := origin.champion_version(name)) is None:  # none from an earlier run here either
            train(recipe.model_copy(update={"tracking_uri": local_uri, "progress": False}), table)
            version = origin.champion_version(name)
    if version is None:
        raise RuntimeError(f"no {name}@champion in {local_uri} after training")
    try:
        predictors[name] = origin.load(name, version).predictor
    except Exception as error:  # e.g. a registry whose artifact store is gone: say which URI and model
        raise RuntimeError(
            f"{origin.settings.tracking_uri}: cannot load {name} v{version}: {error}"
        ) from error
    trained_here = origin.settings.tracking_uri == local_uri
    model_sources[name] = {
        "model": predictors[name].metadata.model_name,
        "version": version,
        "origin": "trained here" if trained_here else "champion",
    }
monitor, placer = predictors[REGISTERED["monitoring"]], predictors[REGISTERED["placement"]]
print(json.dumps(model_sources, indent=1))

# %% [markdown]
# ## The fleet: hosts from recorded co-runs, tenants' requests from their profile ids


# %%
def requests_of(profile_id: str) -> tuple[float, float]:
    cpus, memory = re.search(r"cpus=([\d.]+)", profile_id), re.search(r"mem=(\d+)", profile_id)
    if cpus is None or memory is None:
        raise ValueError(f"profile {profile_id!r}: no cpus=/mem= request in its id; cannot check capacity")
    return float(cpus[1]), float(memory[1])


def fits(profiles: list[str]) -> bool:
    cpus = sum(requests_of(p)[0] for p in profiles)
    memory = sum(requests_of(p)[1] for p in profiles)
    return len(profiles) <= max_tenants_per_host and cpus <= host_cpus and memory <= host_memory_mb


runs = table.runs.filter(pl.col("target_profile").is_not_null()).sort("run_id")
co_runs = [[t, *n] for t, n in zip(runs["target_profile"], runs["neighbour_profiles"].to_list(), strict=True)]
fitting = [i for i, profiles in enumerate(co_runs) if fits(profiles)]
busy = n_hosts - empty_hosts
if len(fitting) < busy:
    raise ValueError(f"n_hosts: {busy} busy hosts asked, only {len(fitting)} co-runs fit a host's capacity")
hosts = [f"host-{h:02d}" for h in range(n_hosts)]
tenants: dict[str, str] = {}  # tenant id -> profile id
start: dict[str, str] = {}  # tenant id -> host
drawn = sorted(np.random.default_rng(seed).choice(fitting, size=busy, replace=False))
for host, run in zip(hosts[:busy], drawn, strict=True):
    for profile in co_runs[run]:
        tenant = f"w{len(tenants):02d}-{profile.split('/')[0]}"
        tenants[tenant], start[tenant] = profile, host
tenant_ids = list(tenants)
rated = [t for t in tenant_ids if tenants[t] in set(runs["target_profile"])]  # a P the models learnt
print(f"{len(tenants)} tenants ({len(rated)} rated) on {busy} busy hosts and {empty_hosts} empty ones")


def on(state: dict[str, str], host: str) -> list[str]:
    return [t for t in tenant_ids if state[t] == host]


def profiles_on(state: dict[str, str], host: str) -> tuple[str, ...]:
    return tuple(sorted(tenants[t] for t in on(state, host)))


# %% [markdown]
# ## Current P: the monitoring model on recorded co-run telemetry (or solo profiles where there is none)

# %%
solo = {p: {m: np.asarray(v) for m, v in profile_series(table, p).items()} for p in set(tenants.values())}
recorded: dict[tuple[str, tuple[str, ...]], str] = {}  # (tenant, sorted neighbours) -> first such co-run
for run_id, target, others in zip(
    runs["run_id"], runs["target_profile"], runs["neighbour_profiles"], strict=True
):
    recorded.setdefault((target, tuple(sorted(others))), run_id)
monitored: dict[tuple[str, tuple[str, ...]], tuple[float, str]] = {}


def monitoring_p(profile: str, others: tuple[str, ...]) -> tuple[float, str]:
    """P of a tenant beside `others` (sorted profile ids), and where its input series came from."""
    key = (profile, others)
    if key not in monitored and not others:
        monitored[key] = (1.0, "alone")
    elif key not in monitored and key in recorded:
        frame = table.telemetry.filter(pl.col("run_id") == recorded[key]).sort("second")
        target = {m: frame[f"self__{m}"].to_numpy() for m in table.metrics}
        neighbour_mean = {m: frame[f"neighbour_mean__{m}"].to_numpy() for m in table.metrics}
        host = {c.removeprefix("host__"): frame[c].to_numpy() for c in table.host_columns}
        monitored[key] = (monitor.predict_degradation(target, [neighbour_mean], host).p, "co-run telemetry")
    elif key not in monitored:  # no host series: the model fills them with its training mean
        estimate = monitor.predict_degradation(solo[profile], [solo[o] for o in others], None)
        monitored[key] = (estimate.p, "solo profiles")
    return monitored[key]


def monitoring_view(state: dict[str, str]) -> dict[str, tuple[float, str]]:
    view = {}
    for tenant in tenant_ids:
        others = tuple(sorted(tenants[o] for o in on(state, state[tenant]) if o != tenant))
        view[tenant] = monitoring_p(tenants[tenant], others)
    return view


current = monitoring_view(start)
print(
    pl.DataFrame(
        [(t, start[t], p, series) for t, (p, series) in current.items()],
        schema=["tenant", "host", "P (monitoring)", "series from"],
        orient="row",
    )
)

# %% [markdown]
# ## Scoring hypotheticals with the placement model (cached per host contents)

# %%
encodings = {p: placer.encode_profile(series) for p, series in solo.items()}
scored: dict[tuple[str, ...], dict[str, float]] = {}  # sorted profiles on a host -> profile -> P


def score_joining(newcomer: str, incumbents: list[tuple[str, ...]]) -> None:
    """P of everyone on each host if `newcomer` joined it, in one vectorised call; fills the cache."""
    missing = [c for c in incumbents if c and tuple(sorted((*c, newcomer))) not in scored]
    encoded = [placer.encode_host([encodings[p] for p in c]) for c in missing]
    estimates = placer.score_placement(encodings[newcomer], encoded) if missing else []
    for incumbent_profiles, estimate in zip(missing, estimates, strict=True):
        p = {profile: e.p for profile, e in zip(incumbent_profiles, estimate.incumbents, strict=True)}
        scored[tuple(sorted((*incumbent_profiles, newcomer)))] = {**p, newcomer: estimate.newcomer.p}


def placement_view(state: dict[str, str]) -> dict[str, float]:
    view = {}
    for host in hosts:
        profiles = profiles_on(state, host)
        if len(profiles) > 1 and profiles not in scored:
            score_joining(profiles[0], [profiles[1:]])
        view.update({t: scored[profiles][tenants[t]] if len(profiles) > 1 else 1.0 for t in on(state, host)})
    return view


def fleet_value(state: dict[str, str]) -> Value:
    view = placement_view(state)
    p = [view[t] for t in rated]
    return min(p), float(np.mean(p))


def moves_from(state: dict[str, str]) -> list[Move]:
    """Every (tenant, from, to) the destination's capacity allows."""
    loads = {h: list(profiles_on(state, h)) for h in hosts}
    return [
        (t, state[t], h) for t in tenant_ids for h in hosts if h != state[t] and fits([*loads[h], tenants[t]])
    ]


def moved(state: dict[str, str], move: Move) -> dict[str, str]:
    return {**state, move[0]: move[2]}


# %% [markdown]
# ## Greedy plan, and the exact yardstick on small fleets

# %%
state, greedy_moves, greedy_states, greedy_values = start, list[Move](), [start], [fleet_value(start)]
while len(greedy_moves) < move_budget and (candidates := moves_from(state)):
    for tenant in tenant_ids:  # batched: a tenant joining every host it fits on, in one placement call
        score_joining(tenants[tenant], [profiles_on(state, b) for t, _, b in candidates if t == tenant])
    value, move = max(((fleet_value(moved(state, m)), m) for m in candidates), key=lambda o: o[0])
    if value[0] < greedy_values[-1][0] + min_gain:
        break  # no move raises the worst P enough
    state = moved(state, move)
    greedy_moves.append(move)
    greedy_states.append(state)
    greedy_values.append(value)
print(pl.DataFrame(greedy_moves, schema=["tenant", "from", "to"], orient="row"), greedy_values)


def exact_search(max_moves: int) -> tuple[list[tuple[Value, list[Move]]], int]:
    """Best (value, plan) using at most j moves for j = 0..max_moves (breadth-first over fleet states; a
    fleet reached again later is not expanded again), and the number of fleet states visited."""
    frontier: dict[tuple[str, ...], list[Move]] = {tuple(start[t] for t in tenant_ids): []}
    seen = set(frontier)
    best = [(fleet_value(start), list[Move]())]
    for _ in range(max_moves):
        layer: dict[tuple[str, ...], list[Move]] = {}
        for key, plan in frontier.items():
            here = dict(zip(tenant_ids, key, strict=True))
            for move in moves_from(here):
                reached = tuple(moved(here, move)[t] for t in tenant_ids)
                if reached not in seen:
                    seen.add(reached)
                    layer[reached] = [*plan, move]
        found = [(fleet_value(dict(zip(tenant_ids, k, strict=True))), plan) for k, plan in layer.items()]
        best.append(max([best[-1], *found], key=lambda o: o[0]))  # ties keep the shorter plan
        frontier = layer
    return best, len(seen)


# distinct fleets within j moves: at most C(n, j) tenant choices times (H - 1)^j destinations
state_bound = sum(math.comb(len(tenants), j) * (n_hosts - 1) ** j for j in range(exact_moves + 1))
runnable = exact_moves > 0 and state_bound <= exact_max_states
exact_best, exact_states = exact_search(exact_moves) if runnable else ([], 0)
if not runnable:
    print(f"exact search skipped: exact_moves={exact_moves}, {state_bound} states, cap {exact_max_states}")
greedy_worst = [greedy_values[min(j, len(greedy_values) - 1)][0] for j in range(len(exact_best))]
gap = [value[0] - greedy_worst[j] for j, (value, _) in enumerate(exact_best)]
if runnable:
    print(f"exact: {exact_states} fleet states; gap of greedy to exact by moves: {gap}")

# %% [markdown]
# ## The monitoring model re-checks the greedy plan

# %%
monitoring_steps = [monitoring_view(step) for step in greedy_states]
after = monitoring_steps[-1]
worst_monitored = [min(view[t][0] for t in rated) for view in monitoring_steps]
fallbacks = sum(series == "solo profiles" for _, series in after.values())
print(
    f"monitoring: worst P {worst_monitored[0]:.3f} -> {worst_monitored[-1]:.3f} over the plan;"
    f" {fallbacks} of {len(after)} tenants after it predicted from solo profiles"
)
for label, step in (("before", 0), ("after", -1)):  # the two models may disagree on who is worst
    by_monitoring, by_placement = monitoring_steps[step], placement_view(greedy_states[step])
    print(
        f"worst rated tenant {label}: by monitoring {min(rated, key=lambda t: by_monitoring[t][0])},"
        f" by placement {min(rated, key=by_placement.__getitem__)}"
    )

# %% [markdown]
# ## Charts

# %%
out_json = Path(output_json)
charts = Path(figures_dir) if figures_dir else out_json.parent
charts.mkdir(parents=True, exist_ok=True)
figure, axis = plt.subplots(figsize=(6, 3.6))
steps = range(len(greedy_values))
axis.plot(steps, [w for w, _ in greedy_values], marker="o", label="greedy: worst P (placement model)")
axis.plot(steps, [m for _, m in greedy_values], marker="o", linestyle="--", label="greedy: mean P")
axis.plot(steps, worst_monitored, marker="s", label="greedy: worst P (monitoring re-check)")
if exact_best:
    axis.plot(range(len(exact_best)), [v[0] for v, _ in exact_best], marker="^", label="exact: worst P")
axis.set(xlabel="moves", ylabel="predicted P", xticks=range(max(len(greedy_values), len(exact_best))))
axis.legend(fontsize=7)
figure.tight_layout()
moves_png = charts / "rescheduling_p_vs_moves.png"
figure.savefig(moves_png, dpi=90)

views = {"before": (start, placement_view(start)), "after": (state, placement_view(state))}
figure, axis = plt.subplots(figsize=(max(6.0, 0.8 * n_hosts), 3.6))
for offset, (label, (fleet, view)) in zip((-0.2, 0.2), views.items(), strict=True):
    worst_on = [min((view[t] for t in on(fleet, h) if t in rated), default=1.0) for h in hosts]
    axis.bar(np.arange(n_hosts) + offset, worst_on, width=0.4, alpha=0.6, label=f"worst P {label}")
    for h, host in enumerate(hosts):
        shown = [view[t] for t in on(fleet, host) if t in rated]
        axis.scatter([h + offset] * len(shown), shown, s=12, c="k")
axis.set_xticks(range(n_hosts), hosts, rotation=40)
axis.set_ylabel("predicted P (dots: rated tenants)")
axis.legend(fontsize=7)
figure.tight_layout()
hosts_png = charts / "rescheduling_hosts_before_after.png"
figure.savefig(hosts_png, dpi=90)

# %% [markdown]
# ## Key values

# %%
as_dicts = [{"tenant": t, "from": a, "to": b} for t, a, b in greedy_moves]
result = {
    "scenario": scenario.model_dump(),
    "models": model_sources,
    "tenants": {
        t: {"profile": p, "cpus": requests_of(p)[0], "memory_mb": requests_of(p)[1], "rated": t in rated}
        for t, p in tenants.items()
    },
    "fleet_before": {h: on(start, h) for h in hosts},
    "fleet_after": {h: on(state, h) for h in hosts},
    "current": {t: {"p_monitoring": p, "series": series} for t, (p, series) in current.items()},
    "placement_before": views["before"][1],
    "placement_after": views["after"][1],
    "greedy": {
        "moves": as_dicts,
        "worst_by_moves": [w for w, _ in greedy_values],
        "mean_by_moves": [m for _, m in greedy_values],
    },
    "exact": {
        "max_moves": exact_moves,
        "states": exact_states,
        "worst_by_moves": [v[0] for v, _ in exact_best],
        "mean_by_moves": [v[1] for v, _ in exact_best],
        "moves": [{"tenant": t, "from": a, "to": b} for t, a, b in exact_best[-1][1]] if exact_best else [],
    }
    if exact_best
    else None,
    "gap_by_moves": gap,
    "monitoring_recheck": {
        "worst_by_moves": worst_monitored,
        "after": {t: {"p_monitoring": p, "series": series} for t, (p, series) in after.items()},
        "solo_profile_fallbacks_after": fallbacks,
    },
    "figures": [str(moves_png), str(hosts_png)],
}
out_json.parent.mkdir(parents=True, exist_ok=True)
out_json.write_text(json.dumps(result, indent=2))
print(json.dumps({k: result[k] for k in ("greedy", "exact", "gap_by_moves")}, indent=1))
