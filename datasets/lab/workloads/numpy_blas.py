"""Dense float64 matrix multiplication (DGEMM, 1024x1024) with numpy's OpenBLAS; GFLOP/s.

Category "cpu": a blocked DGEMM keeps its panels in the caches and is bound by the cores' floating-point
units, not by memory bandwidth (three 8 MB matrices, ~2 GFLOP per product), which is the "compute-bound
kernels" class, unlike the stream-like "memory" workloads. Runs ``pyprograms.py numpy_blas`` until the
phase's deadline; level = OpenBLAS threads (``OPENBLAS_NUM_THREADS``; ``OPENBLAS_CORETYPE`` is left as the
environment sets it).
"""

from __future__ import annotations

from cotenant.datasets.lab.workloads.base import WORKLOADS, PyProgramWorkload


@WORKLOADS.register("numpy_blas")
class NumpyBlas(PyProgramWorkload):
    name = "numpy_blas"
    unit = "gflops"
    description = "numpy float64 1024x1024 matmul (OpenBLAS DGEMM), level = OpenBLAS threads"
    category = "cpu"
    program = "numpy_blas"
