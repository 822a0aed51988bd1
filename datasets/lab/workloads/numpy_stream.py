"""STREAM's triad (a = b + s * c) over float64 arrays of 32 MiB each with numpy; GB/s of memory traffic.

Category "memory": three arrays of 96 MiB in all, far beyond any L3 of the lab's machines, swept once per
iteration with no reuse, so the rate is the memory bandwidth a data-processing program gets (unlike
numpy_blas's DGEMM, which keeps its panels in the caches). Runs ``pyprograms.py numpy_stream`` until the
phase's deadline; level = threads, each sweeping its own slice (numpy releases the GIL in its loops).
"""

from __future__ import annotations

from cotenant.datasets.lab.workloads.base import WORKLOADS, PyProgramWorkload


@WORKLOADS.register("numpy_stream")
class NumpyStream(PyProgramWorkload):
    name = "numpy_stream"
    unit = "gigabytes_per_second"
    description = "numpy STREAM triad over 3 x 32 MiB float64 arrays, level = threads"
    category = "memory"
    program = "numpy_stream"
