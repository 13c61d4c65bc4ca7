"""Tests for srgan_edu.degrade: bicubic vs Pillow and hand-derived values, blur vs scipy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import ndimage

from srgan_edu.degrade import (
    bicubic_down,
    bicubic_up,
    blur_downsample,
    cubic_kernel,
    default_sigma,
    degrade,
    gaussian_blur,
    imresize,
    resize_matrix,
)


def pil_bicubic(a: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    """Pillow's bicubic (a = -0.5, antialiased when shrinking) on a float 'F' image."""
    img = Image.fromarray(np.asarray(a, dtype=np.float32), mode="F")
    return np.asarray(img.resize((size_hw[1], size_hw[0]), Image.BICUBIC), dtype=np.float64)


def ours(a: np.ndarray, scale_or_size) -> np.ndarray:
    x = torch.from_numpy(np.asarray(a, dtype=np.float64))[None, None]  # (1, 1, H, W)
    return imresize(x, scale_or_size)[0, 0].numpy()


def pil_matlab_style(a: np.ndarray, out_hw: tuple[int, int], pad: int) -> np.ndarray:
    """MATLAB's imresize from Pillow: mirror-pad (edge repeated), resize, cut the pad back off.

    Pillow renormalises the weights that fall outside the image, MATLAB mirrors the image instead.
    After a symmetric pad of ``pad`` pixels, no kernel of the crop reaches Pillow's edge, and with
    pad * scale an integer the pixel-centre mappings of the two line up exactly, so the crop must
    equal MATLAB's result on the whole image, borders included.
    """
    h, w = a.shape
    sh, sw = out_hw[0] / h, out_hw[1] / w
    ph, pw = pad * sh, pad * sw
    assert ph == int(ph) and pw == int(pw)
    big = pil_bicubic(
        np.pad(a, pad, mode="symmetric"), (out_hw[0] + 2 * int(ph), out_hw[1] + 2 * int(pw))
    )
    return big[int(ph) : int(ph) + out_hw[0], int(pw) : int(pw) + out_hw[1]]


@pytest.fixture(scope="module")
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


# ---------------------------------------------------------------------------------------------
# the cubic kernel and the weight matrices, by hand
# ---------------------------------------------------------------------------------------------


def test_cubic_kernel_known_values():
    # a = -0.5: (1.5|t|^3 - 2.5|t|^2 + 1) on |t| <= 1, (-0.5|t|^3 + 2.5|t|^2 - 4|t| + 2) on 1..2
    # k(0.5) = 0.1875 - 0.625 + 1 = 0.5625 ; k(1.5) = -1.6875 + 5.625 - 6 + 2 = -0.0625
    t = torch.tensor([0.0, 0.5, 1.0, 1.5, 2.0, 2.5, -0.5, -1.5], dtype=torch.float64)
    expected = torch.tensor(
        [1.0, 0.5625, 0.0, -0.0625, 0.0, 0.0, 0.5625, -0.0625], dtype=torch.float64
    )
    torch.testing.assert_close(cubic_kernel(t), expected, rtol=0, atol=1e-15)


def test_cubic_kernel_partition_of_unity():
    # the integer shifts of the kernel sum to 1 everywhere, so interpolation keeps constants
    t = torch.linspace(0, 1, 17, dtype=torch.float64)
    total = sum(cubic_kernel(t - k) for k in range(-3, 4))
    torch.testing.assert_close(total, torch.ones_like(t), rtol=0, atol=1e-14)


@pytest.mark.parametrize(
    "n_in,n_out,scale,antialias",
    [
        (10, 20, 2.0, True),
        (12, 4, 1 / 3, True),
        (12, 4, 1 / 3, False),
        (7, 11, None, True),
        (3, 1, 0.25, True),
    ],
)
def test_resize_matrix_rows_sum_to_one(n_in, n_out, scale, antialias):
    m = resize_matrix(n_in, n_out, scale, antialias)
    assert m.shape == (n_out, n_in) and m.dtype == torch.float64
    torch.testing.assert_close(
        m.sum(dim=1), torch.ones(n_out, dtype=torch.float64), rtol=0, atol=1e-12
    )


