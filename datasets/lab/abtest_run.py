"""Running the closed-loop A/B test (``cotenant lab abtest PLAN --out DIR``; decisions in ``abtest.py``).

1. **Hosts**: one lab cgroup per host, each on its own CPUs (a cpuset) and memory, under one lab group.
2. **Solo references**: every tenant alone on the first host, ``solo_repeats`` times.
3. **The cotenant policy, live**: ``cotenant serve`` with the champions of ``--tracking-uri``, a real
   ``cotenant collect --push`` per host (host name = the host cgroup), each tenant's profile registered (its
   solo telemetry, and its probes when the plan's dataset has them). Tenants arrive one by one; each is placed
   through the extender's ``filter`` and ``prioritize``, started on its host, and ``settle_s`` later the next
   arrives, so every decision reads the live telemetry of the tenants already placed.
4. **Every policy's final placement, for real**: all tenants of all hosts started together, every tenant
   measured at once (one thread per tenant), ``repeats`` times. P = performance / its solo median.
5. **Report**: per policy, placed / refused, mean and worst P, SLO misses (a refused tenant is a miss); for
   cotenant its predicted P per tenant (the champion on the final placement) beside the measured one.

Ctrl-C or SIGTERM stops every process and removes every cgroup; the measured runs are kept in a journal.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from cotenant.datasets.lab.abtest import AbTestPlan, CpuWeights, Placement, TenantSpec, place_stream
from cotenant.datasets.lab.cgroups import (
    LAB_PREFIX,
    Cgroup,
    CgroupError,
    CgroupHierarchy,
    cpu_list,
    detect_hierarchy,
    kill_tree,
    pin_cpus,
    with_cpuset,
)
from cotenant.datasets.lab.plan import RoleConfig, request_shares
from cotenant.datasets.lab.runner import Role
from cotenant.datasets.lab.workloads import WORKLOADS
from cotenant.datasets.lab.workloads.base import Workload


class AbTestError(RuntimeError):
    """The experiment cannot run as planned (the message says why and what to change)."""


# ---- hosts -----------------------------------------------------------------------------------------------
@dataclass
class Cluster:
    """The hosts of the experiment: ``<group>/<host>`` cgroups, each pinned to its own CPUs."""

    plan: AbTestPlan
    hierarchy: CgroupHierarchy
    group: str

    def host_cpus(self) -> dict[str, str]:
        per = self.plan.hosts.cpus
        return {host: cpu_list(index * per, per) for index, host in enumerate(self.plan.host_names())}

    def create(self) -> None:
        memory = self.plan.hosts.memory_mib * 1024 * 1024
        # ``cotenant lab clean`` removes a lab group whose owner has gone: this process owns it while it runs.
        for directory in self.hierarchy.directories(f"{self.group}/owner-{os.getpid()}"):
            directory.mkdir(parents=True, exist_ok=True)
        if self.hierarchy.pure_v2:
            unified = self.hierarchy.unified
            assert unified is not None
            _enable(unified, ["cpu", "memory"])
            _enable(unified / self.group, ["cpu", "memory"])
        for host, cpus in self.host_cpus().items():
            try:
                pin_cpus(self.hierarchy, f"{self.group}/{host}", cpus)
            except CgroupError as error:
                raise AbTestError(f"{error}: hosts need disjoint CPUs") from error
            if self.hierarchy.pure_v2:
                assert self.hierarchy.unified is not None
                (self.hierarchy.unified / self.group / host / "memory.max").write_text(str(memory))
            else:
                limit = self.hierarchy.v1["memory"] / self.group / host / "memory.limit_in_bytes"
                limit.write_text(str(memory))

    def tenant_cgroup(self, host: str, tenant: str) -> Cgroup:
        return Cgroup(self.hierarchy, f"{self.group}/{host}/{tenant}")

    def remove(self) -> None:
        kill_tree(self.hierarchy, self.group)


def _enable(directory: Path, controllers: list[str]) -> None:
    offered = (directory / "cgroup.controllers").read_text().split()
    wanted = [name for name in controllers if name in offered]
    (directory / "cgroup.subtree_control").write_text(" ".join(f"+{name}" for name in wanted))


# ---- running tenants -------------------------------------------------------------------------------------
def role_config(plan: AbTestPlan, tenant: TenantSpec) -> RoleConfig:
    """The tenant's cgroup runs at its limits (the scheduler placed it by its requests), weighted by its
    CPU request where the plan's ``cpu_weights`` says so."""
    limits = tenant.limits or tenant.requests.model_copy(update={"cpus": float(plan.hosts.cpus)})
    shares = request_shares(tenant.requests.cpus if plan.cpu_weights == "requests" else None)
    return RoleConfig(
        workload=tenant.workload,
        phase_levels=(tenant.level,),
        schedule=None,
        cpus=limits.cpus,
        memory_mib=limits.memory_mib,
        duration_s=plan.duration_s,
        cpu_shares=shares,
    )


