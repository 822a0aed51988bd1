"""Batch inference of a small transformer encoder with PyTorch on the CPU; samples per second.

A BERT-mini-sized encoder (4 layers, width 256, sequences of 128) with seeded random weights, built in code
(nothing is downloaded), runs batches of 8 random sequences in ``torch.inference_mode()`` until the phase's
deadline (``pyprograms.py torch_inference``). Level = torch intra-op threads.
"""

from __future__ import annotations

from cotenant.datasets.lab.workloads.base import WORKLOADS, PyProgramWorkload


@WORKLOADS.register("torch_inference")
class TorchInference(PyProgramWorkload):
    name = "torch_inference"
    unit = "samples_per_second"
    description = "PyTorch transformer-encoder inference, batches of 8x128 tokens, level = torch threads"
    category = "ml"
    program = "torch_inference"
