"""Tests for srgan_edu.teach.upsampling: lesson 05's helpers and widget callbacks."""

from __future__ import annotations

import matplotlib.figure
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from srgan_edu.degrade import bicubic_up
from srgan_edu.teach import upsampling as U

pytestmark = pytest.mark.usefixtures("close_figures")


# ---------------------------------------------------------------------------- pixel shuffle


@pytest.mark.parametrize(
    ("r", "c", "h", "w"), [(1, 3, 2, 2), (2, 1, 3, 4), (2, 3, 5, 2), (3, 2, 4, 3)]
)
def test_pixel_shuffle_by_hand_equals_torch_and_unshuffle_inverts_it(r, c, h, w):
    x = torch.randn(2, r * r * c, h, w, generator=torch.Generator().manual_seed(r + c))
    y = U.pixel_shuffle(x, r)
    assert y.shape == (2, c, r * h, r * w)
    assert torch.equal(y, nn.PixelShuffle(r)(x))
    assert torch.equal(U.pixel_unshuffle(y, r), x)
    z = torch.randn(2, c, r * h, r * w, generator=torch.Generator().manual_seed(7))
    assert torch.equal(U.pixel_unshuffle(z, r), nn.PixelUnshuffle(r)(z))
    assert torch.equal(U.pixel_shuffle(U.pixel_unshuffle(z, r), r), z)


