"""The dataset shipped in the repository (``datasets/bundled/``), produced by ``cotenant datasets pack``.

Loads with no download: it is a saved RunTable (zstd Parquet + meta.json) next to its CARD.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cotenant.datasets.sources.base import SOURCES
from cotenant.datasets.table import RunTable

BUNDLED_DIR = Path(__file__).resolve().parent.parent / "bundled"


def is_packed(directory: Path = BUNDLED_DIR) -> bool:
    return (directory / "runs.parquet").is_file() and (directory / "meta.json").is_file()


@SOURCES.register("bundled")
def load_bundled(path: Path | None = None, **options: Any) -> RunTable:
    directory = path or BUNDLED_DIR
    if not is_packed(directory):
        raise FileNotFoundError(
            f"{directory}: the bundled dataset is not packed yet; "
            "run `cotenant datasets pack LAB_DIR --out datasets/bundled`"
        )
    table = RunTable.load(directory)
    # Packed from a lab directory, it is read as the bundled source (reports and lineage name it so).
    table.meta["source"] = "bundled"
    return table
