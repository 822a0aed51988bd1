"""Least-squares estimates, with standard errors, of service times and switch overheads from measured traces.

On one edgeTPU a request that found the device idle takes s_i if the previous request was the same model and
s_i + o_i if it was another one, so regressing those isolated response times on a switch indicator gives s_i
(intercept) and o_i (slope). Requests that queued are left out: their response includes waiting.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, cast, get_args

import numpy as np
import polars as pl
from cotenant.models.accelerators.profiles import DeviceKind, DeviceProfile, ProfileCatalogue
from pydantic import BaseModel


class Estimate(BaseModel):
    value: float
    stderr: float
    n: int


class ServiceFit(BaseModel):
    model: str
    service_ms: Estimate
    switch_overhead_ms: Estimate
    same_model_second_moment_ms2: float


def linear_fit(x: np.ndarray, y: np.ndarray) -> tuple[Estimate, Estimate]:
    """y = a + b x by least squares; returns (a, b) with standard errors."""
    design = np.column_stack([np.ones(len(x)), x])
    solution, *_ = np.linalg.lstsq(design, y, rcond=None)
    residual = y - design @ solution
    dof = max(1, len(y) - 2)
    covariance = np.linalg.pinv(design.T @ design) * float(residual @ residual) / dof
    errors = np.sqrt(np.diag(covariance))
    n = len(y)
    return (
        Estimate(value=float(solution[0]), stderr=float(errors[0]), n=n),
        Estimate(value=float(solution[1]), stderr=float(errors[1]), n=n),
    )


def idle_arrivals(trace: pl.DataFrame) -> pl.DataFrame:
    """Requests that arrived to an idle device, with the model served just before and their response (ms).

    Columns needed: model, start_time, end_time (seconds). Adds response_ms, previous_model, idle.
    """
    ordered = trace.sort("start_time")
    busy_until = ordered["end_time"].cum_max().shift(1, fill_value=-np.inf)
    return ordered.with_columns(
        response_ms=(pl.col("end_time") - pl.col("start_time")) * 1000.0,
        previous_model=pl.col("model").shift(1),
        idle=pl.col("start_time") > busy_until,
    ).filter(pl.col("idle") & pl.col("previous_model").is_not_null())


def fit_service_and_switch(trace: pl.DataFrame) -> list[ServiceFit]:
    """Per model: s_i and o_i from isolated requests (see module docstring)."""
    isolated = idle_arrivals(trace)
    fits = []
    for model in sorted(isolated["model"].unique().to_list()):
        rows = isolated.filter(pl.col("model") == model)
        switched = (rows["previous_model"] != model).cast(pl.Float64).to_numpy()
        response = rows["response_ms"].to_numpy()
        service, overhead = linear_fit(switched, response)
        same = response[switched == 0.0]
        fits.append(
            ServiceFit(
                model=model,
                service_ms=service,
                switch_overhead_ms=overhead,
                same_model_second_moment_ms2=float(np.mean(same**2)) if len(same) else float("nan"),
            )
        )
    return fits


# ---- device profiles from measured traces (`cotenant accelerators fit`) ------------------------------------
#
# A request that queued behind another leaves the device one service time after the request before it left
# (FCFS), so in a busy period the interval between departures is the device's own service, switch included,
# with none of the per-request host time that overlaps the next request's device time. Hence, per model:
# s_i = mean departure interval of queued requests that followed the same model; o_i = the same after another
# model, minus s_i; the second moments of both intervals; client overhead = mean response of requests that
# found the device idle after the same model, minus s_i (pre- and post-processing outside the device queue).
# Only the training load levels are used; the others are held out for validation.

MIN_REQUESTS = 10  # below this many requests a term's mean is too noisy to fit (error names the term)
QUEUEING_COLUMNS = ("model", "start_time", "end_time")  # seconds; one row per request
CLOSED_LOOP_COLUMNS = ("model", "process_type", "response_time")  # ms; Ibis's Sequential/Concurrent runs
LEVEL_COLUMNS = ("load_level", "vary_rho")  # the load level a request was measured at (Ibis: vary_rho)
KIND_BY_FILE_PREFIX = {"trt_": "gpu", "edgetpu_": "tpu", "queuing_tpu_": "tpu"}


class TraceError(ValueError):
    """A trace that cannot be fitted: the message names the file, and the model and column where known."""


class Trace(BaseModel):
    """One measured trace, read and checked."""

    model_config = {"arbitrary_types_allowed": True}

    path: Path
    form: Literal["queueing", "closed_loop"]
    kind: DeviceKind
    frame: pl.DataFrame  # queueing: model, level, start_time, end_time; closed loop: model, process_type, ...


class FittedTerm(BaseModel):
    value: float
    n: int  # requests the value is the mean of


class ModelFit(BaseModel):
    """What one model's profile was estimated from."""

    model: str
    kind: DeviceKind
    trace: str
    levels: list[float]  # the training levels used (closed-loop traces: none)
    terms: dict[str, FittedTerm]