def test_pixel_shuffle_follows_the_periodic_shuffle_formula():
    r, c, h, w = 3, 2, 2, 3
    x = torch.arange(r * r * c * h * w, dtype=torch.float32).view(1, r * r * c, h, w)
    y = U.pixel_shuffle(x, r)
    for ch in range(c):
        for yy in range(r * h):
            for xx in range(r * w):
                k = ch * r * r + r * (yy % r) + (xx % r)
                assert y[0, ch, yy, xx] == x[0, k, yy // r, xx // r]


def test_pixel_shuffle_gradients_match_torch():
    x = torch.randn(1, 8, 3, 3, requires_grad=True)
    g = torch.randn(1, 2, 6, 6)
    (ours,) = torch.autograd.grad((U.pixel_shuffle(x, 2) * g).sum(), x)
    (theirs,) = torch.autograd.grad((nn.PixelShuffle(2)(x) * g).sum(), x)
    assert torch.equal(ours, theirs)


def test_pixel_shuffle_rejects_bad_channels_and_sizes():
    with pytest.raises(ValueError, match="divisible by 4"):
        U.pixel_shuffle(torch.zeros(1, 6, 2, 2), 2)
    with pytest.raises(ValueError, match="divisible by 2"):
        U.pixel_unshuffle(torch.zeros(1, 1, 3, 4), 2)
    with pytest.raises(ValueError, match="positive integer"):
        U.pixel_shuffle(torch.zeros(1, 4, 2, 2), 0)


def test_source_channel_map_for_r2():
    m = U.source_channel_map(2, 2, 3)
    assert m.shape == (1, 4, 6)
    assert m[0, :2, :2].tolist() == [[0, 1], [2, 3]]
    assert m[0].tolist() == [[0, 1, 0, 1, 0, 1], [2, 3, 2, 3, 2, 3]] * 2
    assert U.source_channel_map(2, 1, 1, channels=2)[1].tolist() == [[4, 5], [6, 7]]


def test_icnr_makes_subpixel_conv_equal_conv_then_nearest():
    torch.manual_seed(0)
    conv = U.icnr_(nn.Conv2d(3, 12, 3, padding=1), 2)
    x = torch.randn(1, 3, 5, 6)
    with torch.no_grad():
        y = nn.PixelShuffle(2)(conv(x))
        ref = F.interpolate(
            F.conv2d(x, conv.weight[::4], conv.bias[::4], padding=1), scale_factor=2
        )
    assert torch.allclose(y, ref)
    with pytest.raises(ValueError, match="divisible by 4"):
        U.icnr_(nn.Conv2d(3, 6, 3), 2)


# ---------------------------------------------------------------------------- transposed conv


def _row(kernel: int, stride: int, n: int, padding: int = 0) -> str:
    """The 1-D overlap pattern as a string of digits, e.g. '112121211'."""
    return "".join(str(v) for v in U.overlap_count(kernel, stride, n, padding, dims=1).tolist())


def test_overlap_count_known_patterns():
    assert _row(3, 2, n=4) == "112121211"
    assert _row(4, 2, n=4, padding=1) == "12222221"
    assert _row(2, 2, n=3) == "111111"
    assert _row(1, 3, n=3) == "1001001"  # kernel < stride: holes
    assert _row(5, 3, n=4, padding=1) == "112212212211"
    k3 = U.overlap_count(3, 2, n=6)  # 2-D: the outer product, interior 1 / 2 / 4
    assert k3.shape == (13, 13)
    assert k3[2:4, 2:4].tolist() == [[4, 2], [2, 1]]
    assert set(k3[1:-1, 1:-1].unique().tolist()) == {1, 2, 4}
    k4 = U.overlap_count(4, 2, n=6, padding=1)
    assert k4.shape == (12, 12)
    assert (k4[1:-1, 1:-1] == 4).all() and k4[0, 0] == 1 and k4[0, 5] == 2


@pytest.mark.parametrize(("k", "s", "p"), [(3, 2, 0), (4, 2, 1), (5, 3, 2), (2, 4, 0), (7, 1, 3)])
def test_overlap_count_equals_transposed_conv_of_ones(k, s, p):
    ones = F.conv_transpose2d(torch.ones(1, 1, 5, 5), torch.ones(1, 1, k, k), stride=s, padding=p)
    assert torch.equal(U.overlap_count(k, s, n=5, padding=p), ones[0, 0].long())
    assert ones.shape[-1] == U.transposed_output_size(5, k, s, p)


def test_overlap_count_rejects_settings_without_output():
    with pytest.raises(ValueError, match="removes the whole output"):
        U.overlap_count(1, 1, n=1, padding=1)
    with pytest.raises(ValueError, match="stride must be an integer >= 1"):
        U.overlap_count(3, 0)


def test_constant_input_shows_which_layers_draw_a_checkerboard():
    outs = U.constant_input_outputs(channels=4, size=12, seed=0)
    assert list(outs) == list(U.LAYERS)
    assert all(y.shape == (4, 24, 24) for y in outs.values())
    flat = {name: U.ripple(y) < 1e-6 for name, y in outs.items()}
    assert flat == {
        "transposed k3 s2": False,
        "transposed k4 s2": False,
        "conv + PixelShuffle": False,
        "ICNR conv + PixelShuffle": True,
        "nearest + conv": True,
    }
    # the pattern has period 2: shifting by one pixel changes the interior, by two it does not
    y = outs["transposed k3 s2"][:, 4:-4, 4:-4]
    assert torch.allclose(y[:, 2:, :], y[:, :-2, :], atol=1e-6)
    assert not torch.allclose(y[:, 1:, :], y[:, :-1, :], atol=1e-3)


def test_upsampling_layers_double_the_size_and_leave_the_global_rng_alone():
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    layers = U.upsampling_layers(channels=2, seed=5)
    assert torch.equal(torch.rand(1), before)
    x = torch.rand(1, 2, 7, 9)
    for layer in layers.values():
        assert layer(x).shape == (1, 2, 14, 18)


def test_ripple_of_flat_and_striped_outputs():
    assert U.ripple(torch.full((2, 12, 12), 3.0)) == 0.0
    assert U.ripple(torch.zeros(1, 10, 10)) == 0.0
    stripes = torch.ones(1, 12, 12)
    stripes[:, :, ::2] = 3.0  # values 1 and 3: range 2, RMS sqrt(5)
    assert U.ripple(stripes) == pytest.approx(2 / 5**0.5)
    with pytest.raises(ValueError, match="leaves nothing"):
        U.ripple(torch.ones(1, 8, 8), border=4)


# ---------------------------------------------------------------------------- interpolation


def test_upscale_methods_shapes_range_and_library_bicubic():
    x = torch.rand(3, 5, 7, generator=torch.Generator().manual_seed(0))
    for m in U.METHODS:
        y = U.upscale(x, 3, m)
        assert y.shape == (3, 15, 21) and 0 <= y.min() and y.max() <= 1
    assert torch.equal(U.upscale(x, 2, "bicubic"), bicubic_up(x, 2))
    assert torch.equal(
        U.upscale(x, 2, "nearest"), x.repeat_interleave(2, 1).repeat_interleave(2, 2)
    )
    assert U.upscale(x[None], 2, "bilinear").shape == (1, 3, 10, 14)
    with pytest.raises(ValueError, match="method must be one of"):
        U.upscale(x, 2, "lanczos")
    with pytest.raises(ValueError, match="positive integer"):
        U.upscale(x, 1.5, "nearest")


def test_interpolation_kernels_interpolate_and_partition_unity():
    ints = np.arange(-3, 4)
    for name in U.KERNELS:
        k = U.interpolation_kernel(name, ints)
        assert k.tolist() == [0, 0, 0, 1, 0, 0, 0], name
        u = np.linspace(0, 1, 11, endpoint=False)  # sum_i k(u - i) = 1 for every u
        total = sum(U.interpolation_kernel(name, u - i) for i in range(-3, 4))
        assert np.allclose(total, 1.0), name
    assert U.interpolation_kernel("cubic", [1.5])[0] == pytest.approx(-0.0625)
    with pytest.raises(ValueError, match="kernel must be one of"):
        U.interpolation_kernel("sinc", [0.0])


def test_kernel_responses_are_sinc_and_sinc_squared():
    f = np.array([0.0, 0.25, 0.5, 0.75, 1.0])
    assert np.allclose(U.kernel_response("nearest", f), np.abs(np.sinc(f)), atol=1e-3)
    assert np.allclose(U.kernel_response("linear", f), np.sinc(f) ** 2, atol=1e-4)
    assert U.kernel_response("cubic", np.array([0.0]))[0] == pytest.approx(1.0, abs=1e-6)


def test_band_energy_of_an_identical_and_a_blank_high_band():
    img = torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(0))
    same = U.band_energy(img, img, 4)
    assert same["high_error"] == 0 and same["low_error"] == 0 and same["high_kept"] == 1
    lr_up = U.upscale(F.avg_pool2d(img[None], 4)[0], 4, "bilinear")
    b = U.band_energy(lr_up, img, 4)
    assert b["high_kept"] < 0.5 < b["high_error"]
    assert 0 < b["hr_high"] < 1
    with pytest.raises(ValueError, match="differ in size"):
        U.band_energy(img[:, :32], img, 4)


