"""Tests for srgan_edu.teach.esrgan (lesson 10): RRDB shapes and parameter arithmetic, residual
scaling, the relativistic losses against hand formulas and BCE-with-logits, their gradients, the
VGG before/after-ReLU measurements, the small experiment's helpers and the widget callback."""

from __future__ import annotations

import math

import matplotlib.figure
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from srgan_edu.losses import adversarial_loss, discriminator_loss
from srgan_edu.models import SRResNet, count_parameters
from srgan_edu.teach import esrgan as E
from srgan_edu.vgg import VGGFeatures

pytestmark = pytest.mark.usefixtures("one_thread", "close_figures")


# ------------------------------------------------------------------------- RRDB: shapes, counts


@pytest.mark.parametrize("channels, growth", [(64, 32), (32, 16), (5, 3)])
def test_dense_block_parameter_count_matches_formula_and_keeps_shape(channels, growth):
    block = E.DenseBlock(channels, growth)
    assert count_parameters(block) == E.dense_block_parameters(channels, growth)
    in_channels = [conv.in_channels for conv in block.convs]
    assert in_channels == [channels + k * growth for k in range(5)]
    assert [conv.out_channels for conv in block.convs] == [growth] * 4 + [channels]
    x = torch.randn(2, channels, 7, 5)
    assert block(x).shape == x.shape


def test_parameter_formulas_by_hand():
    # ESRGAN's C = 64, g = 32: four convolutions growing by 32 input channels, then 192 -> 64
    by_hand = sum(9 * (64 + 32 * k) * 32 + 32 for k in range(4)) + 9 * 192 * 64 + 64
    assert E.dense_block_parameters() == by_hand == 239_808
    assert E.rrdb_parameters() == 3 * 239_808 == count_parameters(E.RRDB())
    # head + 23 RRDBs + fuse + 2 upsampling convs + hr_conv + tail
    conv64 = 9 * 64 * 64 + 64
    paper = (9 * 3 * 64 + 64) + 23 * 719_424 + 4 * conv64 + (9 * 64 * 3 + 3)
    assert E.rrdbnet_parameters() == paper == 16_697_987
    with torch.device("meta"):  # shapes only: no memory, no time
        assert count_parameters(E.RRDBNet()) == paper


@pytest.mark.parametrize("scale", [2, 3, 4, 8])
@pytest.mark.parametrize("n_blocks, channels, growth", [(0, 8, 4), (2, 8, 4)])
def test_rrdbnet_shapes_and_counts(scale, n_blocks, channels, growth):
    g = E.RRDBNet(scale, n_blocks, channels, growth, seed=0)
    assert count_parameters(g) == E.rrdbnet_parameters(scale, n_blocks, channels, growth)
    out = g(torch.rand(2, 3, 5, 6))
    assert out.shape == (2, 3, 5 * scale, 6 * scale)
    assert out.abs().max() <= 1.0  # tanh, like SRResNet


def test_rrdbnet_has_no_batchnorm_and_seed_is_reproducible_without_global_side_effects():
    state = torch.random.get_rng_state()
    a, b = E.RRDBNet(2, 1, 8, 4, seed=3), E.RRDBNet(2, 1, 8, 4, seed=3)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in a.modules())
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)
    x = torch.rand(1, 3, 6, 6)
    assert torch.equal(a(x), b(x))
    raw = E.RRDBNet(2, 1, 8, 4, output_activation="none", seed=3)
    raw.load_state_dict(a.state_dict())
    torch.testing.assert_close(torch.tanh(raw(x)), a(x))


def test_rrdbnet_rejects_bad_arguments_with_clear_messages():
    with pytest.raises(ValueError, match="scale must be"):
        E.RRDBNet(scale=5)
    with pytest.raises(ValueError, match="output_activation"):
        E.RRDBNet(2, 0, 4, 2, output_activation="sigmoid")
    with pytest.raises(ValueError, match="growth"):
        E.DenseBlock(8, 0)
    with pytest.raises(ValueError, match="beta"):
        E.RRDB(8, 4, beta=-0.1)
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        E.RRDBNet(2, 0, 4, 2)(torch.rand(3, 8, 8))


# -------------------------------------------------------------------------- residual scaling


