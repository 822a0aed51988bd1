"""A plain registry: a dict filled by explicit ``@REGISTRY.register("name")`` decorators.

Each package imports its modules explicitly from its ``__init__`` so that a missing file is an ImportError,
never a silently missing key.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


class UnknownNameError(KeyError):
    """Raised for a name that no module registered; the message lists the names that exist."""

    def __str__(self) -> str:
        return str(self.args[0])


class Registry(dict[str, T]):
    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        # What each entry declares about itself at registration (a policy's family, ...): facts that live
        # with the entry, so that lists of names are never written out elsewhere.
        self.metadata: dict[str, dict[str, Any]] = {}

    def register(self, name: str, **metadata: Any) -> Callable[[T], T]:
        def decorate(item: T) -> T:
            if name in self:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self[name] = item
            self.metadata[name] = dict(metadata)
            return item

        return decorate

    def named(self, **wanted: Any) -> list[str]:
        """Names whose metadata has every ``key=value`` given, in registration order."""
        return [
            name
            for name in self
            if all(self.metadata.get(name, {}).get(key) == value for key, value in wanted.items())
        ]

    def __delitem__(self, name: str) -> None:
        super().__delitem__(name)
        self.metadata.pop(name, None)

    def __missing__(self, name: str) -> T:
        known = ", ".join(sorted(self)) or "none"
        raise UnknownNameError(f"unknown {self.kind} {name!r}; known: {known}")
