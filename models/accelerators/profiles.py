"""Typed profile records (apps, nodes, clusters) and YAML loaders, including Ibis's own workload files as
they are.

Times are milliseconds, rates requests per second, memory megabytes throughout.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from cotenant.models.accelerators.device_models import DEVICE_MODELS
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

DeviceKind = Literal["gpu", "tpu"]

# Ibis's CPU frontends (pre-processing) per node kind and its fixed network term.
FRONTEND_MS: dict[str, float] = {"gpu": 24.0, "tpu": 20.0}
NETWORK_MS = 10.0
# Smallest rate and time a profile may give: one request in 11 days, one nanosecond. Below them the per-ms
# arithmetic of the device models underflows to zero (a rate of 5e-324/s is 0 per ms).
MIN_RATE_PER_S = 1e-6
MAX_NODES = 1_000
MAX_APPS = 10_000
MIN_TIME_MS = 1e-6


class DeviceProfile(BaseModel):
    """How one app's model behaves on one device kind, measured in isolation."""

    service_ms: float = Field(ge=MIN_TIME_MS, description="isolated service time s_i")
    memory_mb: float = Field(ge=0, description="engine + device memory + I/O buffers + frontend")
    switch_overhead_ms: float | None = Field(default=None, ge=0, description="edgeTPU reload cost o_i")
    onchip_mb: float | None = Field(default=None, ge=0, description="compiled on-chip parameter size")
    second_moment_ms2: float | None = Field(default=None, gt=0, description="E[S^2]; None = deterministic")
    switch_second_moment_ms2: float | None = Field(
        default=None,
        gt=0,
        description="E[S^2] of a request after another model's; given, second_moment_ms2 is after the same "
        "model's and the device mixes the two by how often it switches",
    )
    client_overhead_ms: float = Field(
        default=0.0, ge=0, description="per-request time outside the device queue"
    )
    l2_util: float = Field(default=0.0, ge=0, le=1, description="solo L2 utilisation (spatial sharing)")
    dram_util: float = Field(default=0.0, ge=0, le=1, description="solo DRAM bandwidth utilisation")


class AppProfile(BaseModel):
    """One inference app: a model served at a Poisson rate under a latency SLO."""

    name: str
    model: str = Field(description="model identity: apps with the same model share one loaded copy")
    input_rate: float = Field(ge=MIN_RATE_PER_S, description="lambda_i, requests/s")
    slo_ms: float = Field(ge=MIN_TIME_MS)
    devices: dict[DeviceKind, DeviceProfile] = Field(min_length=1, description="at least one device kind")

    def on(self, kind: str) -> DeviceProfile:
        if kind not in self.devices:
            raise KeyError(f"app {self.name!r} has no profile for device kind {kind!r}")
        return self.devices[kind]


def _known_device_models(schema: dict[str, Any]) -> None:
    """Publish the device-model registry's keys as the field's enumeration (an unknown one is refused)."""
    field = schema["properties"]["device_model"]
    field["anyOf"] = [{"type": "string", "enum": sorted(DEVICE_MODELS)}, {"type": "null"}]


class NodeSpec(BaseModel):
    """One accelerator node; a MIG instance is its own node with its own profile numbers."""

    model_config = ConfigDict(json_schema_extra=_known_device_models)

    name: str
    kind: DeviceKind
    memory_mb: float = Field(gt=0)
    device_model: str | None = Field(default=None, description="registry key; None = the kind's default")

    @field_validator("device_model")
    @classmethod
    def _registered(cls, name: str | None) -> str | None:
        if name is not None and name not in DEVICE_MODELS:
            raise ValueError(f"unknown device model {name!r}; known: {', '.join(sorted(DEVICE_MODELS))}")
        return name

    frontend_ms: float | None = Field(default=None, gt=0, description="CPU pre-processing time per request")


class ClusterSpec(BaseModel):
    name: str = "cluster"
    network_ms: float = Field(default=NETWORK_MS, ge=0)
    nodes: list[NodeSpec] = Field(max_length=MAX_NODES)


class AppStream(BaseModel):
    name: str = "apps"
    apps: list[AppProfile]


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise ValueError(f"{path}: cannot read YAML: {error}") from error


def _ms(rate: float) -> float:
    return 1000.0 / float(rate)


