"""Host state for scheduler-time scoring: per-host encodings, and candidate hosts stacked for fast queries.

The placement head's first layer is linear in ``[own, sum of the others, count]``, so everything that depends
only on the hosts is computed when they are stacked; a query adds the newcomer's share and runs the rest of
the head over all rows at once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import overload

import numpy as np

# Dividing the neighbour count keeps the count input on the embeddings' scale (the placement head's input).
COUNT_SCALE = 4.0
# The placement head's parameters as the torch module names them (models.placement.PlacementModel): the only
# place the numpy forms below read them from.
HIDDEN_WEIGHT, HIDDEN_BIAS = "hidden.weight", "hidden.bias"
OUT_WEIGHT, OUT_BIAS = "out.out.weight", "out.out.bias"


def head_output(head_weights: dict[str, np.ndarray], hidden: np.ndarray) -> np.ndarray:
    """The head after its first layer: ReLU, output layer, sigmoid -> quantiles (unsorted)."""
    logits = np.maximum(hidden, 0.0) @ head_weights[OUT_WEIGHT].T + head_weights[OUT_BIAS]
    return 1.0 / (1.0 + np.exp(-logits))


def head_first_layer(head_weights: dict[str, np.ndarray], joined: np.ndarray) -> np.ndarray:
    """The head's first layer on ``[own, sum of the others, count / COUNT_SCALE]`` rows."""
    return joined @ head_weights[HIDDEN_WEIGHT].T + head_weights[HIDDEN_BIAS]


@dataclass(frozen=True, slots=True)
class HostEncoding:
    """A host's incumbents, encoded ahead of time: cache it per host and rebuild when the host changes.

    One array per host, ``block [1 + K, V, E]``: the DeepSets sum over incumbents, then each incumbent's
    embedding per explanation variant (0 = nothing occluded). Stacking a fleet is then one concatenation of
    blocks, already in the batch's host-major row order."""

    block: np.ndarray

    @classmethod
    def of(cls, embeddings: np.ndarray) -> HostEncoding:
        """From the incumbents' embeddings ``[K, V, E]``."""
        return cls(np.concatenate([embeddings.sum(0, keepdims=True), embeddings]))

    @property
    def embeddings(self) -> np.ndarray:  # [K, V, E]
        return self.block[1:]

    @property
    def total(self) -> np.ndarray:  # [V, E]
        return self.block[0]

    @property
    def count(self) -> int:
        return int(self.block.shape[0]) - 1


@dataclass(frozen=True, slots=True)
class HostBatch:
    """Candidate hosts stacked once per host-state version (``Predictor.stack_hosts``): a query is then a few
    array operations, with no per-host Python work. Rows are host-major: host h's newcomer row, then its
    incumbents."""

    counts: np.ndarray  # [H] incumbents per host
    totals: np.ndarray  # [H, V, E]
    incumbents: np.ndarray  # [sumK, V, E]
    owner: np.ndarray  # [sumK] host of every incumbent row
    order: np.ndarray  # [H + sumK] (newcomer rows, then incumbent rows) -> host-major
    offsets: np.ndarray  # [H + 1] first row of each host
    # The head's host-only part, precomputed by the backend (``HostParts``) when its head has one: [H, V, *]
    # for the newcomer rows and [sumK, V, *] for incumbent rows. Neural: the first layer's pre-activation
    # without the newcomer's share (the layer is linear, so the newcomer adds later); placement-probes: the
    # columns its factorised law reads, of the host's sum and of each incumbent with the others' sum.
    host_part: np.ndarray | None = None
    incumbent_part: np.ndarray | None = None

    @property
    def size(self) -> int:
        return int(self.counts.shape[0])

    def select(self, rows: np.ndarray, variants: int | None = None) -> HostBatch:
        """The hosts at ``rows`` (in that order) as their own batch: gathers only, no re-encoding. With
        ``variants`` only the first that many explanation variants are kept (1: medians only), so a query
        that explains nothing gathers 1 / V of the embeddings (at 5,000 hosts the full gather copies tens of
        MB per query). The whole fleet in stacking order is taken as views, without copying."""
        kept = slice(None, variants)
        if len(rows) == self.size and np.array_equal(rows, np.arange(self.size)):
            return HostBatch(
                self.counts,
                self.totals[:, kept],
                self.incumbents[:, kept],
                self.owner,
                self.order,
                self.offsets,
                None if self.host_part is None else self.host_part[:, kept],
                None if self.incumbent_part is None else self.incumbent_part[:, kept],
            )
        counts = self.counts[rows]
        taken, within = self._incumbent_rows(rows)
        owner = np.repeat(np.arange(len(rows)), counts)
        offsets = np.concatenate([[0], np.cumsum(counts + 1)])
        order = np.empty(len(rows) + len(taken), dtype=np.int64)
        order[offsets[:-1]] = np.arange(len(rows))
        order[offsets[owner] + 1 + within] = len(rows) + np.arange(len(taken))
        return HostBatch(
            counts,
            self.totals[rows, kept],
            self.incumbents[taken, kept],
            owner,
            order,
            offsets,
            None if self.host_part is None else self.host_part[rows, kept],
            None if self.incumbent_part is None else self.incumbent_part[taken, kept],
        )

    def replaced(self, rows: np.ndarray, other: HostBatch) -> HostBatch:
        """A copy with the hosts at ``rows`` replaced by ``other``'s hosts, in that order: the same number of
        incumbents each (the layout, offsets and order stay), the same variants, stacked by the same model."""
        if not np.array_equal(self.counts[rows], other.counts):
            raise ValueError("replaced: a replacing host has another number of incumbents")
        taken, _ = self._incumbent_rows(rows)
        return HostBatch(
            self.counts,
            _rows_replaced(self.totals, other.totals, rows),
            _rows_replaced(self.incumbents, other.incumbents, taken),
            self.owner,
            self.order,
            self.offsets,
            _rows_replaced(self.host_part, other.host_part, rows),
            _rows_replaced(self.incumbent_part, other.incumbent_part, taken),
        )

    def _incumbent_rows(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The incumbent rows of the hosts at ``rows`` (host by host), and each one's place in its host."""
        counts = self.counts[rows]
        first_incumbent = (np.cumsum(self.counts) - self.counts)[rows]
        within = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
        return np.repeat(first_incumbent, counts) + within, within


# (totals [H, V, E], incumbents [sumK, V, E], owner [sumK], counts [H]) -> (host_part, incumbent_part), or
# None when the backend's head has nothing to precompute.
HostParts = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray] | None]


