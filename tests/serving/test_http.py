"""HTTP through the ASGI app BentoML builds (status codes, auth, limits, OpenAPI, extender wire format)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from conftest import TOKEN, fixture_json, ingest_payload, profile_payload
from starlette.testclient import TestClient

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def forget_bentoml_metrics() -> None:
    """BentoML registers its HTTP metrics on prometheus' global registry for every app it builds; a second app
    in one process (one per test here, never in a server) would collide, so the previous app's are dropped."""
    import prometheus_client

    registry = prometheus_client.REGISTRY
    for collector, names in list(registry._collector_to_names.items()):
        if any(name.startswith("bentoml_") for name in names):
            registry.unregister(collector)


def make_client() -> TestClient:
    from cotenant.serving.service import InterferencePredictionService

    forget_bentoml_metrics()
    return TestClient(InterferencePredictionService.to_asgi())


@pytest.fixture
def client(service_env: dict[str, str]) -> Iterator[TestClient]:
    with make_client() as test_client:
        yield test_client


def feed(client: TestClient, host: str, seed: int = 1) -> None:
    response = client.post("/ingest", json=ingest_payload(host, np.random.default_rng(seed)), headers=AUTH)
    assert response.status_code == 200, response.text


def test_probes_and_openapi(client: TestClient) -> None:
    assert client.get("/livez").status_code == 200
    assert client.get("/readyz").status_code == 200
    document = client.get("/docs.json").json()
    paths = document["paths"]
    reply = paths["/prioritize"]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
    reply = document["components"]["schemas"][reply["$ref"].rsplit("/", 1)[1]]
    assert reply["type"] == "array"  # the extender protocol's [{"Host", "Score"}], documented as such
    item = document["components"]["schemas"]["HostPriority"]
    assert set(item["properties"]) == {"Host", "Score"} and item["properties"]["Score"]["maximum"] == 10
    for route in (
        "/ingest",
        "/feature_schema",
        "/register_profile",
        "/predict_degradation",
        "/predict_host_degradation",
        "/score_placement",
        "/list_hosts",
        "/filter",
        "/prioritize",
    ):
        assert route in paths


def test_the_docs_page_is_the_service_own_and_loads_nothing_from_elsewhere(client: TestClient) -> None:
    """The root page renders /docs.json with Swagger UI files served by the service itself; every URL it names
    is relative, and its content security policy forbids loading anything from another origin."""
    import re

    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "googletagmanager" not in page.text and "./docs.json" in page.text
    assert "validatorUrl: null" in page.text
    urls = re.findall(r'(?:src|href)="([^"]+)"', page.text) + re.findall(r'url: "([^"]+)"', page.text)
    assert urls and all(url.startswith("./") for url in urls), urls
    for url in urls:
        assert client.get(url.removeprefix(".")).status_code == 200, url  # served by the service itself
    assert "default-src 'self'" in page.headers["content-security-policy"]


def test_every_status_an_operation_answers_is_documented_with_one_error_shape(client: TestClient) -> None:
    from cotenant.serving.contract import ERROR_SCHEMA_NAME, ROUTE_ERRORS, errors_of

    document = client.get("/docs.json").json()
    assert ERROR_SCHEMA_NAME in document["components"]["schemas"]
    reference = {"$ref": f"#/components/schemas/{ERROR_SCHEMA_NAME}"}
    for route in [*ROUTE_ERRORS, "/filter", "/prioritize", "/place_on_accelerators"]:
        responses = document["paths"][route]["post"]["responses"]
        assert "400" not in responses  # invalid input is answered 422
        for code in errors_of(route):
            assert responses[str(code)]["content"]["application/json"]["schema"] == reference, (route, code)
    assert {"401"} <= set(document["paths"]["/ingest"]["post"]["responses"])
    assert {"404", "503"} <= set(document["paths"]["/predict_host_degradation"]["post"]["responses"])


