"""What a sample is, apart from any output format: the rows every sink receives, the errors sinks report.

Kept free of Polars and numpy, so that a node agent that only pushes to the service (or serves Prometheus)
never loads the Parquet writer's libraries (``writer.py`` imports them, and only ``--out`` needs it).
"""

from __future__ import annotations

Row = dict[str, float | None]
UNAVAILABLE_KEY = "cotenant.unavailable"  # collector table: {source: {metric: reason}} (JSON)


class OutputError(Exception):
    """The output cannot be written (missing rights, not a directory, disk full)."""
