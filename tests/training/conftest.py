from __future__ import annotations

import pytest
from cotenant.datasets import RunTable, load_source


@pytest.fixture(scope="session")
def tiny_table() -> RunTable:
    """A small synthetic source with known ground truth: 4 applications, short runs."""
    return load_source("synthetic", n_apps=4, n_runs=32, min_length=6, max_length=12, profile_length=8)
