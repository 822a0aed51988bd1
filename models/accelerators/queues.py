"""The servers the simulator replays requests through: FCFS (with an edgeTPU's model-switch reload) and
egalitarian processor sharing (time-sliced GPU processes).

The verdict needs long runs (see `simulator`), so the servers are written for speed. FCFS is a Lindley
recursion, which is a running maximum and so vectorises: with C_i the cumulative work up to request i,
departure D_i = C_i + max_{j <= i} (A_j - C_{j-1}). The reload a request pays depends only on the model of the
request before it in arrival order, which is known before the recursion. Processor sharing cannot be
vectorised; it runs on virtual time (each of n active jobs advances at rate 1/n, so a job leaves when virtual
time reaches its start plus its work), which turns every event into a heap operation instead of a pass over
all active jobs.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence

import numpy as np


def fcfs_departures(arrivals: np.ndarray, work: np.ndarray) -> np.ndarray:
    """Departure times of an FCFS server; `arrivals` sorted ascending, `work` in the same order."""
    if len(arrivals) == 0:
        return np.empty(0)
    cumulative = np.cumsum(work)
    return cumulative + np.maximum.accumulate(arrivals - (cumulative - work))


def fcfs_with_switch(
    arrivals: np.ndarray, models: Sequence[str], services: np.ndarray, overheads: np.ndarray
) -> np.ndarray:
    """Response times of an FCFS server; a request pays its model's reload when the previous one differed."""
    order = np.argsort(arrivals, kind="stable")
    labels = np.asarray(models)[order]
    switched = np.zeros(len(order), dtype=bool)
    switched[1:] = labels[1:] != labels[:-1]
    work = services[order] + np.where(switched, overheads[order], 0.0)
    response = np.empty(len(arrivals))
    response[order] = fcfs_departures(arrivals[order], work) - arrivals[order]
    return response


def processor_sharing(arrivals: np.ndarray, services: np.ndarray) -> np.ndarray:
    """Response times under egalitarian processor sharing (each of n active jobs served at rate 1/n)."""
    order = np.argsort(arrivals, kind="stable").tolist()
    arrival_times: list[float] = arrivals.tolist()
    works: list[float] = services.tolist()
    response = [0.0] * len(arrival_times)
    active: list[tuple[float, int]] = []  # (virtual finish time, job)
    clock = virtual = 0.0
    position, count = 0, len(order)
    while position < count or active:
        next_arrival = arrival_times[order[position]] if position < count else float("inf")
        if active:
            next_departure = clock + (active[0][0] - virtual) * len(active)
            if next_departure <= next_arrival:
                virtual = active[0][0]
                clock = next_departure
                job = heapq.heappop(active)[1]
                response[job] = clock - arrival_times[job]
                continue
            virtual += (next_arrival - clock) / len(active)
        clock = next_arrival
        job = order[position]
        heapq.heappush(active, (virtual + works[job], job))
        position += 1
    return np.asarray(response)