def _device_kind(path: Path, frame: pl.DataFrame) -> DeviceKind:
    if "device_kind" in frame.columns:
        kinds = frame["device_kind"].unique().to_list()
        if len(kinds) != 1 or kinds[0] not in get_args(DeviceKind):
            raise TraceError(
                f"{path}: column device_kind must hold one of {get_args(DeviceKind)}, got {kinds}"
            )
        return cast(DeviceKind, kinds[0])
    for prefix, kind in KIND_BY_FILE_PREFIX.items():
        if path.name.startswith(prefix):
            return cast(DeviceKind, kind)
    raise TraceError(f"{path}: no device_kind column, and the file name does not say (trt_*, edgetpu_*)")


def read_trace(path: Path) -> Trace:
    """A queueing trace (``QUEUEING_COLUMNS``, optional ``load_level``/``vary_rho``, ``device_kind``) or a
    closed-loop profile (``CLOSED_LOOP_COLUMNS``), checked: missing columns and negative durations are
    errors naming the file, and the model and column."""
    try:
        frame = pl.read_csv(path)
    except (OSError, pl.exceptions.PolarsError) as error:
        raise TraceError(f"{path}: not a readable CSV trace: {error}") from error
    columns = set(frame.columns)
    if set(CLOSED_LOOP_COLUMNS) <= columns:
        bad = frame.filter(pl.col("response_time") < 0)
        if len(bad):
            raise TraceError(f"{path}: model {bad['model'][0]!r}: negative response_time")
        return Trace(path=path, form="closed_loop", kind=_device_kind(path, frame), frame=frame)
    missing = [column for column in QUEUEING_COLUMNS if column not in columns]
    if missing:
        raise TraceError(
            f"{path}: missing columns {missing} (a queueing trace has {list(QUEUEING_COLUMNS)}, "
            f"a closed-loop profile {list(CLOSED_LOOP_COLUMNS)})"
        )
    level = next((c for c in LEVEL_COLUMNS if c in columns), None)
    frame = frame.with_columns(level=pl.col(level).cast(pl.Float64) if level else pl.lit(0.0))
    bad = frame.filter(pl.col("end_time") < pl.col("start_time"))
    if len(bad):
        raise TraceError(f"{path}: model {bad['model'][0]!r}: end_time before start_time (negative duration)")
    return Trace(path=path, form="queueing", kind=_device_kind(path, frame), frame=frame)


def training_levels(trace: Trace) -> list[float]:
    """The load levels fitted on: the lowest (the others are held out); all of a single-level trace."""
    levels = sorted(trace.frame["level"].unique().to_list())
    return levels[:1]


def _term(values: np.ndarray) -> FittedTerm:
    """A term's mean over the requests that measure it (NaN from none: ``check_counts`` refuses that)."""
    return FittedTerm(value=float(values.mean()) if len(values) else float("nan"), n=len(values))


def _beyond_service(total: FittedTerm, service: FittedTerm) -> FittedTerm:
    """What a mean time adds to the service time of the same trace (>= 0); counts for nothing when the
    trace measured no service time to subtract (its model's service comes from another trace)."""
    if not service.n:
        return FittedTerm(value=float("nan"), n=0)
    return FittedTerm(value=max(0.0, total.value - service.value), n=total.n)


def check_counts(fits: list[ModelFit]) -> None:
    """Every term of every model must rest on at least ``MIN_REQUESTS`` requests, counted over all the traces
    that measure the model (a model in several traces pools them); else an error naming the traces."""
    pooled: dict[tuple[str, str, str], list[ModelFit]] = {}
    for fit in fits:
        for term in fit.terms:
            pooled.setdefault((fit.model, fit.kind, term), []).append(fit)
    for (model, _, term), found in pooled.items():
        count = sum(fit.terms[term].n for fit in found)
        if count < MIN_REQUESTS:
            files = ", ".join(fit.trace for fit in found)
            raise TraceError(
                f"{files}: model {model!r}: {count} requests to estimate {term} (at least {MIN_REQUESTS}); "
                "measure longer or at a higher load level"
            )


