"""Tests for toy_gan.widgets: lesson 01's widget callback, its UI and the small experiments."""

from __future__ import annotations

import matplotlib.figure
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from toy_gan import widgets
from toy_gan.gan import Generator, train_gan
from toy_gan.plots import training_figure

pytestmark = pytest.mark.usefixtures("one_thread", "close_figures")


def test_explore_training_returns_the_four_panel_figure_for_the_requested_run():
    fig = widgets.explore_training(steps=30, lr_g=1e-3, lr_d=3e-3, seed=3)
    assert isinstance(fig, matplotlib.figure.Figure)
    assert len(fig.axes) == 4
    # The first panel's title names the last step: the steps argument was used.
    assert "step 30" in fig.axes[0].get_title()
    assert plt.get_fignums() == [fig.number]  # exactly one figure, left open for the caller


def test_explore_training_passes_every_argument_to_train_gan(monkeypatch):
    seen = {}
    real_train = widgets.train_gan

    def spy(config):
        seen.update(vars(config))
        return real_train(config, steps=5)

    monkeypatch.setattr(widgets, "train_gan", spy)
    widgets.explore_training(
        lr_g=0.01, lr_d=0.02, steps=123, loss="saturating", d_steps=3, ema=0.0, seed=7
    )
    assert {k: seen[k] for k in ("lr_g", "lr_d", "steps", "loss", "d_steps", "ema", "seed")} == {
        "lr_g": 0.01,
        "lr_d": 0.02,
        "steps": 123,
        "loss": "saturating",
        "d_steps": 3,
        "ema": 0.0,
        "seed": 7,
    }


def test_explore_training_rejects_an_unknown_loss():
    with pytest.raises(ValueError, match="loss must be one of"):
        widgets.explore_training(steps=5, loss="hinge")


def test_training_figure_survives_a_generator_collapsed_to_one_value():
    result = train_gan(steps=2)
    with torch.no_grad():
        result.generator.net[-1].weight.zero_()  # G(u) = bias for every u: an exact point mass
    assert np.ptp(result.sample(100, seed=0)) == 0
    fig = training_figure(result)
    assert len(fig.axes) == 4
    assert plt.get_fignums() == [fig.number]  # no half-drawn figure left behind


def test_training_widget_builds_with_all_knobs_and_a_train_button():
    ipywidgets = pytest.importorskip("ipywidgets")
    w = widgets.training_widget(steps=200, lr_g=0.05)
    assert isinstance(w, ipywidgets.interactive)
    values = {c._kwarg: c.value for c in w.kwargs_widgets}
    assert set(values) == {"lr_g", "lr_d", "steps", "loss", "d_steps", "ema", "seed"}
    assert values["steps"] == 200
    assert values["lr_g"] == pytest.approx(0.05, rel=0.02)
    assert any(isinstance(c, ipywidgets.Button) for c in w.children)  # manual: trains on click


def test_compare_recipes_gives_one_ks_value_per_seed_and_is_reproducible():
    recipes = {"plain": {"ema": 0.0}, "default": {}}
    ks = widgets.compare_recipes(recipes, seeds=[0, 1], steps=20, n_samples=200)
    assert list(ks) == ["plain", "default"]
    for values in ks.values():
        assert values.shape == (2,)
        assert np.all((values > 0) & (values <= 1))
    again = widgets.compare_recipes({"plain": {"ema": 0.0}}, seeds=[0, 1], steps=20, n_samples=200)
    np.testing.assert_array_equal(again["plain"], ks["plain"])
    fig = widgets.plot_recipe_comparison(ks, noise_floor=0.03)
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["plain", "default"]


def test_dead_units_counts_relu_units_that_are_off_for_all_noise():
    g = Generator(hidden=4)
    with torch.no_grad():
        first = g.net[0]
        first.weight.copy_(torch.tensor([[1.0], [1.0], [-1.0], [0.0]]))
        # inputs are 2u - 1 in [-1, 1]; unit 0 is on for x > 0.5, unit 1 never (bias -2),
        # unit 2 on for x < 0, unit 3 is a constant 0 (dead)
        first.bias.copy_(torch.tensor([-0.5, -2.0, 0.0, 0.0]))
    assert widgets.dead_units(g) == 2


def test_saturating_loss_gradient_vanishes_when_d_wins():
    kw = dict(shift=8.0, warmup=60, steps=20, seed=0)
    sat = widgets.saturation_experiment("saturating", "sgd", **kw)
    ns = widgets.saturation_experiment("nonsaturating", "sgd", **kw)
    assert sat.d_fake == pytest.approx(ns.d_fake)  # same D, same G: only the loss differs
    assert sat.d_fake < 0.05  # D rejects G's samples
    assert sat.grad_norm < 0.05 * ns.grad_norm
    # With SGD the saturated generator hardly moves; the non-saturating one heads for the data.
    assert abs(sat.mean[-1] - sat.mean[0]) < 0.5
    assert ns.mean[-1] < sat.mean[-1] - 2.0
    assert sat.steps[0] == 0 and sat.steps[-1] == 20


def test_saturation_experiment_checks_its_arguments():
    with pytest.raises(ValueError, match="loss"):
        widgets.saturation_experiment("minimax")
    with pytest.raises(ValueError, match="optimizer"):
        widgets.saturation_experiment(optimizer="rmsprop")
