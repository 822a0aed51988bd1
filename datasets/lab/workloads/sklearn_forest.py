"""A random forest's trees fitted with scikit-learn on a fixed 16 000 x 24 table; trees per second.

Category "ml": a data scientist's other training job, beside torch's dense products: growing a decision tree
sorts and scans each feature's values at every node and branches on every comparison, over a working set
(the table and the builder's index arrays, a few MiB) in the L2 and L3; bound by the core's branches and
caches, not by floating-point throughput or the memory bus. Runs ``pyprograms.py sklearn_forest`` until the
phase's deadline; level = threads, each fitting its own tree (as a forest's ``n_jobs`` threads do).
"""

from __future__ import annotations

from cotenant.datasets.lab.workloads.base import WORKLOADS, PyProgramWorkload


@WORKLOADS.register("sklearn_forest")
class SklearnForest(PyProgramWorkload):
    name = "sklearn_forest"
    unit = "trees_per_second"
    description = "scikit-learn random forest trees on a 16 000 x 24 table, level = threads"
    category = "ml"
    program = "sklearn_forest"
