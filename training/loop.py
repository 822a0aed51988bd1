"""The one Lightning training loop and DataModule for every neural model, whatever its task.

A batch is a dict (layouts in docs/architecture.md section 3); the module receives the inputs its ``forward``
names (``x, mask`` or ``newcomer, neighbours, neighbour_mask``) and returns quantiles ``[B, Q]``. The loss is
log-cosh on the median plus pinball on every quantile (``cotenant.models.base.quantile_loss``).
"""

from __future__ import annotations

import copy
import inspect
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import lightning as L
import torch
from cotenant.datasets.torch_data import HELD_OUT_BY
from cotenant.models.base import MEDIAN, quantile_loss
from cotenant.training.config import OptimConfig
from torch import nn
from torch.utils.data import DataLoader, Dataset

Batch = dict[str, torch.Tensor]


def warmup_cosine(total_steps: int, cfg: OptimConfig) -> Callable[[int], float]:
    """Learning-rate multiplier per optimiser step: linear warm-up, then cosine to ``min_lr_fraction``."""
    warmup = max(1, int(total_steps * cfg.warmup_fraction))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        return cfg.min_lr_fraction + (1 - cfg.min_lr_fraction) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


class _Optimised(L.LightningModule):
    """Adam with the warm-up + cosine schedule over ``total_steps``, on a wrapped model."""

    def __init__(self, model: nn.Module, optim: OptimConfig, total_steps: int) -> None:
        super().__init__()
        self.model = model
        self.optim = optim
        self.total_steps = max(1, total_steps)
        # An ensemble names its members' inputs (its own forward takes them all).
        self.inputs = getattr(model, "input_names", None) or [
            name for name in inspect.signature(model.forward).parameters if name != "self"
        ]

    def _inputs(self, batch: Batch) -> Batch:
        return {name: batch[name] for name in self.inputs}

    def configure_optimizers(self) -> Any:
        optimiser = torch.optim.Adam(
            self.parameters(), lr=self.optim.lr, weight_decay=self.optim.weight_decay
        )
        schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, warmup_cosine(self.total_steps, self.optim))
        return {"optimizer": optimiser, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}


class PretrainModule(_Optimised):
    """Self-supervised: the model's own ``reconstruction_loss`` on a batch's inputs, labels unused."""

    def training_step(self, batch: Batch, batch_index: int) -> torch.Tensor:
        loss: torch.Tensor = cast(Any, self.model).reconstruction_loss(**self._inputs(batch))
        self.log("pretrain_loss", loss, prog_bar=True, batch_size=len(batch["y"]), sync_dist=True)
        return loss


class RegressionModule(_Optimised):
    def forward(self, batch: Batch) -> torch.Tensor:
        return self.model(**self._inputs(batch))

    def training_step(self, batch: Batch, batch_index: int) -> torch.Tensor:
        # An ensemble's members are each scored on their own answer (models/ensemble.py says why), each on
        # the runs it may train on: not those of the programs held out from it (``HELD_OUT_BY``).
        members = getattr(self.model, "member_outputs", None)
        outputs = members(**self._inputs(batch)) if members is not None else [self(batch)]
        held_out_by = batch.get(HELD_OUT_BY) if members is not None else None
        losses = []
        for member, output in enumerate(outputs):
            keep = None if held_out_by is None else held_out_by != member
            if keep is None or bool(keep.all()):
                losses.append(quantile_loss(output, batch["y"]))
            elif bool(keep.any()):
                losses.append(quantile_loss(output[keep], batch["y"][keep]))
            else:  # nothing for this member in the batch: a zero that keeps its parameters in the graph
                losses.append(output.sum() * 0.0)
        loss = torch.stack(losses).mean()
        # A model's own term on its last forward (CloudFormer's ``departure_penalty``), where it has one.
        penalty = getattr(self.model, "training_penalty", None)
        extra = penalty() if penalty is not None else None
        if extra is not None:
            loss = loss + extra
        self.log("train_loss", loss, prog_bar=True, batch_size=len(batch["y"]), sync_dist=True)
        return loss

    def validation_step(self, batch: Batch, batch_index: int, dataloader_idx: int = 0) -> None:
        quantiles = self(batch)
        mae = (quantiles[:, MEDIAN] - batch["y"]).abs().mean() * 100
        self.log(
            validation_metric(dataloader_idx),
            mae,
            prog_bar=True,
            batch_size=len(batch["y"]),
            sync_dist=True,
            add_dataloader_idx=False,
        )


def validation_metric(index: int) -> str:
    """The logged validation MAE (pp) of the ``index``-th validation set."""
    return "val_mae_pp" if index == 0 else f"val_mae_pp_{index}"


class RunsDataModule(L.LightningDataModule):
    """Wraps already-built datasets (cotenant.datasets.torch_data); every process builds the same ones. The
    validation runs may come as several sets, each with its own MAE (``validation_metric``)."""

    def __init__(
        self,
        train: Dataset[Batch],
        validation: Sequence[Dataset[Batch]],
        collate: Callable[[list[Batch]], Batch],
        batch_size: int,
        seed: int,
    ) -> None:
        super().__init__()
        self.train_set = train
        self.validation_sets = [s for s in validation if len(s)]  # type: ignore[arg-type]
        self.collate, self.batch_size, self.seed = collate, batch_size, seed

    def train_dataloader(self) -> DataLoader[Batch]:
        generator = torch.Generator().manual_seed(self.seed)
        return DataLoader(
            self.train_set, self.batch_size, shuffle=True, collate_fn=self.collate, generator=generator
        )

    def val_dataloader(self) -> list[DataLoader[Batch]]:
        # drop_last stays False: every evaluation run counts (a classic bug in copied loops). Each loader has
        # a generator of its own: a loader without one draws its workers' seed from the global generator, so
        # validating would change the dropout draws of training after it, and so the weights it leads to.
        return [
            DataLoader(
                validation,
                self.batch_size,
                shuffle=False,
                collate_fn=self.collate,
                generator=torch.Generator().manual_seed(self.seed),
            )
            for validation in self.validation_sets
        ]