def test_the_document_speaks_openapi_3_0_and_keeps_what_the_code_accepts(client: TestClient) -> None:
    """kube-scheduler sends ``"NodeNames": null``: the document must allow it (3.0's ``nullable``; BentoML's
    inline copy had dropped it), must not use 2020-12 forms a 3.0 client ignores, and marks bodies
    required."""
    document = client.get("/docs.json").json()
    text = json.dumps(document)
    assert '{"type": "null"}' not in text and "propertyNames" not in text
    schemas = document["components"]["schemas"]
    operation = document["paths"]["/filter"]["post"]
    body = operation["requestBody"]
    assert body["required"] is True
    assert body["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ExtenderArgsIODescriptor"
    }
    assert schemas["ExtenderArgsIODescriptor"]["properties"]["NodeNames"]["nullable"] is True
    assert schemas["DeviceProfile"]["properties"]["service_ms"]["minimum"] > 0
    assert "415" in operation["responses"] and "404" not in operation["responses"]


def test_bodies_are_json_with_json_types(client: TestClient) -> None:
    """A multipart body is 415 naming the type to send (it was a 500); JSON values are not coerced: ``false``
    is not the number 0, ``"0.5"`` not 0.5, while 3.0 is the integer 3 (JSON has one number type)."""
    refused = client.post("/list_hosts", content=b"{}", headers={"Content-Type": "multipart/form-data"})
    assert refused.status_code == 415 and "application/json" in refused.json()["error"]
    app = {"name": "a", "model": "m", "input_rate": 5.0, "slo_ms": 100.0, "devices": {"gpu": {}}}
    app["devices"]["gpu"] = {"service_ms": 5.0, "memory_mb": 100.0, "dram_util": False}
    device = {"name": "g", "kind": "gpu", "memory_mb": 1000.0}
    request = {"device": device, "apps": [app]}
    response = client.post("/predict_accelerator_latency", json=request)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["apps", 0, "devices", "gpu", "dram_util"]
    app["devices"]["gpu"]["dram_util"] = 0.1
    app["slo_ms"] = "100"
    assert client.post("/predict_accelerator_latency", json=request).status_code == 422
    app["slo_ms"] = 100
    assert client.post("/predict_accelerator_latency", json=request).status_code == 200
    cluster = {"nodes": [device]}
    placed = {"cluster": cluster, "apps": [app], "simulation": {"seed": 3.0, "horizon_s": 10}}
    assert client.post("/place_on_accelerators", json=placed).status_code == 200
    placed["simulation"]["seed"] = 3.5
    assert client.post("/place_on_accelerators", json=placed).json()["detail"][0]["loc"] == [
        "simulation",
        "seed",
    ]


def test_error_replies_have_the_documented_shape(client: TestClient) -> None:
    unknown = client.post("/predict_host_degradation", json={"host": "zz", "target": "t"})
    assert unknown.status_code == 404 and unknown.json() == {"error": "unknown host/target zz/t"}
    refused = client.post("/ingest", json=ingest_payload("a", np.random.default_rng(0)))
    assert refused.status_code == 401 and isinstance(refused.json()["error"], str)
    invalid = client.post("/ingest", json={"host": "x"}, headers=AUTH)
    body = invalid.json()
    assert invalid.status_code == 422 and body["detail"][0]["loc"] == ["samples"]
    assert int(invalid.headers["content-length"]) == len(invalid.content)


