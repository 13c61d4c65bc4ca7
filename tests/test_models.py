"""Tests for srgan_edu.models: shapes, pinned parameter counts, wiring, errors, gradient flow."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from srgan_edu.models import (
    Discriminator,
    ResidualBlock,
    SRResNet,
    build_discriminator,
    build_generator,
    build_model,
    count_parameters,
    upsampling_stages,
)


def conv(c_in: int, c_out: int, k: int, bias: bool = True) -> int:
    """Parameters of a k x k convolution: weights c_in*c_out*k*k, plus c_out biases."""
    return c_in * c_out * k * k + (c_out if bias else 0)


def bn(c: int) -> int:
    """BatchNorm2d: gamma and beta per channel (running statistics are buffers)."""
    return 2 * c


def prelu(c: int) -> int:
    """Channel-wise PReLU: one slope per channel."""
    return c


def lr_batch(b: int = 2, h: int = 6, w: int = 5, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 3, h, w, generator=g)  # (B, 3, h, w) in [0, 1]


# ----------------------------------------------------------------------------- parameter counts


def test_generator_parameter_count_default_x4_16_blocks():
    c, blocks = 64, 16
    head = conv(3, c, 9) + prelu(c)  # 15,552 + 64 + 64 = 15,680
    block = 2 * conv(c, c, 3, bias=False) + 2 * bn(c) + prelu(c)  # 73,728 + 256 + 64 = 74,048
    fuse = conv(c, c, 3, bias=False) + bn(c)  # 36,864 + 128 = 36,992
    up_stage = conv(c, 4 * c, 3) + prelu(c)  # 147,456 + 256 + 64 = 147,776
    tail = conv(c, 3, 9)  # 15,552 + 3 = 15,555
    expected = head + blocks * block + fuse + 2 * up_stage + tail
    assert expected == 1_548_547  # the number quoted in the models.py docstring
    g = SRResNet()
    assert count_parameters(g) == expected
    # parts, so that a mismatch points at the culprit
    assert count_parameters(g.head) == head
    assert count_parameters(g.blocks[0]) == block
    assert count_parameters(g.fuse) == fuse
    assert count_parameters(g.upsample) == 2 * up_stage
    assert count_parameters(g.tail) == tail


def test_generator_parameter_count_nearest_variant_and_shared_prelu_difference():
    c = 64
    up_stage = conv(c, c, 3) + prelu(c)  # 36,864 + 64 + 64 = 36,992
    subpixel_stage = conv(c, 4 * c, 3) + prelu(c)
    expected = 1_548_547 - 2 * subpixel_stage + 2 * up_stage
    assert expected == 1_326_979
    assert count_parameters(SRResNet(upsampler="nearest")) == expected
    # every PReLU is channel-wise: 1 (head) + 16 (blocks) + 2 (upsampling) = 19 of them
    prelus = [m for m in SRResNet().modules() if isinstance(m, nn.PReLU)]
    assert len(prelus) == 19
    assert all(p.weight.shape == (c,) for p in prelus)


def test_generator_parameter_count_x3_and_x8():
    c, blocks = 64, 16
    trunk = (
        conv(3, c, 9)
        + prelu(c)
        + blocks * (2 * conv(c, c, 3, False) + 2 * bn(c) + prelu(c))
        + conv(c, c, 3, False)
        + bn(c)
        + conv(c, 3, 9)
    )
    x3 = trunk + conv(c, 9 * c, 3) + prelu(c)  # one PixelShuffle(3) stage
    x8 = trunk + 3 * (conv(c, 4 * c, 3) + prelu(c))  # three PixelShuffle(2) stages
    assert count_parameters(SRResNet(scale=3)) == x3
    assert count_parameters(SRResNet(scale=8)) == x8


def test_discriminator_parameter_count_96():
    c = 64
    first = conv(3, c, 3)  # 1,728 + 64 = 1,792
    widths = [c, c, 2 * c, 2 * c, 4 * c, 4 * c, 8 * c, 8 * c]  # in/out of the seven blocks
    pairs = zip(widths[:-1], widths[1:], strict=True)
    blocks = sum(conv(i, o, 3, bias=False) + bn(o) for i, o in pairs)
    assert blocks == 4_685_440
    flat = 512 * (96 // 16) ** 2  # 512 * 6 * 6 = 18,432
    dense1 = flat * 1024 + 1024  # 18,875,392
    dense2 = 1024 * 1 + 1  # 1,025
    expected = first + blocks + dense1 + dense2
    assert expected == 23_563_649  # the number quoted in the models.py docstring
    d = Discriminator()
    assert count_parameters(d) == expected
    assert count_parameters(d.classifier[1]) == dense1
    assert count_parameters(d.features) == first + blocks


@pytest.mark.parametrize("hr_size, side", [(32, 2), (72, 5), (128, 8)])
def test_discriminator_dense_layer_follows_hr_size(hr_size, side):
    # each stride-2 conv maps n -> ceil(n / 2); four of them -> ceil(n / 16)
    n = hr_size
    for _ in range(4):
        n = (n + 1) // 2
    assert n == side == math.ceil(hr_size / 16)
    d = Discriminator(hr_size=hr_size, channels=4, dense=8, seed=0)
    assert d.classifier[1].in_features == 8 * 4 * side * side
    x = torch.zeros(2, 3, hr_size, hr_size)
    assert d.features(x).shape == (2, 32, side, side)
    assert d(x).shape == (2, 1)


def test_trainable_only_counts_unfrozen_parameters():
    g = SRResNet(scale=2, n_blocks=1, channels=8)
    total = count_parameters(g)
    for p in g.head.parameters():
        p.requires_grad_(False)
    assert count_parameters(g, trainable_only=True) == total - count_parameters(g.head)
    assert count_parameters(g) == total


# ----------------------------------------------------------------------------- shapes and range


@pytest.mark.parametrize("upsampler", ["subpixel", "nearest"])
@pytest.mark.parametrize("scale", [2, 3, 4, 8])
def test_generator_output_shape(scale, upsampler):
    g = SRResNet(scale=scale, n_blocks=1, channels=8, upsampler=upsampler, seed=0)
    x = lr_batch(h=6, w=5)
    y = g(x)
    assert y.shape == (2, 3, 6 * scale, 5 * scale)
    assert y.dtype == torch.float32
    n_stages = 1 if scale == 3 else int(math.log2(scale))
    assert len(g.upsample) == n_stages


def test_generator_output_in_signed_range_even_for_extreme_inputs():
    g = SRResNet(scale=2, n_blocks=1, channels=8, seed=1)
    with torch.no_grad():
        g.tail.weight.mul_(50.0)  # push the pre-activation far beyond [-1, 1]
    y = g(lr_batch() * 100.0)
    assert y.min() >= -1.0 and y.max() <= 1.0
    assert y.abs().max() > 0.99  # saturated, so the bound was really tested


def test_output_activation_none_is_the_pre_tanh_output():
    g_tanh = SRResNet(scale=2, n_blocks=2, channels=8, seed=2)
    g_none = SRResNet(scale=2, n_blocks=2, channels=8, output_activation="none")
    g_none.load_state_dict(g_tanh.state_dict())
    with torch.no_grad():
        g_tanh.tail.weight.mul_(20.0)
        g_none.tail.weight.mul_(20.0)
    x = lr_batch()
    raw = g_none(x)
    assert raw.abs().max() > 1.0  # the paper's network is unbounded
    torch.testing.assert_close(g_tanh(x), torch.tanh(raw))


def test_nearest_stage_is_upsample_then_conv_then_prelu():
    stages = upsampling_stages(2, channels=4, upsampler="nearest")
    x = torch.randn(1, 4, 3, 3, generator=torch.Generator().manual_seed(3))
    up, cv, act = stages[0]
    ref = torch.repeat_interleave(torch.repeat_interleave(x, 2, dim=2), 2, dim=3)
    expected = torch.nn.functional.prelu(
        torch.nn.functional.conv2d(ref, cv.weight, cv.bias, padding=1), act.weight
    )
    torch.testing.assert_close(stages(x), expected)


def test_subpixel_stage_matches_pixel_shuffle_by_hand():
    stages = upsampling_stages(3, channels=2, upsampler="subpixel")
    x = torch.randn(1, 2, 4, 4, generator=torch.Generator().manual_seed(4))
    cv, _, act = stages[0]
    z = torch.nn.functional.conv2d(x, cv.weight, cv.bias, padding=1)  # (1, 18, 4, 4)
    # periodic shuffle (Shi et al. 2016): out[c, 3i+a, 3j+b] = z[c*9 + 3a + b, i, j]
    shuffled = z.view(1, 2, 3, 3, 4, 4).permute(0, 1, 4, 2, 5, 3).reshape(1, 2, 12, 12)
    expected = torch.nn.functional.prelu(shuffled, act.weight)
    torch.testing.assert_close(stages(x), expected)


def test_residual_block_is_identity_when_last_bn_is_zeroed():
    block = ResidualBlock(4)
    with torch.no_grad():
        block.body[4].weight.zero_()
        block.body[4].bias.zero_()
    x = torch.randn(2, 4, 5, 5, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(block(x), x)


def test_long_skip_goes_from_first_prelu_to_upsampling():
    g = SRResNet(scale=2, n_blocks=2, channels=8, seed=6)
    with torch.no_grad():
        g.fuse[1].weight.zero_()  # the trunk now adds nothing: only the long skip remains
        g.fuse[1].bias.zero_()
    x = lr_batch()
    expected = torch.tanh(g.tail(g.upsample(g.head(x))))
    torch.testing.assert_close(g(x), expected)


def test_discriminator_returns_unsquashed_logits():
    d = Discriminator(hr_size=32, channels=4, dense=16, seed=7)
    with torch.no_grad():
        d.classifier[3].weight.mul_(100.0)
    x = torch.rand(8, 3, 32, 32, generator=torch.Generator().manual_seed(8)) * 2 - 1
    out = d(x)
    assert out.shape == (8, 1)
    # a sigmoid output would lie in (0, 1); logits take both signs and large magnitudes
    assert (out < 0).any() and (out > 1).any()
    assert not isinstance(list(d.modules())[-1], nn.Sigmoid)


def test_discriminator_paper_size_forward_and_eval_mode():
    d = Discriminator(seed=9).eval()
    x = torch.zeros(1, 3, 96, 96)
    assert d(x).shape == (1, 1)


# ----------------------------------------------------------------------------- gradients


def test_gradients_reach_every_generator_parameter():
    g = SRResNet(scale=4, n_blocks=2, channels=8, seed=10)
    g(lr_batch()).square().mean().backward()
    for name, p in g.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, f"no gradient reached {name}"
    assert g.head[0].weight.grad.abs().sum() > 0  # the first layer


def test_gradients_reach_every_discriminator_parameter():
    d = Discriminator(hr_size=32, channels=4, dense=16, seed=11)
    x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(12)) * 2 - 1
    x.requires_grad_(True)
    d(x).sum().backward()
    for name, p in d.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"no gradient reached {name}"
    assert x.grad.abs().sum() > 0  # and through D to its input, as the generator needs


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize("scale", [1, 5, 6, 16, 0, -2, 2.5, True, "4"])
def test_invalid_scale_is_rejected_with_a_clear_message(scale):
    with pytest.raises(ValueError, match="scale must be 2, 3, 4 or 8"):
        SRResNet(scale=scale, n_blocks=1, channels=8)


def test_invalid_generator_options():
    with pytest.raises(ValueError, match="upsampler must be one of 'subpixel', 'nearest'"):
        SRResNet(upsampler="bicubic")
    with pytest.raises(ValueError, match="output_activation"):
        SRResNet(output_activation="sigmoid")
    with pytest.raises(ValueError, match="n_blocks must be an integer >= 0"):
        SRResNet(n_blocks=-1)
    with pytest.raises(ValueError, match="channels must be an integer >= 1"):
        SRResNet(channels=0)


def test_generator_rejects_wrong_input_shapes():
    g = SRResNet(scale=2, n_blocks=1, channels=8)
    with pytest.raises(ValueError, match=r"add a batch dimension"):
        g(torch.rand(3, 8, 8))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\), got shape \(1, 1, 8, 8\)"):
        g(torch.rand(1, 1, 8, 8))
    with pytest.raises(ValueError, match="floating-point"):
        g(torch.zeros(1, 3, 8, 8, dtype=torch.uint8))


def test_discriminator_rejects_other_sizes_with_a_clear_message():
    d = Discriminator(hr_size=32, channels=4, dense=8)
    with pytest.raises(ValueError, match=r"built for 32x32 HR images, got 48x32"):
        d(torch.zeros(1, 3, 48, 32))
    with pytest.raises(ValueError, match="hr_size must be an integer >= 16"):
        Discriminator(hr_size=8)
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        d(torch.zeros(1, 4, 32, 32))


# ----------------------------------------------------------------------------- config / arch


def test_arch_round_trip_and_seeded_weights():
    g = build_generator(scale=3, n_blocks=2, channels=8, upsampler="nearest", seed=13)
    assert g.arch() == {
        "name": "srresnet",
        "scale": 3,
        "n_blocks": 2,
        "channels": 8,
        "upsampler": "nearest",
        "output_activation": "tanh",
    }
    g2 = build_model(g.arch(), seed=13)
    assert isinstance(g2, SRResNet) and g2.arch() == g.arch()
    sd2 = g2.state_dict()
    assert list(sd2) == list(g.state_dict())
    for k, a in g.state_dict().items():
        assert torch.equal(a, sd2[k]), k

    d = build_discriminator(hr_size=48, channels=4, dense=8, seed=14)
    assert d.arch() == {"name": "discriminator", "hr_size": 48, "channels": 4, "dense": 8}
    d2 = build_model(d.arch())
    assert isinstance(d2, Discriminator) and d2.arch() == d.arch()
    assert count_parameters(d2) == count_parameters(d)


def test_seed_is_reproducible_and_leaves_global_rng_alone():
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    a = SRResNet(scale=2, n_blocks=1, channels=8, seed=1)
    assert torch.equal(torch.random.get_rng_state(), before)
    b = SRResNet(scale=2, n_blocks=1, channels=8, seed=1)
    c = SRResNet(scale=2, n_blocks=1, channels=8, seed=2)
    assert torch.equal(a.head[0].weight, b.head[0].weight)
    assert not torch.equal(a.head[0].weight, c.head[0].weight)


def test_build_model_rejects_unknown_names_and_keys():
    with pytest.raises(ValueError, match="unknown architecture name 'esrgan'"):
        build_model({"name": "esrgan"})
    with pytest.raises(ValueError, match=r"does not take \['growth'\]"):
        build_model({"name": "srresnet", "scale": 4, "growth": 32})
