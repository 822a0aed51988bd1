"""PageRank's power iterations over a fixed random graph with scipy's CSR product; million edges/s.

Category "graph": a graph-analytics kernel (CloudFormer's Graph Analytics application is one), 1 Mi nodes and
16 Mi edges whose links go mostly to a few popular nodes: each step streams the edges (~200 MiB of weights and
sources, memory bandwidth) and reads the 8 MiB rank vector at the sources' random places (popular ones from
the cache, the rest from memory), so a neighbour slows it through the memory bus and through the L3 both,
between the streaming programs (numpy_stream) and the random lookups (numpy_gather). Runs ``pyprograms.py
scipy_pagerank`` until the phase's deadline; level = threads, each computing its own rows' new ranks.
"""

from __future__ import annotations

from cotenant.datasets.lab.workloads.base import WORKLOADS, PyProgramWorkload


@WORKLOADS.register("scipy_pagerank")
class ScipyPagerank(PyProgramWorkload):
    name = "scipy_pagerank"
    unit = "million_edges_per_second"
    description = "scipy PageRank over a 1 Mi-node, 16 Mi-edge skewed random graph, level = threads"
    category = "graph"
    program = "scipy_pagerank"
