"""Champion loading and watching: ``models:/NAME@champion`` from MLflow, swapped in atomically.

A ``Champions`` snapshot is immutable and replaced as one reference, so a request that read it keeps a
consistent pair of predictors even while the watcher swaps a new version in: no request fails on a swap.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from cotenant.collectors.summaries import FeatureSchema
from cotenant.models.accelerators.profiles import ProfileCatalogue, catalogue_in
from cotenant.serving.config import ServiceSettings
from cotenant.training.tracking import download_registered

log = logging.getLogger(__name__)
Series = dict[str, np.ndarray]


class EstimateLike(Protocol):
    p: float
    lower: float
    upper: float
    drivers: dict[str, float]


class PlacementEstimateLike(Protocol):
    newcomer: Any
    incumbents: list[Any]


class PredictorLike(Protocol):
    """The part of ``cotenant.models.predictor.Predictor`` (docs/architecture.md section 4) serving uses."""

    metadata: Any

    def predict_degradation(
        self, target: Series, neighbours: list[Series], host: Series | None, solo: Series | None = None
    ) -> Any: ...
    def encode_profile(
        self, profile: Series, probes: dict[str, float] | None = None, live: bool = False
    ) -> np.ndarray: ...
    def probe_names(self) -> list[str]: ...
    def raw_summary(self, profile: Series) -> np.ndarray: ...
    def placement_row(
        self, summary: np.ndarray, probes: dict[str, float] | None = None, live: bool = False
    ) -> np.ndarray: ...
    def encode_summaries(self, summaries: np.ndarray) -> np.ndarray: ...
    def feature_schema(self, window_seconds: int) -> FeatureSchema: ...
    def set_host_cores(self, cores: float) -> bool: ...
    def encode_host(self, incumbents: list[np.ndarray]) -> Any: ...
    def score_placement(self, newcomer: np.ndarray, hosts: list[Any]) -> list[Any]: ...
    def stack_hosts(self, hosts: list[Any], variants: int | None = None) -> Any: ...
    def score_placement_arrays(
        self, newcomer: np.ndarray, hosts: Any, explain: bool = True
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]: ...


@dataclass(frozen=True)
class LoadedModel:
    name: str
    version: str
    predictor: PredictorLike

    @property
    def key(self) -> str:
        """Identifies encodings made with this model (cached encodings of another key are recomputed)."""
        return f"{self.name}/{self.version}"


@dataclass(frozen=True)
class LoadedCatalogue:
    """The accelerator champion: device profiles by model name (``cotenant accelerators fit``)."""

    name: str
    version: str
    catalogue: ProfileCatalogue


@dataclass(frozen=True)
class Champions:
    monitoring: LoadedModel | None = None
    placement: LoadedModel | None = None
    # Optional: without it, accelerator requests must carry their apps' device profiles.
    accelerators: LoadedCatalogue | None = None
    # Optional: the placement challenger, scored beside the champion in shadow mode and never served.
    placement_shadow: LoadedModel | None = None

    def versions(self) -> dict[str, str | None]:
        return {
            task: loaded.version if loaded else None
            for task, loaded in (
                ("monitoring", self.monitoring),
                ("placement", self.placement),
                ("accelerators", self.accelerators),
            )
        }


def find_predictor_dir(root: Path) -> Path:
    """The predictor artifact (the folder holding ``predictor.json``) inside a downloaded MLflow model."""
    if (root / "predictor.json").is_file():
        return root
    found = sorted(root.rglob("predictor.json"), key=lambda path: len(path.parts))
    if not found:
        raise FileNotFoundError(f"no predictor.json under the downloaded model {root}")
    return found[0].parent


def load_predictor(path: Path) -> PredictorLike:
    from cotenant.models.predictor import Predictor  # serving imports only cotenant.models, never training

    predictor: PredictorLike = Predictor.load(path)
    return predictor


class ChampionSource:
    """Resolves an alias to a version and downloads + loads that version, through the MLflow client."""

    def __init__(self, settings: ServiceSettings) -> None:
        from mlflow import MlflowClient

        self.settings = settings
        self.client = MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)

    def champion_version(self, name: str, alias: str | None = None) -> str | None:
        alias = alias or self.settings.alias
        try:
            return str(self.client.get_model_version_by_alias(name, alias).version)
        except Exception as error:  # no such model or alias yet: not ready, not a crash
            log.debug("no %s@%s yet: %s", name, alias, error)
            return None

    def download(self, name: str, version: str) -> Path:
        # The folder is kept (not a temporary context): a predictor may read its files lazily (npz is lazy).
        return download_registered(self.client, name, version, self.settings.tracking_uri)

    def load(self, name: str, version: str) -> LoadedModel:
        predictor = load_predictor(find_predictor_dir(self.download(name, version)))
        cores = self.settings.host_cores
        if cores and name == self.settings.placement_model and predictor.set_host_cores(cores):
            log.info("%s v%s scores every host as %g CPUs", name, version, cores)
        return LoadedModel(name=name, version=version, predictor=predictor)

    def load_catalogue(self, name: str, version: str) -> LoadedCatalogue:
        catalogue = catalogue_in(self.download(name, version))
        return LoadedCatalogue(name=name, version=version, catalogue=catalogue)


# The tasks the service answers with a registered champion (``Champions`` fields); readiness reads them.
SERVED_TASKS = ("monitoring", "placement")


class ChampionStore:
    """Holds the current champions; ``refresh`` loads any alias that moved; a daemon thread calls it."""

    def __init__(self, source: ChampionSource, on_swap: Callable[[Champions], None] | None = None) -> None:
        self.source = source
        self.champions = Champions()
        self.last_error: str | None = None
        # The served tasks whose registered model had no champion at the last refresh (task -> that model's
        # name): none of its versions passed the promotion gate (or none was trained). Their requests are
        # answered 503, the extender neutrally, each saying so; the other task is served meanwhile.
        self.without_champion: dict[str, str] = {}
        self._on_swap = on_swap
        self._refresh_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def refresh(self) -> bool:
        """Load every champion whose alias points at a new version; True when anything was swapped."""
        with self._refresh_lock:
            current = self.champions
            updated = current
            settings = self.source.settings
            loaders: tuple[tuple[str, str, str, Callable[[str, str], Any]], ...] = (
                ("monitoring", settings.monitoring_model, settings.alias, self.source.load),
                ("placement", settings.placement_model, settings.alias, self.source.load),
                ("accelerators", settings.accelerators_model, settings.alias, self.source.load_catalogue),
                ("placement_shadow", settings.placement_model, settings.shadow_alias, self.source.load),
            )
            for field, name, alias, load in loaders:
                if not alias:
                    continue
                version = self.source.champion_version(name, alias)
                if field in SERVED_TASKS and version is None:
                    self.without_champion[field] = name
                elif field in SERVED_TASKS:
                    self.without_champion.pop(field, None)
                loaded: LoadedModel | LoadedCatalogue | None = getattr(current, field)
                if version is None and field == "placement_shadow" and loaded is not None:
                    updated = replace(updated, placement_shadow=None)  # the alias is gone: stop shadowing
                    continue
                if version is None or (loaded is not None and loaded.version == version):
                    continue
                try:
                    updated = replace(updated, **{field: load(name, version)})
                    log.info("loaded %s version %s", name, version)
                except Exception as error:  # keep serving the old champion; report through /readyz
                    self.last_error = f"{name} v{version}: {error}"
                    log.exception("could not load %s version %s", name, version)
            if updated is current:
                return False
            self.champions = updated  # one reference assignment: atomic for readers
            if self._on_swap is not None:
                self._on_swap(updated)
            return True

    @property
    def ready(self) -> bool:
        """At least one task's champion is loaded, and every champion the registry names is: a task with none
        (no version passed the promotion gate) does not hold back the other, while a champion that failed to
        load, or is not loaded yet, does."""
        loaded = {task: getattr(self.champions, task) for task in SERVED_TASKS}
        return any(model is not None for model in loaded.values()) and all(
            model is not None or task in self.without_champion for task, model in loaded.items()
        )

    def missing(self, task: str) -> str:
        """Why ``task`` has no champion to answer with."""
        name = self.without_champion.get(task)
        if name is not None:
            return (
                f"no {task} champion: no version of {name} is aliased {self.source.settings.alias!r} "
                "(none has passed the promotion gate, or none was trained; `cotenant train` says why)"
            )
        return f"no {task} champion loaded yet"

    def start_watching(self, interval_s: float) -> None:
        if interval_s <= 0 or self._thread is not None:
            return
        self._thread = threading.Thread(
            target=self._watch, args=(interval_s,), name="champion-watcher", daemon=True
        )
        self._thread.start()

    def _watch(self, interval_s: float) -> None:
        while not self._stop.wait(interval_s):
            try:
                self.refresh()
            except Exception:  # a failing poll must not kill the watcher
                log.exception("champion poll failed")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