def test_writes_need_the_bearer_token(client: TestClient) -> None:
    payload = ingest_payload("node-a", np.random.default_rng(0))
    assert client.post("/ingest", json=payload).status_code == 401
    assert client.post("/ingest", json=payload, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.post("/register_profile", json=profile_payload("web")).status_code == 401
    accepted = client.post("/ingest", json=payload, headers=AUTH)
    assert accepted.status_code == 200 and accepted.json()["accepted"] == len(payload["samples"])
    assert client.post("/register_profile", json=profile_payload("web"), headers=AUTH).status_code == 200


def test_validation_errors_are_422_naming_the_field(client: TestClient) -> None:
    response = client.post("/score_placement", json={"workload": {"profile_id": "w"}, "hosts": "node-a"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["hosts"]
    response = client.post("/score_placement", json={"workload": {"profile_id": "w"}, "hosts": [], "x": 1})
    assert response.status_code == 422
    assert {tuple(e["loc"]) for e in response.json()["detail"]} == {("hosts",), ("x",)}
    bad_sample = ingest_payload("node-a", np.random.default_rng(0))
    bad_sample["samples"][0]["timestamp"] = "yesterday"
    response = client.post("/ingest", json=bad_sample, headers=AUTH)
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["samples", 0, "timestamp"]
    assert client.post("/score_placement", content=b"{not json", headers=AUTH).status_code == 422


def test_unknown_profile_and_host_are_404(client: TestClient) -> None:
    response = client.post("/score_placement", json={"workload": {"profile_id": "nope"}, "hosts": ["a"]})
    assert response.status_code == 404 and "nope" in response.text
    response = client.post("/predict_host_degradation", json={"host": "nowhere", "target": "t"})
    assert response.status_code == 404


def test_limits_on_candidates_and_body_size(client: TestClient) -> None:
    client.post("/register_profile", json=profile_payload("web"), headers=AUTH)
    too_many = {"workload": {"profile_id": "web"}, "hosts": [f"n{i}" for i in range(1001)]}
    assert client.post("/score_placement", json=too_many).status_code == 413
    pod = fixture_json("pod.json")
    assert client.post("/prioritize", json={"Pod": pod, "NodeNames": too_many["hosts"]}).status_code == 413
    huge = b'{"host": "h", "samples": [' + b" " * (5 * 1024 * 1024) + b"]}"
    assert client.post("/ingest", content=huge, headers=AUTH).status_code == 413

    def chunked() -> Iterator[bytes]:  # no Content-Length: the limit is counted as the body streams in
        yield b'{"host": "h", "samples": ['
        for _ in range(80):
            yield b" " * 65536
        yield b"]}"

    assert client.post("/ingest", content=chunked(), headers=AUTH).status_code == 413


def test_extender_wire_format(client: TestClient) -> None:
    feed(client, "node-a", 1)
    feed(client, "node-b", 2)
    client.post("/register_profile", json=profile_payload("web"), headers=AUTH)
    request = {"Pod": fixture_json("pod.json"), "Nodes": fixture_json("nodelist.json")}
    scores = client.post("/prioritize", json=request)
    assert scores.status_code == 200
    body: list[dict[str, Any]] = scores.json()
    assert [set(entry) for entry in body] == [{"Host", "Score"}] * 3
    assert [e["Host"] for e in body] == ["node-a", "node-b", "node-c"] and body[2]["Score"] == 5
    assert all(isinstance(e["Score"], int) and 0 <= e["Score"] <= 10 for e in body)
    filtered = client.post("/filter", json=request).json()
    assert {"Nodes", "FailedNodes", "FailedAndUnresolvableNodes", "Error"} <= set(filtered)
    assert filtered["Error"] == "" and len(filtered["Nodes"]["items"]) == 3
    names = client.post("/filter", json={"Pod": request["Pod"], "NodeNames": ["node-a", "node-z"]}).json()
    assert names["NodeNames"] == ["node-a", "node-z"]


def test_predictions_are_read_only_and_hosts_show_staleness(
    service_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COTENANT_SERVE_STALE_AFTER_S", "0.5")
    with make_client() as client:
        feed(client, "node-a")
        client.post("/register_profile", json=profile_payload("web"), headers=AUTH)
        before = client.post("/list_hosts").json()
        assert [h["host"] for h in before["hosts"]] == ["node-a"] and not before["hosts"][0]["stale"]
        query = {"workload": {"profile_id": "web"}, "hosts": ["node-a"]}
        first = client.post("/score_placement", json=query).json()
        assert client.post("/score_placement", json=query).json() == first  # queries change no state
        assert first["placements"][0]["status"] == "scored"
        time.sleep(0.7)
        after = client.post("/list_hosts").json()
        assert after["hosts"][0]["stale"] and after["hosts"][0]["age_s"] > 0.5
        stale = client.post("/score_placement", json=query).json()["placements"][0]
        assert (
            stale["status"] == "stale_host" and stale["score"] == 0.5 and "last telemetry" in stale["reason"]
        )


def test_not_ready_is_503(service_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COTENANT_SERVE_ALIAS", "no-such-alias")
    with make_client() as client:
        assert client.get("/readyz").status_code == 503
        assert client.get("/livez").status_code == 200
        query = {"workload": {"profile_id": "web"}, "hosts": ["node-a"]}
        refused = client.post("/score_placement", json=query)
        # The reply says why (BentoML's own 5xx reply would not): no version carries the alias served.
        assert refused.status_code == 503
        assert "no version of cotenant-placement is aliased 'no-such-alias'" in refused.json()["error"]
        request = {"Pod": fixture_json("pod.json"), "NodeNames": ["node-a"]}
        assert client.post("/prioritize", json=request).json() == [{"Host": "node-a", "Score": 5}]


def test_accelerator_prediction_and_placement(client: TestClient) -> None:
    from pathlib import Path

    from cotenant.models import accelerators

    examples = Path(accelerators.__file__).parent / "examples"
    apps = [app.model_dump(mode="json") for app in accelerators.load_apps(examples / "apps.yaml").apps]
    cluster = accelerators.load_cluster(examples / "jetson_cluster.yaml").model_dump(mode="json")
    latencies = client.post(
        "/predict_accelerator_latency", json={"device": cluster["nodes"][0], "apps": apps[:2]}
    )
    assert latencies.status_code == 200, latencies.text
    assert len(latencies.json()["latencies"]) == 2
    request = {"cluster": cluster, "apps": apps, "policy": "first_fit", "simulate": False}
    placed = client.post("/place_on_accelerators", json=request)
    assert placed.status_code == 200, placed.text
    assert set(placed.json()["assignment"]) == {app["name"] for app in apps}
    unknown = client.post("/place_on_accelerators", json={**request, "policy": "nope"})
    assert unknown.status_code == 422 and "policy" in unknown.text


@pytest.mark.parametrize(
    "workload",
    [
        {"profile_id": "x"},
        {"telemetry": {"m": [1.0]}},
        {},
        {"profile_id": "x", "telemetry": {"m": [1.0]}},
        {"profile_id": None, "telemetry": {"m": [1.0]}},
        {"profile_id": "x", "telemetry": None},
    ],
)
def test_the_published_schema_and_the_service_agree_on_exactly_one_of(workload: dict[str, Any]) -> None:
    """A generated client accepts exactly the workloads the service accepts (the validator's rule is in the
    schema as oneOf), so no schema-valid request is refused and no schema-invalid one accepted."""
    jsonschema = pytest.importorskip("jsonschema")
    from cotenant.serving.schemas import WorkloadRef
    from pydantic import ValidationError

    try:
        WorkloadRef.model_validate(workload)
        accepted = True
    except ValidationError:
        accepted = False
    valid = jsonschema.Draft7Validator(WorkloadRef.model_json_schema()).is_valid(workload)
    assert valid == accepted


def test_accelerator_apps_named_by_model_get_the_registered_catalogue(client: TestClient) -> None:
    """An app may name its model instead of sending profiles: the answer is the fitted champion catalogue's
    (the same numbers as sending its profiles inline); a model it lacks is a 404 naming it."""
    from serving_champions import fitted_catalogue

    device = {"name": "coral", "kind": "tpu", "memory_mb": 8000.0}
    named = {"name": "cam", "model": "ssd_mobilenet_v2", "input_rate": 10.0, "slo_ms": 100.0}
    by_name = client.post("/predict_accelerator_latency", json={"device": device, "apps": [named]})
    assert by_name.status_code == 200, by_name.text
    profile = fitted_catalogue().profile("ssd_mobilenet_v2", "tpu").model_dump(exclude_none=True)
    inline = {**named, "devices": {"tpu": profile}}
    by_profile = client.post("/predict_accelerator_latency", json={"device": device, "apps": [inline]})
    assert by_name.json() == by_profile.json()
    assert by_name.json()["latencies"][0]["accelerator_ms"] > profile["service_ms"]
    unknown = client.post(
        "/predict_accelerator_latency", json={"device": device, "apps": [{**named, "model": "yolo_v9"}]}
    )
    assert (
        unknown.status_code == 404 and "'yolo_v9' is not in cotenant-accelerators" in unknown.json()["error"]
    )
    gpu = {"name": "jetson", "kind": "gpu", "memory_mb": 8000.0}
    wrong_kind = client.post("/predict_accelerator_latency", json={"device": gpu, "apps": [named]})
    assert wrong_kind.status_code == 404 and "no gpu profile" in wrong_kind.json()["error"]
    cluster = {"nodes": [device, {**device, "name": "coral-2"}]}
    apps = [named, {**named, "name": "door", "model": "inception_v3", "input_rate": 2.0, "slo_ms": 400.0}]
    placed = client.post("/place_on_accelerators", json={"cluster": cluster, "apps": apps, "simulate": False})
    assert placed.status_code == 200, placed.text
    assert set(placed.json()["assignment"]) == {"cam", "door"} and placed.json()["rejected"] == []
