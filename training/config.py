"""Typed training configuration, composed once at the entry point (CLI or Python) and passed down."""

from __future__ import annotations

import re
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field


class OptimConfig(BaseModel):
    """Adam with linear warm-up then cosine decay, as in the paper (whose lr 1e-5 suits far more epochs)."""

    model_config = ConfigDict(extra="forbid")
    lr: float = 1e-3
    weight_decay: float = 0.0
    warmup_fraction: float = Field(default=0.1, ge=0.0, lt=1.0)
    min_lr_fraction: float = 0.05


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())
    model: str = "cloudformer"
    source: str = "bundled"
    source_path: str | None = None
    source_options: dict[str, Any] = Field(default_factory=dict)
    model_options: dict[str, Any] = Field(default_factory=dict)  # overrides of the model's typed config
    # Sized for the bundled data (~400 runs x ~10 s x ~400 features) to train in minutes on 2 CPU cores.
    epochs: int = 40
    # Stop after this many epochs without a better MAE on the split's validation programs and keep the best
    # epoch's weights (None: train every epoch; needs validation programs, else ignored).
    early_stopping_patience: int | None = Field(default=None, ge=1)
    batch_size: int = 32
    max_steps: int = 128  # seconds per run kept (the first ones); positional table size
    include_host: bool = True
    # The target's own rates as measured (self__): they say which program it is as much as how it fares, so
    # a network may learn each training program's departures by name; without them (False) a monitoring
    # model reads the target only relative to its solo profile (vs_solo__), beside its neighbours and host.
    include_own_levels: bool = True
    # The target's measured probe sensitivities and its neighbours' summed probe pressures as constants of
    # the run (``datasets.probe_inputs``): what a memory-bound program's telemetry cannot say without a PMU.
    # The service reads them from the registered profiles' probes (``/register_profile``).
    include_probes: bool = False
    # Monitoring inputs kept: the features whose per-run mean ranks best with P over the training runs
    # (cotenant.datasets.torch_data.ranked_features); None keeps them all.
    max_features: int | None = Field(default=None, ge=1)
    # Standardised inputs clipped to +-input_clip (cotenant.datasets FeatureStats); None keeps them as is.
    input_clip: float | None = 3.0
    # What calibrates the 80% interval (split conformal, training/fit.py): "validation", the split's
    # validation programs only (for a model that stopped early, each half answered by the model stopped on
    # the other: training/fit.py StoppingHalves); "programs",
    # every validation program plus, where the model has them, the training programs' out-of-fold answers
    # (tabular models' grouped refits; the probes model refit per group of training programs, answered as
    # the service answers). Four or five validation programs estimate a new program's error too noisily:
    # on bundled v2 the validation-only interval covered 0.51-0.96 of a fold's held-out runs.
    calibration: Literal["validation", "programs"] = "programs"
    optim: OptimConfig = Field(default_factory=lambda: OptimConfig())
    seed: int = 0  # weights and data order (and the held-out applications of split="apps")
    # "programs": fold ``fold`` of leave-programs-out over ``folds`` (cotenant.datasets.splits), the protocol
    # every accuracy figure follows; "apps" is CloudFormer's random leave-applications-out, for comparison.
    split: Literal["programs", "apps", "time", "none"] = "programs"
    folds: int = Field(default=5, ge=2)
    fold: int = Field(default=0, ge=0)
    devices: int = 1  # per node
    num_nodes: int = Field(default=1, ge=1)  # DDP across machines (Lightning's MASTER_ADDR/NODE_RANK env)
    strategy: str = "auto"
    accelerator: str = "auto"
    threads: int | None = None
    tracking_uri: str | None = None  # default: cotenant.paths.default_tracking_uri()
    experiment: str = "cotenant"
    register_model: bool = True
    # The promotion gate (training/gate.py): a champion's held-out MAE must be at most (1 - margin) x the
    # constant's and the utilisation heuristic's on the same runs.
    gate_margin: float = Field(default=0.10, ge=0.0, lt=1.0)
    # Whether a version that fails the gate is refused as champion (the verdict is computed and tagged
    # either way). The main job's first champions are trained with it on (cotenant.up): on bundled v2 they
    # pass on fold 0's validation programs (placement-probes 8.71 pp vs the heuristic's 11.55 pp and the
    # constant's 19.42 pp; hist-gradient-boosting 5.48 pp vs the constant's). Off by default elsewhere, for
    # now: the notebooks' quick models (a few epochs) and small retrains on one's own telemetry would be
    # refused outright; `cotenant train --enforce-gate` turns it on.
    enforce_gate: bool = False
    progress: bool = True


