"""Benchmark: synthetic runs -> normalised, padded training tensors, cotenant (Polars/NumPy) vs plain pandas.

The transform, identical in both: fit per-feature mean/std over all rows (missing -> 0 after scaling), then
build ``x [B, T, F] float32`` (zero padding) and ``mask [B, T] bool`` with runs in a given order and steps in
``second`` order. Default size: 2,000 runs x up to 300 s x 200 metric columns (100 self__ + 100
neighbour_mean__), lengths uniform in [200, 300] s. ``--runs 50`` runs it small.

Each implementation runs in its own fresh process (spawn) that first reads the same Parquet input, so memory
of one never pollutes the other. Peak memory is sampled RSS (a thread polling /proc via psutil every 1 ms),
reported above the RSS after the input was loaded. tracemalloc is not used: it sees NumPy buffers but not the
memory Polars allocates in Rust, so it would flatter the Polars side. Speed is input values (rows x columns)
per second over the whole transform; the median of ``--repeats`` runs is reported, as wall-clock and as CPU
time of the process (all threads): on a shared, busy machine the CPU-time ratio is the steadier comparison.
"""

from __future__ import annotations

import argparse
import gc
import multiprocessing as mp
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import psutil


class PeakRss:
    """Highest RSS seen by a 1 ms polling thread while the block runs."""

    def __enter__(self) -> PeakRss:
        self.process = psutil.Process()
        self.base = self.process.memory_info().rss
        self.peak = self.base
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._poll, daemon=True)
        self.thread.start()
        return self

    def _poll(self) -> None:
        while not self.done.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.001)

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)

    @property
    def extra(self) -> int:
        return self.peak - self.base


def cotenant_transform(
    frame: pl.DataFrame, run_ids: list[str], features: list[str]
) -> tuple[np.ndarray, np.ndarray]:
    from cotenant.datasets.splits import FeatureStats
    from cotenant.datasets.tensors import padded

    stats = FeatureStats.fit(frame, features)
    return padded(frame, run_ids, features, stats)


def pandas_transform(frame: Any, run_ids: list[str], features: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """The straightforward version: groupby run, sort each run by second, copy it into the padded array."""
    mean = frame[features].mean()
    std = frame[features].std(ddof=0).replace(0.0, 1.0).fillna(1.0)
    normalised = ((frame[features] - mean.fillna(0.0)) / std).fillna(0.0).astype("float32")
    normalised["run_id"] = frame["run_id"]
    normalised["second"] = frame["second"]
    groups = dict(tuple(normalised.groupby("run_id", sort=False)))
    steps = max(len(g) for g in groups.values())
    x = np.zeros((len(run_ids), steps, len(features)), dtype=np.float32)
    mask = np.zeros((len(run_ids), steps), dtype=bool)
    for b, run_id in enumerate(run_ids):
        group = groups[run_id].sort_values("second")
        x[b, : len(group)] = group[features].to_numpy()
        mask[b, : len(group)] = True
    return x, mask


def worker(kind: str, path: str, repeats: int, queue: Any) -> None:
    frame = pl.read_parquet(path)
    features = [c for c in frame.columns if c not in ("run_id", "second")]
    run_ids = frame["run_id"].unique(maintain_order=True).to_list()
    data: Any = frame.to_pandas() if kind == "pandas" else frame
    if kind == "pandas":
        del frame
    transform = pandas_transform if kind == "pandas" else cotenant_transform
    times, cpu_times, peaks = [], [], []
    for _ in range(repeats):
        gc.collect()
        with PeakRss() as rss:
            start, cpu_start = time.perf_counter(), time.process_time()
            x, mask = transform(data, run_ids, features)
            times.append(time.perf_counter() - start)
            cpu_times.append(time.process_time() - cpu_start)
        peaks.append(rss.extra)
        checksum = (float(np.abs(x).sum(dtype=np.float64)), int(mask.sum()), list(x.shape))
        del x, mask
    queue.put(
        {
            "kind": kind,
            "seconds": statistics.median(times),
            "cpu_seconds": statistics.median(cpu_times),
            "peak_extra": max(peaks),
            "checksum": checksum,
            "input_values": len(data) * len(features),
        }
    )


def run_in_child(kind: str, path: Path, repeats: int) -> dict[str, Any]:
    context = mp.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=worker, args=(kind, str(path), repeats, queue))
    process.start()
    result: dict[str, Any] = queue.get()
    process.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--seconds", type=int, default=300, help="longest run")
    parser.add_argument("--min-seconds", type=int, default=200, help="shortest run")
    parser.add_argument(
        "--metrics", type=int, default=200, help="telemetry columns (half self__, half neighbour)"
    )
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from cotenant.datasets.sources.synthetic import SyntheticConfig, generate

    config = SyntheticConfig(
        n_apps=11,
        n_runs=args.runs,
        n_metrics=args.metrics // 2,
        n_host_metrics=0,
        min_length=min(args.min_seconds, args.seconds),
        max_length=args.seconds,
        seed=7,
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "telemetry.parquet"
        table = generate(config)
        rows, columns = table.telemetry.height, table.telemetry.width - 2
        table.telemetry.write_parquet(path, compression="uncompressed")
        del table
        results = {kind: run_in_child(kind, path, args.repeats) for kind in ("cotenant", "pandas")}
    ours, theirs = results["cotenant"], results["pandas"]
    shape = ours["checksum"][2]
    output_bytes = int(np.prod(shape)) * 4 + shape[0] * shape[1]
    same = ours["checksum"][2] == theirs["checksum"][2] and ours["checksum"][1] == theirs["checksum"][1]
    close = abs(ours["checksum"][0] - theirs["checksum"][0]) <= 1e-3 * max(1.0, abs(theirs["checksum"][0]))
    print(f"input: {args.runs} runs, {rows} rows x {columns} metric columns; output x {shape} float32 + mask")
    print(f"output tensors: {output_bytes / 2**20:.0f} MiB; same result in both: {same and close}")
    header = ("implementation", "median s", "CPU s", "Mvalues/s", "peak extra MiB", "peak/output")
    print(f"{header[0]:<16}{header[1]:>10}{header[2]:>8}{header[3]:>11}{header[4]:>16}{header[5]:>13}")
    for kind, result in results.items():
        rate = result["input_values"] / result["seconds"] / 1e6
        peak = result["peak_extra"] / 2**20
        ratio = result["peak_extra"] / output_bytes
        print(
            f"{kind:<16}{result['seconds']:>10.2f}{result['cpu_seconds']:>8.2f}{rate:>11.1f}{peak:>16.0f}{ratio:>13.2f}"
        )
    print(
        f"speed-up cotenant vs pandas: {theirs['seconds'] / ours['seconds']:.1f}x wall-clock, "
        f"{theirs['cpu_seconds'] / ours['cpu_seconds']:.1f}x CPU time (goal >= 5x); "
        f"cotenant peak / output: {ours['peak_extra'] / output_bytes:.2f} (goal <= 2)"
    )


if __name__ == "__main__":
    main()
