"""``cotenant collect`` is the per-node agent: the command starts it without importing the rest of the project
(the full command line pulls in Polars, NumPy and the accelerator models: about 140 MiB of RSS)."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("polars", "numpy", "pyarrow", "torch", "mlflow", "pydantic", "cotenant.models", "cotenant.datasets")

PROBE = """
import json, sys
sys.argv = ["cotenant", *sys.argv[1:]]
from cotenant.entry import main
try:
    main()
except SystemExit:
    pass
print(json.dumps(sorted(m for m in {heavy} if m in sys.modules)))
"""


def loaded_after(*args: str) -> list[str]:
    code = PROBE.format(heavy=repr(HEAVY))
    done = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120, check=True
    )
    loaded: list[str] = json.loads(done.stdout.strip().splitlines()[-1])
    return loaded


def test_the_agent_starts_without_the_rest_of_the_project() -> None:
    assert loaded_after("collect", "--help") == []


def test_other_commands_still_get_the_full_command_line() -> None:
    # the probe can fail: the full command line does load what the agent avoids
    assert "polars" in loaded_after("--help")
