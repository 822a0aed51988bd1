"""CloudFormer's regularisers: noise and hidden metrics while training, the inputs as measured when answering,
the prior reading the measured inputs either way, and the penalty on the head's departure from the prior."""

from __future__ import annotations

import functools

import pytest
import torch
from cotenant.models import MODELS
from cotenant.models.base import MEDIAN, DataShape
from cotenant.models.cloudformer.module import CloudFormer
from pydantic import ValidationError


def _cloudformer(**options: float) -> CloudFormer:
    spec = MODELS["cloudformer"]
    cfg = spec.config_type.model_validate({"dropout": 0.0, "head_dropout": 0.0, **options})
    torch.manual_seed(0)
    model = spec.build(cfg, DataShape(n_features=6, n_profile_features=0, max_steps=8))
    assert isinstance(model, CloudFormer)
    return model


def _run() -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.randn(5, 8, 6, generator=torch.Generator().manual_seed(1)) + 2.0  # no column is 0 by chance
    mask = torch.ones(5, 8, dtype=torch.bool)
    mask[1, 5:] = False
    return x, mask


def test_metric_dropout_hides_whole_columns_of_a_run_while_training_only() -> None:
    model = _cloudformer(metric_dropout=0.5)
    x, mask = _run()
    torch.manual_seed(2)
    seen = model.train().regularised(x, mask)
    hidden = seen == 0
    # a hidden metric is hidden at every step of its run (its column reads the training mean, 0) ...
    assert bool((hidden.all(dim=1) == hidden.any(dim=1)).all())
    share = hidden.all(dim=1).float().mean().item()
    assert 0.2 < share < 0.8
    # ... and the others are read as measured
    torch.testing.assert_close(seen[~hidden], x[~hidden])
    torch.testing.assert_close(model.eval().regularised(x, mask), x)


def test_input_noise_perturbs_real_steps_only_and_changes_what_training_sees() -> None:
    model = _cloudformer(input_noise=0.3)
    x, mask = _run()
    torch.manual_seed(3)
    seen = model.train().regularised(x, mask)
    noise = seen - x
    assert float(noise[~mask].abs().max()) == 0.0  # padding stays padding
    assert 0.2 < float(noise[mask].std()) < 0.4
    with torch.no_grad():
        trained_view = model(x, mask)
        answered = model.eval()(x, mask)
    assert not torch.allclose(trained_view, answered)
    torch.testing.assert_close(model.eval()(x, mask), answered)  # answering is deterministic


def test_the_prior_reads_the_measured_cpu_ratio_whatever_the_branches_see() -> None:
    model = _cloudformer(input_noise=5.0, metric_dropout=0.9, solo_prior=True)
    model.set_prior(column=2, mean=0.6, std=0.1)
    head = model.head[-1].out
    torch.nn.init.zeros_(head.weight)  # the head adds nothing: every quantile is the prior
    torch.nn.init.zeros_(head.bias)
    x, mask = _run()
    with torch.no_grad():
        measured = model.eval().prior(x, mask)
        torch.manual_seed(4)
        trained_view = model.train()(x, mask)
    torch.testing.assert_close(trained_view, measured[:, None].expand(-1, 3))


@pytest.mark.parametrize("options", [{"metric_dropout": 1.0}, {"input_noise": -0.1}])
def test_out_of_range_regularisers_are_refused(options: dict[str, float]) -> None:
    with pytest.raises(ValidationError):
        MODELS["cloudformer"].config_type.model_validate(options)


def test_a_head_started_at_the_prior_answers_the_prior_until_trained() -> None:
    model = _cloudformer(solo_prior=True, start_at_prior=True)
    model.set_prior(column=2, mean=0.6, std=0.1)
    x, mask = _run()
    with torch.no_grad():
        answered = model.eval()(x, mask)
        prior = model.prior(x, mask)
    torch.testing.assert_close(answered, prior[:, None].expand(-1, 3))
    drawn = _cloudformer(solo_prior=True)
    drawn.set_prior(column=2, mean=0.6, std=0.1)
    with torch.no_grad():
        assert float((drawn.eval()(x, mask) - prior[:, None]).abs().max()) > 0.01


