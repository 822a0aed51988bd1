"""The embedded default behind ``cotenant up``: a demo fleet fed from bundled data, and example requests.

The demo hosts are fed exactly as real collectors feed the service: ``POST /ingest`` with per-second samples,
here replayed from the solo profiles the lab recorded, stamped with the current time so the hosts stay fresh.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from cotenant.collectors.lanes import HOST_TARGET
from cotenant.datasets import RunTable
from cotenant.datasets.tensors import probe_results

# Demo hosts carry 0, 1, 2 or 3 incumbents in turn: empty, light and crowded hosts.
DEMO_HOSTS = 6
PROFILE_LABEL = "cotenant.io/profile"


@dataclass(frozen=True)
class DemoFleet:
    profiles: dict[str, dict[str, list[float]]]  # profile id -> metric -> per-second values
    hosts: dict[str, list[str]]  # host name -> profile ids of its incumbents
    probes: dict[str, dict[str, float]] = field(default_factory=dict)  # profile id -> its measured probes

    @property
    def newcomer(self) -> str:
        return sorted(self.profiles)[0]


def profile_series(table: RunTable, profile_id: str) -> dict[str, list[float]]:
    """One solo profile as the service's telemetry format: metric -> finite per-second values."""
    frame = table.profiles.filter(table.profiles["profile_id"] == profile_id).sort("second")
    series: dict[str, list[float]] = {}
    for column in frame.columns:
        if column in ("profile_id", "second"):
            continue
        values = frame[column].cast(float).to_numpy()
        finite = values[np.isfinite(values)]
        if len(finite):
            series[column] = [float(v) for v in finite]
    return series


def build_fleet(table: RunTable, seed: int = 0) -> DemoFleet:
    ids = sorted(table.profiles["profile_id"].unique().to_list())
    if len(ids) < 2:
        raise ValueError("the dataset has fewer than two solo profiles; a demo fleet needs several")
    rng = np.random.default_rng(seed)
    profiles = {profile_id: profile_series(table, profile_id) for profile_id in ids}
    hosts: dict[str, list[str]] = {}
    for index in range(DEMO_HOSTS):
        count = index % 4  # 0, 1, 2, 3 incumbents
        hosts[f"demo-node-{index + 1}"] = [str(p) for p in rng.choice(ids, size=count, replace=False)]
    probes = {profile_id: found for profile_id in ids if (found := probe_results(table, profile_id))}
    return DemoFleet(profiles, hosts, probes)


def ingest_payload(fleet: DemoFleet, host: str, now: datetime, seconds: int) -> dict[str, Any]:
    """The last ``seconds`` of each incumbent's replayed profile, ending at ``now``, and the host's own
    heartbeat (its host-table row, as a collector sends every second even when no workload runs there): an
    empty host is known and empty, not unknown."""
    samples: list[dict[str, Any]] = [
        {"timestamp": (now - timedelta(seconds=back)).isoformat(), "target": HOST_TARGET, "metrics": {}}
        for back in range(seconds)
    ]
    for slot, profile_id in enumerate(fleet.hosts[host]):
        series = fleet.profiles[profile_id]  # finite values only (profile_series)
        for back in range(seconds):
            second = int(now.timestamp()) - back
            samples.append(
                {
                    "timestamp": (now - timedelta(seconds=back)).isoformat(),
                    "target": tenant_target(slot, profile_id),
                    "metrics": {name: values[second % len(values)] for name, values in series.items()},
                }
            )
    # Each tenant's registered profile, as a node's collector links them (cotenant collect --profile).
    links = {tenant_target(slot, profile_id): profile_id for slot, profile_id in enumerate(fleet.hosts[host])}
    return {"host": host, "samples": samples, "profiles": links}


def tenant_target(slot: int, profile_id: str) -> str:
    """The cgroup name a demo host reports its ``slot``-th incumbent under."""
    return f"pod-{slot + 1}-{profile_id}"[:253]