def workload_of(plan: AbTestPlan, tenant: TenantSpec) -> Workload:
    if tenant.workload in plan.commands:
        from cotenant.datasets.lab.command import CommandWorkload

        return CommandWorkload(tenant.workload, plan.commands[tenant.workload])
    return WORKLOADS[tenant.workload]()


def tenant_latency(plan: AbTestPlan) -> dict[str, bool]:
    """Per tenant whether its metric is a latency (lower is better): what its profile is registered with."""
    return {tenant.name: not workload_of(plan, tenant).higher_is_better for tenant in plan.tenants}


def tenant_role(cluster: Cluster, host: str, tenant: TenantSpec, scratch: Path, logs: Path) -> Role:
    """A tenant as the lab runs a workload: its configuration in its cgroup under its host."""
    plan = cluster.plan
    cgroup = cluster.tenant_cgroup(host, tenant.name)
    return Role(tenant.name, role_config(plan, tenant), workload_of(plan, tenant), cgroup, scratch, logs)


def measure_together(
    cluster: Cluster, placement: dict[str, list[TenantSpec]], scratch: Path, logs: Path
) -> dict[str, float]:
    """Every tenant of every host started together and measured at once: performance per tenant."""
    plan = cluster.plan
    logs.mkdir(parents=True, exist_ok=True)
    roles = [
        (tenant, tenant_role(cluster, host, tenant, scratch, logs))
        for host, tenants in placement.items()
        for tenant in tenants
    ]
    results: dict[str, float] = {}
    errors: list[str] = []
    try:
        for _, role in roles:
            role.setup()
        time.sleep(plan.warmup_s)

        def measure(tenant: TenantSpec, role: Role) -> None:
            try:
                phases = role.run_phases()
                results[tenant.name] = sum(phases) / len(phases)
            except Exception as error:  # a tenant that fails costs its own result only
                errors.append(f"{tenant.name}: {error}")

        threads = [threading.Thread(target=measure, args=pair) for pair in roles]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        for _, role in roles:
            role.stop()
        for _, role in roles:
            with contextlib.suppress(OSError):
                kill_tree(cluster.hierarchy, role.cgroup.relative)
    if errors:
        (logs / "failures.txt").write_text("\n".join(errors))
    return results


# ---- the live cotenant policy ----------------------------------------------------------------------------
@dataclass
class Service:
    url: str
    token: str


def extender_scores(
    service: Service, min_performance: float
) -> Callable[[TenantSpec, list[str]], dict[str, float]]:
    """The cotenant policy's question, asked as kube-scheduler asks it: filter, then prioritize."""
    import httpx

    def scores(tenant: TenantSpec, hosts: list[str]) -> dict[str, float]:
        pod = {
            "metadata": {
                "name": tenant.name,
                "labels": {"cotenant.io/profile": tenant.name},
                "annotations": {"cotenant.io/min-performance": str(min_performance)},
            }
        }
        kept = httpx.post(f"{service.url}/filter", json={"Pod": pod, "NodeNames": hosts}, timeout=30).json()
        passing = kept.get("NodeNames") or []
        if not passing:
            return {}
        ranked = httpx.post(f"{service.url}/prioritize", json={"Pod": pod, "NodeNames": passing}, timeout=30)
        return {item["Host"]: float(item["Score"]) for item in ranked.json()}

    return scores


