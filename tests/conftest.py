"""Suite-wide test configuration.

Live tests drive real cgroups and real programs; they need root (CI runs as root). GPU tests need a CUDA
device. Elsewhere both are skipped with the reason, never silently passed.
"""

from __future__ import annotations

import os

import pytest


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip_live = pytest.mark.skip(reason="live test: needs root to create cgroups")
    skip_gpu = pytest.mark.skip(reason="gpu test: no CUDA device on this machine")
    gpu_tests = [item for item in items if "gpu" in item.keywords]
    if gpu_tests and not cuda_available():
        for item in gpu_tests:
            item.add_marker(skip_gpu)
    if os.geteuid() != 0:
        for item in items:
            if "live" in item.keywords:
                item.add_marker(skip_live)