def parse_ibis_entry(entry: dict[str, Any], index: int) -> AppProfile:
    """One app of an Ibis workload file: GPU (`model_name`), edgeTPU (`model_filename`) or heterogeneous."""
    if "service_rate_gpu" in entry:  # heterogeneous format: both device kinds
        model = str(entry["model_name"])
        devices = {
            "gpu": DeviceProfile(
                service_ms=_ms(entry["service_rate_gpu"]),
                memory_mb=float(entry["backend_memory_gpu"]) + float(entry["frontend_memory_gpu"]),
            ),
            "tpu": DeviceProfile(
                service_ms=_ms(entry["service_rate_tpu"]),
                memory_mb=float(entry["backend_memory_tpu"]) + float(entry["frontend_memory_tpu"]),
                switch_overhead_ms=float(entry["switch_overhead"]),
            ),
        }
    elif "model_filename" in entry:
        model = str(entry["model_filename"]).removesuffix(".tflite")
        devices = {
            "tpu": DeviceProfile(
                service_ms=_ms(entry["service_rate"]),
                memory_mb=float(entry["backend_memory"]) + float(entry["frontend_memory"]),
                switch_overhead_ms=float(entry["switch_overhead"]),
            )
        }
    else:
        model = str(entry["model_name"])
        devices = {
            "gpu": DeviceProfile(
                service_ms=_ms(entry["service_rate"]),
                memory_mb=float(entry["backend_memory"]) + float(entry["frontend_memory"]),
            )
        }
    return AppProfile(
        name=f"{model}-{index}",
        model=model,
        input_rate=float(entry["input_rate"]),
        slo_ms=float(entry["sla"]),
        devices=devices,  # type: ignore[arg-type]
    )


def load_apps(path: Path) -> AppStream:
    """Our own `{name, apps: [...]}` files or any of Ibis's workload files, unchanged."""
    data = _read_yaml(path)
    try:
        if isinstance(data, dict) and "apps" in data:
            return AppStream.model_validate(data)
        entries = data["models"] if isinstance(data, dict) else data
        if not isinstance(entries, list):
            raise ValueError("expected a list of apps under 'apps' or 'models'")
        return AppStream(name=path.stem, apps=[parse_ibis_entry(e, i) for i, e in enumerate(entries)])
    except (ValidationError, KeyError, TypeError, ValueError) as error:
        raise ValueError(f"{path}: not an app file: {error}") from error


def load_cluster(path: Path) -> ClusterSpec:
    try:
        return ClusterSpec.model_validate(_read_yaml(path))
    except ValidationError as error:
        raise ValueError(f"{path}: not a cluster file: {error}") from error


class ProfileCatalogue(BaseModel):
    """Device profiles by model name and device kind: what a model's requests cost on a shared accelerator."""

    model_config = ConfigDict(extra="forbid")

    models: dict[str, dict[DeviceKind, DeviceProfile]]
    # how a fitted catalogue's FCFS wait is computed (``validation.FIT_VARIANTS``), chosen when it was fitted
    fit_variant: str | None = None
    source: str = ""  # where it was read from (named in errors)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(exclude={"source"}, exclude_none=True), sort_keys=True)

    def profile(self, model: str, kind: DeviceKind, where: str = "") -> DeviceProfile:
        """The profile, or an error naming the model, the device kind, the trace and the catalogue."""
        found = self.models.get(model, {}).get(kind)
        if found is None:
            context = f"{where}: " if where else ""
            raise ValueError(
                f"{context}model {model!r} has no {kind} profile in {self.source or 'the catalogue'}; "
                f"profiled: {', '.join(sorted(self.models)) or 'none'}"
            )
        return found


CATALOGUE_FILE = "catalogue.yaml"  # a registered catalogue's file (``cotenant accelerators fit``)


def catalogue_in(root: Path) -> ProfileCatalogue:
    """The catalogue of a downloaded registered model (the shallowest ``catalogue.yaml`` under ``root``)."""
    found = sorted(root.rglob(CATALOGUE_FILE), key=lambda path: len(path.parts))
    if not found:
        raise FileNotFoundError(f"no {CATALOGUE_FILE} under {root}")
    return load_catalogue(found[0])


def load_catalogue(path: Path | None = None) -> ProfileCatalogue:
    """A profile catalogue YAML (default: Ibis's profiled edgeTPU models); errors name the file and field."""
    path = path or ibis_data_dir() / "edgetpu_profiles.yaml"
    data = _read_yaml(path)
    try:
        return ProfileCatalogue.model_validate({**(data or {}), "source": str(path)})
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in issue['loc'])}: {issue['msg']}" for issue in error.errors()
        )
        raise ValueError(f"{path}: invalid profile catalogue: {problems}") from error


def ibis_data_dir() -> Path:
    return Path(__file__).parent / "data" / "ibis"