@contextlib.contextmanager
def running_in_background(
    cluster: Cluster, scratch: Path, logs: Path
) -> Iterator[Callable[[TenantSpec, str], None]]:
    """Start placed tenants on their hosts and keep them running (for the live decisions); stop them all."""
    plan = cluster.plan
    roles: list[Role] = []

    def start(tenant: TenantSpec, host: str) -> None:
        role = tenant_role(cluster, host, tenant, scratch, logs)
        role.setup()
        role.start_background(int(plan.settle_s * (len(plan.tenants) + 2) + plan.duration_s))
        roles.append(role)
        time.sleep(plan.settle_s)  # the collectors push this long before the next decision

    try:
        yield start
    finally:
        for role in roles:
            role.stop()
            with contextlib.suppress(OSError):
                kill_tree(cluster.hierarchy, role.cgroup.relative)


def place_live(plan: AbTestPlan, cluster: Cluster, service: Service, scratch: Path, logs: Path) -> Placement:
    with running_in_background(cluster, scratch, logs / "live") as start:
        return place_stream(plan, "cotenant", extender_scores(service, plan.min_performance), start)


# ---- the journal -----------------------------------------------------------------------------------------
def append(journal: Path, record: dict[str, Any]) -> None:
    with journal.open("a") as out:
        out.write(json.dumps(record) + "\n")
        out.flush()
        os.fsync(out.fileno())


def group_name(plan: AbTestPlan, out: Path) -> str:
    import hashlib

    return LAB_PREFIX + "abtest-" + hashlib.sha256(f"{plan.name}:{out.resolve()}".encode()).hexdigest()[:8]


def make_cluster(plan: AbTestPlan, out: Path) -> Cluster:
    plan.check_machine(os.cpu_count() or 1)
    try:
        hierarchy = with_cpuset(detect_hierarchy())
    except CgroupError as error:
        raise AbTestError(f"{error}: hosts need disjoint CPUs") from error
    return Cluster(plan, hierarchy, group_name(plan, out))


# ---- the whole experiment ----------------------------------------------------------------------------------
Progress = Callable[[str], None]


def solo_references(
    cluster: Cluster, scratch: Path, out: Path, journal: Path, progress: Progress
) -> list[dict[str, Any]]:
    """Every tenant alone on the first host, ``solo_repeats`` times, with a collector recording its telemetry
    (its profile for the service)."""
    from cotenant.datasets.lab.session import start_collector, stop_collector

    plan = cluster.plan
    first = plan.host_names()[0]
    collector = start_collector(
        cluster.hierarchy,
        cluster.group,
        out / "telemetry",
        out / "collector.log",
        ["--cgroup-glob", f"{cluster.group}/*/*", "--out", str(out / "telemetry")],
    )
    records = []
    try:
        for tenant in plan.tenants:
            for repeat in range(plan.solo_repeats):
                progress(f"solo {tenant.name} ({repeat + 1}/{plan.solo_repeats})")
                started = time.time()
                measured = measure_together(
                    cluster, {first: [tenant]}, scratch, out / "logs" / f"solo-{tenant.name}-{repeat}"
                )
                record = {
                    "kind": "solo",
                    "tenant": tenant.name,
                    "repeat": repeat,
                    "started_at": started,
                    "ended_at": time.time(),
                    "cgroup": cluster.tenant_cgroup(first, tenant.name).relative,
                    "performance": measured.get(tenant.name),
                }
                append(journal, record)
                records.append(record)
    finally:
        stop_collector(collector)
    return records


def solo_medians(plan: AbTestPlan, solos: list[dict[str, Any]], out: Path) -> dict[str, float]:
    """Each tenant's solo reference; a tenant with none cannot be scored, so the experiment stops here."""
    medians = {}
    for tenant in plan.tenants:
        values = [s["performance"] for s in solos if s["tenant"] == tenant.name and s["performance"]]
        if not values:
            raise AbTestError(
                f"tenant {tenant.name} ({tenant.workload}): no solo run succeeded; see {out}/logs"
            )
        medians[tenant.name] = float(np.median(values))
    return medians


