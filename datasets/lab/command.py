"""A user's own program as a lab workload: a command line, a regular expression for its metric, the
metric's direction and unit, declared in a plan's ``commands`` section. Measuring one's own application needs
no Python.

```yaml
commands:
  mybench:
    command: ["mybench", "--threads", "{level}", "--seconds", "{seconds}"]
    metric: 'throughput: ([0-9.]+) ops/s'   # the first group of the last match is the metric
    unit: ops_per_second
    higher_is_better: true
```

Placeholders in ``command``: ``{level}``, ``{seconds}`` (the phase's length), ``{scratch}`` (shared by the lab
session), ``{role_dir}`` (private to the run's role) and ``{runtime_dir}`` (short private path for sockets).
A program without a duration option sets ``stop_at_deadline: true``: it is interrupted (SIGINT) at the
deadline and its output so far is read. A command that is missing, exits non-zero or prints no match fails
that run with an error naming the workload; the lab goes on with the next run.
"""

from __future__ import annotations

import re
from typing import ClassVar

from cotenant.datasets.lab.workloads.base import WorkContext, Workload, last_number
from pydantic import BaseModel, ConfigDict, Field, field_validator

PLACEHOLDERS = ("level", "seconds", "scratch", "role_dir", "runtime_dir")


class CommandSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    command: list[str] = Field(min_length=1, description="argv; placeholders {level} {seconds} {scratch} ...")
    metric: str = Field(description="regular expression whose first group (last match) is the metric")
    unit: str = Field(min_length=1)
    higher_is_better: bool = True
    stop_at_deadline: bool = False
    description: str = ""

    @field_validator("metric")
    @classmethod
    def _one_group(cls, value: str) -> str:
        try:
            compiled = re.compile(value)
        except re.error as error:
            raise ValueError(f"not a regular expression: {error}") from error
        if compiled.groups < 1:
            raise ValueError("needs a capturing group around the number, e.g. 'rate: ([0-9.]+)'")
        return value

    @field_validator("command")
    @classmethod
    def _known_placeholders(cls, value: list[str]) -> list[str]:
        for part in value:
            for name in re.findall(r"\{(\w*)\}", part):
                if name not in PLACEHOLDERS:
                    raise ValueError(
                        f"unknown placeholder {{{name}}} in {part!r}; known: {', '.join(PLACEHOLDERS)}"
                    )
        return value


class CommandWorkload(Workload):
    """A ``CommandSpec`` behind the ``Workload`` contract (an instance per plan entry, not a registered
    class)."""

    category: ClassVar[str] = "custom"

    def __init__(self, name: str, spec: CommandSpec) -> None:
        self.name = name
        self.spec = spec
        self.unit = spec.unit
        self.higher_is_better = spec.higher_is_better
        self.stop_at_deadline = spec.stop_at_deadline
        self.description = spec.description or " ".join(spec.command)

    def phase_command(self, level: int, seconds: int, ctx: WorkContext) -> list[str]:
        values = {
            "level": str(level),
            "seconds": str(seconds),
            "scratch": str(ctx.scratch),
            "role_dir": str(ctx.role_dir),
            "runtime_dir": str(ctx.runtime_dir),
        }
        return [
            re.sub(r"\{(\w+)\}", lambda match: values[match.group(1)], part) for part in self.spec.command
        ]

    def parse(self, output: str) -> float:
        return last_number(self.spec.metric, output, f"{self.name} metric /{self.spec.metric}/")
