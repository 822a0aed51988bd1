"""Dataset sources behind one registry: ``bundled``, ``lab``, ``cloudperftrace``, ``synthetic``.

``load_source("bundled")``, ``load_source("synthetic", n_runs=50)``, ``load_source(Path("var/lab-1"))``
(the kind of directory is recognised: a lab output dir, a CloudPerfTrace tree or a saved RunTable).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cotenant.datasets.sources import bundled, cloudperftrace, lab, synthetic
from cotenant.datasets.sources.base import SOURCES, looks_like
from cotenant.datasets.table import RunTable

__all__ = ["SOURCES", "bundled", "cloudperftrace", "lab", "load_source", "synthetic"]


def load_source(name_or_path: str | Path, **options: Any) -> RunTable:
    """A RunTable from a registered source name, ``name:PATH``, or a directory whose kind is recognised."""
    return _read_source(name_or_path, **options).with_run_shares().with_solo_relative()


def _read_source(name_or_path: str | Path, **options: Any) -> RunTable:
    text = str(name_or_path)
    if isinstance(name_or_path, str) and text in SOURCES:
        return SOURCES[text](None, **options)
    if isinstance(name_or_path, str) and ":" in text and text.split(":", 1)[0] in SOURCES:
        name, path = text.split(":", 1)
        return SOURCES[name](Path(path), **options)
    directory = Path(name_or_path)
    if not directory.exists():
        known = ", ".join(sorted(SOURCES))
        raise FileNotFoundError(f"{text}: neither a source name ({known}) nor an existing directory")
    kind = looks_like(directory)
    if kind == "table":
        return RunTable.load(directory)
    if kind is None:
        raise ValueError(
            f"{directory}: not a lab dir (runs.jsonl), a CloudPerfTrace tree (tasks=*/) or a saved RunTable "
            "(runs.parquet + meta.json)"
        )
    return SOURCES[kind](directory, **options)
