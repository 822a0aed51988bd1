"""Random lookups into a float64 table of 256 MiB with numpy (``table[indices]``); million lookups/s.

Category "memory": an embedding or hash table's access pattern, every lookup at a random place far beyond any
L3 of the lab's machines, so each one waits on memory. Unlike numpy_stream's sequential sweeps, which the
prefetchers run at the bus's bandwidth, these lookups are bound by how many misses the core keeps in flight
and how long each takes: memory latency under a neighbour's traffic, not bandwidth. On a quiet 2-core VM
~88 M lookups/s on one thread, ~80 M beside stress-ng's stream stressor on the other core, ~91 M beside its
cpu stressor (its CPU time unchanged either way). Runs ``pyprograms.py numpy_gather`` until the phase's
deadline; level = threads, each looking up its own share of the indices.
"""

from __future__ import annotations

from cotenant.datasets.lab.workloads.base import WORKLOADS, PyProgramWorkload


@WORKLOADS.register("numpy_gather")
class NumpyGather(PyProgramWorkload):
    name = "numpy_gather"
    unit = "million_lookups_per_second"
    description = "numpy random gather from a 256 MiB float64 table, level = threads"
    category = "memory"
    program = "numpy_gather"
