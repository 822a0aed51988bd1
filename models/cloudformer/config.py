"""CloudFormer's typed config (widths per the paper; see module.py for the system-branch choice)."""

from __future__ import annotations

from typing import Literal

from cotenant.models.base import ModelConfig, PriorRate, SwitchGateChoice
from pydantic import Field, model_validator


class CloudFormerConfig(ModelConfig):
    width: int = 64  # temporal tokens: Dense(64) + ReLU
    heads: int = 4  # 4 heads of 16
    feed_forward: int = 256
    blocks: int = 4
    dropout: float = 0.1
    system_width: int = 16  # narrow tokens: the paper's ~6k-parameter system branch
    # One head of 16: attention maps scale with heads x tokens^2, and with ~400 metric tokens 4 heads of 4
    # cost 2.3 s per batch of 32 on 2 CPU cores against 0.6 s for one head (same parameter count).
    system_heads: int = 1
    system_feed_forward: int = 32
    # Metrics per system token (a strided 1-D convolution). With self, neighbour-mean and host columns a run
    # has ~800 inputs; one token each made attention over ~800 tokens 90% of training time (10.3 of 11.2 s
    # per batch of 32 on 2 loaded cores); patches of 8 give ~100 tokens for ~50x less system-branch time.
    system_patch: int = 8
    # Temporal means per metric token: 1 is the paper's (each metric's mean over the run); S splits the run's
    # steps into S equal stretches and gives each token its metrics' S means, so the system branch sees how a
    # metric moves over the run (issue 13's per-metric temporal patches, within one token per metric patch).
    system_segments: int = Field(default=1, ge=1, le=16)
    metric_identity: bool = True
    head_width: int = 64
    head_dropout: float = 0.4
    # The run's probe inputs (``include_probes``: the target's measured sensitivities, its neighbours'
    # summed pressures, constants of the run) also go straight into the head beside the branches' encoding:
    # as tokens alone they are 16 of ~450 inputs, patched with others, and the network did not read them
    # (validation 5.02 pp against 5.00 without them; with them in the head 4.89: reports/evaluation/
    # probe-inputs).
    probe_head: bool = False
    # The target's rates over its solo profile (``vs_solo__``, the inputs boosting reads best) as their means
    # over the run, straight into the head too, beside the probes' columns (with or without ``probe_head``):
    # in the branches they are patched with the neighbours' levels and read only through attention.
    ratio_head: bool = False
    # Regularisers of what the two branches read while training (never at answering; the prior and the head's
    # columns read the inputs as measured): Gaussian noise of this standard deviation on every normalised
    # input, and the share of input columns hidden from each run (set to 0, the training mean, as a metric
    # the run lacks reads). With ~1000 runs of ~30 programs the network can learn each training program's
    # own levels; both make it read many metrics a little rather than a few that name a program. Neither
    # helped on validation programs (reports/evaluation/regularisers: 4.71-4.97 pp against 4.73 without).
    input_noise: float = Field(default=0.0, ge=0.0)
    metric_dropout: float = Field(default=0.0, ge=0.0, lt=1.0)
    # Copies trained side by side with their own initial weights, answering their mean (models/ensemble.py):
    # a candidate for issue-13 validation, each member costing one more model's training and inference time.
    members: int = Field(default=1, ge=1, le=16)
    # Each member never trains on one share of the training programs (the shares dealt out by GroupKFold),
    # so that it answers that share's runs as it would a new program's: their conformity scores calibrate
    # the interval beside the validation programs' (the tabular models' out-of-fold rule, at no extra
    # training). A few validation programs alone give a noisy quantile: 0.70-0.77 coverage for an 80% one.
    members_hold_out_programs: bool = False
    # Each member trained alone, one after another, with its own seed (data order, dropout; its initial
    # weights are its own draw when the ensemble is built) and its own early stopping, then answering with
    # the others: a deep ensemble of independent trainings.
    # Side by side (False) the members share batches and one stopping epoch: three of them scored 4.97 pp on
    # validation programs against 4.89 for one; apart, five score 4.83 against 4.85 for one of the same
    # variant, whose seeds alone span 4.85-5.11 (reports/evaluation/head-inputs).
    members_apart: bool = False
    # Self-supervised pretraining before the supervised epochs (masked reconstruction over time steps and
    # metrics of the training runs' telemetry, labels unused; CloudFormer.reconstruction_loss): epochs of it
    # (0: none) and the share of steps and of metrics hidden.
    pretrain_epochs: int = Field(default=0, ge=0)
    pretrain_mask: float = Field(default=0.25, gt=0.0, lt=1.0)
    # Start every quantile from the solo-relative CPU heuristic (the target's CPU use in the co-run over its
    # solo profile's, ``collectors.ratios``): the head's output is added to that prior's logit instead of
    # standing alone, so the network learns where a program departs from "slowed as much as its CPU time"
    # rather than each unseen program's solo level. No effect where the input lacks the column.
    solo_prior: bool = False
    # With ``solo_prior``: the head's last layer starts at zero, so that every quantile starts at the prior
    # and the network departs from it only as far as training moves it (boosting's start: its first tree
    # fits the departures from the prior). Drawn as any linear layer's, the start departs by a logit of ~0.6
    # at random, some 10 pp at P = 0.5, and what training leaves of that is noise on every unseen program.
    # Measured: no better alone (validation 4.76 and 4.95 pp over two seeds against 4.73); five members apart
    # with it 4.65 against 4.68 without (reports/evaluation/regularisers).
    start_at_prior: bool = False
    # With ``solo_prior``: while training, the loss adds this weight times the mean squared logit the head
    # adds to the prior's (over the batch's runs and the quantiles), so that the network departs from the
    # prior only as far as the training runs pay for it: boosting's shrinkage (each tree's step scaled
    # down, its trees stopped on validation) for a network. On 36 programs the CloudFormer's worst fold held
    # out four programs bound by CPU time at once (gcc_build, ffmpeg_x264, sysbench_cpu, stressng_matrix),
    # on which the CPU prior scores 2.1-4.2 pp: trained on the others, the network missed them by 7.2-10.0
    # pp where boosting missed them by 1.7-3.5. Measured: it mends that fold on test (6.62 to 3.05 pp at
    # 1.0) and the test MAE (5.30 to 5.21 at 0.1, 5.14 at 1.0), but not validation (5.05 and 5.13 against
    # 5.04: it gains on compute programs and loses as much on storage ones): not chosen
    # (reports/evaluation/bundled-v11).
    departure_penalty: float = Field(default=0.0, ge=0.0)
    # With ``solo_prior``: when answering (not while training), the head's departure from the prior's logit
    # at the median is scaled by this, the whole answer moving with it so that its quantiles keep their
    # spread: boosting's shrinkage, after training rather than during it. On 40 programs one network's
    # departures move a program by 1-2 pp between two trainings, and started at boosting's own answer the
    # network made it worse (validation 4.98 against 4.81 pp, reports/evaluation/bundled-v13): on programs
    # it has not read, part of what it departs is noise, and half the departure is half the noise.
    # 1: the answer as trained.
    departure_scale: float = Field(default=1.0, gt=0.0, le=1.0)
    # With ``solo_prior``: which rates the prior reads. "switches": the CPU ratio and the context-switch ratio
    # mixed by a gate on the solo profile's switches per CPU-second (``models/solo_prior.py``
    # ``switch_mixture``; the gate's two numbers fitted on the training runs before the network, then fixed),
    # the same prior as the tabular models' ``prior="switches"``.
    prior: PriorRate = "cpu"
    # With ``prior="switches"``: how its gate is chosen (``models/base.py`` ``SwitchGateChoice``).
    switch_gate_choice: SwitchGateChoice = "runs"
    # With ``solo_prior``: start instead from a mixture of the target's work rates over its solo profile
    # (each ``collectors.ratios.SOLO_RELATIVE`` rate the inputs carry, its mean over the run), weighed by a
    # gate read from the run's encoding: which rate is this program's progress (its blocking calls for a
    # storage program, its messages for a server, its CPU time for a compute kernel: per program, the rate
    # closest to P is in every report's work-rate reference). The gate starts on the CPU rate, so an
    # untrained gate is close to the CPU prior.
    rate_prior: bool = False
    # What the rate gate reads. "encoding": the fused encoding of the whole run (64+ numbers, free to fit
    # each training program's own rate). "solo_profile": only the program's solo profile, the log of its
    # solo mean of each rate (how much CPU it used alone, how often it blocked, how many bytes it moved): a
    # linear gate on those says "a program that used a third of a core alone and blocked 40k times a second
    # makes progress as its blocking calls do", a rule that can carry to an unseen program of the same kind,
    # where the encoding's gate can learn each training program's name. The profile gate is fitted first,
    # alone, and frozen (``CloudFormer.fit_rate_gate``).
    rate_gate: Literal["encoding", "solo_profile"] = "encoding"
    # The profile gate is fitted alone, before the network, on the training runs (``fit_rate_gate``); the
    # penalty on its squared weights keeps it from telling training programs apart by their profiles. None:
    # chosen over folds of the training programs, the CPU rate alone among the candidates.
    rate_gate_l2: float | None = Field(default=None, ge=0.0)

    @model_validator(mode="after")
    def _departure_penalty_scores_one_network(self) -> CloudFormerConfig:
        # The loop adds the penalty of the network it trains; members side by side would need theirs summed.
        if self.departure_penalty and not self.solo_prior:
            raise ValueError("departure_penalty weighs the departure from the prior: it needs solo_prior")
        if self.departure_scale != 1.0 and not self.solo_prior:
            raise ValueError("departure_scale scales the departure from the prior: it needs solo_prior")
        if self.departure_penalty and self.members > 1 and not self.members_apart:
            raise ValueError("departure_penalty trains one network at a time: members need members_apart")
        return self

    @model_validator(mode="after")
    def _members_apart_train_on_every_program(self) -> CloudFormerConfig:
        if self.members_apart and self.members_hold_out_programs:
            raise ValueError(
                "members_apart trains every member on every training program: "
                "not with members_hold_out_programs"
            )
        return self