def test_dense_block_output_is_input_plus_beta_times_branch():
    torch.manual_seed(0)
    one = E.DenseBlock(6, 3, beta=1.0, init_scale=1.0)
    scaled = E.DenseBlock(6, 3, beta=0.2, init_scale=1.0)
    scaled.load_state_dict(one.state_dict())
    x = torch.randn(2, 6, 5, 5)
    branch = one(x) - x
    torch.testing.assert_close(scaled(x), x + 0.2 * branch)
    # by hand: every convolution sees the concatenation of all earlier maps
    feats = [x]
    for conv in one.convs[:-1]:
        feats.append(F.leaky_relu(conv(torch.cat(feats, 1)), 0.2))
    torch.testing.assert_close(branch, one.convs[-1](torch.cat(feats, 1)), atol=1e-5, rtol=1e-5)


def test_beta_zero_makes_blocks_the_identity():
    x = torch.randn(2, 8, 4, 4)
    assert torch.equal(E.DenseBlock(8, 4, beta=0.0)(x), x)
    assert torch.equal(E.RRDB(8, 4, beta=0.0)(x), x)


def test_rrdb_is_x_plus_beta_times_three_dense_blocks():
    torch.manual_seed(1)
    block = E.RRDB(6, 3, beta=0.3, init_scale=1.0)
    x = torch.randn(1, 6, 5, 5)
    inner = block.blocks[2](block.blocks[1](block.blocks[0](x)))
    torch.testing.assert_close(block(x), x + 0.3 * inner)


def test_scaled_kaiming_init_has_the_expected_spread():
    torch.manual_seed(0)
    block = E.DenseBlock(64, 32, init_scale=0.1)
    conv = block.convs[-1]  # fan_in = 9 * 192
    expected = 0.1 * math.sqrt(2.0 / (9 * 192))
    assert float(conv.weight.detach().std()) == pytest.approx(expected, rel=0.03)
    assert torch.count_nonzero(conv.bias) == 0


def test_trunk_growth_is_one_plus_beta_per_block_when_branches_start_at_zero():
    # zero weights: every dense block is the identity, so each RRDB multiplies by (1 + beta)
    ratios = E.trunk_growth(5, beta=0.2, init_scale=0.0)
    np.testing.assert_allclose(ratios, [1.2**k for k in range(1, 6)], rtol=1e-5)
    small = E.trunk_growth(6, beta=0.2, init_scale=0.1)
    large = E.trunk_growth(6, beta=1.0, init_scale=1.0)
    assert small[-1] < 1.2**6 * 1.2  # close to the (1 + beta)^k of near-identity blocks
    assert large[-1] > 100 * small[-1]  # without scaling the signal explodes


# -------------------------------------------------------------------- relativistic GAN losses