# Training options a model choice may set beside its model's own (how the model reads its data).
TRAINING_OPTIONS = frozenset(
    {
        "max_features",
        "include_host",
        "include_own_levels",
        "include_probes",
        "max_steps",
        "input_clip",
        "epochs",
        "early_stopping_patience",
        "calibration",
        # The weights' and the data order's seed: a model's spread over seeds, measured beside its choices.
        "seed",
    }
)
# ``name`` or ``name[key=value,...]``, entries separated by commas outside the brackets.
_CHOICE = re.compile(r"\s*([\w.-]+)\s*(?:\[([^\]]*)\])?\s*(?:,|$)")


class ModelChoice(BaseModel):
    """One model an evaluation trains: a registered model with overrides of its typed config or of the
    training options in ``TRAINING_OPTIONS``, written ``cloudformer`` or
    ``cloudformer[members=3,max_features=200]`` (values read as YAML scalars). The written form is its label
    in reports, so variants of one model sit side by side."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())
    model: str
    options: dict[str, Any] = Field(default_factory=dict)

    @property
    def label(self) -> str:
        if not self.options:
            return self.model
        return f"{self.model}[{','.join(f'{key}={value}' for key, value in self.options.items())}]"

    @classmethod
    def parse(cls, text: str) -> ModelChoice:
        choices = parse_model_choices(text)
        if len(choices) != 1:
            raise ValueError(f"{text!r}: expected one model, got {len(choices)}")
        return choices[0]

    def config(self, base: TrainConfig) -> TrainConfig:
        """``base`` training this choice (its options over the base's)."""
        training, model = split_options(self.options)
        update = {"model": self.model, "model_options": {**base.model_options, **model}}
        return TrainConfig.model_validate(base.model_dump() | training | update)


def split_options(options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A choice's options as (training options, the model config's)."""
    training = {key: value for key, value in options.items() if key in TRAINING_OPTIONS}
    return training, {key: value for key, value in options.items() if key not in TRAINING_OPTIONS}


def parse_model_choices(text: str) -> list[ModelChoice]:
    """``"linear,cloudformer[members=3,blocks=2]"`` -> the choices, checked against the model registry and
    each model's typed config (a ValueError names the entry and what is wrong)."""
    from cotenant.models import MODELS

    choices, position = [], 0
    text = text.strip()
    while position < len(text):
        found = _CHOICE.match(text, position)
        if found is None or found.end() == position:
            raise ValueError(
                f"cannot read a model at {text[position:]!r} (expected name or name[key=value,...])"
            )
        position = found.end()
        name, written = found.group(1), found.group(2)
        if name not in MODELS:
            raise ValueError(f"{name!r} is not a registered model (known: {', '.join(sorted(MODELS))})")
        options: dict[str, Any] = {}
        for item in (written or "").split(","):
            if not item.strip():
                continue
            key, equals, value = item.partition("=")
            if not equals:
                raise ValueError(f"{name}[{written}]: {item.strip()!r} is not key=value")
            options[key.strip()] = yaml.safe_load(value.strip())
        training, model = split_options(options)
        try:
            MODELS[name].config_type.model_validate(model)
            TrainConfig.model_validate(training)
        except ValueError as error:
            raise ValueError(f"{name}[{written}]: {error}") from error
        choices.append(ModelChoice(model=name, options=options))
    return choices
