"""Single-source shortest paths with scipy's Dijkstra over a fixed road-network-like graph; million edges/s.

Category "graph": the graph class's second member, beside scipy_pagerank. Where PageRank streams every edge
from memory in order, a shortest-path search visits nodes in the order of their distance: each settled node
pops the search's binary heap and reads its links and its neighbours' distances at scattered places in a
working set of ~14 MiB (128 Ki nodes, 1 Mi links, most of them local as a road network's streets, one in
eight far as its highways), so it is bound by cache misses and branches, and slowed by a neighbour that
takes the L3 or the memory bus. Runs ``pyprograms.py scipy_dijkstra`` until the phase's deadline; level =
worker processes (scipy holds the interpreter's lock while it searches), each searching from its own source.
"""

from __future__ import annotations

from cotenant.datasets.lab.workloads.base import WORKLOADS, PyProgramWorkload


@WORKLOADS.register("scipy_dijkstra")
class ScipyDijkstra(PyProgramWorkload):
    name = "scipy_dijkstra"
    unit = "million_edges_per_second"
    description = "scipy Dijkstra shortest paths over a 128 Ki-node road-like graph, level = worker processes"
    category = "graph"
    program = "scipy_dijkstra"
