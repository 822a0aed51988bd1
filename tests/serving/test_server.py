"""A real ``bentoml serve`` subprocess (as ``cotenant serve`` starts it) driven over HTTP: every endpoint,
a sustained load with a champion swap in the middle (zero failed requests), refusals. Slow, bounded."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from conftest import TOKEN, fixture_json, ingest_payload, profile_payload
from cotenant.serving.cli import serve_command
from cotenant.serving.config import ServiceSettings
from cotenant.serving.local_servers import free_port, start_server, stop_server, wait_ready
from serving_champions import fitted_catalogue, placement_predictor, register_champion

pytestmark = pytest.mark.slow
LOAD_SECONDS = float(os.environ.get("COTENANT_SERVING_LOAD_S", "60"))
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class Server:
    def __init__(self, url: str, process: subprocess.Popen[bytes], store: Path, uri: str) -> None:
        self.url, self.process, self.store, self.uri = url, process, store, uri


@pytest.fixture(scope="module")
def server(champion_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    store = tmp_path_factory.mktemp("server-store")
    shutil.copy(champion_store / "mlflow.db", store / "mlflow.db")
    uri = f"sqlite:///{store / 'mlflow.db'}"
    settings = ServiceSettings(tracking_uri=uri, token=TOKEN, watch_interval_s=1.0, max_candidates=1000)
    port = free_port()
    command, env = serve_command("127.0.0.1", port, 1, settings.to_env(), [])
    log_path = store / "server.log"
    with log_path.open("wb") as log:
        process = start_server(command, env, log)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, process, 120, log_path)
        yield Server(url, process, store, uri)
    finally:
        stop_server(process)


def test_every_endpoint_answers(server: Server) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        assert client.get("/livez").status_code == 200
        assert (
            client.post("/ingest", json=ingest_payload("node-a", np.random.default_rng(1))).status_code == 401
        )
        assert client.post(
            "/ingest", json=ingest_payload("node-a", np.random.default_rng(1)), headers=AUTH
        ).is_success
        assert client.post("/register_profile", json=profile_payload("web"), headers=AUTH).is_success
        placement = client.post(
            "/score_placement", json={"workload": {"profile_id": "web"}, "hosts": ["node-a"]}
        )
        assert placement.json()["placements"][0]["status"] == "scored"
        target = {"host": "node-a", "target": "kubepods/pod0"}
        assert 0 < client.post("/predict_host_degradation", json=target).json()["estimate"]["p"] <= 1
        inline = {"target": profile_payload("x")["telemetry"]}
        assert client.post("/predict_degradation", json=inline).status_code == 200
        assert client.post("/list_hosts").json()["hosts"][0]["host"] == "node-a"
        extender = {"Pod": fixture_json("pod.json"), "Nodes": fixture_json("nodelist.json")}
        assert [s["Host"] for s in client.post("/prioritize", json=extender).json()] == [
            "node-a",
            "node-b",
            "node-c",
        ]
        assert client.post("/filter", json=extender).json()["Error"] == ""
        # Accelerator apps named by model: answered from the registered catalogue (fitted from traces).
        device = {"name": "coral", "kind": "tpu", "memory_mb": 8000.0}
        app = {"name": "cam", "model": "ssd_mobilenet_v2", "input_rate": 10.0, "slo_ms": 100.0}
        latency = client.post("/predict_accelerator_latency", json={"device": device, "apps": [app]})
        assert latency.status_code == 200, latency.text
        fitted = fitted_catalogue().profile("ssd_mobilenet_v2", "tpu")
        assert latency.json()["latencies"][0]["accelerator_ms"] > fitted.service_ms
        unknown = client.post(
            "/predict_accelerator_latency", json={"device": device, "apps": [{**app, "model": "yolo_v9"}]}
        )
        assert unknown.status_code == 404 and "yolo_v9" in unknown.json()["error"]
        huge = b'{"host": "h", "samples": [' + b" " * (17 * 1024 * 1024) + b"]}"
        assert client.post("/ingest", content=huge, headers=AUTH).status_code == 413
        assert client.post("/score_placement", json={"hosts": []}).status_code == 422
        deadline = time.monotonic() + 10  # gauges are published every 2 s
        while "cotenant_predicted_performance{" not in (metrics := client.get("/metrics").text):
            assert time.monotonic() < deadline, metrics[-2000:]
            time.sleep(0.5)
        assert 'host="node-a"' in metrics


def test_a_compact_collector_pushes_summaries_and_falls_back_to_raw_when_refused(server: Server) -> None:
    """The agent's ``--compact`` pusher against the real service: it fetches the champion's feature schema,
    pushes summaries; when the service refuses a schema (the champion changed) the same seconds go out raw
    and the pusher takes the new schema."""
    from cotenant.collectors.push import CompactWindows, Pusher
    from cotenant.collectors.summaries import FeatureSchema
    from serving_champions import HOST_METRICS, solo_telemetry

    rng = np.random.default_rng(5)
    start_ms = int(time.time() * 1000) - 60_000

    def tick(pusher: Pusher, second: int) -> None:
        cgroups = {
            f"kubepods/pod{t}": {m: v[0] for m, v in solo_telemetry(rng, 1, 1.0 + t).items()}
            for t in range(2)
        }
        pusher(start_ms + second * 1000, {"host": {"host": {HOST_METRICS[0]: 0.5}}, "cgroup": cgroups})

    def settled(pusher: Pusher) -> None:
        deadline = time.monotonic() + 30
        while pusher.queue:
            assert time.monotonic() < deadline and pusher.failures == 0, "pushes did not go out"
            time.sleep(0.05)

    pusher = Pusher(server.url, TOKEN, "node-compact", compact=True, push_interval_s=5.0, max_backoff=0.2)
    try:
        deadline = time.monotonic() + 30
        while pusher.windows is None:
            tick(pusher, 0)  # before a schema arrives the seconds go out raw
            assert time.monotonic() < deadline, "no feature schema fetched"
            time.sleep(0.1)
        schema = pusher.windows.schema
        schema_view = httpx.post(f"{server.url}/feature_schema", timeout=10).json()
        assert schema.schema_id == schema_view["schema_id"]
        for second in range(1, 21):
            tick(pusher, second)
        settled(pusher)
        assert pusher.sent >= 4 and pusher.fallbacks == 0
        hosts = httpx.post(f"{server.url}/list_hosts", timeout=10).json()["hosts"]
        (view,) = [h for h in hosts if h["host"] == "node-compact"]
        assert set(view["targets"]) == {"kubepods/pod0", "kubepods/pod1"}

        # The champion changes under the agent: its schema is refused, the seconds go out raw.
        pusher.windows = CompactWindows(
            FeatureSchema("0000000000000000", schema.metrics, schema.window_seconds)
        )
        sent = pusher.sent
        for second in range(21, 32):
            tick(pusher, second)
        settled(pusher)
        assert pusher.fallbacks >= 1 and pusher.sent > sent and pusher.failures == 0
        deadline = time.monotonic() + 30
        while pusher.windows is None or pusher.windows.schema.schema_id != schema.schema_id:
            tick(pusher, 32)
            assert time.monotonic() < deadline, "the pusher did not take the service's schema again"
            time.sleep(0.1)
    finally:
        pusher.close()


def test_sustained_load_with_a_champion_swap_fails_no_request(server: Server) -> None:
    hosts = [f"load-{i}" for i in range(50)]
    with httpx.Client(base_url=server.url, timeout=10) as client:
        for i, host in enumerate(hosts):
            assert client.post(
                "/ingest", json=ingest_payload(host, np.random.default_rng(i)), headers=AUTH
            ).is_success
        assert client.post("/register_profile", json=profile_payload("web"), headers=AUTH).is_success
    pod = fixture_json("pod.json")
    outcomes: Counter[str] = Counter()
    versions: set[str] = set()
    stop = threading.Event()

    def worker(seed: int) -> None:
        rng = np.random.default_rng(seed)
        with httpx.Client(base_url=server.url, timeout=10) as client:
            while not stop.is_set():
                kind = rng.integers(3)
                try:
                    if kind == 0:
                        response = client.post("/prioritize", json={"Pod": pod, "NodeNames": hosts})
                    elif kind == 1:
                        query = {"workload": {"profile_id": "web"}, "hosts": hosts[:10]}
                        response = client.post("/score_placement", json=query)
                        if response.is_success:
                            versions.add(response.json()["model_version"])
                    else:
                        payload = ingest_payload(hosts[int(rng.integers(len(hosts)))], rng, seconds=2)
                        response = client.post("/ingest", json=payload, headers=AUTH)
                    outcomes["ok" if response.status_code == 200 else f"status {response.status_code}"] += 1
                except httpx.HTTPError as error:
                    outcomes[type(error).__name__] += 1

    threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(LOAD_SECONDS / 3)
    register_champion(server.uri, server.store / "artifacts", "cotenant-placement", placement_predictor(2))
    time.sleep(LOAD_SECONDS * 2 / 3)
    stop.set()
    for thread in threads:
        thread.join(timeout=30)
    assert outcomes["ok"] > 0 and set(outcomes) == {"ok"}, outcomes
    assert versions == {"1", "2"}, versions  # the swap happened under load


def test_the_api_keeps_its_published_contract_under_every_schemathesis_check(server: Server) -> None:
    """``st run /docs.json --checks all`` against the real server, as an integrator would run it: every
    status and body matches the document, every request the document allows is accepted and every one it
    forbids refused, and nothing answers 5xx. Host state and a profile are present, so the stateful paths
    answer too. Bounded examples and a fixed seed keep it reproducible."""
    with httpx.Client(base_url=server.url, timeout=10) as client:
        assert client.post(
            "/ingest", json=ingest_payload("node-a", np.random.default_rng(3)), headers=AUTH
        ).is_success
        assert client.post("/register_profile", json=profile_payload("web"), headers=AUTH).is_success
    st = Path(sys.executable).with_name("st")
    command = [
        str(st), "run", f"{server.url}/docs.json", "--checks", "all",
        "--header", f"Authorization: Bearer {TOKEN}", "--seed", "1", "--max-examples", "40",
        "--workers", "1", "--no-color", "--request-timeout", "25",
    ]  # fmt: skip
    # its example database and reports go to a scratch folder, not the working tree
    scratch = server.store / "schemathesis"
    scratch.mkdir(exist_ok=True)
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False, cwd=scratch)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "No issues found" in result.stdout


CHROMIUM = "/usr/bin/chromium"  # Debian's, installed by scripts/install-system-packages.sh
# Headless as root, and quiet: without the background-networking flags Chromium calls out at every start.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def test_the_docs_page_renders_in_a_real_browser_and_loads_nothing_from_elsewhere(server: Server) -> None:
    """Opened in headless Chromium with every request outside the service blocked (and recorded), the root
    page renders the API's operations from /docs.json and asks for no other origin: an operator opening it
    inside a cluster makes the browser fetch nothing from the internet."""
    from playwright.sync_api import Route, sync_playwright

    elsewhere: list[str] = []
    failed: list[str] = []

    def only_the_service(route: Route) -> None:
        if route.request.url.startswith(server.url):
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.route("**/*", only_the_service)
            page.on("requestfailed", lambda request: failed.append(request.url))
            page.goto(f"{server.url}/", wait_until="networkidle")
            page.wait_for_selector(".opblock-summary-path", timeout=30_000)
            operations = page.locator(".opblock-summary-path").all_inner_texts()
            title = page.locator(".info .title").inner_text()
            # what the page would load if nothing blocked it: every image and link target
            sources = page.eval_on_selector_all("img, script, link", "els => els.map(e => e.src || e.href)")
        finally:
            browser.close()
    assert {"/score_placement", "/ingest", "/prioritize"} <= set(operations), operations
    assert "cotenant" in title.lower(), title
    assert elsewhere == [] and failed == [], (elsewhere, failed)
    assert all(s.startswith((server.url, "data:")) for s in sources if s), sources
