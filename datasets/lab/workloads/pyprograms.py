"""Runs one of the lab's Python application programs in a loop for a number of seconds and prints its rate.

Usage: ``python pyprograms.py PROGRAM --seconds S --threads N [--data DIR]`` (the workloads run the file as a
script with ``python -P`` so that it starts in about a second; ``python -m
cotenant.datasets.lab.workloads.pyprograms`` also works but first imports ``cotenant.datasets``, which
imports Polars before ``POLARS_MAX_THREADS`` is set, so Polars then ignores ``--threads``).

Programs (``--threads`` = the library's thread count, which is what a lab level means for all of them):

* ``analytics``: TPC-H-like queries Q1 (filter + group-by aggregation + sort), Q3 (two joins + group-by +
  top-10 sort) and Q6 (filter + sum) with Polars on the tables ``generate_tpch`` wrote under ``--data``;
  one unit = one query, rate in queries per second.
* ``pandas_analytics``: the same three queries with pandas on the same tables, as a data scientist's
  notebook runs them: single-threaded vectorised kernels, each intermediate a new frame; ``--threads`` N
  runs N worker processes (pandas runs one thread), each running the three queries per iteration.
* ``torch_inference``: batch inference of a small transformer encoder (seeded random weights) on random
  token embeddings in ``torch.inference_mode()``; units are samples, rate in samples per second.
* ``torch_training``: training steps (forward, backward, an Adam update) of a small CNN on synthetic
  32x32 images; units are samples, rate in samples per second.
* ``numpy_blas``: float64 1024x1024 matrix multiplications through numpy's OpenBLAS; units are GFLOP
  (2 n^3 per product), rate in GFLOP/s.
* ``numpy_stream``: STREAM's triad a = b + s * c over three float64 arrays of 32 MiB, each of ``--threads``
  threads sweeping its own slice; units are GB of STREAM's accounting (24 bytes per element), rate in GB/s.
* ``numpy_gather``: random lookups ``table[indices]`` into a float64 table of 256 MiB (an embedding or hash
  table's access pattern), 1 Mi fixed random indices per iteration split among ``--threads`` threads; every
  lookup a cache miss, so the rate is memory latency, not bandwidth; units are million lookups.
* ``scipy_pagerank``: PageRank's power iterations (a sparse matrix-vector product with scipy's CSR kernel)
  over a fixed random graph of 1 Mi nodes and 16 Mi edges whose links go mostly to a few popular nodes, a
  graph-analytics pattern: the edges stream from memory while the rank vector (8 MiB) is read at random,
  mostly from the cache; units are million edges traversed.
* ``scipy_dijkstra``: single-source shortest paths (scipy's Dijkstra) from one source after another over a
  fixed road-network-like graph of ``DIJKSTRA_NODES`` nodes, each linked to ``DIJKSTRA_DEGREE`` others, most
  of them near it and one in eight anywhere; units are million edges scanned (every edge once per source).
  scipy holds the interpreter's lock while it searches, so ``--threads`` N runs N worker processes.
* ``sklearn_forest``: a random forest's trees fitted one after another (scikit-learn's decision tree with
  half the features tried at each split, as a forest's trees are) on a fixed table of ``FOREST_SAMPLES``
  rows and ``FOREST_FEATURES`` float32 features; each of ``--threads`` threads fits its own tree per
  iteration (scikit-learn's tree builder releases the interpreter's lock, as its forests' threads rely
  on); units are trees.
* ``python_json``: a Python web backend's request handling in the interpreter: each request is one of a
  fixed set of JSON orders, parsed, totalled and summarised in Python code and answered as JSON; units are
  requests. The interpreter's lock lets one thread run Python at a time, so ``--threads`` N runs N worker
  processes, each answering its share of every iteration's requests.

Timing: start-up (imports, loading tables, building the model) and one warm-up iteration run before the
clock starts; iterations then run while fewer than ``--seconds`` have passed and the rate is the work of
the finished iterations over the time up to the last finish, so no iteration is counted partially. The
result line (``RESULT_FORMAT``) also reports the start-up time up to the end of the first iteration.

Standard library at the top only: each program imports the one library it needs after setting the thread
count variables, which the libraries read once, at import.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

RESULT_FORMAT = (
    "pyprograms: program={program} threads={threads} iterations={iterations} units={units:.3f} unit={unit} "
    "seconds={seconds:.3f} startup={startup:.3f} rate={rate:.6f} per_second"
)
PROGRAMS = (
    "analytics",
    "pandas_analytics",
    "torch_inference",
    "torch_training",
    "numpy_blas",
    "numpy_stream",
    "numpy_gather",
    "scipy_pagerank",
    "scipy_dijkstra",
    "sklearn_forest",
    "python_json",
)
SCRIPT = Path(__file__).resolve()


def result_pattern(program: str) -> str:
    """A regular expression whose group is the rate on ``program``'s result line."""
    return (
        rf"pyprograms: program={program} threads=\d+ iterations=\d+ units=[\d.]+ unit=\w+ "
        r"seconds=[\d.]+ startup=[\d.]+ rate=([\d.]+) per_second"
    )


