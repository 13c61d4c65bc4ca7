"""Tests for srgan_edu.teach.blocks (lesson 04): hand-written BN and PReLU against PyTorch, the
dead-unit measurement on a network with known dead units, the gradient-flow helpers, the widgets."""

from __future__ import annotations

import matplotlib.figure
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from srgan_edu.models import ResidualBlock
from srgan_edu.teach import blocks

pytestmark = pytest.mark.usefixtures("one_thread", "close_figures")


# ---------------------------------------------------------------------------------- batch norm


def _bn_with_random_affine(c: int, seed: int = 0) -> nn.BatchNorm2d:
    g = torch.Generator().manual_seed(seed)
    bn = nn.BatchNorm2d(c, momentum=0.2)
    with torch.no_grad():
        bn.weight.copy_(torch.rand(c, generator=g) + 0.5)
        bn.bias.copy_(torch.randn(c, generator=g))
        bn.running_mean.copy_(torch.randn(c, generator=g))
        bn.running_var.copy_(torch.rand(c, generator=g) + 0.5)
    return bn


@pytest.mark.parametrize("shape", [(4, 3, 5, 6), (2, 5, 1, 1), (1, 2, 3, 3)])
def test_batch_norm2d_train_mode_equals_torch_values_running_stats_and_gradients(shape):
    c = shape[1]
    bn = _bn_with_random_affine(c)
    weight = bn.weight.detach().clone().requires_grad_(True)
    bias = bn.bias.detach().clone().requires_grad_(True)
    rm, rv = bn.running_mean.clone(), bn.running_var.clone()
    x = torch.randn(shape, generator=torch.Generator().manual_seed(1)) * 3 + 2
    x.requires_grad_(True)
    x2 = x.detach().clone().requires_grad_(True)

    y_torch = bn.train()(x)
    y_hand = blocks.batch_norm2d(x2, weight, bias, rm, rv, training=True, momentum=0.2)
    torch.testing.assert_close(y_hand, y_torch, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(rm, bn.running_mean)  # running statistics updated in place
    torch.testing.assert_close(rv, bn.running_var)  # ... with the unbiased variance

    g_out = torch.randn(shape, generator=torch.Generator().manual_seed(2))
    (y_torch * g_out).sum().backward()
    (y_hand * g_out).sum().backward()
    torch.testing.assert_close(x2.grad, x.grad, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(weight.grad, bn.weight.grad, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(bias.grad, bn.bias.grad, rtol=1e-4, atol=1e-5)


def test_batch_norm2d_normalises_each_channel_over_batch_and_space():
    x = torch.randn(8, 3, 4, 4) * torch.tensor([1.0, 5.0, 0.2]).view(1, 3, 1, 1) + 7
    ones, zeros = torch.ones(3), torch.zeros(3)
    y = blocks.batch_norm2d(x, ones, zeros, zeros.clone(), ones.clone())
    torch.testing.assert_close(y.mean(dim=(0, 2, 3)), zeros, atol=1e-5, rtol=0)
    torch.testing.assert_close(y.var(dim=(0, 2, 3), unbiased=False), ones, atol=1e-3, rtol=0)


def test_batch_norm2d_eval_mode_uses_running_statistics_and_changes_nothing():
    bn = _bn_with_random_affine(4, seed=3)
    rm, rv = bn.running_mean.clone(), bn.running_var.clone()
    x = torch.randn(2, 4, 3, 3)
    y_hand = blocks.batch_norm2d(x, bn.weight, bn.bias, rm, rv, training=False)
    torch.testing.assert_close(y_hand, bn.eval()(x), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(rm, bn.running_mean)
    torch.testing.assert_close(rv, bn.running_var)


def test_batch_norm2d_explains_a_single_value_per_channel():
    one = torch.ones(1)
    with pytest.raises(ValueError, match="more than one value per channel"):
        blocks.batch_norm2d(torch.randn(1, 1, 1, 1), one, one * 0, one * 0, one.clone())
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        blocks.batch_norm2d(torch.randn(4, 1), one, one * 0, one * 0, one.clone())


def test_bn_eval_gap_shrinks_as_the_running_statistics_catch_up():
    gap = blocks.bn_eval_gap([0, 1, 10, 60], channels=4, batch_size=8, size=4)
    assert list(gap) == [0, 1, 10, 60]
    assert gap[0] > gap[1] > gap[10] > gap[60]
    assert gap[60] < 0.05 * gap[0]
    assert blocks.bn_eval_gap([10], channels=4, batch_size=8, size=4)[10] == gap[10]  # seeded


# ------------------------------------------------------------------------------------- PReLU


@pytest.mark.parametrize("shape", [(5, 3), (2, 3, 4, 4), (2, 1, 3, 3)])
def test_prelu_equals_torch_values_and_gradients_for_input_and_slopes(shape):
    c = shape[1]
    torch.manual_seed(0)
    layer = nn.PReLU(c)
    with torch.no_grad():
        layer.weight.copy_(torch.linspace(-0.5, 0.8, c))
    x = torch.randn(shape, requires_grad=True)
    x2 = x.detach().clone().requires_grad_(True)
    a = layer.weight.detach().clone().requires_grad_(True)
    y_torch, y_hand = layer(x), blocks.prelu(x2, a)
    torch.testing.assert_close(y_hand, y_torch)
    g_out = torch.randn(shape)
    (y_torch * g_out).sum().backward()
    (y_hand * g_out).sum().backward()
    torch.testing.assert_close(x2.grad, x.grad)
    torch.testing.assert_close(a.grad, layer.weight.grad)
    # the slope gradient by formula (He et al. 2015, eq. 4)
    torch.testing.assert_close(blocks.prelu_slope_grad(x.detach(), g_out), layer.weight.grad)


def test_prelu_with_one_shared_slope_equals_f_prelu():
    x = torch.randn(2, 3, 4, 4)
    a = torch.tensor([0.1])
    torch.testing.assert_close(blocks.prelu(x, a), F.prelu(x, a))


def test_plot_activations_draws_functions_and_derivatives():
    fig = blocks.plot_activations()
    assert isinstance(fig, matplotlib.figure.Figure)
    assert len(fig.axes) == 2
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels[0] == "ReLU" and any("PReLU" in t for t in labels)


# -------------------------------------------------------------------------------- dead units


def test_make_activation_rejects_unknown_names_and_prelu_is_per_channel():
    assert blocks.make_activation("prelu", 7).weight.shape == (7,)
    assert blocks.make_activation("prelu", 7).weight[0].item() == pytest.approx(0.25)
    with pytest.raises(ValueError, match="activation must be one of"):
        blocks.make_activation("gelu", 3)


def _constructed_mlp(activation: str) -> blocks.MLP:
    """One hidden layer of 4 units on x in [-2, 2]^2: units 0 and 1 never positive, 2 and 3 on
    for part of the inputs."""
    net = blocks.MLP(activation, width=4, depth=1)
    with torch.no_grad():
        first = net.net[0]
        first.weight.copy_(torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, -1.0]]))
        first.bias.copy_(torch.tensor([-10.0, -3.0, 0.0, 0.5]))
    return net


def test_unit_activity_finds_the_known_dead_units():
    x, _ = blocks.regression_data(500, seed=1)
    relu = blocks.unit_activity(_constructed_mlp("relu"), x)
    assert relu.dead == [0.5] and relu.never_positive == [0.5]
    # the same units are never positive with LeakyReLU, but their output is not 0: not dead
    leaky = blocks.unit_activity(_constructed_mlp("leaky_relu"), x)
    assert leaky.dead == [0.0] and leaky.never_positive == [0.5]
    assert relu.dead_total == 0.5 and leaky.never_positive_total == 0.5


def test_dead_relu_units_receive_no_gradient():
    x, y = blocks.regression_data(500, seed=1)
    net = _constructed_mlp("relu")
    ((net(x) - y) ** 2).mean().backward()
    grad = net.net[0].weight.grad
    assert torch.all(grad[:2] == 0) and torch.all(net.net[0].bias.grad[:2] == 0)
    assert grad[2:].abs().sum() > 0


def test_unit_activity_counts_channels_of_a_cnn_over_samples_and_pixels():
    conv = nn.Conv2d(1, 3, 1)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([1.0, -1.0, 0.0]).view(3, 1, 1, 1))
        conv.bias.copy_(torch.tensor([0.0, -5.0, -1.0]))  # channels 1 and 2 dead for x in [0,1]
    model = nn.Sequential(conv, nn.ReLU())
    activity = blocks.unit_activity(model, torch.rand(4, 1, 5, 5))
    assert activity.dead == [pytest.approx(2 / 3)]
    assert not any(m._forward_hooks for m in model.modules())  # hooks removed