def test_downsample_by_two_weights_by_hand():
    # Shrinking by 2 with antialiasing stretches the kernel to k(t / 2) / 2 (support 4 input
    # pixels each side). Output pixel j sits at input coordinate 2j + 0.5, so input pixels
    # 2j-3 .. 2j+4 are at distances 3.5, 2.5, 1.5, 0.5, 0.5, 1.5, 2.5, 3.5, with weights
    # k(1.75)/2, k(1.25)/2, k(0.75)/2, k(0.25)/2 (mirrored), where
    # k(0.25) = 0.8671875, k(0.75) = 0.2265625, k(1.25) = -0.0703125, k(1.75) = -0.0234375.
    # These already sum to 1, so normalisation leaves them unchanged.
    half = [-0.01171875, -0.03515625, 0.11328125, 0.43359375]
    expected = torch.tensor(half + half[::-1], dtype=torch.float64)
    m = resize_matrix(16, 8, 0.5, antialias=True)
    for j in (2, 3, 4, 5):  # rows whose taps stay inside the image
        torch.testing.assert_close(m[j, 2 * j - 3 : 2 * j + 5], expected, rtol=0, atol=1e-15)
        assert m[j].abs().sum() == pytest.approx(expected.abs().sum().item(), abs=1e-15)
    # row 0 reaches pixels -3..-1, which mirror (edge repeated) onto 2, 1, 0
    row0 = torch.zeros(16, dtype=torch.float64)
    row0[:5] = expected[3:]
    row0[[2, 1, 0]] += expected[:3]
    torch.testing.assert_close(m[0], row0, rtol=0, atol=1e-15)


def test_no_antialias_downsample_uses_plain_kernel():
    # without antialiasing, shrinking by 2 just samples the cubic at u = 2j + 0.5:
    # taps at distances 1.5, 0.5, 0.5, 1.5 -> -0.0625, 0.5625, 0.5625, -0.0625
    m = resize_matrix(16, 8, 0.5, antialias=False)
    expected = torch.tensor([-0.0625, 0.5625, 0.5625, -0.0625], dtype=torch.float64)
    torch.testing.assert_close(m[3, 5:9], expected, rtol=0, atol=1e-15)


# ---------------------------------------------------------------------------------------------
# against Pillow (an independent bicubic with the same kernel and pixel-centre mapping)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_upsample_matches_pillow(rng, scale):
    a = rng.random((9, 11))
    out_hw = (9 * scale, 11 * scale)
    got = ours(a, float(scale))
    # interior: kernels never reach past the image, Pillow and MATLAB agree directly
    ref = pil_bicubic(a, out_hw)
    m = 2 * scale
    np.testing.assert_allclose(got[m:-m, m:-m], ref[m:-m, m:-m], rtol=0, atol=1e-6)
    # at the border they differ (Pillow renormalises, MATLAB mirrors) ...
    assert np.abs(got - ref).max() > 1e-4
    # ... and mirror-padding before Pillow reproduces MATLAB on the whole image
    np.testing.assert_allclose(got, pil_matlab_style(a, out_hw, pad=4), rtol=0, atol=1e-6)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_antialiased_downsample_matches_pillow(rng, scale):
    # Pillow also antialiases by widening the kernel support by 1 / scale
    a = rng.random((8 * scale, 10 * scale))
    got = ours(a, 1.0 / scale)
    assert got.shape == (8, 10)
    np.testing.assert_allclose(
        got[3:-3, 3:-3], pil_bicubic(a, (8, 10))[3:-3, 3:-3], rtol=0, atol=1e-6
    )
    np.testing.assert_allclose(got, pil_matlab_style(a, (8, 10), pad=4 * scale), rtol=0, atol=1e-6)


def test_non_integer_scales_match_pillow(rng):
    a = rng.random((10, 12))
    np.testing.assert_allclose(
        ours(a, 1.5), pil_matlab_style(a, (15, 18), pad=6), rtol=0, atol=1e-6
    )
    b = rng.random((16, 20))
    np.testing.assert_allclose(
        ours(b, 0.75), pil_matlab_style(b, (12, 15), pad=8), rtol=0, atol=1e-6
    )
    # an output size: the scale of each axis is out / in
    got = ours(b, (12, 15))
    np.testing.assert_allclose(got, pil_matlab_style(b, (12, 15), pad=8), rtol=0, atol=1e-6)