def tenant_profiles(out: Path, solos: list[dict[str, Any]]) -> dict[str, dict[str, list[float]]]:
    """Each tenant's solo profile (its first solo's telemetry), as the service takes it."""
    from datetime import UTC, datetime

    import polars as pl
    from cotenant.datasets.sources.lab import build_profiles, scan_table

    records = pl.DataFrame(
        {
            "kind": ["solo"] * len(solos),
            "config_key": [s["tenant"] for s in solos],
            "repeat": [s["repeat"] for s in solos],
            "started_at": [datetime.fromtimestamp(s["started_at"], UTC) for s in solos],
            "ended_at": [datetime.fromtimestamp(s["ended_at"], UTC) for s in solos],
            "target_cgroup": [s["cgroup"] for s in solos],
        }
    )
    schema = scan_table(out / "telemetry", "cgroup").collect_schema()
    metrics = [c for c in schema if c not in ("timestamp", "target", "table")]
    frame = build_profiles(out / "telemetry", records, metrics)
    profiles: dict[str, dict[str, list[float]]] = {}
    for (tenant,), rows in frame.group_by("profile_id"):
        series = {}
        for metric in metrics:
            values = rows[metric].to_numpy().astype(float)
            finite = values[np.isfinite(values)]
            if len(finite):
                series[metric] = finite.tolist()
        profiles[str(tenant)] = series
    return profiles


@contextlib.contextmanager
def live_service(
    cluster: Cluster,
    out: Path,
    tracking_uri: str,
    profiles: dict[str, dict[str, list[float]]],
    probes: dict[str, dict[str, float]],
) -> Iterator[Service]:
    """``cotenant serve`` on loopback with the registry's champions, a pushing ``cotenant collect`` per host
    (host name = the host), and every tenant's profile registered."""
    import secrets

    import httpx
    from cotenant.datasets.lab.session import start_collector, stop_collector
    from cotenant.serving.cli import serve_command
    from cotenant.serving.config import ServiceSettings
    from cotenant.serving.local_servers import free_port, start_server, stop_server, wait_ready

    token = secrets.token_urlsafe(16)
    port = free_port()
    settings = ServiceSettings(
        tracking_uri=tracking_uri,
        token=token,
        watch_interval_s=0,
        shadow_alias="",
        host_cores=float(
            cluster.plan.hosts.cpus
        ),  # the model's CPU shares read the hosts' cpusets, not the machine
        extender_rule=cluster.plan.extender_rule,
    )
    command, env = serve_command("127.0.0.1", port, 1, settings.to_env(), [])
    url = f"http://127.0.0.1:{port}"
    with (out / "service.log").open("ab") as log:
        server = start_server(command, env, log)
    agents = []
    try:
        wait_ready(url, server, 300, out / "service.log")
        for host in cluster.plan.host_names():
            agents.append(
                start_collector(
                    cluster.hierarchy,
                    cluster.group,
                    out,
                    out / f"agent-{host}.log",
                    [
                        "--cgroup-glob",
                        f"{cluster.group}/{host}/*",
                        "--push",
                        url,
                        "--token",
                        token,
                        "--host-name",
                        host,
                    ],
                    name=f"agent-{host}",
                )
            )
        latency = tenant_latency(cluster.plan)
        with httpx.Client(base_url=url, timeout=60, headers={"Authorization": f"Bearer {token}"}) as client:
            for tenant, telemetry in profiles.items():
                body: dict[str, Any] = {
                    "profile_id": tenant,
                    "telemetry": telemetry,
                    "latency": latency[tenant],
                }
                if tenant in probes:
                    body["probes"] = probes[tenant]
                client.post("/register_profile", json=body).raise_for_status()
        yield Service(url, token)
    finally:
        for agent in agents:
            stop_collector(agent)
        stop_server(server)


