"""TPC-H-like analytical queries (Q1, Q3, Q6) with Polars on in-memory tables; queries per second.

The tables (~1.5 M lineitem rows, scale factor 0.25) are generated once per lab session from a fixed seed and
written as Parquet to the scratch directory; each phase loads them and runs the three queries in turn until
its deadline (``pyprograms.py analytics``). Level = Polars threads (``POLARS_MAX_THREADS``).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from cotenant.datasets.lab.workloads import pyprograms
from cotenant.datasets.lab.workloads.base import WORKLOADS, PyProgramWorkload, WorkContext

# The directory names the table sizes, so a change of sizes generates new tables instead of reusing old ones.
TABLES_DIR = f"tpch-o{pyprograms.ORDERS}-c{pyprograms.CUSTOMERS}-s{pyprograms.TPCH_SEED}"


@WORKLOADS.register("polars_analytics")
class PolarsAnalytics(PyProgramWorkload):
    name = "polars_analytics"
    unit = "queries_per_second"
    description = "Polars TPC-H-like Q1/Q3/Q6 on 1.5 M in-memory lineitem rows, level = Polars threads"
    category = "analytics"
    program = "analytics"

    def prepare(self, scratch: Path) -> None:
        target = scratch / TABLES_DIR
        if all((target / f"{table}.parquet").exists() for table in pyprograms.TPCH_TABLES):
            return
        # Written aside and renamed, so an interrupted prepare never leaves half the tables for later runs.
        staging = Path(tempfile.mkdtemp(prefix=".tpch-", dir=scratch))
        try:
            pyprograms.generate_tpch(staging)
            shutil.rmtree(target, ignore_errors=True)
            staging.rename(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def data(self, ctx: WorkContext) -> Path:
        return ctx.scratch / TABLES_DIR
