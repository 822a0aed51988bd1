"""Least-squares estimates, with standard errors, of service times and switch overheads from measured traces.

On one edgeTPU a request that found the device idle takes s_i if the previous request was the same model and
s_i + o_i if it was another one, so regressing those isolated response times on a switch indicator gives s_i
(intercept) and o_i (slope). Requests that queued are left out: their response includes waiting.
"""

from __future__ import annotations

import numpy as np
import polars as pl
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
