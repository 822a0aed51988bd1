"""A plain registry: a dict filled by explicit ``@REGISTRY.register("name")`` decorators.

Each package imports its modules explicitly from its ``__init__`` so that a missing file is an ImportError,
never a silently missing key.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class UnknownNameError(KeyError):
    """Raised for a name that no module registered; the message lists the names that exist."""

    def __str__(self) -> str:
        return str(self.args[0])


class Registry(dict[str, T]):
    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind

    def register(self, name: str) -> Callable[[T], T]:
        def decorate(item: T) -> T:
            if name in self:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self[name] = item
            return item

        return decorate

    def __missing__(self, name: str) -> T:
        known = ", ".join(sorted(self)) or "none"
        raise UnknownNameError(f"unknown {self.kind} {name!r}; known: {known}")