def test_train_mlp_is_seeded_and_a_high_learning_rate_kills_more_relu_units():
    a = blocks.train_mlp("relu", lr=1e-3, steps=60, seed=0, width=32)
    b = blocks.train_mlp("relu", lr=1e-3, steps=60, seed=0, width=32)
    assert a.losses == b.losses and a.after.dead == b.after.dead
    assert len(a.losses) == 60 and len(a.after.dead) == 3
    high = blocks.train_mlp("relu", lr=1e-1, steps=60, seed=0, width=32)
    assert high.after.dead_total > a.after.dead_total + 0.2
    prelu = blocks.train_mlp("prelu", lr=1e-1, steps=60, seed=0, width=32)
    assert prelu.after.dead_total == 0.0


def test_dead_unit_study_runs_every_combination_in_order_and_plots():
    runs = blocks.dead_unit_study(["relu", "prelu"], lrs=[1e-3, 1e-1], seeds=[0], steps=5, width=8)
    assert [(r.activation, r.lr) for r in runs] == [
        ("relu", 1e-3),
        ("relu", 1e-1),
        ("prelu", 1e-3),
        ("prelu", 1e-1),
    ]
    fig = blocks.plot_dead_study(runs)
    assert len(fig.axes) == 2


# ----------------------------------------------------------------------------- gradient flow


