"""The noise floor against the number of solo references, and with each way of choosing them, from lab runs.

    python benchmarks/noise_references.py reports/noise/canary-check reports/noise/adjacent
    python benchmarks/noise_references.py datasets/campaigns/v3-p1

Each argument is a lab directory (``runs.jsonl``) or a packed campaign (``records.parquet``). For each
configuration with n solo runs and each k from 2 to n, every subset of k of its solos (at most
``--subsets`` of them, drawn with a fixed seed) is labelled as the lab labels solos: each one against the
median of the other k - 1. The medians and 90th percentiles over all of them say how much a label's noise
falls with more references, on the same runs (configurations with more solos weigh more at large k: read
it on a plan with the same number of solos per configuration). For journals with adjacent references or a
canary it also prints ``cotenant lab labels``' comparisons (references as recorded, every solo of the
configuration, each canary's speed adjustment), so one command gives every figure of reports/noise/README.md.
"""

from __future__ import annotations

import argparse
import itertools
import random
import statistics
from pathlib import Path

import polars as pl
from cotenant.datasets.lab.labels import (
    label_runs,
    noise_floor,
    noise_floor_alternatives,
    performance_ratio,
)
from cotenant.datasets.lab.records import read_journal


def solo_performances(path: Path) -> dict[str, tuple[list[float], bool]]:
    """Configuration -> (its solo runs' performance in run order, higher is better)."""
    if (path / "runs.jsonl").is_file():
        solos = [record for record in read_journal(path / "runs.jsonl") if record.kind == "solo"]
        rows = [(r.config_key, r.run_id, r.performance, r.higher_is_better) for r in solos]
    else:
        frame = pl.read_parquet(path / "records.parquet").filter(pl.col("kind") == "solo")
        rows = list(frame.select("config_key", "run_id", "performance", "higher_is_better").iter_rows())
    found: dict[str, tuple[list[float], bool]] = {}
    for key, _, performance, higher in sorted(rows, key=lambda row: row[1]):
        found.setdefault(key, ([], higher))[0].append(performance)
    return found


def deviations(values: list[float], higher: bool) -> list[float]:
    """|1 - P| of each value against the median of the others."""
    return [
        abs(1 - performance_ratio(value, statistics.median(values[:i] + values[i + 1 :]), higher))
        for i, value in enumerate(values)
    ]


def by_reference_count(
    solos: dict[str, tuple[list[float], bool]], max_subsets: int, seed: int
) -> dict[int, list[float]]:
    rng = random.Random(seed)
    found: dict[int, list[float]] = {}
    for values, higher in solos.values():
        for k in range(3, len(values) + 1):  # k solos: each against the median of k - 1 others
            subsets = list(itertools.combinations(range(len(values)), k))
            for subset in rng.sample(subsets, min(max_subsets, len(subsets))):
                found.setdefault(k - 1, []).extend(deviations([values[i] for i in subset], higher))
    return found


def percentile(values: list[float], q: float) -> float:
    """As ``noise_floor`` takes it (Polars' quantile)."""
    return float(pl.Series(values).quantile(q))  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("paths", nargs="+", type=Path)
    parser.add_argument("--subsets", type=int, default=50, help="subsets of each size per configuration")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for path in args.paths:
        solos = solo_performances(path)
        print(
            f"## {path.name}: {sum(len(v) for v, _ in solos.values())} solos of {len(solos)} configurations"
        )
        print("solo references | |1 - P| median (pp) | p90 (pp) | labelled solos")
        for references, found in sorted(by_reference_count(solos, args.subsets, args.seed).items()):
            print(
                f"{references:>15} | {100 * statistics.median(found):>19.2f} | "
                f"{100 * percentile(found, 0.9):>8.2f} | {len(found)}"
            )
        if (path / "runs.jsonl").is_file():
            records = read_journal(path / "runs.jsonl")
            alternatives = noise_floor_alternatives(records)
            if alternatives:
                print("as labelled:", noise_floor(label_runs(records)).describe())
            for alternative, floor in alternatives.items():
                print(f"{alternative}:", floor.describe())
        print()


if __name__ == "__main__":
    main()
