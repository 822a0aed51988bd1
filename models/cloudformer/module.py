"""CloudFormer's two branches and its fusion head (the nn.Module; training lives in cotenant.training).

System-branch width (the paper is inconsistent): it reports about 6k parameters for 4 encoder blocks while
also stating 4 heads of 16 and a feed-forward of 256, which alone cost ~50k per block. We keep the paper's
temporal branch exactly (d=64, 4 heads x 16, FF 256, 4 blocks, ~222k parameters for 206 inputs) and give the
system branch narrow tokens: d=16, FF 32, 4 blocks = ~8.9k parameters, the width closest to the reported 6k
that keeps 16-wide heads; one head by default (``system_heads``: see config.py for the cost of more).
The paper has 206 metric tokens; our runs carry ~800 inputs (own, neighbour-mean and host metrics), so the
1-D convolution is strided: each token embeds ``system_patch`` adjacent metrics (columns are ordered by
source, so a patch holds related counters); ``system_patch=1`` is one token per metric as in the paper.
A shared convolution over unordered metrics cannot tell the patches
apart, so each token also gets a learned identity vector (not a position: the set stays unordered);
``metric_identity=False`` gives the paper's text literally.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import cast

import numpy as np
import torch
from cotenant.collectors.ratios import CPU_RATE, SOLO_RELATIVE
from cotenant.datasets.probe_inputs import PROBE_INPUT
from cotenant.datasets.table import VS_SOLO
from cotenant.models.base import MEDIAN, QuantileHead
from cotenant.models.cloudformer.config import CloudFormerConfig
from cotenant.models.solo_prior import fit_switch_gate, switch_mixture
from torch import nn

# The solo-relative prior's range: P lives in (0, 1], and the prior's logit must stay finite at both ends.
PRIOR_LOW, PRIOR_HIGH = 0.02, 0.99
# The rate gate's starting logit for the CPU rate (the others start at 0): e^4 / (e^4 + 15) = 0.78 of the
# mixture on CPU time with all 16 rates present, so the network starts near the CPU prior it is known to hold.
RATE_GATE_CPU_START = 4.0
CPU_RATE_INDEX = SOLO_RELATIVE.index(CPU_RATE)
# The profile gate's floors: below this mean ratio a run says nothing of its program's solo rate, and a solo
# rate (per second) below the least is read as none, so that the log stays finite.
SOLO_RATIO_FLOOR, SOLO_LEAST = 1e-3, 1e-3
# The profile gate's own fit (``fit_rate_gate``): Adam steps and learning rate (a few units of logit must be
# reachable: the CPU rate starts RATE_GATE_CPU_START ahead), and what the z-scored solo means may reach.
PROFILE_GATE_STEPS, PROFILE_GATE_LR, PROFILE_Z_CLIP = 400, 0.05, 5.0
# Penalties the gate's fit chooses between (``rate_gate_l2=None``) over folds of the training programs, and
# the CPU logit that leaves the mixture on the CPU rate alone (e^30 against 15 others).
PROFILE_GATE_PENALTIES, PROFILE_GATE_FOLDS, CPU_ONLY_LOGIT = (1e-3, 1e-2, 1e-1), 5, 30.0


def sinusoidal_positions(length: int, width: int) -> torch.Tensor:
    """The Transformer's fixed positional table [length, width]."""
    position = torch.arange(length, dtype=torch.float32)[:, None]
    frequency = torch.exp(torch.arange(0, width, 2, dtype=torch.float32) * (-math.log(10000.0) / width))
    table = torch.zeros(length, width)
    table[:, 0::2] = torch.sin(position * frequency)
    table[:, 1::2] = torch.cos(position * frequency[: width // 2])
    return table


def encoder(width: int, heads: int, feed_forward: int, blocks: int, dropout: float) -> nn.TransformerEncoder:
    layer = nn.TransformerEncoderLayer(
        width, heads, feed_forward, dropout=dropout, batch_first=True, norm_first=True, activation="gelu"
    )
    # enable_nested_tensor=False: the nested fast path changes numerics between padded and unpadded batches.
    return nn.TransformerEncoder(layer, blocks, enable_nested_tensor=False)


class TemporalBranch(nn.Module):
    """Attention over time steps: Dense+ReLU per second, CLS, sinusoidal positions, masked encoder blocks."""

    def __init__(
        self, n_features: int, max_steps: int, width: int, heads: int, ff: int, blocks: int, dropout: float
    ) -> None:
        super().__init__()
        self.embed = nn.Sequential(nn.Linear(n_features, width), nn.ReLU())
        self.cls = nn.Parameter(torch.zeros(1, 1, width))
        self.positions: torch.Tensor
        self.register_buffer("positions", sinusoidal_positions(max_steps + 1, width), persistent=False)
        self.encoder = encoder(width, heads, ff, blocks, dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:  # [B, T, F], [B, T] -> [B, D]
        return self.outputs(x, mask)[:, 0]  # CLS output [B, D]

    def outputs(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:  # -> [B, 1+T, D], CLS first
        tokens = self.embed(x)  # [B, T, D]
        tokens = torch.cat([self.cls.expand(x.shape[0], -1, -1), tokens], dim=1)  # [B, 1+T, D]
        tokens = tokens + self.positions[: tokens.shape[1]]
        real = torch.cat([torch.ones_like(mask[:, :1]), mask], dim=1)  # CLS is always real
        return self.encoder(tokens, src_key_padding_mask=~real)


class SystemBranch(nn.Module):
    """Attention over metrics: time-mean-pooled metrics as tokens (1-D conv), CLS, no positions, unmasked."""

    def __init__(
        self,
        n_features: int,
        width: int,
        heads: int,
        ff: int,
        blocks: int,
        dropout: float,
        identity: bool,
        patch: int = 1,
        segments: int = 1,
    ) -> None:
        super().__init__()
        self.patch = patch
        self.segments = segments
        self.n_tokens = math.ceil(n_features / patch)
        # `patch` metrics x their `segments` temporal means -> one token (segments are input channels).
        self.embed = nn.Conv1d(segments, width, kernel_size=patch, stride=patch)
        self.identity = nn.Parameter(torch.zeros(self.n_tokens, width)) if identity else None
        if self.identity is not None:
            nn.init.normal_(self.identity, std=0.02)
        self.cls = nn.Parameter(torch.zeros(1, 1, width))
        self.encoder = encoder(width, heads, ff, blocks, dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:  # [B, T, F], [B, T] -> [B, D]
        return self.outputs(segment_means(x, mask, self.segments))[:, 0]

    def outputs(self, means: torch.Tensor) -> torch.Tensor:  # [B, S, F] -> [B, 1 + F / patch, D], CLS first
        # Zero-pad to whole patches: after normalisation zero is the training mean, i.e. "no information".
        means = nn.functional.pad(means, (0, self.n_tokens * self.patch - means.shape[-1]))
        tokens = self.embed(means).transpose(1, 2)  # [B, F / patch, D]
        if self.identity is not None:
            tokens = tokens + self.identity
        tokens = torch.cat([self.cls.expand(means.shape[0], -1, -1), tokens], dim=1)  # [B, 1+F, D]
        return self.encoder(tokens)


def segment_means(x: torch.Tensor, mask: torch.Tensor, segments: int) -> torch.Tensor:
    """Each metric's mean over each of ``segments`` equal stretches of a run's real steps -> ``[B, S, F]``
    (one segment: the mean over the whole run). A run shorter than ``segments`` steps leaves some empty (0,
    the training mean)."""
    steps = mask.shape[1]
    length = mask.sum(1, keepdim=True).clamp(min=1)  # [B, 1]
    position = torch.arange(steps, device=x.device)[None, :]  # [1, T]
    segment = torch.div(position * segments, length, rounding_mode="floor")  # [B, T] in 0..S-1 on real steps
    weights = (segment[..., None] == torch.arange(segments, device=x.device)) & mask[..., None]  # [B, T, S]
    weights = weights.to(x.dtype)
    return torch.einsum("bts,btf->bsf", weights, x) / weights.sum(1)[..., None].clamp(min=1.0)


def hidden_metrics(x: torch.Tensor, share: float) -> torch.Tensor:  # [B, T, F] -> [B, F] bool
    """Which metrics of each run to hide, each with probability ``share``: a hidden metric is set to 0 at
    every step, the training mean after normalisation, as a metric the run lacks reads."""
    return torch.rand(x.shape[0], x.shape[2], device=x.device) < share


def pooled_metrics(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:  # [B, T, F], [B, T] -> [B, F]
    """Each metric's mean over the real steps only."""
    return segment_means(x, mask, 1)[:, 0]


class CloudFormer(nn.Module):
    """Both branches (or one, for the ablations); CLS outputs concatenated into the MLP quantile head."""

    prior_column: torch.Tensor  # buffers of the solo-relative prior (``solo_prior``)
    prior_mean: torch.Tensor
    prior_std: torch.Tensor
    rate_columns: torch.Tensor  # buffers of the work-rate mixture (``rate_prior``), one per rate
    rate_means: torch.Tensor
    rate_stds: torch.Tensor
    self_columns: torch.Tensor  # buffers of the profile gate (``rate_gate="solo_profile"``): own rates
    self_means: torch.Tensor
    self_stds: torch.Tensor
    profile_means: torch.Tensor  # the training runs' mean and std of each log solo mean (``fit_rate_gate``)
    profile_stds: torch.Tensor
    gate_penalty: torch.Tensor
    switch_columns: torch.Tensor  # buffers of the switch-gated prior (``prior="switches"``)
    probe_columns: torch.Tensor  # what the head reads beside the encoding (``probe_head``, ``ratio_head``)
    switch_means: torch.Tensor
    switch_stds: torch.Tensor
    switch_gate: torch.Tensor

    def __init__(
        self, n_features: int, max_steps: int, temporal: bool, system: bool, cfg: CloudFormerConfig
    ) -> None:
        super().__init__()
        if not (temporal or system):
            raise ValueError("CloudFormer needs at least one branch")
        self.temporal = (
            TemporalBranch(
                n_features, max_steps, cfg.width, cfg.heads, cfg.feed_forward, cfg.blocks, cfg.dropout
            )
            if temporal
            else None
        )
        self.system = (
            SystemBranch(
                n_features,
                cfg.system_width,
                cfg.system_heads,
                cfg.system_feed_forward,
                cfg.blocks,
                cfg.dropout,
                cfg.metric_identity,
                cfg.system_patch,
                cfg.system_segments,
            )
            if system
            else None
        )
        fused = (cfg.width if temporal else 0) + (cfg.system_width if system else 0)
        # ``probe_head`` / ``ratio_head``: which input columns (the probe inputs, the solo-relative ratios:
        # ``set_head_columns``) the head reads beside the encoding, as their means over the run; a weight per
        # input column, those of the others never see anything but 0.
        self.head_prefixes = tuple(
            prefix for prefix, wanted in ((PROBE_INPUT, cfg.probe_head), (VS_SOLO, cfg.ratio_head)) if wanted
        )
        if self.head_prefixes:
            self.register_buffer("probe_columns", torch.zeros(n_features, dtype=torch.bool))
        self.head = nn.Sequential(
            nn.Linear(fused + (n_features if self.head_prefixes else 0), cfg.head_width),
            nn.SiLU(),  # Swish
            nn.LayerNorm(cfg.head_width),
            nn.Dropout(cfg.head_dropout),
            QuantileHead(cfg.head_width),
        )
        if cfg.solo_prior and cfg.start_at_prior:
            start = cast(QuantileHead, self.head[-1]).out
            nn.init.zeros_(start.weight)
            nn.init.zeros_(start.bias)
        # The solo-relative CPU prior (``solo_prior``): which input column carries it and that column's
        # normalisation, as buffers so that they travel with the weights; column -1: no prior.
        self.solo_prior = cfg.solo_prior
        if cfg.solo_prior:
            self.register_buffer("prior_column", torch.tensor(-1, dtype=torch.long))
            self.register_buffer("prior_mean", torch.tensor(0.0))
            self.register_buffer("prior_std", torch.tensor(1.0))
        # The switch-gated prior (``prior="switches"``): the columns of the switch ratio and the profile's
        # switch density with their normalisation, and the gate (slope, threshold; NaN until fitted).
        self.switch_prior = cfg.solo_prior and cfg.prior == "switches"
        self.switch_gate_between_programs = cfg.switch_gate_choice == "programs"
        if self.switch_prior:
            self.register_buffer("switch_columns", torch.full((2,), -1, dtype=torch.long))
            self.register_buffer("switch_means", torch.zeros(2))
            self.register_buffer("switch_stds", torch.ones(2))
            self.register_buffer("switch_gate", torch.full((2,), math.nan))
        # The work-rate mixture (``rate_prior``): the input column of each SOLO_RELATIVE rate (-1: absent)
        # with its normalisation, and the gate that weighs them from the run's encoding or, with
        # ``rate_gate="solo_profile"``, from the program's solo means of the rates (``solo_profile``: the
        # columns of the target's own rates, ``self__``, give them with the ratios).
        self.gate_reads_profile = cfg.rate_gate == "solo_profile"
        self.rate_gate_l2 = cfg.rate_gate_l2
        gate_inputs = len(SOLO_RELATIVE) if self.gate_reads_profile else fused
        rates = len(SOLO_RELATIVE)
        self.rate_gate = nn.Linear(gate_inputs, rates) if cfg.solo_prior and cfg.rate_prior else None
        if self.rate_gate is not None and self.gate_reads_profile:
            self.register_buffer("self_columns", torch.full((rates,), -1, dtype=torch.long))
            self.register_buffer("self_means", torch.zeros(rates))
            self.register_buffer("self_stds", torch.ones(rates))
            self.register_buffer("profile_means", torch.zeros(rates))
            self.register_buffer("profile_stds", torch.ones(rates))
            self.register_buffer("gate_penalty", torch.tensor(math.nan))  # the fit's (inf: CPU alone)
        if self.rate_gate is not None:
            self._start_gate(RATE_GATE_CPU_START)
            self.register_buffer("rate_columns", torch.full((len(SOLO_RELATIVE),), -1, dtype=torch.long))
            self.register_buffer("rate_means", torch.zeros(len(SOLO_RELATIVE)))
            self.register_buffer("rate_stds", torch.ones(len(SOLO_RELATIVE)))
        self.input_noise = cfg.input_noise
        self.departure_penalty = cfg.departure_penalty
        self.departure_scale = cfg.departure_scale
        # The head's logits of the last forward while training (``training_penalty`` reads them).
        self._departure: torch.Tensor | None = None
        self.metric_dropout = cfg.metric_dropout
        # Decoders of the self-supervised pretraining (masked reconstruction); absent when it is off, so a
        # model without it keeps its state dict.
        self.pretrain_mask = cfg.pretrain_mask
        self.step_decoder = (
            nn.Linear(cfg.width, n_features) if cfg.pretrain_epochs and self.temporal is not None else None
        )
        self.metric_decoder = (
            nn.Linear(cfg.system_width, cfg.system_patch)
            if cfg.pretrain_epochs and self.system is not None
            else None
        )

    def set_prior(self, column: int, mean: float, std: float) -> None:
        """The input column of the solo-relative CPU rate and its normalisation (``FeatureStats``)."""
        if self.solo_prior:
            self.prior_column.fill_(column)
            self.prior_mean.fill_(mean)
            self.prior_std.fill_(std)

    def set_switch_prior(
        self, columns: tuple[int, int], means: tuple[float, float], stds: tuple[float, float]
    ) -> None:
        """The input columns of the switch ratio and the profile's switch density (-1: the inputs lack it)
        and their normalisation (``FeatureStats``), for ``prior="switches"``."""
        if self.switch_prior:
            self.switch_columns.copy_(torch.tensor(columns, dtype=torch.long))
            self.switch_means.copy_(torch.tensor(means))
            self.switch_stds.copy_(torch.tensor(stds))

    def switch_rates(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``[B, 2]``: the run's mean switch ratio and the profile's switch density, de-normalised."""
        pooled = pooled_metrics(x[..., self.switch_columns.clamp(min=0)], mask)
        return pooled * self.switch_stds + self.switch_means

    def reads_switches(self) -> bool:
        """Whether the switch-gated prior can be read: asked for, and the inputs carry the CPU ratio, the
        switch ratio and the density."""
        return self.switch_prior and bool((self.switch_columns >= 0).all()) and int(self.prior_column) >= 0

    def set_head_columns(self, names: Sequence[str]) -> None:
        """Of the input columns ``names``, mark those ``probe_head`` (the probe inputs) and ``ratio_head``
        (the solo-relative ratios) give the head (none: it reads 0)."""
        if self.head_prefixes:
            self.probe_columns.copy_(torch.tensor([name.startswith(self.head_prefixes) for name in names]))

    def cpu_ratio(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:  # -> [B]
        """The run's mean CPU ratio over its real steps, de-normalised (the solo-relative heuristic before
        its clamping)."""
        rate = pooled_metrics(x[..., int(self.prior_column)][..., None], mask)[:, 0]
        return rate * self.prior_std + self.prior_mean

    def set_rate_priors(
        self,
        columns: list[int],
        means: list[float],
        stds: list[float],
        own: tuple[list[int], list[float], list[float]] | None = None,
    ) -> None:
        """The input column of each ``SOLO_RELATIVE`` rate's ratio, in its order (-1: the inputs lack it), and
        each column's normalisation (``FeatureStats``); ``own``: the same of the target's own rates
        (``self__``), which the gate that reads the solo profile divides by the ratios."""
        if self.rate_gate is not None:
            self.rate_columns.copy_(torch.tensor(columns, dtype=torch.long))
            self.rate_means.copy_(torch.tensor(means))
            self.rate_stds.copy_(torch.tensor(stds))
        if self.rate_gate is not None and self.gate_reads_profile and own is not None:
            self.self_columns.copy_(torch.tensor(own[0], dtype=torch.long))
            self.self_means.copy_(torch.tensor(own[1]))
            self.self_stds.copy_(torch.tensor(own[2]))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:  # [B, T, F], [B, T] -> [B, Q]
        parts = []
        branch_input = self.regularised(x, mask)
        if self.temporal is not None:
            parts.append(self.temporal(branch_input, mask))
        if self.system is not None:
            parts.append(self.system(branch_input, mask))
        hidden = torch.cat(parts, dim=-1)
        head_input = hidden
        if self.head_prefixes:
            head_input = torch.cat([hidden, pooled_metrics(x, mask) * self.probe_columns], dim=-1)
        if not self.solo_prior or int(self.prior_column) < 0:
            return self.head(head_input)
        head = cast(QuantileHead, self.head[-1])
        logits = head.out(self.head[:-1](head_input))  # [B, Q], before the head's sigmoid
        self._departure = logits if self.training and self.departure_penalty else None
        if not self.training and self.departure_scale != 1.0:
            # every quantile moves by the median's shrunk share: the answer nearer the prior, its spread kept
            logits = logits - (1.0 - self.departure_scale) * logits[:, MEDIAN : MEDIAN + 1]
        prior = self.prior(x, mask) if self.rate_gate is None else self.rate_mixture(x, mask, hidden)
        return torch.sigmoid(logits + torch.logit(prior)[:, None])

    def training_penalty(self) -> torch.Tensor | None:
        """What the training loop adds to the loss of the last forward (``departure_penalty`` times the mean
        squared logit the head added to the prior's); None when there is nothing to add."""
        departure, self._departure = self._departure, None
        if departure is None:
            return None
        return self.departure_penalty * departure.square().mean()

    def regularised(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:  # [B, T, F] -> [B, T, F]
        """What the branches read: while training, ``x`` with ``metric_dropout`` of each run's columns set to
        0 (a missing metric after normalisation) and ``input_noise`` added on its real steps; else ``x``."""
        if not self.training:
            return x
        if self.metric_dropout:
            x = x.masked_fill(hidden_metrics(x, self.metric_dropout)[:, None, :], 0.0)
        if self.input_noise:
            x = x + self.input_noise * torch.randn_like(x) * mask[..., None]
        return x

    def prior(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:  # -> [B]
        """The solo-relative heuristic from the inputs: the column's mean over the real steps, de-normalised
        (with ``prior="switches"`` and its gate fitted, ``switch_mixture`` of it and the switch ratio), kept
        inside (PRIOR_LOW, PRIOR_HIGH) so that its logit is finite. A missing value reads as the training
        mean (0 after normalisation), as for every input."""
        prior = self.cpu_ratio(x, mask)
        if self.reads_switches() and not bool(torch.isnan(self.switch_gate).any()):
            switches = self.switch_rates(x, mask)
            slope, threshold = (float(v) for v in self.switch_gate)
            prior = switch_mixture(prior, switches[:, 0], switches[:, 1], slope, threshold)
        return prior.clamp(PRIOR_LOW, PRIOR_HIGH)

    def work_rates(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``[B, K]`` each ``SOLO_RELATIVE`` rate's ratio to the solo profile, its mean over the real steps,
        de-normalised, and ``[B, K]`` whether the mixture may weigh it: a rate the inputs lack, or that the
        run lacks (a program that hardly does that work alone has no ratio: every step reads exactly the
        training mean, 0 after normalisation), may not; the CPU rate always may (a run without it reads the
        training mean, as ``prior`` does)."""
        columns = self.rate_columns.clamp(min=0)
        steps = x[..., columns]  # [B, T, K]
        rates = pooled_metrics(steps, mask) * self.rate_stds + self.rate_means
        usable = ((steps != 0) & mask[..., None]).any(dim=1) & (self.rate_columns >= 0)
        usable[:, CPU_RATE_INDEX] = True
        return rates, usable

    def rate_mixture(self, x: torch.Tensor, mask: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        """``[B]``: the gate's mixture of the run's usable work rates (``work_rates``), each kept inside
        (PRIOR_LOW, PRIOR_HIGH); the gate reads the run's encoding (``hidden``) or its solo profile."""
        assert self.rate_gate is not None
        rates, usable = self.work_rates(x, mask)
        reads = self.solo_profile(x, mask) if self.gate_reads_profile else hidden
        weights = torch.softmax(self.rate_gate(reads).masked_fill(~usable, -1e9), dim=-1)
        return (weights * rates.clamp(PRIOR_LOW, PRIOR_HIGH)).sum(-1).clamp(PRIOR_LOW, PRIOR_HIGH)

    def solo_profile(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``[B, K]``: what the profile gate reads, the log10 of each rate's solo mean per second, z-scored
        over the training runs (``fit_rate_gate``) and kept within +-PROFILE_Z_CLIP. A rate the run lacks,
        or whose own column the inputs lack, reads as 10^-3 a second. The solo mean is the run's mean rate
        over its mean ratio to the solo profile (each second's ratio divides by the same solo mean), both
        de-normalised."""
        ratios, usable = self.work_rates(x, mask)
        own = pooled_metrics(x[..., self.self_columns.clamp(min=0)], mask) * self.self_stds + self.self_means
        known = usable & (self.self_columns >= 0) & (ratios > SOLO_RATIO_FLOOR) & (own > 0)
        solo = torch.where(known, own / ratios.clamp(min=SOLO_RATIO_FLOOR), torch.full_like(own, SOLO_LEAST))
        logs = torch.log10(solo.clamp(min=SOLO_LEAST))
        return ((logs - self.profile_means) / self.profile_stds).clamp(-PROFILE_Z_CLIP, PROFILE_Z_CLIP)

    @property
    def fits_rate_gate_first(self) -> bool:
        """Whether the training loop fits a rate gate before the network (``fit_rate_gate``): the profile
        gate, or the switch-gated prior's."""
        return (self.rate_gate is not None and self.gate_reads_profile) or self.switch_prior

    def fit_rate_gate(
        self, x: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor, programs: Sequence[str] | None = None
    ) -> None:
        """Fit the profile gate alone on the training runs (``x``: their inputs, ``labels``: their P), then
        freeze it: the mixture's MAE, plus a penalty x the squared weights. Trained with the network
        instead, the gate hardly moves: the network learns each training program's departure from the CPU
        prior by its inputs sooner than the gate learns which rate that program's progress is, and nothing
        is left for the gate to carry to an unseen program. The penalty is ``rate_gate_l2``, or where that is
        None the one of PROFILE_GATE_PENALTIES whose gates, fitted on some training ``programs`` (one per
        run), answer the others best, folds of programs as the evaluation's; the CPU rate alone is a
        candidate too (penalty inf), so that a gate whose rule does not carry between training programs is
        not trusted on an unseen one. The switch-gated prior's gate (``prior="switches"``) is fitted here
        too, on the same runs (``solo_prior.fit_switch_gate``). No-op without either."""
        if self.reads_switches():
            with torch.no_grad():
                cpu, switches = self.cpu_ratio(x, mask), self.switch_rates(x, mask)
            between = (
                np.asarray(programs) if self.switch_gate_between_programs and programs is not None else None
            )
            gate = fit_switch_gate(
                cpu.double().numpy(), *(switches.double().numpy().T), labels.double().numpy(), between
            )
            self.switch_gate.copy_(torch.tensor(gate))
        if self.rate_gate is None or not self.gate_reads_profile:
            return
        with torch.no_grad():
            self.profile_means.zero_()
            self.profile_stds.fill_(1.0)
            logs = self.solo_profile(x, mask)
            self.profile_means.copy_(logs.mean(0))
            self.profile_stds.copy_(logs.std(0).clamp(min=1e-2))
        penalty = self.rate_gate_l2
        if penalty is None:
            penalty = self._penalty_between_programs(x, mask, labels, programs)
        self._fit_gate(x, mask, labels, penalty)
        self.gate_penalty.fill_(penalty)
        self.rate_gate.requires_grad_(False)

    def _fit_gate(self, x: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor, penalty: float) -> None:
        """The gate from its start, fitted on these runs with this penalty (inf: the CPU rate alone)."""
        gate = self.rate_gate
        assert gate is not None
        self._start_gate(CPU_ONLY_LOGIT if math.isinf(penalty) else RATE_GATE_CPU_START)
        if math.isinf(penalty):
            return
        optimiser = torch.optim.Adam(gate.parameters(), lr=PROFILE_GATE_LR)
        with torch.enable_grad():
            for _ in range(PROFILE_GATE_STEPS):
                optimiser.zero_grad()
                error = (self.rate_mixture(x, mask, x.new_zeros(len(x), 0)) - labels).abs().mean()
                (error + penalty * gate.weight.pow(2).sum()).backward()
                optimiser.step()

    def _start_gate(self, cpu_logit: float) -> None:
        """The gate's start: no weights, every rate's logit 0 but the CPU rate's."""
        assert self.rate_gate is not None
        with torch.no_grad():
            self.rate_gate.weight.zero_()
            self.rate_gate.bias.zero_()
            self.rate_gate.bias[CPU_RATE_INDEX] = cpu_logit

    def _penalty_between_programs(
        self, x: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor, programs: Sequence[str] | None
    ) -> float:
        """The candidate penalty (PROFILE_GATE_PENALTIES, then inf: the CPU rate alone) whose gates, each
        fitted on all but one fold of the training programs, answer the held-out folds' runs with the least
        MAE; inf where there are too few programs to hold any out."""
        from sklearn.model_selection import GroupKFold

        distinct = len(set(programs or []))
        if distinct < 3:
            return math.inf
        folds = list(GroupKFold(n_splits=min(PROFILE_GATE_FOLDS, distinct)).split(labels, groups=programs))
        errors = {}
        for penalty in (*PROFILE_GATE_PENALTIES, math.inf):
            held_out = []
            for fit_on, answer in folds:
                self._fit_gate(x[fit_on], mask[fit_on], labels[fit_on], penalty)
                with torch.no_grad():
                    mixture = self.rate_mixture(x[answer], mask[answer], x.new_zeros(len(answer), 0))
                held_out.append((mixture - labels[answer]).abs())
            errors[penalty] = float(torch.cat(held_out).mean())
        return min(errors, key=errors.__getitem__)

    def reconstruction_loss(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Masked reconstruction, labels unused: whole time steps and whole metrics of each run are hidden
        (set to 0, the training mean after normalisation) with probability ``pretrain_mask`` each; the
        temporal branch rebuilds the hidden values of every real step from its step tokens, the system
        branch each hidden metric's mean from its metric tokens. Mean squared error over the hidden values."""
        batch, steps, features = x.shape
        hidden_steps = (torch.rand(batch, steps, device=x.device) < self.pretrain_mask) & mask  # [B, T]
        metrics = hidden_metrics(x, self.pretrain_mask)  # [B, F]
        hidden = (hidden_steps[..., None] | metrics[:, None, :]) & mask[..., None]  # [B, T, F]
        corrupted = x.masked_fill(hidden, 0.0)
        losses = []
        if self.temporal is not None and self.step_decoder is not None and hidden.any():
            rebuilt = self.step_decoder(self.temporal.outputs(corrupted, mask)[:, 1:])  # [B, T, F]
            losses.append(((rebuilt - x) ** 2)[hidden].mean())
        if self.system is not None and self.metric_decoder is not None and metrics.any():
            tokens = self.system.outputs(segment_means(corrupted, mask, self.system.segments))[:, 1:]
            rebuilt_means = self.metric_decoder(tokens).flatten(1)[:, :features]  # [B, F]
            losses.append(((rebuilt_means - pooled_metrics(x, mask)) ** 2)[metrics].mean())
        if not losses:  # nothing hidden in this batch (tiny batches): no signal this step
            return torch.zeros((), device=x.device, requires_grad=True)
        return torch.stack(losses).mean()