def test_spectrum_helpers_shapes():
    img = torch.rand(3, 40, 30)
    spec, extent = U.log_spectrum(img)
    assert spec.shape == (40, 30) and extent[0] == -0.5 and extent[2] > 0
    f, p = U.radial_power(img, n_bins=16)
    assert f.shape == p.shape == (16,) and (p >= 0).all()
    assert U.log_spectrum(img[:1])[0].shape == (40, 30)  # a gray image works too


# ---------------------------------------------------------------------------- bookkeeping


def test_count_macs_of_conv_and_transposed_conv():
    conv = nn.Conv2d(4, 8, 3, padding=1)
    assert U.count_macs(conv, torch.zeros(1, 4, 5, 6)) == 8 * 5 * 6 * 4 * 9
    up = nn.ConvTranspose2d(4, 2, 4, stride=2, padding=1)
    assert U.count_macs(up, torch.zeros(1, 4, 5, 6)) == 4 * 5 * 6 * 2 * 16
    net = nn.Sequential(conv, nn.ReLU(), nn.Conv2d(8, 1, 1))  # the 1x1 conv: 8 MACs per pixel
    assert U.count_macs(net, torch.zeros(2, 4, 5, 6)) == 2 * 30 * (8 * 4 * 9 + 8)


def test_trace_shapes_of_the_generator_upsampling():
    from srgan_edu.models import SRResNet

    g = SRResNet(scale=4, n_blocks=1, channels=8, seed=0).eval()
    seen = dict(U.trace_shapes(g, torch.rand(1, 3, 6, 5), ["head", "upsample.0", "tail"]))
    assert seen == {"head": (1, 8, 6, 5), "upsample.0": (1, 8, 12, 10), "tail": (1, 3, 24, 20)}
    order = [name for name, _ in U.trace_shapes(g, torch.rand(1, 3, 4, 4))]
    assert order == ["head", "blocks", "fuse", "upsample", "tail"]
    with pytest.raises(ValueError, match="no submodules"):
        U.trace_shapes(g, torch.rand(1, 3, 4, 4), ["neck"])