def command(program: str, threads: int, seconds: int, data: Path | None = None) -> list[str]:
    """The command line running ``program`` for ``seconds`` with ``threads`` threads.

    ``-P``: a script's folder is not put on ``sys.path`` (see the end of this file); the file is run as a
    script rather than with ``-m``, which would import ``cotenant.datasets`` and Polars first.
    """
    options = ["--data", str(data)] if data is not None else []
    return [
        sys.executable,
        "-P",
        str(SCRIPT),
        program,
        "--seconds",
        str(seconds),
        "--threads",
        str(threads),
        *options,
    ]


# Table sizes of the analytics program (TPC-H scale factor 0.25): ~1.5 M lineitem rows, ~125 MB loaded;
# the process peaks near 300 MB RSS (Parquet decoding and query intermediates the allocator keeps).
ORDERS = 375_000
CUSTOMERS = 37_500
TPCH_SEED = 20240601
TPCH_TABLES = ("lineitem", "orders", "customer")

BLAS_N = 1024
# 4 Mi float64 elements (32 MiB) per STREAM array: three of them are far beyond any L3 of the lab's machines.
STREAM_ELEMENTS = 4 * 1024 * 1024
# Elements per block of a sweep (512 KiB of each array): s * c goes to an L2-sized scratch buffer and is added
# to b straight into a, so each array crosses the memory bus once per sweep, as in STREAM.
STREAM_BLOCK = 64 * 1024
# 32 Mi float64 (256 MiB) in the gather table: lookups at random places in it miss every cache and most of the
# TLB; 1 Mi indices (8 MiB, read in order) per iteration, about 0.1 s of lookups on one core.
GATHER_ELEMENTS = 32 * 1024 * 1024
GATHER_LOOKUPS = 1024 * 1024
# The PageRank graph: 1 Mi nodes, 16 Mi edges (CSR: 128 MiB of weights, 64 MiB of int32 sources; ~400 MiB
# peak while it is built), sources drawn as u^3 x nodes, so a tenth of the nodes gather ~46% of the links, as
# a web or social graph's popular pages do; node numbers shuffled so that popular nodes lie anywhere in the
# rank vector. One iteration (one product over every edge) takes ~35 ms on one core.
PAGERANK_NODES = 1024 * 1024
PAGERANK_EDGES = 16 * 1024 * 1024
PAGERANK_SKEW = 3.0
PAGERANK_DAMPING = 0.85
# The shortest-path graph: 128 Ki nodes, 8 links out of each (CSR: 12 MiB of weights and targets, with 1 MiB
# of distances and the search's heap: beyond the L2, within or near the L3 of the lab's machines), seven in
# eight to one of the next 63 nodes (a road network's local streets) and one in eight anywhere (its
# highways), weights uniform in [1, 10). One search from a source reaches every node: ~70 ms on one core.
DIJKSTRA_NODES = 128 * 1024
DIJKSTRA_DEGREE = 8
DIJKSTRA_LOCAL_SPAN = 64
DIJKSTRA_FAR_SHARE = 0.125
# The forest's table: 16 000 rows of 24 float32 features (1.5 MiB, in the L2 and L3 of the lab's machines,
# with the builder's sorted index arrays), labelled by a noisy non-linear rule so that trees grow deep
# (~0.25 s a tree on one core). Trees' seeds cycle through FOREST_TREES, the same work in every run.
FOREST_SAMPLES = 16_000
FOREST_FEATURES = 24
FOREST_TREES = 16
FOREST_SEED = 20261206
# The JSON orders: 2000 distinct documents of 1-20 line items (~1 MB of JSON in all), every one answered once
# per iteration (~40 ms on one core), so the interpreter's working set is a web worker's, not one document's.
JSON_ORDERS = 2000
JSON_SEED = 20261205

# One iteration of a program: it does some work and returns how many units it did.
Step = Callable[[], float]


