"""A Python web backend's request handling in the interpreter (JSON orders parsed, totalled, answered);
requests/s.

Category "interpreter": every program before it that runs Python spends its time in a library's compiled
kernels (numpy, Polars, torch); this one spends it in the interpreter itself, dispatching bytecode and
allocating small objects for 2000 distinct orders per iteration, as a web worker does between its database
calls: front-end and branch bound, a working set of a few MiB, slowed by a neighbour that shares its core or
its caches. Runs ``pyprograms.py python_json`` until the phase's deadline; level = worker processes (the
interpreter's lock runs one thread of Python at a time), each answering its share of the orders.
"""

from __future__ import annotations

from cotenant.datasets.lab.workloads.base import WORKLOADS, PyProgramWorkload


@WORKLOADS.register("python_json")
class PythonJson(PyProgramWorkload):
    name = "python_json"
    unit = "requests_per_second"
    description = "Python JSON order handling in the interpreter, level = worker processes"
    category = "interpreter"
    program = "python_json"
