"""``cotenant serve``: runs ``bentoml serve`` on the prediction service, settings passed as environment."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, get_args

import typer
from cotenant.serving.config import ExtenderRule, ServiceSettings

SERVICE_IMPORT = "cotenant.serving.service:InterferencePredictionService"
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def serve_command(
    host: str, port: int, workers: int, settings_env: dict[str, str], extra_config: list[str]
) -> tuple[list[str], dict[str, str]]:
    """The ``bentoml serve`` command line and environment (separate so tests can start it themselves)."""
    bentoml = shutil.which("bentoml", path=str(Path(sys.executable).parent)) or "bentoml"
    env = {**os.environ, **settings_env}
    # Scoring multiplies a few thousand rows by tiny matrices: a second BLAS/OpenMP thread only adds a
    # hand-off, and on a busy machine waiting for it set the extender's p99 (39 ms vs 11 ms measured).
    for variable in THREAD_VARIABLES:
        env.setdefault(variable, "1")
    # BentoML reads per-service overrides from here; the service is named "cotenant" in service.py.
    options = [f"services.cotenant.workers={workers}", *extra_config]
    existing = env.get("BENTOML_CONFIG_OPTIONS", "")
    env["BENTOML_CONFIG_OPTIONS"] = " ".join(filter(None, [existing, *options]))
    return [bentoml, "serve", SERVICE_IMPORT, "--host", host, "--port", str(port)], env


def setting(name: str) -> Any:
    """A service setting's default, for the command line's options (``ServiceSettings`` owns them)."""
    return ServiceSettings.model_fields[name].default


def one_of(choices: tuple[str, ...], value: str) -> str:
    if value not in choices:
        raise typer.BadParameter(f"{value!r} is not one of {', '.join(choices)}")
    return value


def serve(
    host: str = typer.Option("127.0.0.1", help="Address to bind."),
    port: int = typer.Option(3000, help="Port to listen on."),
    workers: int = typer.Option(
        1,
        min=1,
        help="Worker processes. Without --state-url host state and profiles are per worker: keep 1.",
    ),
    state_url: str = typer.Option(
        setting("state_url"),
        envvar="COTENANT_SERVE_STATE_URL",
        help="Redis URL shared by replicas for host state and profiles (empty: kept in this process).",
    ),
    tracking_uri: str | None = typer.Option(
        None, help="MLflow tracking/registry URI holding the champions (default: the local sqlite store)."
    ),
    token: str = typer.Option(
        "",
        envvar="COTENANT_SERVE_TOKEN",
        help="Bearer token for /ingest and /register_profile (empty: refused).",
    ),
    watch_interval: float = typer.Option(
        setting("watch_interval_s"), min=0, help="Seconds between champion alias polls (0: off)."
    ),
    stale_after: float = typer.Option(
        setting("stale_after_s"), min=0.1, help="Seconds without telemetry after which a host is stale."
    ),
    window: int = typer.Option(
        setting("window_samples"), min=2, help="Per-second samples kept per host and target."
    ),
    profile_key: str = typer.Option(
        setting("profile_key"), help="Pod label/annotation naming the workload profile."
    ),
    max_candidates: int = typer.Option(
        setting("max_candidates"), min=1, help="Most candidate hosts per placement or extender call."
    ),
    max_body_bytes: int = typer.Option(
        setting("max_body_bytes"), min=1024, help="Largest request body (413 beyond)."
    ),
    shadow_alias: str = typer.Option(
        setting("shadow_alias"),
        help="Placement version scored beside the champion on live requests, never served (empty: off).",
    ),
    host_cores: float = typer.Option(
        setting("host_cores"),
        min=0,
        help="CPUs of every candidate host, for placement models that read it (0: the training host's).",
    ),
    extender_rule: str = typer.Option(
        setting("extender_rule"),
        callback=lambda value: one_of(get_args(ExtenderRule), value),
        help=f"How the extender reads a pod's minimum P: {', '.join(get_args(ExtenderRule))} "
        "(docs/serving.md, the scheduler extender).",
    ),
) -> None:
    """Serve degradation and placement predictions, the Kubernetes scheduler extender and telemetry ingest."""
    values: dict[str, object] = {
        "token": token,
        "watch_interval_s": watch_interval,
        "stale_after_s": stale_after,
        "window_samples": window,
        "profile_key": profile_key,
        "max_candidates": max_candidates,
        "max_body_bytes": max_body_bytes,
        "shadow_alias": shadow_alias,
        "state_url": state_url,
        "host_cores": host_cores,
        "extender_rule": extender_rule,
    }
    if tracking_uri:
        values["tracking_uri"] = tracking_uri
    settings = ServiceSettings.model_validate(values)
    if not token:
        typer.echo(
            "warning: no --token / COTENANT_SERVE_TOKEN: /ingest and /register_profile refuse every call"
        )
    command, env = serve_command(host, port, workers, settings.to_env(), [])
    typer.echo(f"serving champions from {settings.tracking_uri} on http://{host}:{port}")
    raise typer.Exit(code=run_until_stopped(command, env))


def run_until_stopped(command: list[str], env: dict[str, str]) -> int:
    """Run ``bentoml serve``, passing SIGTERM / SIGINT on, so stopping ``cotenant serve`` stops the server.

    Without this a supervisor's SIGTERM ends only this process and leaves ``bentoml serve`` and its workers
    running, holding the port.
    """
    from cotenant.processes import wait_interruptibly

    server = subprocess.Popen(command, env=env)

    def forward(signum: int, frame: object) -> None:
        server.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        return wait_interruptibly(server)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if server.poll() is None:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