@overload
def _rows_replaced(mine: np.ndarray, theirs: np.ndarray, at: np.ndarray) -> np.ndarray: ...
@overload
def _rows_replaced(
    mine: np.ndarray | None, theirs: np.ndarray | None, at: np.ndarray
) -> np.ndarray | None: ...
def _rows_replaced(mine: np.ndarray | None, theirs: np.ndarray | None, at: np.ndarray) -> np.ndarray | None:
    """A copy of ``mine`` with its rows ``at`` set to ``theirs`` (None where a batch has no such part)."""
    if mine is None or theirs is None:
        return None
    out = mine.copy()
    out[at] = theirs
    return out


def stack_hosts(
    hosts: Sequence[HostEncoding],
    width: tuple[int, int],
    parts: HostParts | None = None,
    variants: int | None = None,
) -> HostBatch:
    """Stack ``hosts`` (each ``[K, V, E]``, or their first ``variants``); with the backend's ``parts``,
    precompute its head's host-only part."""
    blocks = [h.block[:, :variants] for h in hosts]
    rows = np.concatenate(blocks) if blocks else np.zeros((0, *width), np.float32)  # host-major
    sizes = np.fromiter(map(len, blocks), dtype=np.int64, count=len(blocks))
    counts = sizes - 1
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    is_total = np.zeros(len(rows), dtype=bool)
    is_total[offsets[:-1]] = True
    totals, incumbents = rows[is_total], rows[~is_total]
    owner = np.repeat(np.arange(len(hosts)), counts)
    order = np.argsort(np.concatenate([np.arange(len(hosts)), owner]), kind="stable")
    precomputed = parts(totals, incumbents, owner, counts) if parts is not None else None
    if precomputed is None:
        return HostBatch(counts, totals, incumbents, owner, order, offsets)
    return HostBatch(counts, totals, incumbents, owner, order, offsets, *precomputed)


def neural_host_parts(
    head_weights: dict[str, np.ndarray],
    totals: np.ndarray,
    incumbents: np.ndarray,
    owner: np.ndarray,
    counts: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """The neural head's first layer without the newcomer's share, per newcomer row and incumbent row."""
    w_own, w_others, w_count, bias = _first_layer(head_weights, totals.shape[-1])
    # newcomer row of host h: W_own n + W_others total_h + w_count K_h + b
    host_part = totals @ w_others.T + (counts / COUNT_SCALE)[:, None, None] * w_count + bias
    # incumbent j of host h sees total_h - e_j + n among the others, and K_h others
    incumbent_part = incumbents @ (w_own - w_others).T + host_part[owner]
    return host_part, incumbent_part


def neural_head_rows(
    head_weights: dict[str, np.ndarray], new: np.ndarray, batch: HostBatch, variants: int
) -> np.ndarray:
    """The neural head from a batch's precomputed part -> ``[H + sumK, V, Q]`` (newcomer rows, incumbents)."""
    if batch.host_part is None or batch.incumbent_part is None:
        raise ValueError("this host batch was stacked without the neural head's weights")
    w_own, w_others, _, _ = _first_layer(head_weights, new.shape[-1])
    hidden = np.concatenate(
        [batch.host_part[:, :variants] + new @ w_own.T, batch.incumbent_part[:, :variants] + new @ w_others.T]
    )
    return head_output(head_weights, hidden)


def _first_layer(
    head_weights: dict[str, np.ndarray], embedding: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The first layer split by input: own embedding, the others' sum, the count (it is linear in each)."""
    weight, bias = head_weights[HIDDEN_WEIGHT], head_weights[HIDDEN_BIAS]
    return weight[:, :embedding], weight[:, embedding : 2 * embedding], weight[:, -1], bias