# ---------------------------------------------------------------------------- widget callbacks


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"method": "nearest", "scale": 8, "top": 1.0, "left": 1.0, "size": 16},
        {"method": "bilinear", "scale": 3, "top": 0.0, "left": 0.0, "size": 256},
        {"method": "bicubic", "scale": 2, "size": 1},
    ],
)
def test_explore_interpolation_on_edge_settings(kwargs):
    img = torch.rand(3, 61, 50, generator=torch.Generator().manual_seed(0))
    fig = U.explore_interpolation(image=img, **kwargs)
    assert isinstance(fig, matplotlib.figure.Figure)
    assert len(fig.axes) == 4
    assert "dB" in fig.axes[2].get_title()
    assert plt.get_fignums() == [fig.number]


def test_explore_interpolation_crop_is_aligned_and_inside():
    img = torch.rand(3, 40, 36, generator=torch.Generator().manual_seed(1))
    fig = U.explore_interpolation(image=img, scale=4, top=1.0, left=1.0, size=16)
    hr_crop = fig.axes[0].images[0].get_array()
    lr_crop = fig.axes[1].images[0].get_array()
    assert hr_crop.shape[:2] == (16, 16) and lr_crop.shape[:2] == (4, 4)
    assert "crop at (24, 20)" in fig.axes[0].get_title()
    with pytest.raises(ValueError, match="fractions"):
        U.explore_interpolation(image=img, top=1.5)
    with pytest.raises(ValueError, match="method must be one of"):
        U.explore_interpolation(image=img, method="area")


@pytest.mark.parametrize(
    ("kernel", "stride", "padding", "weights"),
    [
        (3, 2, 0, "random"),
        (4, 2, 1, "ones"),
        (1, 4, 0, "ones"),
        (8, 1, 3, "random"),
        (2, 2, 0, "ones"),
    ],
)
def test_explore_transposed_conv_on_edge_settings(kernel, stride, padding, weights):
    fig = U.explore_transposed_conv(kernel, stride, padding, weights, seed=3)
    assert len(fig.axes) >= 3
    counts = fig.axes[0].images[0].get_array()
    n_out = U.transposed_output_size(8, kernel, stride, padding)
    assert counts.shape == (n_out, n_out)
    if weights == "ones":  # the output on a constant input is then the tap count itself
        assert np.allclose(fig.axes[1].images[0].get_array(), counts)
    assert plt.get_fignums() == [fig.number]


def test_explore_transposed_conv_rejects_impossible_settings():
    with pytest.raises(ValueError, match="removes the whole output"):
        U.explore_transposed_conv(kernel=1, stride=1, padding=8)
    with pytest.raises(ValueError, match="weights must be"):
        U.explore_transposed_conv(weights="zeros")


def test_widgets_build_with_their_controls():
    pytest.importorskip("ipywidgets")
    w = U.interpolation_widget()
    names = {c.description for c in w.children[:-1]}
    assert {"method", "scale", "crop top", "crop left", "crop size"} <= names
    w = U.transposed_conv_widget()
    names = {c.description for c in w.children[:-1]}
    assert {"kernel", "stride", "padding", "weights", "seed"} <= names


def test_figures_of_the_lesson_build():
    assert len(U.plot_kernels().axes) == 2
    assert len(U.plot_pixel_shuffle(3, 2, 2).axes) == 10
    assert len(U.explore_all_layers(channels=2, size=12).axes) == len(U.LAYERS)