def _logits(seed: int = 0, m: int = 5, n: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(m, 1, generator=g) * 2 + 1, torch.randn(n, 1, generator=g) * 2 - 1


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def test_ra_losses_equal_the_paper_formulas_by_hand():
    real, fake = _logits()
    r, f = real.double().numpy().ravel(), fake.double().numpy().ravel()
    d_ra_real = _sigmoid(r - f.mean())  # D_Ra(x_r, x_f)
    d_ra_fake = _sigmoid(f - r.mean())  # D_Ra(x_f, x_r)
    l_d = -np.mean(np.log(d_ra_real)) - np.mean(np.log(1 - d_ra_fake))
    l_g = -np.mean(np.log(1 - d_ra_real)) - np.mean(np.log(d_ra_fake))
    assert float(E.ra_discriminator_loss(real, fake)) == pytest.approx(l_d, rel=1e-5)
    assert float(E.ra_generator_loss(real, fake)) == pytest.approx(l_g, rel=1e-5)
    real_rel, fake_rel = E.relativistic_logits(real, fake)
    np.testing.assert_allclose(torch.sigmoid(real_rel).numpy().ravel(), d_ra_real, rtol=1e-5)
    np.testing.assert_allclose(torch.sigmoid(fake_rel).numpy().ravel(), d_ra_fake, rtol=1e-5)


def test_ra_losses_equal_the_bce_with_logits_formulation():
    real, fake = _logits(1, m=4, n=6)
    bce = F.binary_cross_entropy_with_logits
    real_rel, fake_rel = real - fake.mean(), fake - real.mean()
    d = bce(real_rel, torch.ones_like(real)) + bce(fake_rel, torch.zeros_like(fake))
    g = bce(real_rel, torch.zeros_like(real)) + bce(fake_rel, torch.ones_like(fake))
    torch.testing.assert_close(E.ra_discriminator_loss(real, fake), d)
    torch.testing.assert_close(E.ra_generator_loss(real, fake), g)


def test_ra_losses_depend_only_on_differences_unlike_the_standard_ones():
    real, fake = _logits(2)
    for c in (-7.0, 3.0, 50.0):
        torch.testing.assert_close(
            E.ra_discriminator_loss(real + c, fake + c), E.ra_discriminator_loss(real, fake)
        )
        torch.testing.assert_close(
            E.ra_generator_loss(real + c, fake + c), E.ra_generator_loss(real, fake)
        )
    assert not torch.isclose(discriminator_loss(real + 3, fake + 3), discriminator_loss(real, fake))


def test_ra_losses_are_finite_for_huge_logits_and_reject_empty_batches():
    real, fake = torch.tensor([1e4, -1e4]), torch.tensor([-1e4, 3e3])
    for loss in (E.ra_discriminator_loss, E.ra_generator_loss):
        assert torch.isfinite(loss(real, fake))
    with pytest.raises(ValueError, match="at least one"):
        E.ra_generator_loss(torch.zeros(0), torch.zeros(3))


def test_generator_gradient_formulas_equal_autograd():
    real, fake = _logits(3, m=4, n=5)
    fake = fake.double().requires_grad_(True)
    real = real.double()
    grads = E.generator_logit_grads(real, fake)
    (auto_ra,) = torch.autograd.grad(E.ra_generator_loss(real, fake), fake)
    torch.testing.assert_close(grads["relativistic"], auto_ra)
    (auto_std,) = torch.autograd.grad(adversarial_loss(fake), fake)
    torch.testing.assert_close(grads["standard"], auto_std)
    # the real term alone: G gets a gradient through E[C(x_f)], although C(x_r) is constant
    real_term = F.softplus(real - fake.mean()).mean()
    (auto_real,) = torch.autograd.grad(real_term, fake)
    torch.testing.assert_close(grads["ra_from_real"], auto_real)
    assert float(auto_real.abs().min()) > 0
    torch.testing.assert_close(grads["ra_from_real"] + grads["ra_from_fake"], auto_ra)


def test_gradient_steps_move_the_logits_the_right_way():
    real, fake = _logits(4)
    real = real.clone().requires_grad_(True)
    fake = fake.clone().requires_grad_(True)
    before_real, before_fake = E.relativistic_logits(real.detach(), fake.detach())
    d_loss = E.ra_discriminator_loss(real, fake)
    d_loss.backward()
    with torch.no_grad():  # D descends: reals look more real than fakes, fakes less real
        r2, f2 = real - 0.1 * real.grad, fake - 0.1 * fake.grad
    after_real, after_fake = E.relativistic_logits(r2, f2)
    assert float(after_real.mean()) > float(before_real.mean())
    assert float(after_fake.mean()) < float(before_fake.mean())
    assert float(E.ra_discriminator_loss(r2, f2)) < float(d_loss.detach())
    # G descends on its loss: every fake logit goes up
    grads = E.generator_logit_grads(real.detach(), fake.detach())
    assert bool((grads["relativistic"] < 0).all()) and bool((grads["standard"] < 0).all())


def test_standard_gradient_vanishes_when_d_is_fooled_but_relativistic_only_when_fakes_win():
    # D calls the fakes real (logit 8) but the reals even more real (logit 16)
    g = E.generator_logit_grads(torch.tensor([16.0]), torch.tensor([8.0]))
    assert float(g["standard"].abs()) < 1e-3
    assert float(g["relativistic"].abs()) > 1.9  # ~2 sigma(r - f): two terms, each near 1
    # one real, one fake: both terms equal sigmoid(r - f) (plot_generator_gradients uses this)
    g = E.generator_logit_grads(torch.tensor([1.5]), torch.tensor([-0.5]))
    torch.testing.assert_close(g["ra_from_real"], g["ra_from_fake"])
    torch.testing.assert_close(g["ra_from_real"], -torch.sigmoid(torch.tensor([2.0])))
    # symmetric batches: |grad| x n = 2 sigma(r - f) exactly
    for r, f in [(0.0, 0.0), (2.0, -1.0), (-3.0, 1.0)]:
        g = E.generator_logit_grads(torch.full((3,), r), torch.full((4,), f))
        expected = 2 * _sigmoid(r - f) / 4
        np.testing.assert_allclose(g["relativistic"].abs().numpy(), expected, rtol=1e-6)


# ------------------------------------------------------------------------ widget and pictures


def test_explore_logits_numbers_agree_with_the_library():
    fig, numbers = E.explore_logits(2.0, -1.0, 1.0, n=4)
    assert isinstance(fig, matplotlib.figure.Figure)
    real = torch.linspace(1.0, 3.0, 4, dtype=torch.float64)
    fake = torch.linspace(-2.0, 0.0, 4, dtype=torch.float64)
    assert numbers["d_standard"] == pytest.approx(float(discriminator_loss(real, fake)))
    assert numbers["g_standard"] == pytest.approx(float(adversarial_loss(fake)))
    assert numbers["d_relativistic"] == pytest.approx(float(E.ra_discriminator_loss(real, fake)))
    assert numbers["g_relativistic"] == pytest.approx(float(E.ra_generator_loss(real, fake)))
    assert 0 < numbers["grad_from_real"] < numbers["grad_relativistic"]
    assert numbers["grad_relativistic"] > numbers["grad_standard"]


@pytest.mark.parametrize(
    "real_mean, fake_mean, spread, n",
    [(0.0, 0.0, 0.0, 4), (8.0, -8.0, 4.0, 4), (-8.0, 8.0, 0.0, 4), (500.0, -500.0, 0.0, 1),
     (1e4, 1e4, 3.0, 3), (2.0, 2.0, 0.0, 1)],
)  # fmt: skip
def test_explore_logits_edge_cases_stay_finite(real_mean, fake_mean, spread, n):
    _, numbers = E.explore_logits(real_mean, fake_mean, spread, n=n)
    assert all(math.isfinite(v) for v in numbers.values()), numbers
    assert 0 <= numbers["grad_from_real"] <= numbers["grad_relativistic"] <= 2
    for key in ("p_real_standard", "p_fake_standard", "p_real_ra", "p_fake_ra"):
        assert 0 <= numbers[key] <= 1


def test_explore_logits_equal_logits_give_the_textbook_values():
    _, numbers = E.explore_logits(0.0, 0.0, 0.0, n=2)
    assert numbers["d_standard"] == pytest.approx(2 * math.log(2))
    assert numbers["d_relativistic"] == pytest.approx(2 * math.log(2))
    assert numbers["grad_standard"] == pytest.approx(0.5)
    assert numbers["grad_relativistic"] == pytest.approx(1.0)  # 2 sigma(0)
    assert numbers["grad_from_real"] == pytest.approx(0.5)


@pytest.mark.parametrize(
    "kwargs, match",
    [({"real_mean": float("nan")}, "finite"), ({"fake_mean": "a"}, "number"),
     ({"spread": -1.0}, "spread"), ({"n": 0}, "n must be")],
)  # fmt: skip
def test_explore_logits_rejects_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        E.explore_logits(**kwargs)


def test_logits_widget_builds_and_pictures_draw():
    pytest.importorskip("ipywidgets")
    w = E.logits_widget()
    assert {c.description for c in w.children[:3]} == {
        "real logits (mean)",
        "fake logits (mean)",
        "spread (+-)",
    }
    assert isinstance(E.plot_generator_gradients(), matplotlib.figure.Figure)
    assert isinstance(E.plot_relu_loss(), matplotlib.figure.Figure)


# -------------------------------------------------------------------------- VGG before / after


@pytest.fixture(scope="module")
def small_vgg() -> VGGFeatures:
    return VGGFeatures("relu2_2", weights=None, seed=0)


def test_feature_stack_names_and_relu_of_conv(small_vgg):
    x = torch.rand(2, 3, 16, 16)
    maps = E.feature_stack(small_vgg, x)
    assert list(maps) == ["conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1", "conv2_1",
                          "relu2_1", "conv2_2", "relu2_2"]  # fmt: skip
    assert torch.equal(maps["relu2_2"], maps["conv2_2"].clamp_min(0))
    torch.testing.assert_close(maps["relu2_2"], small_vgg(x))


def test_activation_stats_are_fractions_and_the_relu_sees_at_most_everything(small_vgg):
    image = torch.rand(3, 24, 24)
    stats = E.activation_stats(small_vgg, image, shift=0.1)
    assert [s.layer for s in stats] == ["relu1_1", "relu1_2", "relu2_1", "relu2_2"]
    maps = E.feature_stack(small_vgg, image[None])
    assert stats[-1].active == pytest.approx(float((maps["conv2_2"] > 0).float().mean()))
    for s in stats:
        assert 0 < s.active < 1
        assert 0 < s.seen <= 1  # the ReLU is 1-Lipschitz: it can only hide change
    # a first-layer unit is linear in the image: a brightness shift is seen exactly where active
    assert stats[0].seen < 1
    with pytest.raises(ValueError, match="one"):
        E.activation_stats(small_vgg, image[None])


def test_plot_activation_stats_draws(small_vgg):
    stats = E.activation_stats(small_vgg, torch.rand(3, 16, 16))
    fig = E.plot_activation_stats({"random": stats})
    assert isinstance(fig, matplotlib.figure.Figure)


# ----------------------------------------------------------------------------- the experiment


def test_crops_shapes_and_errors():
    assert E.training_crops(3, 16, seed=1).shape == (3, 3, 16, 16)
    photo = E.photo_crops(32, n=3)
    assert photo.shape == (3, 3, 32, 32)
    assert 0 <= float(photo.min()) and float(photo.max()) <= 1
    with pytest.raises(ValueError, match="do not fit"):
        E.photo_crops(200, n=4)


def test_train_pixel_mse_is_reproducible_and_learns():
    hr = E.training_crops(8, 16, seed=0)
    runs = [
        E.train_pixel_mse(E.RRDBNet(2, 1, 8, 4, seed=0), hr, 2, steps=25, batch_size=4, lr=2e-3)
        for _ in range(2)
    ]
    assert runs[0].losses == runs[1].losses
    assert len(runs[0].losses) == 25 and runs[0].params == E.rrdbnet_parameters(2, 1, 8, 4)
    assert np.mean(runs[0].losses[-5:]) < np.mean(runs[0].losses[:5])
    seen = []
    E.train_pixel_mse(
        E.RRDBNet(2, 0, 4, 2, seed=0), hr, 2, 3, 2, callback=lambda s, v: seen.append(s)
    )
    assert seen == [0, 1, 2]


def test_evaluate_psnr_and_bn_mode_outputs():
    hr = E.training_crops(3, 24, seed=5)
    srres = SRResNet(2, 1, 8, seed=0)
    rrdb = E.RRDBNet(2, 1, 8, 4, seed=0)
    E.train_pixel_mse(srres, hr, 2, steps=3, batch_size=2)  # running statistics move
    stats = {k: v.clone() for k, v in srres.state_dict().items()}
    results = E.evaluate_psnr({"srresnet": srres, "rrdb": rrdb}, hr, 2)
    assert set(results) == {"bicubic", "srresnet", "rrdb"}
    assert all(math.isfinite(v) for v in results.values())
    train_mode = E.evaluate_psnr({"srresnet": srres, "rrdb": rrdb}, hr, 2, train_mode=True)
    assert train_mode["rrdb"] == pytest.approx(results["rrdb"])  # no BN: no mode to depend on
    lr = torch.rand(1, 3, 10, 10)
    out_rrdb = E.bn_mode_outputs(rrdb, lr)
    assert torch.equal(out_rrdb["train"], out_rrdb["eval"])
    out = E.bn_mode_outputs(srres, lr)
    assert out["diff"].shape == (1, 20, 20) and float(out["diff"].max()) > 0
    for k, v in srres.state_dict().items():  # running statistics untouched
        assert torch.equal(v, stats[k]), k
    assert srres.training  # mode restored


def test_without_batchnorm_removes_only_the_bn_layers():
    g = SRResNet(2, 2, 8, seed=0)
    plain = E.without_batchnorm(g)
    is_bn = lambda m: isinstance(m, nn.BatchNorm2d)  # noqa: E731
    assert sum(map(is_bn, g.modules())) == 5  # untouched: 2 per block + the fuse layer
    assert not any(map(is_bn, plain.modules()))
    assert count_parameters(g) - count_parameters(plain) == 5 * 2 * 8  # gamma and beta per BN
    state = g.state_dict()
    for k, v in plain.state_dict().items():
        assert torch.equal(v, state[k]), k
    block = plain.blocks[0]
    x = torch.randn(1, 8, 5, 5)
    body = block.body
    torch.testing.assert_close(block(x), x + body[3](body[2](body[0](x))))
