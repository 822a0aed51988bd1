"""The device-model registry and what a device model takes and gives: one ``ModelLoad`` per distinct model on
a device in, a ``DevicePrediction`` out. Apart from ``base.py`` so that the profile records can check a node's
device model against the registry without importing the code that uses them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

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


@dataclass(frozen=True)
class LoadTable:
    """Many devices' loads at once, one row per device and one column per model slot (``ModelLoad``'s
    fields as arrays of one shape; a slot not ``present`` has zeros, and a row needs one present slot).
    ``second_moment_ms2`` and ``switch_second_moment_ms2`` are NaN where a profile has none."""

    present: np.ndarray
    rate_per_ms: np.ndarray
    service_ms: np.ndarray
    switch_overhead_ms: np.ndarray
    second_moment_ms2: np.ndarray
    switch_second_moment_ms2: np.ndarray
    client_overhead_ms: np.ndarray


@dataclass(frozen=True)
class TablePrediction:
    """Per row its utilisation, per row and slot its response time (inf where the row is saturated;
    meaningless where a slot is not present)."""

    utilisation: np.ndarray
    response_ms: np.ndarray


class TableDeviceModel(Protocol):
    """A device model's formula over a `LoadTable`: the same numbers as its `DeviceModel` on each row's loads,
    up to rounding (summation order). A device model registers it as metadata ``table=``; placement uses it
    to screen many nodes at once and runs the device model itself where a verdict is too close to call."""

    def __call__(self, table: LoadTable) -> TablePrediction: ...


@dataclass(frozen=True)
class JoiningLoad:
    """One app joining each of many devices: per device the profile its requests get there (its model's
    group's where the model is loaded, the app's own where not: service, reload and client overhead), the
    rate and budget of its model's group before it joins and where its model is loaded; its rate and its
    latency budget are the same on every device of a kind."""

    rate_per_ms: float
    service_ms: np.ndarray
    switch_overhead_ms: np.ndarray
    client_overhead_ms: np.ndarray
    group_rate_per_ms: np.ndarray
    group_budget_ms: np.ndarray  # the tightest budget of its model's group there (inf where not loaded)
    # its model's position among the device's loads as `RefusalBound.terms` read them (-1 where not loaded),
    # so that a bound can tell the joining group from the one its terms name by position
    group_slot: np.ndarray
    budget_ms: float
    # the app's own profile's measured second moments (NaN: modelled), read where its model is not loaded
    second_moment_ms2: float = float("nan")
    switch_second_moment_ms2: float = float("nan")

    @property
    def joins_group(self) -> np.ndarray:
        return self.group_slot >= 0


class RefusalBound(Protocol):
    """A sure refusal read from a few numbers per device rather than from the device model over every model
    slot: for a device model under which an app joining never lowers the utilisation nor any response time
    but its own group's, a lower bound on both with the app joined. A device model registers it as metadata
    ``bound=``; placement screens with it first and runs the table form on the devices it cannot refuse.

    ``terms`` reads a device's loads and budgets (the same ``width`` numbers for any device; NaN where the
    bound does not hold for that device, which then is never refused by it; a model is named among them by
    its position in ``loads``, as `JoiningLoad.group_slot` names the joining one); ``__call__`` gives, per
    device, a lower bound on its utilisation with the app joined and whether some response surely reaches its
    budget (beyond ``tolerance`` relative to it, as the screen leaves close verdicts to the test)."""

    width: int

    def terms(self, loads: Sequence[ModelLoad], budgets_ms: Mapping[str, float]) -> np.ndarray: ...

    def __call__(
        self, terms: np.ndarray, joining: JoiningLoad, tolerance: float
    ) -> tuple[np.ndarray, np.ndarray]: ...


def beyond(value: np.ndarray, limit: np.ndarray | float, tolerance: float) -> np.ndarray:
    """Whether ``value`` reaches ``limit`` by more than ``tolerance`` relative to it (False where NaN)."""
    with np.errstate(invalid="ignore"):
        return np.asarray(value >= limit + tolerance * (1.0 + np.abs(limit)))


def saturated(utilisation: np.ndarray, response_ms: np.ndarray) -> TablePrediction:
    """Rows at or past utilisation 1 answer inf, as `DeviceModel`s do."""
    return TablePrediction(utilisation, np.where((utilisation < 1.0)[:, None], response_ms, np.inf))


DEVICE_MODELS: Registry[DeviceModel] = Registry("device model")
DEFAULT_DEVICE_MODEL = {"gpu": "gpu_ps_exact", "tpu": "edgetpu_fcfs"}
