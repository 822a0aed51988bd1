"""Training steps of a small CNN with PyTorch on the CPU; samples per second.

A CIFAR-style CNN (three conv-BN-ReLU-pool blocks and a linear head) trains on one fixed batch of 32
synthetic 32x32 images: forward, backward and an Adam update per step, until the phase's deadline
(``pyprograms.py torch_training``). Level = torch intra-op threads.
"""

from __future__ import annotations

from cotenant.datasets.lab.workloads import pyprograms
from cotenant.datasets.lab.workloads.base import WORKLOADS, WorkContext, Workload, last_number


def parse_torch_training(output: str) -> float:
    return last_number(pyprograms.result_pattern("torch_training"), output, "training samples/s")


@WORKLOADS.register("torch_training")
class TorchTraining(Workload):
    name = "torch_training"
    unit = "samples_per_second"
    description = "PyTorch CNN training steps (Adam) on 32x32 synthetic images, level = torch threads"
    category = "ml"

    def phase_command(self, level: int, seconds: int, ctx: WorkContext) -> list[str]:
        return pyprograms.command("torch_training", level, seconds)

    def parse(self, output: str) -> float:
        return parse_torch_training(output)