def _departing_model(penalty: float) -> CloudFormer:
    model = _cloudformer(solo_prior=True, departure_penalty=penalty)
    model.set_prior(column=2, mean=0.6, std=0.1)
    return model


def test_departure_penalty_weighs_the_squared_logits_added_to_the_prior_while_training_only() -> None:
    model = _departing_model(0.5)
    x, mask = _run()
    with torch.no_grad():
        answered = model.train()(x, mask)
        penalty = model.training_penalty()
        departure = torch.logit(answered.double()) - torch.logit(model.prior(x, mask).double())[:, None]
    assert penalty is not None and float(penalty) > 0.0
    torch.testing.assert_close(float(penalty), 0.5 * float(departure.square().mean()), rtol=1e-3, atol=1e-6)
    assert model.training_penalty() is None  # read once: the next batch's forward sets its own
    with torch.no_grad():
        model.eval()(x, mask)
    assert model.training_penalty() is None  # answering adds nothing
    without = _departing_model(0.0)
    with torch.no_grad():
        without.train()(x, mask)
    assert without.training_penalty() is None


def test_the_training_loop_adds_the_model_s_penalty_to_its_loss() -> None:
    from cotenant.models.base import quantile_loss
    from cotenant.training.config import OptimConfig
    from cotenant.training.loop import RegressionModule

    x, mask = _run()
    batch = {"x": x, "mask": mask, "y": torch.full((5,), 0.5)}
    model = _departing_model(2.0)
    with torch.no_grad():
        answered = model.train()(x, mask)
        expected = quantile_loss(answered, batch["y"]) + model.training_penalty()
        loss = RegressionModule(model, OptimConfig(), total_steps=1).training_step(batch, 0)
        plain = RegressionModule(_departing_model(0.0), OptimConfig(), total_steps=1).training_step(batch, 0)
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(plain, quantile_loss(answered, batch["y"]))  # same weights, no penalty


@pytest.mark.parametrize(
    "options",
    [
        {"departure_penalty": 1.0},  # no prior to depart from
        {"departure_penalty": -1.0, "solo_prior": True},
        {"departure_penalty": 1.0, "solo_prior": True, "members": 3},  # side by side: one loss for three
    ],
)
def test_departure_penalty_is_refused_where_it_cannot_weigh_one_network(options: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        MODELS["cloudformer"].config_type.model_validate(options)


def test_departure_scale_shrinks_the_answer_towards_the_prior_when_answering_and_keeps_its_spread() -> None:
    x, mask = _run()
    as_trained, shrunk = (_cloudformer(solo_prior=True, departure_scale=scale) for scale in (1.0, 0.25))
    for model in (as_trained, shrunk):
        model.set_prior(column=2, mean=0.6, std=0.1)
    with torch.no_grad():
        prior = torch.logit(as_trained.prior(x, mask).double())[:, None]
        full = torch.logit(as_trained.eval()(x, mask).double()) - prior
        scaled = torch.logit(shrunk.eval()(x, mask).double()) - prior
        training_view = torch.logit(shrunk.train()(x, mask).double()) - prior
    assert float(full[:, MEDIAN].abs().min()) > 1e-3  # the drawn head departs, so the test can see a scale
    close = functools.partial(torch.testing.assert_close, rtol=1e-4, atol=1e-5)
    close(scaled[:, MEDIAN], 0.25 * full[:, MEDIAN])  # the median's quarter
    close(scaled - scaled[:, [MEDIAN]], full - full[:, [MEDIAN]])  # spread kept
    close(training_view, full)  # training reads it as trained


@pytest.mark.parametrize("options", [{"departure_scale": 0.5}, {"departure_scale": 0.0, "solo_prior": True}])
def test_departure_scale_needs_a_prior_and_a_positive_scale(options: dict[str, float]) -> None:
    with pytest.raises(ValidationError):
        MODELS["cloudformer"].config_type.model_validate(options)
