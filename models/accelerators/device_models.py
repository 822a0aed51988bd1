"""The device-model registry and what a device model takes and gives: one ``ModelLoad`` per distinct model on
a device in, a ``DevicePrediction`` out. Apart from ``base.py`` so that the profile records can check a node's
device model against the registry without importing the code that uses them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from cotenant.registry import Registry


@dataclass(frozen=True)
class ModelLoad:
    """One distinct model on a device: summed arrival rate (1/ms) and its device profile numbers."""

    model: str
    rate_per_ms: float
    service_ms: float
    switch_overhead_ms: float = 0.0
    second_moment_ms2: float | None = None
    switch_second_moment_ms2: float | None = None  # with second_moment_ms2: measured apart, see edgetpu_fcfs
    client_overhead_ms: float = 0.0
    l2_util: float = 0.0
    dram_util: float = 0.0


@dataclass(frozen=True)
class DevicePrediction:
    utilisation: float  # rho including switch overheads; >= 1 means unbounded queues
    response_ms: dict[str, float]  # per model; inf when the device is saturated


class DeviceModel(Protocol):
    def __call__(self, loads: Sequence[ModelLoad]) -> DevicePrediction: ...


DEVICE_MODELS: Registry[DeviceModel] = Registry("device model")
DEFAULT_DEVICE_MODEL = {"gpu": "gpu_ps_exact", "tpu": "edgetpu_fcfs"}
