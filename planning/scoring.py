"""How planning asks the placement model: per candidate host, everyone's predicted P if a newcomer joined."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np
from cotenant.models.base import QUANTILES

# No neighbour, no interference: a tenant alone on a host has P = 1 by the label's definition.
ALONE = np.ones((1, len(QUANTILES)))


class PlacementScorer(Protocol):
    def joining(self, newcomer: str, hosts: Sequence[Sequence[str]]) -> list[np.ndarray]:
        """Per host (its incumbents' profile ids), predicted quantiles ``[1 + K, Q]`` if ``newcomer`` joined:
        the newcomer's row, then each incumbent's in the order given. An empty host gives ``ALONE``."""
        ...


class PredictorScorer:
    """A ``Predictor``'s placement scoring over solo profiles, with each profile encoded once."""

    def __init__(self, predictor: Any, solo_series: Mapping[str, Mapping[str, np.ndarray]]) -> None:
        self.predictor = predictor
        self.solo_series = solo_series
        self._encodings: dict[str, np.ndarray] = {}

    def encoding(self, profile_id: str) -> np.ndarray:
        if profile_id not in self._encodings:
            if profile_id not in self.solo_series:
                raise KeyError(f"no solo profile for {profile_id!r}")
            series = {metric: np.asarray(values) for metric, values in self.solo_series[profile_id].items()}
            self._encodings[profile_id] = self.predictor.encode_profile(series)
        return self._encodings[profile_id]

    def joining(self, newcomer: str, hosts: Sequence[Sequence[str]]) -> list[np.ndarray]:
        occupied = [i for i, incumbents in enumerate(hosts) if incumbents]
        answers = [ALONE for _ in hosts]
        if not occupied:
            return answers
        encoded = [self.predictor.encode_host([self.encoding(p) for p in hosts[i]]) for i in occupied]
        quantiles, _, offsets = self.predictor.score_placement_arrays(
            self.encoding(newcomer), encoded, explain=False
        )
        for i, start, end in zip(occupied, offsets[:-1], offsets[1:], strict=True):
            answers[i] = quantiles[start:end]
        return answers
