"""Training steps of a small CNN with PyTorch on the CPU; samples per second.

A CIFAR-style CNN (three conv-BN-ReLU-pool blocks and a linear head) trains on one fixed batch of 32
synthetic 32x32 images: forward, backward and an Adam update per step, until the phase's deadline
(``pyprograms.py torch_training``). Level = torch intra-op threads.
"""

from __future__ import annotations

from cotenant.datasets.lab.workloads.base import WORKLOADS, PyProgramWorkload


@WORKLOADS.register("torch_training")
class TorchTraining(PyProgramWorkload):
    name = "torch_training"
    unit = "samples_per_second"
    description = "PyTorch CNN training steps (Adam) on 32x32 synthetic images, level = torch threads"
    category = "ml"
    program = "torch_training"
