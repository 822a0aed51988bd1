"""The lab's collector command starts from any working directory (no cgroups needed: ``--help`` only)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from cotenant.datasets.lab.session import collector_command


def test_the_collector_imports_the_installed_package_from_a_folder_holding_another(tmp_path: Path) -> None:
    """From a checkout of this repository the working directory holds a ``cotenant/`` folder that is not the
    installed package; with ``python -c`` it came first on ``sys.path`` and the collector exited at once."""
    shadow = tmp_path / "cotenant"
    shadow.mkdir()
    (shadow / "__init__.py").write_text('raise ImportError("the shadowing cotenant was imported")\n')
    done = subprocess.run(
        collector_command(["--help"]), cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "--cgroup-glob" in done.stdout
