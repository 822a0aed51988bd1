"""Suite-wide test configuration.

Live tests drive real cgroups and real programs; they need root (CI runs as root). Elsewhere they are skipped
with the reason, never silently passed.
"""

from __future__ import annotations

import os

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.geteuid() == 0:
        return
    skip_live = pytest.mark.skip(reason="live test: needs root to create cgroups")
    for item in items:
        if "live" in item.keywords:
            item.add_marker(skip_live)