def predicted_p(
    plan: AbTestPlan,
    placement: Placement,
    tracking_uri: str,
    profiles: dict[str, dict[str, list[float]]],
    probes: dict[str, dict[str, float]],
) -> dict[str, tuple[float, float, float]]:
    """The placement champion's P (median, lower, upper) for every placed tenant on its final host."""
    from cotenant.training.tracking import REGISTERED, load_registered_predictor, version_by_alias
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    champion = version_by_alias(client, REGISTERED["placement"])
    if champion is None:
        return {}
    predictor = load_registered_predictor(
        client, REGISTERED["placement"], str(champion.version), tracking_uri
    )
    predictor.set_host_cores(float(plan.hosts.cpus))  # as the live service read the hosts (live_service)
    found: dict[str, tuple[float, float, float]] = {}
    latency = tenant_latency(plan)
    for tenants in placement.hosts.values():
        for tenant in tenants:
            others = [t for t in tenants if t != tenant]
            own = predictor.encode_profile(
                {m: np.asarray(v) for m, v in profiles[tenant].items()},
                probes.get(tenant),
                latency=latency[tenant],
            )
            incumbents = [
                predictor.encode_profile({m: np.asarray(v) for m, v in profiles[o].items()}, probes.get(o))
                for o in others
            ]
            estimate = predictor.score_placement(own, [predictor.encode_host(incumbents)])[0].newcomer
            found[tenant] = (float(estimate.p), float(estimate.lower), float(estimate.upper))
    return found


def champion_card(plan: AbTestPlan, tracking_uri: str) -> dict[str, Any] | None:
    """Which placement champion the cotenant policy asked, and the tenants whose programs it never trained on
    (held out of its split, or absent from its training data): the stream must include some."""
    from cotenant.datasets import load_source
    from cotenant.datasets.splits import program_of
    from cotenant.training.tracking import REGISTERED, version_by_alias
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    champion = version_by_alias(client, REGISTERED["placement"])
    if champion is None or not champion.run_id:
        return None
    params = client.get_run(champion.run_id).data.params
    held_out = sorted(filter(None, params.get("test_apps", "").split(",")))
    source = params.get("source", "")
    trained_on: set[str] = set()
    if source:
        applications = load_source(source).runs["application"].unique().to_list()
        trained_on = {program_of(a) for a in applications} - set(held_out)
    return {
        "model": params.get("model", "?"),
        "version": str(champion.version),
        "source": source,
        "held_out_programs": held_out,
        "unseen_tenants": [t.name for t in plan.tenants if program_of(t.workload) not in trained_on],
    }


def require_champions(tracking_uri: str) -> None:
    """The cotenant policy asks the service, which needs a placement champion: say so before anything runs."""
    from cotenant.training.tracking import REGISTERED, version_by_alias
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    for task in ("placement", "monitoring"):
        if version_by_alias(client, REGISTERED[task]) is None:
            raise AbTestError(
                f"no {REGISTERED[task]} champion in {tracking_uri}: the cotenant policy needs one "
                "(make run, or cotenant train), or leave cotenant out of the plan's policies"
            )


