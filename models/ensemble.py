"""A deep ensemble of one network (Lakshminarayanan et al., 2017): ``members`` independently initialised
copies trained side by side on the same batches, each on its own loss, answering the mean of their quantiles.

Side by side, not one after another, so that the one training loop (``cotenant.training.loop``) trains an
ensemble like any other module and the predictor artifact stores one state dict: with a loss that is the mean
of the members' own losses, each member's gradient is its own loss's (scaled by 1/M, which Adam cancels), so
the members do not co-adapt as they would if the loss were taken on their averaged answer. Their diversity
comes from their initial weights and their dropout masks.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, cast

import torch
from torch import nn


class MemberEnsemble(nn.Module):
    def __init__(self, build_member: Callable[[], nn.Module], members: int) -> None:
        super().__init__()
        if members < 2:
            raise ValueError(f"an ensemble needs at least 2 members, got {members}")
        self.members = nn.ModuleList(build_member() for _ in range(members))
        # The batch inputs the loop hands over: the members' forward arguments (x, mask, or the placement's).
        self.input_names = [
            name for name in inspect.signature(self.members[0].forward).parameters if name != "self"
        ]

    def member_outputs(self, **inputs: torch.Tensor) -> list[torch.Tensor]:
        """Each member's quantiles ``[B, Q]``: what training scores, one loss per member."""
        return [member(**inputs) for member in self.members]

    def reconstruction_loss(self, **inputs: torch.Tensor) -> torch.Tensor:
        """The members' self-supervised pretraining losses (each its own), averaged."""
        losses = [cast(Any, member).reconstruction_loss(**inputs) for member in self.members]
        return torch.stack(losses).mean()

    def forward(self, *args: torch.Tensor, **inputs: torch.Tensor) -> torch.Tensor:
        inputs.update(zip(self.input_names, args, strict=False))
        return torch.stack(self.member_outputs(**inputs)).mean(0)


def maybe_ensemble(build_member: Callable[[], nn.Module], members: int) -> nn.Module:
    """One member as itself (its state dict unchanged), more as a ``MemberEnsemble``."""
    return build_member() if members == 1 else MemberEnsemble(build_member, members)
