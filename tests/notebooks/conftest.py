"""Shared helper for the notebook tests: jupytext `py:percent` -> .ipynb in tmp_path -> papermill on the real
`python3` kernel with the test's parameters -> the JSON of key values the notebook wrote.

Notebooks live in the repository as `.py` files without outputs; the executed copy stays under tmp_path.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jupytext
import papermill
import pytest

NOTEBOOKS = Path(__file__).parents[2] / "notebooks"
KERNEL = "python3"

ExecuteNotebook = Callable[..., dict[str, Any]]


def execute_notebook(name: str, tmp_path: Path, **parameters: Any) -> dict[str, Any]:
    """Run `notebooks/<name>.py` with `parameters` (plus `output_json` in tmp_path); return what it wrote."""
    source = NOTEBOOKS / f"{name}.py"
    if not source.is_file():
        raise FileNotFoundError(f"no notebook {source}")
    notebook = jupytext.read(source)
    if not any("parameters" in cell.metadata.get("tags", []) for cell in notebook.cells):
        raise ValueError(f"{source}: no cell tagged 'parameters'")
    unexecuted = tmp_path / f"{name}.ipynb"
    jupytext.write(notebook, unexecuted)
    output_json = tmp_path / f"{name}.json"
    papermill.execute_notebook(
        str(unexecuted),
        str(tmp_path / f"{name}.executed.ipynb"),
        parameters={**parameters, "output_json": str(output_json)},
        kernel_name=KERNEL,
        cwd=str(tmp_path),
        progress_bar=False,
    )
    if not output_json.is_file():
        raise AssertionError(f"{source} ran but wrote no {output_json.name}")
    values: dict[str, Any] = json.loads(output_json.read_text())
    return values


@pytest.fixture(scope="session")
def run_notebook(tmp_path_factory: pytest.TempPathFactory) -> ExecuteNotebook:
    """`run_notebook(name, **parameters)`: each call executes in its own temporary directory."""

    def run(name: str, **parameters: Any) -> dict[str, Any]:
        return execute_notebook(name, tmp_path_factory.mktemp(name), **parameters)

    return run