def fit_queueing(trace: Trace, levels: list[float]) -> list[ModelFit]:
    """Per model: service time, switch overhead and client overhead (see the section comment)."""
    rows = (
        trace.frame.filter(pl.col("level").is_in(levels))
        .sort("level", "start_time")
        .with_columns(
            previous_end=pl.col("end_time").shift(1).over("level"),
            previous_model=pl.col("model").shift(1).over("level"),
        )
        .filter(pl.col("previous_model").is_not_null())
        .with_columns(
            queued=pl.col("start_time") < pl.col("previous_end"),
            switched=pl.col("model") != pl.col("previous_model"),
            interval_ms=(pl.col("end_time") - pl.col("previous_end")) * 1000.0,
            response_ms=(pl.col("end_time") - pl.col("start_time")) * 1000.0,
        )
    )
    several_models = rows["model"].n_unique() > 1
    fits = []
    for model in sorted(rows["model"].unique().to_list()):
        own = rows.filter(pl.col("model") == model)
        queued, switched = own["queued"].to_numpy(), own["switched"].to_numpy()
        intervals, responses = own["interval_ms"].to_numpy(), own["response_ms"].to_numpy()
        same = intervals[queued & ~switched]
        service = _term(same)
        terms = {"service_ms": service, "second_moment_ms2": _term(same**2)}
        if several_models:
            after = intervals[queued & switched]
            terms["switch_overhead_ms"] = _beyond_service(_term(after), service)
            terms["switch_second_moment_ms2"] = _term(after**2)
        terms["client_overhead_ms"] = _beyond_service(_term(responses[~queued & ~switched]), service)
        if "memory_mb" in own.columns:
            memory = own["memory_mb"].cast(pl.Float64).to_numpy()
            terms["memory_mb"] = FittedTerm(value=float(memory.mean()), n=len(memory))
        fits.append(ModelFit(model=model, kind=trace.kind, trace=trace.path.name, levels=levels, terms=terms))
    return fits


def fit_closed_loop(trace: Trace) -> list[ModelFit]:
    """Per model: the service time as its mean response when run alone (Ibis's ``Sequential`` rows)."""
    alone = trace.frame.filter(pl.col("process_type") == "Sequential")
    fits = []
    for model in sorted(trace.frame["model"].unique().to_list()):
        responses = alone.filter(pl.col("model") == model)["response_time"].to_numpy()
        terms = {"service_ms": _term(responses), "second_moment_ms2": _term(responses**2)}
        fits.append(ModelFit(model=model, kind=trace.kind, trace=trace.path.name, levels=[], terms=terms))
    return fits


def fit_traces(traces: list[Trace]) -> list[ModelFit]:
    """Every model of every trace, queueing traces on their training levels; a TraceError when a term rests
    on too few requests (``check_counts``)."""
    fits: list[ModelFit] = []
    for trace in traces:
        fits += (
            fit_queueing(trace, training_levels(trace))
            if trace.form == "queueing"
            else fit_closed_loop(trace)
        )
    check_counts(fits)
    return fits


def catalogue_of(fits: list[ModelFit], base: ProfileCatalogue | None, source: str) -> ProfileCatalogue:
    """One profile per model and device kind: a model fitted in several traces gets each term's mean weighted
    by its requests. Memory comes from the traces where recorded, else from ``base`` (else 0: not admitted
    by memory)."""
    grouped: dict[tuple[str, DeviceKind], dict[str, list[FittedTerm]]] = {}
    for fit in fits:
        terms = grouped.setdefault((fit.model, fit.kind), {})
        for name, term in fit.terms.items():
            if term.n:  # a trace that measured none of a term adds nothing to its mean
                terms.setdefault(name, []).append(term)
    models: dict[str, dict[DeviceKind, DeviceProfile]] = {}
    for (model, kind), terms in sorted(grouped.items()):
        values = {
            name: sum(t.value * t.n for t in found) / sum(t.n for t in found) for name, found in terms.items()
        }
        known = (base.models.get(model, {}) if base else {}).get(kind)
        values.setdefault("memory_mb", known.memory_mb if known else 0.0)
        models.setdefault(model, {})[kind] = DeviceProfile.model_validate(values)
    return ProfileCatalogue(models=models, source=source)
