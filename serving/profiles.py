"""Workload profiles: solo telemetry registered by id, their encodings cached per placement champion."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np
from cotenant.serving.models import LoadedModel, Series


def telemetry_to_series(telemetry: dict[str, list[float]]) -> Series:
    return {name: np.asarray(values, dtype=np.float64) for name, values in telemetry.items()}


@dataclass
class Profile:
    profile_id: str
    series: Series
    probes: dict[str, float] = field(default_factory=dict)  # P by probe name, as registered
    latency: bool | None = None  # whether its metric is a latency, as registered (None: not said)
    encodings: dict[str, np.ndarray] = field(default_factory=dict)  # model key -> encoding

    def inputs(self, placement: LoadedModel | None) -> tuple[list[str], list[str]]:
        """The registered probes this champion reads, and those it does not."""
        read = set(placement.predictor.probe_names()) if placement is not None else set()
        return sorted(read & set(self.probes)), sorted(set(self.probes) - read)

    def encode(self, placement: LoadedModel) -> np.ndarray:
        """Its embedding under ``placement``, from everything it was registered with."""
        return placement.predictor.encode_profile(self.series, self.probes, latency=self.latency)

    @property
    def seconds(self) -> int:
        return max((len(values) for values in self.series.values()), default=0)


class ProfileStore:
    def __init__(self, max_profiles: int = 100_000) -> None:
        self.max_profiles = max_profiles
        self.profiles: dict[str, Profile] = {}
        self._lock = threading.Lock()

    def register(
        self,
        profile_id: str,
        telemetry: dict[str, list[float]],
        placement: LoadedModel | None,
        probes: dict[str, float] | None = None,
        latency: bool | None = None,
    ) -> Profile:
        """Store (or replace) a profile and encode it now, so that queries only look it up."""
        profile = Profile(
            profile_id=profile_id,
            series=telemetry_to_series(telemetry),
            probes=dict(probes or {}),
            latency=latency,
        )
        if placement is not None:
            profile.encodings[placement.key] = profile.encode(placement)
        with self._lock:
            self.check_room(profile_id)
            self.profiles[profile_id] = profile
        return profile

    def check_room(self, profile_id: str) -> None:
        """OverflowError when a new profile would exceed ``max_profiles`` (replacing one always fits)."""
        if profile_id not in self.profiles and len(self.profiles) >= self.max_profiles:
            raise OverflowError(f"the profile store is full ({self.max_profiles} profiles)")

    def clear(self) -> None:
        with self._lock:
            self.profiles.clear()

    def get(self, profile_id: str) -> Profile | None:
        return self.profiles.get(profile_id)

    def encoding(self, profile: Profile, placement: LoadedModel) -> np.ndarray:
        cached = profile.encodings.get(placement.key)
        if cached is None:  # registered under an earlier champion
            cached = profile.encodings[placement.key] = profile.encode(placement)
        return cached