def test_real_image_matches_pillow():
    cbook = pytest.importorskip("matplotlib.cbook")
    with cbook.get_sample_data("grace_hopper.jpg") as f:
        img = Image.open(f).convert("L").resize((48, 60), Image.BILINEAR)
    a = np.asarray(img, dtype=np.float64) / 255.0
    np.testing.assert_allclose(ours(a, 0.25), pil_matlab_style(a, (15, 12), pad=8), atol=1e-6)
    x = torch.from_numpy(a).float()[None, None]
    lr = bicubic_down(x, 4)
    up = bicubic_up(lr, 4, clamp=False)[0, 0].numpy()
    np.testing.assert_allclose(up, pil_matlab_style(lr[0, 0].numpy(), (60, 48), pad=3), atol=2e-6)


# ---------------------------------------------------------------------------------------------
# simple inputs with known answers
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("scale", [0.25, 1 / 3, 0.5, 0.7, 1.0, 1.6, 2.0, 4.0])
def test_constant_stays_constant(scale):
    x = torch.full((1, 3, 13, 17), 0.37, dtype=torch.float64)
    y = imresize(x, scale)
    torch.testing.assert_close(y, torch.full_like(y, 0.37), rtol=0, atol=1e-12)


@pytest.mark.parametrize("scale", [0.25, 0.5, 2.0, 3.0])
def test_linear_ramp_stays_linear_inside(scale):
    # symmetric kernels reproduce linear functions: output j equals its input coordinate
    # u = (j + 0.5) / scale - 0.5 wherever the kernel stays inside the image
    n = 48
    ramp = torch.arange(n, dtype=torch.float64).repeat(4, 1)[None, None]  # (1, 1, 4, 48)
    y = imresize(ramp, scale)[0, 0, 0]  # one row
    u = (torch.arange(y.numel(), dtype=torch.float64) + 0.5) / scale - 0.5
    reach = 2.0 / min(scale, 1.0) + 1
    inside = (u > reach) & (u < n - 1 - reach)
    assert inside.sum() > 5
    torch.testing.assert_close(y[inside], u[inside], rtol=0, atol=1e-10)


def test_scale_one_is_identity(rng):
    x = torch.from_numpy(rng.random((2, 3, 7, 9)))
    torch.testing.assert_close(imresize(x, 1.0), x, rtol=0, atol=1e-14)


# ---------------------------------------------------------------------------------------------
# shapes, batching, dtype, device
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_shapes_integer_scales(scale):
    x = torch.rand(2, 3, 25, 31)
    hl, wl = -(-25 // scale), -(-31 // scale)  # ceil, as MATLAB
    assert bicubic_down(x, scale).shape == (2, 3, hl, wl)
    assert degrade(x, scale).shape == (2, 3, hl, wl)
    assert degrade(x, scale, method="gaussian").shape == (2, 3, hl, wl)
    assert bicubic_up(x, scale).shape == (2, 3, 25 * scale, 31 * scale)


def test_shapes_non_integer_and_size():
    x = torch.rand(2, 3, 25, 31)
    assert imresize(x, 0.3).shape == (2, 3, 8, 10)  # ceil(7.5), ceil(9.3)
    assert imresize(x, 1.7).shape == (2, 3, 43, 53)  # ceil(42.5), ceil(52.7)
    assert imresize(x, (10, 40)).shape == (2, 3, 10, 40)
    assert imresize(torch.rand(1, 1, 48, 96), 1 / 3).shape == (1, 1, 16, 32)
    assert imresize(x[0], 0.5).shape == (3, 13, 16)  # a single (C, H, W) image stays 3-D


def test_batched_equals_per_image():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 3, 20, 24, generator=g)
    for fn in (
        lambda t: bicubic_down(t, 4),
        lambda t: bicubic_up(t, 2),
        lambda t: imresize(t, 0.6),
        lambda t: blur_downsample(t, 3),
    ):
        batched = fn(x)
        single = torch.cat([fn(x[i : i + 1]) for i in range(3)])
        torch.testing.assert_close(batched, single, rtol=0, atol=1e-6)


