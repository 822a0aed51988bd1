"""polars_analytics' TPC-H-like queries (Q1, Q3, Q6) in pandas on the same tables; queries per second.

Category "analytics": the same questions a notebook asks of the same 1.5 M lineitem rows, answered the way
most data scientists' code answers them: pandas' single-threaded vectorised kernels, each filter, join and
group-by materialising a new frame (a few hundred MiB of intermediates through the allocator and the memory
bus per iteration), where Polars plans the query and runs it in parallel. Runs ``pyprograms.py
pandas_analytics`` until the phase's deadline; level = worker processes (pandas runs one thread), each
running the three queries per iteration. Memory: ~0.57 GiB at level 1, and each worker's intermediates its own
(~0.45 GiB at peak), so a plan gives a level-N configuration about 0.2 + 0.5 N GiB (the 1 GiB most plans give
holds level 1 only: `bundled_v13`'s wave to 4 workers was ended by the cgroup's OOM killer).
"""

from __future__ import annotations

from cotenant.datasets.lab.workloads.base import WORKLOADS
from cotenant.datasets.lab.workloads.polars_analytics import PolarsAnalytics


# The tables and their preparation are polars_analytics' (one owner): only the program differs.
@WORKLOADS.register("pandas_analytics")
class PandasAnalytics(PolarsAnalytics):
    name = "pandas_analytics"
    unit = "queries_per_second"
    description = "pandas TPC-H-like Q1/Q3/Q6 on 1.5 M in-memory lineitem rows, level = worker processes"
    category = "analytics"
    program = "pandas_analytics"
