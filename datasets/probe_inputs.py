"""The lab's probes as monitoring inputs: the target's measured sensitivity, its neighbours' pressure.

Without a PMU a memory stall is CPU time like any other, so no collected rate says how sensitive an unseen
program is to its neighbours' cache and memory traffic, nor how much a neighbour presses. The probes measured
for placement at admission are such numbers (Bubble-Up, Paragon): how much the program loses beside each
calibrated aggressor (``sens_<resource>_<level>``) and how much each of its neighbours costs the fixed
victims (``press_<victim>``). A monitoring model with ``include_probes`` reads them as constants of the run
beside its telemetry: the target's sensitivity deficits (1 - P) and the sum of its neighbours' pressure
deficits (the placement model's DeepSets sum), under ``PROBE_INPUT``. On the bundled data they took
boosting from 4.61 to 4.40 pp on validation programs and the CloudFormer (``probe_head``) from 5.00 to 4.89
(reports/evaluation/probe-inputs), spread over many programs; the memory-bound ones the telemetry misses
most (numpy_stream) are missed as before (its membw probes read a loss of 0.00 and 0.26 at the two levels).

Pure (no I/O): the run table (``RunTable.with_probe_inputs``) and the service's predictor
(``Predictor.monitoring_matrix``) compute the same numbers from the same probe results.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

# Prefix of the per-run probe columns (telemetry columns and model features, beside self__, vs_solo__, ...).
PROBE_INPUT = "probes__"
# What names a sum over the neighbours (``probes__neighbours_press_io``) rather than the target's own value.
NEIGHBOURS = "neighbours_"


# Probe resource -> the metric group its results belong to (explanations of the models that read them).
RESOURCE_GROUPS = {
    "cpu": "cpu",
    "cache": "cache_membw",
    "membw": "cache_membw",
    "memory": "memory",
    "io": "io",
    "network": "network",
}


def resource_of(probe: str) -> str:
    """``sens_membw_2`` / ``press_io`` -> ``membw`` / ``io``."""
    kind, _, rest = probe.partition("_")
    return rest.rsplit("_", 1)[0] if kind == "sens" else rest


def metric_group_of(probe: str) -> str:
    """A probe's metric group (``sens_membw_2`` -> ``cache_membw``), ``other`` for an unknown resource."""
    return RESOURCE_GROUPS.get(resource_of(probe), "other")


def probe_input_names(probe_names: Sequence[str]) -> list[str]:
    """The monitoring inputs for these probe names (``sens_*``, ``press_*``: ``tensors.probe_columns``): the
    target's sensitivities, then the neighbours' summed pressures, each under ``PROBE_INPUT``."""
    sensitivity = [PROBE_INPUT + name for name in probe_names if name.startswith("sens_")]
    pressure = [PROBE_INPUT + NEIGHBOURS + name for name in probe_names if name.startswith("press_")]
    return sensitivity + pressure


def probe_of(input_name: str) -> str:
    """``probes__sens_membw_2`` -> ``sens_membw_2``; ``probes__neighbours_press_io`` -> ``press_io``."""
    return input_name.removeprefix(PROBE_INPUT).removeprefix(NEIGHBOURS)


def probe_inputs(
    names: Sequence[str], target: Mapping[str, float], neighbours: Sequence[Mapping[str, float]]
) -> dict[str, float]:
    """Each input of ``names`` (``probe_input_names``) from probe results (P by probe name, as registered):
    the target's deficit ``1 - P``, or the sum of its neighbours' (0 with no neighbour); NaN where a probe
    it needs was not measured (the target's, or any neighbour's: a partial sum reads as less pressure)."""
    values: dict[str, float] = {}
    for name in names:
        probe = probe_of(name)
        if name.startswith(PROBE_INPUT + NEIGHBOURS):
            measured = [neighbour.get(probe) for neighbour in neighbours]
            known = [float(p) for p in measured if p is not None]
            values[name] = math.nan if len(known) < len(measured) else sum(1.0 - p for p in known)
        else:
            own = target.get(probe)
            values[name] = math.nan if own is None else 1.0 - float(own)
    return values
