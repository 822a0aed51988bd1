"""Fixtures for the datasets layer."""

from __future__ import annotations

from pathlib import Path

import pytest
from labdir_fixture import write_lab_dir


@pytest.fixture()
def lab_dir(tmp_path: Path) -> Path:
    return write_lab_dir(tmp_path / "lab")