def test_dtype_is_kept():
    x = torch.rand(1, 3, 12, 12)
    assert imresize(x, 0.5).dtype == torch.float32
    assert imresize(x.double(), 0.5).dtype == torch.float64
    assert gaussian_blur(x.double(), 1.0).dtype == torch.float64


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    x = torch.rand(2, 3, 32, 32)
    for method in ("bicubic", "gaussian"):
        got = degrade(x.cuda(), 4, method=method)
        assert got.device.type == "cuda"
        torch.testing.assert_close(got.cpu(), degrade(x, 4, method=method), rtol=0, atol=1e-5)


# ---------------------------------------------------------------------------------------------
# Gaussian blur + downsampling (the paper's description)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "mode,scipy_mode", [("symmetric", "reflect"), ("reflect", "mirror"), ("replicate", "nearest")]
)
@pytest.mark.parametrize("sigma", [0.6, 1.5, 2.0])
def test_gaussian_blur_matches_scipy(rng, mode, scipy_mode, sigma):
    a = rng.random((2, 3, 15, 18))
    got = gaussian_blur(torch.from_numpy(a), sigma, mode=mode).numpy()
    ref = ndimage.gaussian_filter(a, sigma=(0, 0, sigma, sigma), mode=scipy_mode)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12)


def test_gaussian_blur_kernel_size(rng):
    a = rng.random((1, 1, 16, 16))
    # scipy's radius argument gives the same truncated kernel as our kernel_size = 2 r + 1
    got = gaussian_blur(torch.from_numpy(a), 2.0, kernel_size=5).numpy()
    ref = ndimage.gaussian_filter(a, sigma=(0, 0, 2.0, 2.0), mode="reflect", radius=(0, 0, 2, 2))
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="odd"):
        gaussian_blur(torch.from_numpy(a), 1.0, kernel_size=4)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_blur_downsample_is_blur_then_every_rth_pixel(rng, scale):
    a = rng.random((1, 3, 22, 25))
    sigma = default_sigma(scale)
    assert sigma == scale / 2
    blurred = ndimage.gaussian_filter(a, sigma=(0, 0, sigma, sigma), mode="reflect")
    got = blur_downsample(torch.from_numpy(a), scale).numpy()
    np.testing.assert_allclose(got, blurred[..., ::scale, ::scale], rtol=0, atol=1e-12)
    off = scale - 1
    got = blur_downsample(torch.from_numpy(a), scale, sigma=1.0, offset=off).numpy()
    blurred = ndimage.gaussian_filter(a, sigma=(0, 0, 1.0, 1.0), mode="reflect")
    np.testing.assert_allclose(got, blurred[..., off::scale, off::scale], rtol=0, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# degrade(): the entry point, and the errors a learner can cause
# ---------------------------------------------------------------------------------------------


def test_degrade_range_and_quantize():
    g = torch.Generator().manual_seed(1)
    blocks = (torch.rand(2, 3, 4, 4, generator=g) > 0.5).float()
    hr = blocks.repeat_interleave(8, dim=2).repeat_interleave(8, dim=3)  # hard edges: ringing
    raw = imresize(hr, 0.25)
    assert raw.min() < 0 and raw.max() > 1
    for method in ("bicubic", "gaussian"):
        lr = degrade(hr, 4, method=method)
        assert lr.min() >= 0 and lr.max() <= 1
        q = degrade(hr, 4, method=method, quantize=True)
        torch.testing.assert_close(q * 255, torch.round(q * 255), rtol=0, atol=1e-4)
        assert (q - lr).abs().max() <= 0.5 / 255 + 1e-6
    torch.testing.assert_close(degrade(hr, 4), raw.clamp(0, 1))


def test_degrade_errors_speak_to_the_learner():
    x = torch.rand(1, 3, 16, 16)
    with pytest.raises(ValueError, match="signed_to_unit"):
        degrade(x * 2 - 1, 4)
    with pytest.raises(ValueError, match="bicubic"):
        degrade(x, 4, method="nearest")
    with pytest.raises(ValueError, match="positive integer"):
        degrade(x, 2.5)
    with pytest.raises(TypeError, match="float"):
        degrade((x * 255).to(torch.uint8), 4)
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        imresize(torch.rand(16, 16), 0.5)
    with pytest.raises(ValueError, match="output size"):
        imresize(x, (8, 8, 8))
    with pytest.raises(ValueError, match="offset"):
        blur_downsample(x, 2, offset=2)