def run_abtest(
    plan: AbTestPlan,
    out: Path,
    tracking_uri: str,
    probes: dict[str, dict[str, float]] | None = None,
    progress: Progress = print,
) -> dict[str, Any]:
    """The whole experiment (module docstring); returns the report (also written under ``out``)."""
    from cotenant.datasets.lab.abtest import outcome
    from cotenant.datasets.lab.labels import performance_ratio
    from cotenant.datasets.lab.session import sigterm_as_interrupt

    out = out.resolve()
    cluster = make_cluster(plan, out)
    if "cotenant" in plan.policies:
        require_champions(tracking_uri)
    out.mkdir(parents=True, exist_ok=True)
    journal = out / "runs.jsonl"
    scratch = out / "scratch"
    scratch.mkdir(exist_ok=True)
    probes = probes or {}
    with sigterm_as_interrupt():
        try:
            cluster.create()
            for name in sorted({t.workload for t in plan.tenants}):
                workload_of(plan, next(t for t in plan.tenants if t.workload == name)).prepare(scratch)
            solos = solo_references(cluster, scratch, out, journal, progress)
            solo = solo_medians(plan, solos, out)
            profiles = tenant_profiles(out, solos)
            placements: dict[str, Placement] = {}
            for policy in plan.policies:
                if policy == "cotenant":
                    progress("cotenant: placing the stream live")
                    with live_service(cluster, out, tracking_uri, profiles, probes) as service:
                        placements[policy] = place_live(plan, cluster, service, scratch, out / "logs")
                else:
                    placements[policy] = place_stream(plan, policy)
            by_name = {t.name: t for t in plan.tenants}
            measured: dict[str, dict[str, list[float]]] = {policy: {} for policy in placements}
            for repeat in range(plan.repeats):
                for policy, placement in placements.items():
                    progress(f"{policy}: final placement, execution {repeat + 1}/{plan.repeats}")
                    hosts = {
                        host: [by_name[n] for n in names] for host, names in placement.hosts.items() if names
                    }
                    results = measure_together(cluster, hosts, scratch, out / "logs" / f"{policy}-{repeat}")
                    for tenant, performance in results.items():
                        workload = workload_of(plan, by_name[tenant])
                        p = min(1.0, performance_ratio(performance, solo[tenant], workload.higher_is_better))
                        measured[policy].setdefault(tenant, []).append(p)
                    append(
                        journal,
                        {"kind": "placement", "policy": policy, "repeat": repeat, "performance": results},
                    )
        finally:
            cluster.remove()
    # The champion's answers for every policy's final placement (cotenant's chose by them; the others' are
    # more real placements to check them against): the closed loop's measure of the predictor itself.
    predictions = (
        {
            policy: predicted_p(plan, placement, tracking_uri, profiles, probes)
            for policy, placement in placements.items()
        }
        if "cotenant" in placements
        else {}
    )
    outcomes = {
        policy: outcome(
            placement,
            measured[policy],
            plan.min_performance,
            {t: v[0] for t, v in predictions[policy].items()} if predictions else None,
        )
        for policy, placement in placements.items()
    }
    report = {
        "plan": plan.model_dump(),
        "champion": champion_card(plan, tracking_uri) if "cotenant" in placements else None,
        "solo": solo,
        "placements": {
            policy: {"hosts": p.hosts, "refused": p.refused, "decisions": p.decisions}
            for policy, p in placements.items()
        },
        "measured": measured,
        "predicted": predictions.get("cotenant", {}),
        "predicted_by_policy": predictions,
        "outcomes": {policy: o.__dict__ for policy, o in outcomes.items()},
    }
    (out / "abtest.json").write_text(json.dumps(report, indent=2, default=str))
    return report


WEIGHTS_TEXT: dict[CpuWeights, str] = {
    "equal": "Every tenant's cgroup has the same CPU weight.",
    "requests": "Each tenant's cgroup has the CPU weight kubelet gives its request (1024 shares per CPU).",
}