def test_block_defaults_compute_exactly_the_generators_residual_block():
    torch.manual_seed(0)
    ref = ResidualBlock(6)
    ours = blocks.Block(6)
    ours.load_state_dict(ref.state_dict())  # same parameter names and shapes
    x = torch.randn(2, 6, 5, 5)
    torch.testing.assert_close(ours(x), ref(x))
    plain = blocks.Block(6, skip=False)
    plain.load_state_dict(ref.state_dict())
    torch.testing.assert_close(plain(x), ref(x) - x)
    no_bn = blocks.Block(6, bn=False, activation="tanh")
    assert not any(isinstance(m, nn.BatchNorm2d) for m in no_bn.modules())
    assert no_bn.body[0].bias is not None


def test_build_stack_is_seeded_and_checks_depth():
    a, b = blocks.build_stack(3, 4, seed=1), blocks.build_stack(3, 4, seed=1)
    x = torch.randn(2, 3, 6, 6)
    torch.testing.assert_close(a(x), b(x))
    assert sum(isinstance(m, blocks.Block) for m in a) == 3
    with pytest.raises(ValueError, match="depth"):
        blocks.build_stack(0)


def test_image_batches_are_blurred_crops_in_signed_range():
    batches = blocks.image_batches(2, batch_size=3, size=12, seed=0)
    assert len(batches) == 2
    x, y = batches[0]
    assert x.shape == y.shape == (3, 3, 12, 12)
    assert y.min() >= -1 and y.max() <= 1
    assert 0 < ((x - y) ** 2).mean() < 0.1  # blurred, but the same crops
    again = blocks.image_batches(2, batch_size=3, size=12, seed=0)
    torch.testing.assert_close(again[1][1], batches[1][1])


def test_layer_grad_norms_has_one_positive_value_per_block():
    model = blocks.build_stack(5, 4, seed=0)
    x, y = blocks.image_batches(1, batch_size=2, size=8)[0]
    norms, loss = blocks.layer_grad_norms(model, x, y)
    assert norms.shape == (5,)
    assert np.all(norms > 0) and loss > 0


def test_gradients_vanish_in_a_plain_stack_but_not_in_a_residual_one():
    kw = dict(depth=10, channels=4, bn=False, steps=0, batch_size=2, size=8)
    plain = blocks.gradient_flow(skip=False, **kw)
    residual = blocks.gradient_flow(skip=True, **kw)
    assert plain.ratio_init < 1e-4  # first block gets a tiny fraction of the last block's
    assert residual.ratio_init > 0.1  # the identity path carries the gradient to the input
    assert plain.init[0] < residual.init[0]
    np.testing.assert_array_equal(plain.trained, plain.init)  # steps=0: nothing trained
    assert plain.name == "plain, no BN" and residual.name == "residual, no BN"


def test_gradient_flow_trains_and_plots():
    flows = [
        blocks.gradient_flow(4, 4, skip=s, steps=3, batch_size=2, size=8) for s in (False, True)
    ]
    for f in flows:
        assert len(f.losses) == 4 and f.steps == 3 and f.identity_mse > 0
        assert not np.array_equal(f.trained, f.init)
    assert len(blocks.plot_gradient_flow(flows).axes) == 3
    assert len(blocks.plot_gradient_flow(flows, after=False).axes) == 1


# ----------------------------------------------------------------------------------- widgets


def test_explore_callbacks_return_one_open_figure():
    fig = blocks.explore_dead_units("prelu", lr=1e-2, steps=10, width=8)
    assert isinstance(fig, matplotlib.figure.Figure) and len(fig.axes) == 2
    plt.close("all")
    fig = blocks.explore_gradient_flow(depth=4, activation="relu", bn=False, steps=2)
    assert isinstance(fig, matplotlib.figure.Figure) and len(fig.axes) == 3
    assert plt.get_fignums() == [fig.number]


def test_widgets_build_with_their_controls():
    ipywidgets = pytest.importorskip("ipywidgets")
    w = blocks.dead_units_widget(activation="prelu", lr=0.01, steps=100)
    values = {c._kwarg: c.value for c in w.kwargs_widgets}
    assert set(values) == {"activation", "lr", "steps", "width", "seed"}
    assert values["activation"] == "prelu" and values["steps"] == 100
    assert values["lr"] == pytest.approx(0.01, rel=0.02)
    assert isinstance(w, ipywidgets.interactive)
    g = blocks.gradient_flow_widget(depth=10)
    values = {c._kwarg: c.value for c in g.kwargs_widgets}
    assert set(values) == {"depth", "activation", "bn", "steps", "seed"}
    assert values["depth"] == 10
