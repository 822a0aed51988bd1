"""Parsers for keyed kernel files built once from a key -> (metric name, scale) map.

Hundreds of these files are parsed every second. Building metric names per line (f-strings, snake-casing)
cost more than the kernel read, so the names are worked out when the parser is made and a line costs one
dict lookup. Splitting the whole text at once (``str.split`` runs in C) beats going line by line.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from cotenant.collectors.base import (
    PRESSURE_RESOURCES,
    UNLIMITED_THRESHOLD,
    parse_flat_keyed,
    pressure_metric,
)

Parser = Callable[[str], dict[str, float]]
KeyMap = Mapping[str, tuple[str, float]]  # kernel key -> (metric name, factor to the metric's unit)


def keyed_parser(names: KeyMap) -> Parser:
    """A parser of ``key value`` lines (cpu.stat, memory.stat, memory.events ...) keeping the keys of
    ``names``, each scaled; ``max`` and the v1 "unlimited" sentinels are left out (null), as in
    ``parse_flat_keyed``."""

    def parse(text: str) -> dict[str, float]:
        tokens = text.split()
        values: dict[str, float] = {}
        if len(tokens) != 2 * text.count("\n"):  # a line without exactly two fields: the careful path
            for key, value in parse_flat_keyed(text).items():
                if key in names:
                    values[names[key][0]] = value * names[key][1]
            return values
        pairs = iter(tokens)
        for key, number in zip(pairs, pairs, strict=True):
            target = names.get(key)
            if target is not None and number != "max":
                value = float(number)
                if value < UNLIMITED_THRESHOLD:
                    values[target[0]] = value * target[1]
        return values

    return parse


def pressure_names(prefix: str, resource: str) -> dict[str, dict[str, tuple[str, float]]]:
    """PSI line kind (``some``/``full``) -> field -> (metric name, factor), in ``pressure_specs`` names:
    averages as ratios, stall time in seconds."""
    names: dict[str, dict[str, tuple[str, float]]] = {}
    for kind in ("some", "full"):
        fields = {
            f"avg{w}": (pressure_metric(prefix, resource, kind, f"avg{w}"), 0.01) for w in (10, 60, 300)
        }
        fields["total"] = (pressure_metric(prefix, resource, kind, "total"), 1e-6)
        names[kind] = fields
    return names


def pressure_parser(prefix: str, resource: str) -> Parser:
    """A parser of one PSI file (``some avg10=.. avg60=.. avg300=.. total=<usec>``, ``full ...``)."""
    if resource not in PRESSURE_RESOURCES:
        raise ValueError(f"no pressure metrics for resource {resource!r}")
    names = pressure_names(prefix, resource)

    def parse(text: str) -> dict[str, float]:
        values: dict[str, float] = {}
        for line in text.splitlines():
            kind, *fields = line.replace("=", " ").split()
            known = names.get(kind)
            if known is None:
                continue
            pairs = iter(fields)
            for key, number in zip(pairs, pairs, strict=False):
                target = known.get(key)
                if target is not None:
                    values[target[0]] = float(number) * target[1]
        return values

    return parse