def write_report(report: dict[str, Any], out: Path) -> Path:
    """``abtest.md`` and ``predicted_vs_measured.png`` beside ``abtest.json``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plan = report["plan"]
    lines = [
        f"# Closed-loop A/B test: `{plan['name']}`",
        "",
        f"{len(plan['tenants'])} tenants arriving one by one on {plan['hosts']['count']} hosts "
        f"({plan['hosts']['cpus']} CPU(s), {plan['hosts']['memory_mib']} MiB each); SLO P >= "
        f"{plan['min_performance']}; each final placement run {plan['repeats']} times for "
        f"{plan['duration_s']} s; P is the median over those runs against each tenant's solo median. "
        f"{WEIGHTS_TEXT[plan.get('cpu_weights', AbTestPlan.model_fields['cpu_weights'].default)]}",
        "",
        "| policy | placed | refused | mean P | worst P | SLO misses | prediction MAE (pp) |",
        "|---|---|---|---|---|---|---|",
    ]
    for policy, o in report["outcomes"].items():
        error = "" if o["prediction_mae_pp"] is None else f"{o['prediction_mae_pp']:.1f}"
        lines.append(
            f"| {policy} | {o['placed']} | {o['refused']} | {o['mean_p']:.3f} | {o['worst_p']:.3f} | "
            f"{o['slo_misses']} | {error} |"
        )
    champion = report.get("champion")
    if champion:
        lines += [
            "",
            f"cotenant asked placement champion `{champion['model']}` v{champion['version']} (trained on "
            f"`{champion['source']}`, programs held out: {', '.join(champion['held_out_programs']) or '-'}); "
            f"tenants whose programs it never trained on: {', '.join(champion['unseen_tenants']) or '-'}; "
            f"its extender's rule: `{plan.get('extender_rule', 'medians')}` (docs/serving.md).",
        ]
    lines += ["", "Placements:", ""]
    for policy, placement in report["placements"].items():
        hosts = "; ".join(f"{host}: {', '.join(names) or '-'}" for host, names in placement["hosts"].items())
        refused = f" (refused: {', '.join(placement['refused'])})" if placement["refused"] else ""
        lines.append(f"- {policy}: {hosts}{refused}")
    predicted = report["predicted"]
    measured = report["measured"].get("cotenant", {})
    if predicted and measured:
        lines += [
            "",
            "cotenant's predictions for its final placement (median and 80% interval) against the measured P "
            "(median of the executions):",
            "",
            "| tenant | predicted P | interval | measured P | error (pp) |",
            "|---|---|---|---|---|",
        ]
        for name in (t for t in predicted if t in measured):
            median, low, high = predicted[name]
            actual = float(np.median(measured[name]))
            error = 100 * (median - actual)
            lines.append(f"| {name} | {median:.3f} | {low:.3f}-{high:.3f} | {actual:.3f} | {error:+.1f} |")
        figure, axis = plt.subplots(figsize=(5, 5))
        names = [t for t in predicted if t in measured]
        p = [predicted[t][0] for t in names]
        lower = [predicted[t][0] - predicted[t][1] for t in names]
        upper = [predicted[t][2] - predicted[t][0] for t in names]
        m = [float(np.median(measured[t])) for t in names]
        axis.errorbar(m, p, yerr=[lower, upper], fmt="o", capsize=3, label="cotenant's placement")
        others = [(k, v) for k, v in (report.get("predicted_by_policy") or {}).items() if k != "cotenant"]
        for marker, (policy, answers) in zip(itertools.cycle("s^v<>"), others, strict=False):
            done = report["measured"].get(policy, {})
            shown = [t for t in answers if t in done]
            axis.scatter(
                [float(np.median(done[t])) for t in shown],
                [answers[t][0] for t in shown],
                marker=marker,
                s=14,
                alpha=0.6,
                label=f"{policy}'s placement",
            )
        axis.plot([0, 1], [0, 1], color="grey", linewidth=0.8)
        for name, x, y in zip(names, m, p, strict=True):
            axis.annotate(name, (x, y), fontsize=7)
        axis.set(xlabel="measured P", ylabel="predicted P (80% interval)", xlim=(0, 1.05), ylim=(0, 1.05))
        axis.set_title("placement champion: predicted vs measured P per tenant")
        axis.legend(fontsize=7, loc="lower right")
        figure.tight_layout()
        figure.savefig(out / "predicted_vs_measured.png", dpi=120)
        plt.close(figure)
        lines += ["", "![predicted vs measured](predicted_vs_measured.png)"]
    lines += _prediction_lines(report)
    path = out / "abtest.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def _prediction_lines(report: dict[str, Any]) -> list[str]:
    """The champion on every policy's final placement: error, bias and interval coverage, and pooled."""
    from cotenant.datasets.lab.abtest import prediction_errors

    by_policy = report.get("predicted_by_policy") or {}
    rows: list[tuple[str, Any]] = []
    pooled_predicted: dict[str, Any] = {}
    pooled_measured: dict[str, Any] = {}
    for policy, predicted in by_policy.items():
        measured = report["measured"].get(policy, {})
        found = prediction_errors(predicted, measured)
        if found is not None:
            rows.append((policy, found))
            pooled_predicted |= {f"{policy}/{t}": v for t, v in predicted.items()}
            pooled_measured |= {f"{policy}/{t}": v for t, v in measured.items()}
    pooled = prediction_errors(pooled_predicted, pooled_measured)
    if pooled is None:
        return []
    lines = [
        "",
        "The placement champion's answers (each tenant's profile and registered probes, its host's other "
        "tenants as incumbents) for every policy's final placement, against the measured P: more real "
        "placements than cotenant's own to check the predictor on.",
        "",
        "| final placement of | tenants | MAE (pp) | bias (pp) | 80% interval coverage |",
        "|---|---|---|---|---|",
    ]
    for policy, found in [*rows, ("all", pooled)]:
        figures = f"{found.mae_pp:.1f} | {found.bias_pp:+.1f} | {found.coverage:.2f}"
        lines.append(f"| {policy} | {found.tenants} | {figures} |")
    return lines
