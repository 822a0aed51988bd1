"""Fixtures shared by the collector tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from collector_testkit import FIXTURES, LAYOUTS, fixture_roots
from cotenant.collectors.base import Roots


@pytest.fixture(params=LAYOUTS)
def layout(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def copied_tree(tmp_path: Path, layout: str) -> Roots:
    """A writable copy of a fixture tree (for vanish tests)."""
    shutil.copytree(FIXTURES / layout, tmp_path / layout)
    return fixture_roots(layout, tmp_path)