@dataclass(frozen=True)
class Devices:
    """Where and how the loop runs (Lightning's devices, strategy, accelerator, nodes) and whether it draws
    a progress bar."""

    devices: int = 1
    strategy: str = "auto"
    accelerator: str = "auto"
    num_nodes: int = 1
    progress: bool = True


def fit_neural(
    model: nn.Module,
    data: RunsDataModule,
    epochs: int,
    optim: OptimConfig,
    where: Devices = Devices(),
    early_stopping_patience: int | None = None,
) -> list[nn.Module]:
    """Train in place and return the model in eval mode (weights identical on every DDP process), as a list
    of one. With ``early_stopping_patience`` and validation data: one model per validation set, each with
    the weights of the epoch best on that set until it went that many epochs without improving (the first
    is ``model`` itself); training stops once every set has. Training never reads the validation sets, so
    each model is the one a training stopped on its set alone would give (the same seed, the same steps),
    all from one training."""
    module = RegressionModule(model, optim, _steps_per_epoch(data, where) * epochs)
    callbacks: list[Any] = []
    keepers = [
        BestWeights(validation_metric(i), early_stopping_patience) for i in range(len(data.validation_sets))
    ]
    stopping = early_stopping_patience is not None and bool(keepers)
    if stopping:
        callbacks += [*keepers, StopWhenAllDone(keepers)]
    check_every = 1 if stopping else max(1, epochs // 5)
    trainer = _trainer(epochs, where, callbacks, check_val_every_n_epoch=check_every)
    trainer.fit(module, datamodule=data)
    if not stopping:
        return [model.eval()]
    models = [model] + [copy.deepcopy(model) for _ in keepers[1:]]
    for keeper, kept in zip(keepers, models, strict=True):
        keeper.restore(kept)
    return [kept.eval() for kept in models]


def pretrain_neural(
    model: nn.Module, data: RunsDataModule, epochs: int, optim: OptimConfig, where: Devices = Devices()
) -> nn.Module:
    """Self-supervised epochs on the training runs' inputs (``model.reconstruction_loss``), before
    ``fit_neural``: the same loop, trainer and optimiser, with no labels and no validation."""
    module = PretrainModule(model, optim, _steps_per_epoch(data, where) * epochs)
    trainer = _trainer(epochs, where, [], limit_val_batches=0)
    trainer.fit(module, train_dataloaders=data.train_dataloader())
    return model


def _steps_per_epoch(data: RunsDataModule, where: Devices) -> int:
    n_train = len(data.train_set)  # type: ignore[arg-type]
    return math.ceil(n_train / (data.batch_size * max(1, where.devices) * where.num_nodes))


def _trainer(epochs: int, where: Devices, callbacks: list[Any], **options: Any) -> L.Trainer:
    if where.progress:
        from lightning.pytorch.callbacks import RichProgressBar

        callbacks = [RichProgressBar(leave=False), *callbacks]
    # Lightning's start-up notices (devices found, a tip to install its cloud logger, "max_epochs reached")
    # are information about Lightning, not about this training: our progress and metrics are reported here.
    logging.getLogger("lightning.pytorch.utilities.rank_zero").setLevel(logging.WARNING)
    return L.Trainer(
        max_epochs=epochs,
        devices=where.devices,
        num_nodes=where.num_nodes,
        strategy=where.strategy,
        accelerator=where.accelerator,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=where.progress,
        enable_model_summary=False,
        callbacks=callbacks,
        deterministic=True,
        num_sanity_val_steps=0,
        **options,
    )


class BestWeights(L.Callback):
    """Keeps a copy of the weights at the best validation MAE seen on one validation set (``metric``),
    restored after training. With ``patience``: early stopping on that set, so that once it has not improved
    for that many validations the keeper is done and later epochs change nothing (training may go on for
    another set's keeper)."""

    def __init__(self, metric: str = validation_metric(0), patience: int | None = None) -> None:
        self.metric, self.patience = metric, patience
        self.best = math.inf
        self.state: dict[str, torch.Tensor] | None = None
        self.epoch: int | None = None
        self.since_best = 0

    @property
    def done(self) -> bool:
        return self.patience is not None and self.since_best >= self.patience

    def on_validation_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        value = trainer.callback_metrics.get(self.metric)
        if value is None or self.done:
            return
        if math.isfinite(float(value)) and float(value) < self.best:
            self.best, self.epoch, self.since_best = float(value), trainer.current_epoch, 0
            inner = module.model if isinstance(module, RegressionModule) else module
            self.state = {key: tensor.detach().clone() for key, tensor in inner.state_dict().items()}
        else:
            self.since_best += 1

    def restore(self, model: nn.Module) -> None:
        if self.state is not None:
            model.load_state_dict(self.state)


class StopWhenAllDone(L.Callback):
    """Stops training once every keeper's early stopping is done (with one, Lightning's ``EarlyStopping``).
    Listed after the keepers, so that it reads this epoch's counts."""

    def __init__(self, keepers: list[BestWeights]) -> None:
        self.keepers = keepers

    def on_validation_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if all(keeper.done for keeper in self.keepers):
            trainer.should_stop = True
