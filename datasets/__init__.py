"""cotenant.datasets: the run table, its sources, splits and (in ``torch_data``) tensors.

Kept light on purpose: importing this package pulls Polars, never torch.
"""

from cotenant.datasets.sources import SOURCES, load_source
from cotenant.datasets.table import RunTable, RunTableError

__all__ = ["SOURCES", "RunTable", "RunTableError", "load_source"]