def set_thread_count(threads: int) -> None:
    """Every library's thread count, set before the library is imported (they read it once, at import).

    OPENBLAS_CORETYPE (the kernel family OpenBLAS uses) is left as the environment has it.
    """
    for variable in ("POLARS_MAX_THREADS", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[variable] = str(threads)


def generate_tpch(directory: Path, orders: int = ORDERS, customers: int = CUSTOMERS) -> None:
    """Writes TPC-H-like ``lineitem``, ``orders`` and ``customer`` Parquet files, the same on every call.

    Only the columns Q1, Q3 and Q6 read, with TPC-H's value ranges (dates 1992-1998, discount 0-0.10,
    quantity 1-50, 1-7 line items per order); deterministic from a fixed seed.
    """
    import numpy as np
    import polars as pl

    rng = np.random.default_rng(TPCH_SEED)
    segments = np.array(["AUTOMOBILE", "BUILDING", "FURNITURE", "HOUSEHOLD", "MACHINERY"])
    customer = pl.DataFrame(
        {
            "c_custkey": np.arange(1, customers + 1, dtype=np.int64),
            "c_mktsegment": segments[rng.integers(0, len(segments), customers)],
        }
    )
    first_day = np.datetime64("1992-01-01")
    order_dates = first_day + rng.integers(0, 2406, orders).astype("timedelta64[D]")  # to 1998-08-02
    orders_frame = pl.DataFrame(
        {
            "o_orderkey": np.arange(1, orders + 1, dtype=np.int64),
            "o_custkey": rng.integers(1, customers + 1, orders, dtype=np.int64),
            "o_orderdate": order_dates,
            "o_shippriority": np.zeros(orders, dtype=np.int32),
        }
    )
    lines_per_order = rng.integers(1, 8, orders)
    rows = int(lines_per_order.sum())
    orderkey = np.repeat(orders_frame["o_orderkey"].to_numpy(), lines_per_order)
    shipdate = np.repeat(order_dates, lines_per_order) + rng.integers(1, 122, rows).astype("timedelta64[D]")
    quantity = rng.integers(1, 51, rows).astype(np.float64)
    price = np.round(quantity * rng.uniform(900.0, 2100.0, rows), 2)
    # TPC-H: items shipped before 1995-06-17 are returned (R) or accepted (A), later ones not returned (N);
    # line status is F (filled) before that date and O (open) after.
    shipped_early = shipdate <= np.datetime64("1995-06-17")
    returnflag = np.where(shipped_early, np.where(rng.random(rows) < 0.5, "R", "A"), "N")
    lineitem = pl.DataFrame(
        {
            "l_orderkey": orderkey,
            "l_quantity": quantity,
            "l_extendedprice": price,
            "l_discount": rng.integers(0, 11, rows) / 100.0,
            "l_tax": rng.integers(0, 9, rows) / 100.0,
            "l_returnflag": returnflag,
            "l_linestatus": np.where(shipped_early, "F", "O"),
            "l_shipdate": shipdate,
        }
    )
    directory.mkdir(parents=True, exist_ok=True)
    for name, frame in (("customer", customer), ("orders", orders_frame), ("lineitem", lineitem)):
        frame.write_parquet(directory / f"{name}.parquet")


def polars_queries(data: Path) -> tuple[Any, ...]:
    """Q1, Q3 and Q6 as Polars lazy queries over the tables ``generate_tpch`` wrote in ``data``, loaded."""
    import datetime

    import polars as pl

    # Tables are loaded once, so queries measure in-memory analytics, not Parquet decoding or the page cache.
    lineitem = pl.read_parquet(data / "lineitem.parquet").lazy()
    orders = pl.read_parquet(data / "orders.parquet").lazy()
    customer = pl.read_parquet(data / "customer.parquet").lazy()
    revenue = pl.col("l_extendedprice") * (1 - pl.col("l_discount"))

    q1 = (
        lineitem.filter(pl.col("l_shipdate") <= datetime.date(1998, 9, 2))
        .group_by("l_returnflag", "l_linestatus")
        .agg(
            pl.col("l_quantity").sum().alias("sum_qty"),
            pl.col("l_extendedprice").sum().alias("sum_base_price"),
            revenue.sum().alias("sum_disc_price"),
            (revenue * (1 + pl.col("l_tax"))).sum().alias("sum_charge"),
            pl.col("l_quantity").mean().alias("avg_qty"),
            pl.col("l_extendedprice").mean().alias("avg_price"),
            pl.col("l_discount").mean().alias("avg_disc"),
            pl.len().alias("count_order"),
        )
        .sort("l_returnflag", "l_linestatus")
    )
    day = datetime.date(1995, 3, 15)
    q3 = (
        customer.filter(pl.col("c_mktsegment") == "BUILDING")
        .join(orders.filter(pl.col("o_orderdate") < day), left_on="c_custkey", right_on="o_custkey")
        .join(lineitem.filter(pl.col("l_shipdate") > day), left_on="o_orderkey", right_on="l_orderkey")
        .group_by("o_orderkey", "o_orderdate", "o_shippriority")
        .agg(revenue.sum().alias("revenue"))
        .sort(["revenue", "o_orderdate"], descending=[True, False])
        .head(10)
    )
    q6 = lineitem.filter(
        pl.col("l_shipdate").is_between(datetime.date(1994, 1, 1), datetime.date(1995, 1, 1), closed="left")
        & pl.col("l_discount").is_between(0.05, 0.07)
        & (pl.col("l_quantity") < 24)
    ).select((pl.col("l_extendedprice") * pl.col("l_discount")).sum().alias("revenue"))
    return (q1, q3, q6)


def collected_rows(query: Any) -> int:
    """A Polars lazy query run: its row count."""
    return int(query.collect().height)


def answered_rows(query: Callable[[], Any]) -> int:
    """A pandas query run: its row count."""
    return len(query())


def answering_queries(
    program: str, data: Path | None, queries: Callable[[Path], Sequence[Callable[[], int]]]
) -> Step:
    """A step running each of ``queries(data)`` (each answers its row count) once: every rate weighs the
    three queries alike whenever the deadline falls, and a query answering no rows stops the program."""
    if data is None:
        raise SystemExit(f"pyprograms: {program} needs --data (the directory generate_tpch wrote)")
    answers = queries(data)

    def step() -> float:
        for rows in answers:
            if rows() == 0:
                raise RuntimeError(f"pyprograms: a {program} query returned no rows (bad --data?)")
        return float(len(answers))

    return step


def analytics(threads: int, data: Path | None) -> Step:
    def counted(tables: Path) -> list[Callable[[], int]]:
        return [functools.partial(collected_rows, query) for query in polars_queries(tables)]

    return answering_queries("analytics", data, counted)


# The step each forked worker runs, set before the pool forks so that every worker inherits it built.
forked_step: Step | None = None
# Pools of worker processes, shut down by main() once the clock stops: left to the interpreter's exit, a
# pool's wake-up pipe may already be closed when its exit hook writes to it (a traceback after the result).
worker_pools: list[Any] = []


def run_forked_step(_: int) -> float:
    """One iteration of ``forked_step`` in a worker process; its units."""
    if forked_step is None:
        raise RuntimeError("pyprograms: a worker process started without its step")
    return forked_step()


def in_worker_processes(step: Step, workers: int) -> Step:
    """``step`` run once by each of ``workers`` forked processes per iteration, for libraries that hold the
    interpreter's lock while they work (so threads would take turns); one worker runs it in this process."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    if workers == 1:
        return step
    global forked_step
    forked_step = step
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork"))
    worker_pools.append(pool)
    return lambda: float(sum(pool.map(run_forked_step, range(workers))))


def pandas_queries(data: Path) -> tuple[Callable[[], Any], ...]:
    """Q1, Q3 and Q6 (``polars_queries``' questions) as pandas code over the tables in ``data``, loaded."""
    import pandas as pd

    # Loaded once, dates as datetime64 (Parquet's dates arrive as Python objects), as analytics code loads
    # them; the queries then measure in-memory analytics, not decoding.
    lineitem = pd.read_parquet(data / "lineitem.parquet")
    lineitem["l_shipdate"] = pd.to_datetime(lineitem["l_shipdate"])
    orders = pd.read_parquet(data / "orders.parquet")
    orders["o_orderdate"] = pd.to_datetime(orders["o_orderdate"])
    customer = pd.read_parquet(data / "customer.parquet")

    def q1() -> Any:
        lines = lineitem[lineitem["l_shipdate"] <= pd.Timestamp(1998, 9, 2)]
        price = lines["l_extendedprice"] * (1 - lines["l_discount"])
        lines = lines.assign(disc_price=price, charge=price * (1 + lines["l_tax"]))
        return (
            lines.groupby(["l_returnflag", "l_linestatus"])
            .agg(
                sum_qty=("l_quantity", "sum"),
                sum_base_price=("l_extendedprice", "sum"),
                sum_disc_price=("disc_price", "sum"),
                sum_charge=("charge", "sum"),
                avg_qty=("l_quantity", "mean"),
                avg_price=("l_extendedprice", "mean"),
                avg_disc=("l_discount", "mean"),
                count_order=("l_quantity", "size"),
            )
            .sort_index()
        )

    def q3() -> Any:
        day = pd.Timestamp(1995, 3, 15)
        joined = (
            customer[customer["c_mktsegment"] == "BUILDING"]
            .merge(orders[orders["o_orderdate"] < day], left_on="c_custkey", right_on="o_custkey")
            .merge(lineitem[lineitem["l_shipdate"] > day], left_on="o_orderkey", right_on="l_orderkey")
        )
        joined = joined.assign(revenue=joined["l_extendedprice"] * (1 - joined["l_discount"]))
        return (
            joined.groupby(["o_orderkey", "o_orderdate", "o_shippriority"], as_index=False)["revenue"]
            .sum()
            .sort_values(["revenue", "o_orderdate"], ascending=[False, True])
            .head(10)
        )

    def q6() -> Any:
        shipped = lineitem["l_shipdate"]
        chosen = (
            (shipped >= pd.Timestamp(1994, 1, 1))
            & (shipped < pd.Timestamp(1995, 1, 1))
            & lineitem["l_discount"].between(0.05, 0.07)
            & (lineitem["l_quantity"] < 24)
        )
        revenue = (lineitem["l_extendedprice"] * lineitem["l_discount"])[chosen].sum()
        return pd.DataFrame({"revenue": [revenue]})

    return (q1, q3, q6)


def pandas_analytics(threads: int, data: Path | None) -> Step:
    def counted(tables: Path) -> list[Callable[[], int]]:
        return [functools.partial(answered_rows, query) for query in pandas_queries(tables)]

    return in_worker_processes(answering_queries("pandas_analytics", data, counted), threads)


def torch_inference(threads: int, data: Path | None) -> Step:
    import torch

    torch.set_num_threads(threads)
    # Inter-op threads only run independent graph branches (TorchScript); one keeps the level honest.
    torch.set_num_interop_threads(1)
    torch.manual_seed(0)
    batch, sequence, width = 8, 128, 256
    # A BERT-mini-sized encoder (4 layers, width 256, 4 heads): ~3 M parameters, ~7 GFLOP per batch.
    layer = torch.nn.TransformerEncoderLayer(
        d_model=width, nhead=4, dim_feedforward=4 * width, dropout=0.0, batch_first=True
    )
    model = torch.nn.Sequential(
        torch.nn.TransformerEncoder(layer, num_layers=4, enable_nested_tensor=False),
        torch.nn.Linear(width, 2),
    ).eval()
    inputs = torch.randn(batch, sequence, width)

    def step() -> float:
        with torch.inference_mode():
            model(inputs)
        return float(batch)

    return step


def torch_training(threads: int, data: Path | None) -> Step:
    import torch

    torch.set_num_threads(threads)
    torch.set_num_interop_threads(1)
    torch.manual_seed(0)
    # 32 images per step (~30 ms on one core): the backward pass's buffers stay ~100 MB over torch's ~230 MB.
    batch = 32

    def block(inputs: int, outputs: int) -> list[torch.nn.Module]:
        return [
            torch.nn.Conv2d(inputs, outputs, 3, padding=1, bias=False),
            torch.nn.BatchNorm2d(outputs),
            torch.nn.ReLU(),
            torch.nn.MaxPool2d(2),
        ]

    # A small CIFAR-style CNN (~0.3 M parameters); synthetic images and labels, fixed for the whole run.
    model = torch.nn.Sequential(
        *block(3, 32),
        *block(32, 64),
        *block(64, 128),
        torch.nn.Flatten(),
        torch.nn.Linear(128 * 4 * 4, 10),
    ).train()
    loss_function = torch.nn.CrossEntropyLoss()
    images = torch.randn(batch, 3, 32, 32)
    labels = torch.randint(0, 10, (batch,))
    # Adam written out rather than torch.optim.Adam: creating any torch.optim optimizer imports
    # torch._dynamo and sympy (+70 MB RSS, +1-2 s start-up), which would push the program near the lab's
    # 512 MiB cgroups. Same arithmetic as torch.optim.Adam (lr 1e-3, betas 0.9/0.999, eps 1e-8).
    parameters = [parameter for parameter in model.parameters() if parameter.requires_grad]
    first = [torch.zeros_like(parameter) for parameter in parameters]
    second = [torch.zeros_like(parameter) for parameter in parameters]
    rate, beta1, beta2, epsilon = 1e-3, 0.9, 0.999, 1e-8
    steps = 0

    def step() -> float:
        nonlocal steps
        for parameter in parameters:
            parameter.grad = None
        loss = loss_function(model(images), labels)
        loss.backward()
        steps += 1
        correction1, correction2 = 1 - beta1**steps, 1 - beta2**steps
        with torch.no_grad():
            for parameter, mean, square in zip(parameters, first, second, strict=True):
                gradient = parameter.grad
                assert gradient is not None
                mean.mul_(beta1).add_(gradient, alpha=1 - beta1)
                square.mul_(beta2).addcmul_(gradient, gradient, value=1 - beta2)
                denominator = (square / correction2).sqrt_().add_(epsilon)
                parameter.addcdiv_(mean, denominator, value=-rate / correction1)
        return float(batch)

    return step


def numpy_blas(threads: int, data: Path | None) -> Step:
    import numpy as np

    rng = np.random.default_rng(0)
    left = rng.standard_normal((BLAS_N, BLAS_N))
    right = rng.standard_normal((BLAS_N, BLAS_N))
    product = np.empty((BLAS_N, BLAS_N))
    gflop = 2.0 * BLAS_N**3 / 1e9

    def step() -> float:
        # Into a preallocated output: the loop measures DGEMM, not allocating and faulting in 8 MB per call.
        np.matmul(left, right, out=product)
        return gflop

    return step


def thread_slices(length: int, threads: int) -> list[tuple[int, int]]:
    """``threads`` contiguous (first, end) slices of ``range(length)``, as even as whole elements allow."""
    import numpy as np

    bounds = [int(bound) for bound in np.linspace(0, length, threads + 1)]
    return list(itertools.pairwise(bounds))


def triad(a: Any, b: Any, c: Any, scalar: float, first: int, end: int, scratch: Any) -> None:
    """a[first:end] = b[first:end] + scalar * c[first:end] (numpy float64 arrays), one block of ``scratch``'s
    length at a time (``scratch``: the thread's own buffer, allocated once, not on every sweep)."""
    import numpy as np

    block = len(scratch)
    for start in range(first, end, block):
        stop = min(start + block, end)
        part = scratch[: stop - start]
        np.multiply(c[start:stop], scalar, out=part)
        np.add(b[start:stop], part, out=a[start:stop])


def numpy_stream(threads: int, data: Path | None) -> Step:
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np

    rng = np.random.default_rng(0)
    b = rng.standard_normal(STREAM_ELEMENTS)
    c = rng.standard_normal(STREAM_ELEMENTS)
    a = np.empty(STREAM_ELEMENTS)
    gigabytes = 3 * 8 * STREAM_ELEMENTS / 1e9  # STREAM's accounting for the triad: read b and c, write a
    slices = thread_slices(STREAM_ELEMENTS, threads)
    scratches = [np.empty(STREAM_BLOCK) for _ in slices]
    pool = ThreadPoolExecutor(max_workers=threads)

    def step() -> float:
        # numpy releases the GIL inside each ufunc's loop, so the threads' sweeps run side by side.
        sweeps = [
            pool.submit(triad, a, b, c, 3.0, first, end, scratch)
            for (first, end), scratch in zip(slices, scratches, strict=True)
        ]
        for sweep in sweeps:
            sweep.result()
        return gigabytes

    return step


def gather(table: Any, indices: Any, out: Any) -> None:
    """out = table[indices] (numpy arrays; numpy releases the GIL in ``take``'s loop)."""
    import numpy as np

    np.take(table, indices, out=out)


def numpy_gather(threads: int, data: Path | None) -> Step:
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np

    rng = np.random.default_rng(0)
    table = rng.random(GATHER_ELEMENTS)
    indices = rng.integers(0, GATHER_ELEMENTS, GATHER_LOOKUPS)
    out = np.empty(GATHER_LOOKUPS)
    slices = thread_slices(GATHER_LOOKUPS, threads)
    pool = ThreadPoolExecutor(max_workers=threads)
    millions = GATHER_LOOKUPS / 1e6

    def step() -> float:
        parts = [pool.submit(gather, table, indices[first:end], out[first:end]) for first, end in slices]
        for part in parts:
            part.result()
        return millions

    return step


def pagerank_graph(nodes: int, edges: int, seed: int = 0) -> Any:
    """The link matrix of a fixed random graph (scipy CSR, ``nodes`` x ``nodes``, float64): row ``i`` holds
    one entry per link into node ``i``, at its source's column, weighing ``1 / out-degree`` of the source, so
    that ``matrix @ rank`` is what each node receives in one PageRank step. Each node has about
    ``edges / nodes`` in-links; sources are skewed towards popular nodes (``PAGERANK_SKEW``)."""
    import numpy as np
    from scipy import sparse

    rng = np.random.default_rng(seed)
    popularity = rng.permutation(nodes).astype(np.int32)  # which node is the k-th most popular
    sources = popularity[(nodes * rng.random(edges) ** PAGERANK_SKEW).astype(np.int64)]
    in_degree = rng.multinomial(edges, np.full(nodes, 1.0 / nodes))
    row_starts = np.concatenate(([0], np.cumsum(in_degree))).astype(np.int32)
    out_degree = np.bincount(sources, minlength=nodes)
    weights = 1.0 / out_degree[sources]
    return sparse.csr_matrix((weights, sources, row_starts), shape=(nodes, nodes))


def pagerank_step(block: Any, rank: Any, out: Any, teleport: float) -> None:
    """out = damping x (block @ rank) + teleport: one PageRank step for ``block``'s rows (scipy releases the
    interpreter's lock in its CSR product, so threads' blocks run side by side)."""
    out[:] = block @ rank
    out *= PAGERANK_DAMPING
    out += teleport


def scipy_pagerank(threads: int, data: Path | None) -> Step:
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np

    matrix = pagerank_graph(PAGERANK_NODES, PAGERANK_EDGES)
    slices = thread_slices(PAGERANK_NODES, threads)
    # Row slices are copies: one thread reads the matrix itself, more read their slices of it alone.
    blocks = [matrix] if len(slices) == 1 else [matrix[first:end] for first, end in slices]
    del matrix
    rank = np.full(PAGERANK_NODES, 1.0 / PAGERANK_NODES)
    new_rank = np.empty(PAGERANK_NODES)
    teleport = (1.0 - PAGERANK_DAMPING) / PAGERANK_NODES
    pool = ThreadPoolExecutor(max_workers=threads)
    millions = PAGERANK_EDGES / 1e6

    def step() -> float:
        nonlocal rank, new_rank
        outs = [new_rank[first:end] for first, end in slices]
        list(pool.map(pagerank_step, blocks, [rank] * threads, outs, [teleport] * threads))
        rank, new_rank = new_rank, rank
        return millions

    return step


def dijkstra_graph(nodes: int, degree: int = DIJKSTRA_DEGREE, seed: int = 0) -> Any:
    """The shortest-path graph (scipy CSR, ``nodes`` x ``nodes``, ``degree`` links out of each node): each
    link goes to one of the next ``DIJKSTRA_LOCAL_SPAN - 1`` nodes (wrapping round), or with probability
    ``DIJKSTRA_FAR_SHARE`` to any node; weights uniform in [1, 10). The same graph for the same arguments."""
    import numpy as np
    from scipy import sparse

    rng = np.random.default_rng(seed)
    links = nodes * degree
    sources = np.repeat(np.arange(nodes), degree)
    # Distinct offsets per node, so that its local links go to distinct nodes.
    offsets = np.tile(np.arange(1, DIJKSTRA_LOCAL_SPAN, dtype=np.int32), (nodes, 1))
    near = (sources + rng.permuted(offsets, axis=1)[:, :degree].ravel()) % nodes
    targets = np.where(rng.random(links) < DIJKSTRA_FAR_SHARE, rng.integers(0, nodes, links), near)
    weights = rng.uniform(1.0, 10.0, links)
    # A far link landing on a local one (rare) is summed with it by the constructor, a longer road.
    return sparse.csr_matrix((weights, (sources, targets)), shape=(nodes, nodes))


def scipy_dijkstra(threads: int, data: Path | None) -> Step:
    from scipy.sparse import csgraph

    graph = dijkstra_graph(DIJKSTRA_NODES)
    sources = itertools.cycle(range(0, DIJKSTRA_NODES, 997))  # sources spread over the graph
    millions = graph.nnz / 1e6

    def step() -> float:
        csgraph.dijkstra(graph, directed=True, indices=next(sources))
        return millions

    return in_worker_processes(step, threads)


def forest_table(samples: int, features: int, seed: int = FOREST_SEED) -> tuple[Any, Any]:
    """The forest's training table (float32 ``samples`` x ``features``) and its 0/1 labels: a linear rule
    with an interaction and noise, the same for the same arguments."""
    import numpy as np

    rng = np.random.default_rng(seed)
    table = rng.normal(size=(samples, features)).astype(np.float32)
    weights = rng.normal(size=features)
    score = table @ weights + np.sin(3 * table[:, 0]) * table[:, 1] + rng.normal(size=samples)
    return table, (score > 0).astype(np.int64)


def fit_tree(table: Any, labels: Any, seed: int) -> Any:
    """One forest tree: grown until its leaves hold 2 rows, half the features tried at each split."""
    from sklearn.tree import DecisionTreeClassifier

    return DecisionTreeClassifier(max_features=0.5, min_samples_leaf=2, random_state=seed).fit(table, labels)


def sklearn_forest(threads: int, data: Path | None) -> Step:
    from concurrent.futures import ThreadPoolExecutor

    table, labels = forest_table(FOREST_SAMPLES, FOREST_FEATURES)
    seeds = itertools.cycle(range(FOREST_TREES))
    pool = ThreadPoolExecutor(max_workers=threads)

    def step() -> float:
        trees = [next(seeds) for _ in range(threads)]
        list(pool.map(fit_tree, [table] * threads, [labels] * threads, trees))
        return float(threads)

    return step


def json_orders(count: int, seed: int = JSON_SEED) -> list[str]:
    """``count`` JSON orders, the same on every call: a customer (tier, tags) and 1-20 line items."""
    import json
    import random

    rng = random.Random(seed)
    tiers = ("free", "pro", "enterprise")
    orders = []
    for number in range(count):
        order = {
            "id": number,
            "created": f"2026-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}T12:00:00Z",
            "customer": {
                "name": f"customer-{rng.randrange(10**6)}",
                "tier": rng.choice(tiers),
                "tags": [f"tag-{rng.randrange(50)}" for _ in range(rng.randrange(1, 6))],
            },
            "items": [
                {
                    "sku": f"sku-{rng.randrange(10**5)}",
                    "quantity": rng.randrange(1, 10),
                    "price": round(rng.uniform(1.0, 500.0), 2),
                }
                for _ in range(rng.randrange(1, 21))
            ],
        }
        orders.append(json.dumps(order))
    return orders


def answer_order(document: str) -> str:
    """One request: the order parsed, its lines totalled (enterprise customers at 10% off) and its summary
    answered as JSON."""
    import json

    order = json.loads(document)
    discount = 0.9 if order["customer"]["tier"] == "enterprise" else 1.0
    total, quantity = 0.0, 0
    for item in order["items"]:
        total += item["quantity"] * item["price"] * discount
        quantity += item["quantity"]
    summary = {
        "id": order["id"],
        "month": order["created"][:7],
        "total": round(total, 2),
        "quantity": quantity,
        "tags": sorted(set(order["customer"]["tags"])),
    }
    return json.dumps(summary)


def answer_orders(documents: Sequence[str]) -> int:
    """Answers every one of ``documents``; how many."""
    for document in documents:
        answer_order(document)
    return len(documents)


@functools.cache
def fixed_json_orders() -> tuple[str, ...]:
    """The program's orders, built once per process (a forked worker inherits its parent's)."""
    return tuple(json_orders(JSON_ORDERS))


def answer_order_share(first: int, end: int) -> int:
    """Answers orders ``first`` to ``end`` of ``fixed_json_orders`` (a worker process's share)."""
    return answer_orders(fixed_json_orders()[first:end])


def python_json(threads: int, data: Path | None) -> Step:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    orders = fixed_json_orders()
    if threads == 1:
        return lambda: float(answer_orders(orders))
    # Each iteration sends each worker its share's bounds only; the orders are already in its memory.
    firsts, ends = zip(*thread_slices(len(orders), threads), strict=True)
    pool = ProcessPoolExecutor(max_workers=threads, mp_context=multiprocessing.get_context("fork"))

    def step() -> float:
        return float(sum(pool.map(answer_order_share, firsts, ends)))

    return step


UNITS = {
    "analytics": "queries",
    "pandas_analytics": "queries",
    "torch_inference": "samples",
    "torch_training": "samples",
    "numpy_blas": "gflop",
    "numpy_stream": "gigabytes",
    "numpy_gather": "million_lookups",
    "scipy_pagerank": "million_edges",
    "scipy_dijkstra": "million_edges",
    "sklearn_forest": "trees",
    "python_json": "requests",
}
BUILDERS: dict[str, Callable[[int, Path | None], Step]] = {
    "analytics": analytics,
    "pandas_analytics": pandas_analytics,
    "torch_inference": torch_inference,
    "torch_training": torch_training,
    "numpy_blas": numpy_blas,
    "numpy_stream": numpy_stream,
    "numpy_gather": numpy_gather,
    "scipy_pagerank": scipy_pagerank,
    "scipy_dijkstra": scipy_dijkstra,
    "sklearn_forest": sklearn_forest,
    "python_json": python_json,
}


def main(argv: list[str] | None = None) -> int:
    started = time.monotonic()
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("program", choices=PROGRAMS)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--data", type=Path, help="the analytics tables (generate_tpch's directory)")
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error("--threads must be at least 1")
    set_thread_count(args.threads)
    step = BUILDERS[args.program](args.threads, args.data)
    step()  # warm-up: first calls allocate buffers and pick kernels, which steady-state iterations do not
    startup = time.monotonic() - started
    start = time.monotonic()
    deadline = start + args.seconds
    iterations, units, last = 0, 0.0, 0.0
    while time.monotonic() < deadline:
        units += step()
        iterations += 1
        last = time.monotonic() - start
    for pool in worker_pools:
        pool.shutdown()
    print(
        RESULT_FORMAT.format(
            program=args.program,
            threads=args.threads,
            iterations=iterations,
            units=units,
            unit=UNITS[args.program],
            seconds=last,
            startup=startup,
            rate=units / last if last > 0 else 0.0,
        ),
        flush=True,
    )
    return 0


if __name__ == "__main__":
    # Run as a script, Python puts this folder first on sys.path, where the workload modules' names (redis,
    # base, ...) would shadow real packages that numpy, polars or torch import.
    here = str(Path(__file__).resolve().parent)
    sys.path[:] = [entry for entry in sys.path if entry and str(Path(entry).resolve()) != here]
    sys.exit(main())