class FleetFeeder:
    """Re-pushes the demo fleet's telemetry every few seconds, like per-node collectors would."""

    def __init__(self, client: httpx.Client, token: str, fleet: DemoFleet, period_s: float = 5.0) -> None:
        self._client, self._token, self._fleet, self._period = client, token, fleet, period_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="demo-fleet", daemon=True)

    def push_once(self, seconds: int) -> None:
        now = datetime.now(UTC).replace(microsecond=0)
        for host in self._fleet.hosts:
            response = self._client.post(
                "/ingest",
                json=ingest_payload(self._fleet, host, now, seconds),
                headers={"Authorization": f"Bearer {self._token}"},
            )
            response.raise_for_status()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.wait(self._period):
            try:
                self.push_once(seconds=int(self._period) + 1)
            except httpx.HTTPError:
                continue  # the service is restarting or going down; the next round retries


def register_profiles(client: httpx.Client, token: str, fleet: DemoFleet) -> None:
    for profile_id, telemetry in fleet.profiles.items():
        body: dict[str, Any] = {"profile_id": profile_id, "telemetry": telemetry}
        if profile_id in fleet.probes:  # onboarded by `cotenant lab probe`: its measured probes go along
            body["probes"] = fleet.probes[profile_id]
        response = client.post("/register_profile", json=body, headers={"Authorization": f"Bearer {token}"})
        response.raise_for_status()


def accelerator_example() -> dict[str, Any]:
    """Ibis's heterogeneous toy workload on the shipped two-Jetson, two-Coral cluster."""
    from importlib.resources import files

    from cotenant.models.accelerators.profiles import ibis_data_dir, load_apps, load_cluster

    cluster_file = files("cotenant.models.accelerators") / "examples" / "mixed_cluster.yaml"
    cluster = load_cluster(Path(str(cluster_file)))
    apps = load_apps(ibis_data_dir() / "heter_toy_workload.yaml").apps
    return {
        "policy": "heterogeneous",
        "cluster": cluster.model_dump(mode="json"),
        "apps": [app.model_dump(mode="json") for app in apps],
        "simulate": False,
    }


def example_requests(fleet: DemoFleet) -> dict[str, tuple[str, dict[str, Any]]]:
    """Ready-to-paste requests: name -> (path, JSON body)."""
    nodes = sorted(fleet.hosts)
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "web-7f9c",
            "namespace": "default",
            "labels": {"app": "web", PROFILE_LABEL: fleet.newcomer},
        },
        "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]},
    }
    crowded = max(nodes, key=lambda host: (len(fleet.hosts[host]), host))
    tenant = fleet.hosts[crowded][0]
    return {
        "placement scoring": (
            "/score_placement",
            {"workload": {"profile_id": fleet.newcomer}, "hosts": nodes, "min_performance": 0.7},
        ),
        # a running tenant's P now, from its host's telemetry and the solo profile it was registered with
        # (linked to the tenant by its node's collector: the caller names the tenant only)
        "monitoring a running tenant": (
            "/predict_host_degradation",
            {"host": crowded, "target": tenant_target(0, tenant)},
        ),
        "extender prioritize": (
            "/prioritize",
            {"Pod": pod, "NodeNames": nodes},
        ),
        "accelerator placement": ("/place_on_accelerators", accelerator_example()),
        # apps named by model: their profiles come from the registered catalogue fitted from traces
        "accelerator latency by model": (
            "/predict_accelerator_latency",
            {
                "device": {"name": "coral-1", "kind": "tpu", "memory_mb": 8000.0},
                "apps": [
                    {"name": "doorbell", "model": "ssd_mobilenet_v2", "input_rate": 10.0, "slo_ms": 80.0},
                    {"name": "gallery", "model": "inception_v3", "input_rate": 2.0, "slo_ms": 300.0},
                ],
            },
        ),
    }
