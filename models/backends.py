"""How a predictor runs its model, per family: the only place that knows a torch module from a scikit-learn
estimator. ``Predictor`` holds one backend and never branches on the family itself.

- ``neural``: a torch module (eval mode), weights stored as ``weights.npz``; the placement head has a learned
  profile encoder and a numpy head whose first layer hosts can precompute (``host_batch``).
- ``tabular``: a fitted scikit-learn estimator stored with skops (an allow-list of types, never pickle); its
  interval is the point prediction plus out-of-fold residual quantiles, and for placement the profile summary
  is its own embedding (DeepSets sums of summaries).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from cotenant.models.base import P_FLOOR, DataShape, Family, sort_quantiles, summarise

if TYPE_CHECKING:
    from cotenant.models.host_batch import HostBatch
    from cotenant.models.predictor import PredictorMetadata

WEIGHTS_FILE = "weights.npz"
ESTIMATOR_FILE = "model.skops"


class Backend:
    family: ClassVar[Family]

    def __init__(self, metadata: PredictorMetadata, model: Any) -> None:
        self.metadata = metadata
        self.model = model

    # persistence
    def save(self, path: Path) -> None:
        raise NotImplementedError

    @classmethod
    def load(cls, metadata: PredictorMetadata, path: Path) -> Any:
        """The model stored in ``path``."""
        raise NotImplementedError

    # monitoring: normalised ``[T_i, F]`` runs -> sorted quantiles ``[N, Q]`` (before calibration)
    def monitoring_quantiles(self, normalised: list[np.ndarray], per_step: bool) -> np.ndarray:
        raise NotImplementedError

    # placement
    def placement_quantiles(
        self,
        newcomer: np.ndarray,
        neighbours: np.ndarray,
        mask: np.ndarray,
        host_cores: np.ndarray | None = None,
    ) -> np.ndarray:
        """The task's batch layout -> sorted quantiles ``[B, Q]`` (before calibration); ``host_cores [B]``:
        each row's node size, for a model that reads it (NaN or None: as set)."""
        raise NotImplementedError

    def encode(self, variants: np.ndarray) -> np.ndarray:
        """Normalised summaries ``[N, V, F_p]`` -> embeddings ``[N, V, E]``."""
        raise NotImplementedError

    def embedding_width(self) -> int:
        raise NotImplementedError

    def head(self, own: np.ndarray, others: np.ndarray, count: np.ndarray) -> np.ndarray:
        """Quantiles ``[N, Q]`` (unsorted) for rows of (own embedding, sum of the others', their count)."""
        raise NotImplementedError

    def host_parts(
        self, totals: np.ndarray, incumbents: np.ndarray, owner: np.ndarray, counts: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """The head's host-only part for stacked hosts (``host_batch.HostParts``); None: nothing to
        precompute, the head then runs on whole embeddings."""
        return None

    def head_from_parts(self, new: np.ndarray, batch: HostBatch, variants: int) -> np.ndarray:
        """Quantiles ``[H + sumK, V, Q]`` (newcomer rows, then incumbents; unsorted) from a batch stacked with
        ``host_parts`` and the newcomer's embedding ``[V, E]``."""
        raise NotImplementedError

    def set_host_cores(self, cores: float) -> bool:
        """Answer for hosts of ``cores`` CPUs instead of the training host's; False: the model does not read
        the host's size."""
        return False


class NeuralBackend(Backend):
    family = "neural"

    def __init__(self, metadata: PredictorMetadata, model: Any) -> None:
        super().__init__(metadata, model)
        self._weights: dict[str, np.ndarray] | None = None

    def save(self, path: Path) -> None:
        state = {key: value.detach().cpu().numpy() for key, value in self.model.state_dict().items()}
        np.savez(path / WEIGHTS_FILE, **state)

    @classmethod
    def load(cls, metadata: PredictorMetadata, path: Path) -> Any:
        import torch
        from cotenant.models import MODELS

        spec = MODELS[metadata.model_name]
        cfg = spec.config_type.model_validate(metadata.config)
        module = spec.build(cfg, DataShape(metadata.n_inputs, metadata.n_inputs, metadata.max_steps))
        with np.load(path / WEIGHTS_FILE) as weights:
            module.load_state_dict({key: torch.from_numpy(weights[key]) for key in weights.files})
        return module.eval()

    def monitoring_quantiles(self, normalised: list[np.ndarray], per_step: bool) -> np.ndarray:
        import torch
        from cotenant.models.batching import pad_steps

        with torch.inference_mode():
            x, mask = pad_steps(normalised)
            out = self.model(torch.from_numpy(x), torch.from_numpy(mask)).numpy()
        return sort_quantiles(out)

    def placement_quantiles(
        self,
        newcomer: np.ndarray,
        neighbours: np.ndarray,
        mask: np.ndarray,
        host_cores: np.ndarray | None = None,
    ) -> np.ndarray:
        import torch

        with torch.inference_mode():
            out = self.model(torch.from_numpy(newcomer), torch.from_numpy(neighbours), torch.from_numpy(mask))
        return sort_quantiles(out.numpy())

    def encode(self, variants: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            flat = torch.from_numpy(variants.reshape(-1, variants.shape[-1]).astype(np.float32))
            return self.model.encode(flat).numpy().reshape(*variants.shape[:2], -1)

    def embedding_width(self) -> int:
        return int(self.model.hidden.in_features // 2)

    def head(self, own: np.ndarray, others: np.ndarray, count: np.ndarray) -> np.ndarray:
        from cotenant.models.placement import numpy_head

        return numpy_head(self.head_weights(), own, others, count)

    def host_parts(
        self, totals: np.ndarray, incumbents: np.ndarray, owner: np.ndarray, counts: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        from cotenant.models.host_batch import neural_host_parts

        return neural_host_parts(self.head_weights(), totals, incumbents, owner, counts)

    def head_from_parts(self, new: np.ndarray, batch: HostBatch, variants: int) -> np.ndarray:
        from cotenant.models.host_batch import neural_head_rows

        return neural_head_rows(self.head_weights(), new, batch, variants)

    def head_weights(self) -> dict[str, np.ndarray]:
        if self._weights is None:
            self._weights = {k: v.detach().numpy() for k, v in self.model.state_dict().items()}
        return self._weights


class TabularBackend(Backend):
    family = "tabular"

    def save(self, path: Path) -> None:
        from cotenant.models.tabular import save_estimator

        save_estimator(self.model, path / ESTIMATOR_FILE)

    @classmethod
    def load(cls, metadata: PredictorMetadata, path: Path) -> Any:
        from cotenant.models.tabular import load_estimator

        return load_estimator(path / ESTIMATOR_FILE)

    def quantiles(self, features: np.ndarray) -> np.ndarray:
        """A point regressor's prediction plus the out-of-fold residual quantiles -> sorted ``[N, Q]``."""
        return self.interval(self.model.predict(np.nan_to_num(features)))

    def interval(self, point: np.ndarray) -> np.ndarray:
        """Point predictions -> sorted ``[N, Q]`` with the out-of-fold residual quantiles around them."""
        point = np.clip(point, P_FLOOR, 1.0)
        low, high = self.metadata.residual_quantiles or [0.0, 0.0]
        return sort_quantiles(np.clip(np.stack([point + low, point, point + high], 1), P_FLOOR, 1.0))

    def monitoring_quantiles(self, normalised: list[np.ndarray], per_step: bool) -> np.ndarray:
        features = np.stack([summarise(run) for run in normalised]) if per_step else np.stack(normalised)
        return self.quantiles(features)

    def placement_quantiles(
        self,
        newcomer: np.ndarray,
        neighbours: np.ndarray,
        mask: np.ndarray,
        host_cores: np.ndarray | None = None,
    ) -> np.ndarray:
        from cotenant.models.placement import batch_placement_features

        return self.quantiles(batch_placement_features(newcomer, neighbours, mask))

    def encode(self, variants: np.ndarray) -> np.ndarray:
        return variants.astype(np.float32)  # no learned encoder: the summary is the embedding (DeepSets)

    def embedding_width(self) -> int:
        return int(self.metadata.n_inputs)

    def head(self, own: np.ndarray, others: np.ndarray, count: np.ndarray) -> np.ndarray:
        from cotenant.models.placement import placement_features

        return self.quantiles(placement_features(own, others, count))


class ProbesBackend(TabularBackend):
    """``models/placement_probes.py``: the model embeds each workload (probes, or its describer's estimate)
    and its head reads the DeepSets sums, as the other placement models' do."""

    family = "probes"

    def monitoring_quantiles(self, normalised: list[np.ndarray], per_step: bool) -> np.ndarray:
        raise TypeError("placement-probes serves the placement task only")

    def placement_quantiles(
        self,
        newcomer: np.ndarray,
        neighbours: np.ndarray,
        mask: np.ndarray,
        host_cores: np.ndarray | None = None,
    ) -> np.ndarray:
        def quantiles(rows: np.ndarray | slice) -> np.ndarray:
            own = self.model.embed(newcomer[rows])
            others = (self.model.embed(neighbours[rows]) * mask[rows][..., None]).sum(axis=1)
            return self.head(own, others, mask[rows].sum(axis=1))

        return np.asarray(self.model.on_nodes(host_cores, len(newcomer), quantiles))

    def encode(self, variants: np.ndarray) -> np.ndarray:
        return self.model.embed(variants)

    def set_host_cores(self, cores: float) -> bool:
        return bool(self.model.serve_on_hosts_of(cores))

    def embedding_width(self) -> int:
        return int(self.model.embedding_width)

    def head(self, own: np.ndarray, others: np.ndarray, count: np.ndarray) -> np.ndarray:
        """Quantiles per row; a row whose own workload was described by telemetry alone gets the wider
        interval calibrated for that (``interval_widening_unprobed``)."""
        return self._widened(
            self.interval(self.model.predict_rows(own, others, count)), self.model.measured(own)
        )

    def _widened(self, quantiles: np.ndarray, measured: np.ndarray) -> np.ndarray:
        widening = self.metadata.interval_widening_unprobed
        if widening > 0:
            unprobed = ~measured
            quantiles[unprobed, 0] -= widening
            quantiles[unprobed, -1] += widening
            np.clip(quantiles, P_FLOOR, 1.0, out=quantiles)
        return quantiles

    # The extender's path: with the factorised law (the head it serves), stacking hosts gathers the columns
    # the law reads once per host state, so a query adds the newcomer's columns and computes the law.
    def _part_columns(self) -> tuple[list[int], list[int]]:
        own, others = self.model.head_columns()
        return [*own, self.embedding_width() - 1], others  # own: + the measured flag (``measured``)

    def host_parts(
        self, totals: np.ndarray, incumbents: np.ndarray, owner: np.ndarray, counts: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """Newcomer rows: the host's sum at the others' columns. Incumbent j of host h: its own columns and
        the others' sum without the newcomer, total_h - e_j (the newcomer adds at query time, as in
        ``Predictor.score_placement_arrays``' general path, summed in float32 in the same order)."""
        if getattr(self.model, "head_family_", None) != "factorised":
            return None
        own_columns, others_columns = self._part_columns()
        host_part = totals[..., others_columns]  # the columns first: the arrays hold every variant
        incumbent_part = np.concatenate(
            [incumbents[..., own_columns], host_part[owner] - incumbents[..., others_columns]], axis=-1
        )
        return host_part, incumbent_part

    def head_from_parts(self, new: np.ndarray, batch: HostBatch, variants: int) -> np.ndarray:
        assert batch.host_part is not None and batch.incumbent_part is not None
        own_columns, others_columns = self._part_columns()
        width = len(own_columns)
        incumbent_part = batch.incumbent_part[:, :variants]
        own = np.concatenate(
            [np.broadcast_to(new[:, own_columns], (batch.size, variants, width)), incumbent_part[..., :width]]
        )
        others = np.concatenate(
            [batch.host_part[:, :variants], incumbent_part[..., width:] + new[:, others_columns]]
        )
        rows = own.shape[0]
        own, others = own.reshape(rows * variants, width), others.reshape(rows * variants, -1)
        count = np.repeat(np.concatenate([batch.counts, batch.counts[batch.owner]]), variants)
        median = self.model.predict_parts(own[:, :-1].astype(np.float64), others.astype(np.float64), count)
        return self._widened(self.interval(median), own[:, -1] >= 0.5).reshape(rows, variants, -1)


BACKENDS: dict[str, type[Backend]] = {
    backend.family: backend for backend in (NeuralBackend, TabularBackend, ProbesBackend)
}
