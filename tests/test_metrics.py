"""Tests for srgan_edu.metrics: MSE / PSNR / SSIM / RGB->Y against scikit-image, and the table."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image
from skimage.color import rgb2ycbcr
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from srgan_edu.metrics import (
    SRMetrics,
    crop_border,
    gaussian_window,
    mean_psnr,
    mean_ssim,
    mse,
    paper_table,
    psnr,
    rgb_to_y,
    sr_metrics,
    ssim,
    ssim_map,
)

TOL = 1e-4


def sk_ssim(a: np.ndarray, b: np.ndarray, channel_axis: int | None = None) -> float:
    """Wang et al.'s SSIM as scikit-image computes it with the paper's settings."""
    return structural_similarity(
        a,
        b,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=1.0,
        channel_axis=channel_axis,
    )


def sk_y(x: np.ndarray) -> np.ndarray:
    """(3, H, W) in [0, 1] -> Y / 255 with scikit-image (its Y is on the 16..235 scale)."""
    return rgb2ycbcr(x.transpose(1, 2, 0))[..., 0] / 255.0


@pytest.fixture(scope="module")
def pairs() -> tuple[torch.Tensor, torch.Tensor]:
    """A batch of 3 random images and noisy, slightly shifted versions of them, (3, 3, 24, 30)."""
    g = torch.Generator().manual_seed(7)
    x = torch.rand(3, 3, 24, 30, generator=g)
    y = (x + 0.1 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    y[1] = (0.8 * x[1] + 0.1).clamp(0, 1)  # a contrast/brightness change, not only noise
    return x, y


@pytest.fixture(scope="module")
def photo() -> tuple[torch.Tensor, torch.Tensor]:
    """A real photograph (Grace Hopper, shipped with matplotlib) and a blurred, JPEG'd copy."""
    cbook = pytest.importorskip("matplotlib.cbook")
    with cbook.get_sample_data("grace_hopper.jpg") as f:
        img = Image.open(f).convert("RGB").resize((48, 56), Image.BICUBIC)
    small = img.resize((12, 14), Image.BICUBIC).resize((48, 56), Image.BICUBIC)  # an SR-ish guess
    hr = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1)
    sr = torch.from_numpy(np.asarray(small, dtype=np.float32) / 255.0).permute(2, 0, 1)
    return sr, hr  # (3, 56, 48) each


# ---------------------------------------------------------------------------------------------
# MSE and PSNR
# ---------------------------------------------------------------------------------------------


def test_mse_per_image_matches_torch(pairs):
    x, y = pairs
    got = mse(x, y)
    assert got.shape == (3,)
    ref = torch.stack([torch.nn.functional.mse_loss(x[i], y[i]) for i in range(3)])
    torch.testing.assert_close(got, ref)


def test_psnr_matches_skimage_on_random(pairs):
    x, y = pairs
    got = psnr(x, y)
    assert got.shape == (3,)
    for i in range(3):
        ref = peak_signal_noise_ratio(y[i].numpy(), x[i].numpy(), data_range=1.0)
        assert got[i].item() == pytest.approx(ref, abs=TOL)
    assert mean_psnr(x, y) == pytest.approx(got.mean().item())


def test_psnr_data_range_scales():
    g = torch.Generator().manual_seed(3)
    x, y = torch.rand(2, 1, 16, 16, generator=g), torch.rand(2, 1, 16, 16, generator=g)
    torch.testing.assert_close(psnr(x * 255, y * 255, data_range=255.0), psnr(x, y))
    # halving the peak costs 20 log10(2) dB
    torch.testing.assert_close(psnr(x, y) - psnr(x, y, 0.5), torch.full((2,), 20 * math.log10(2)))


def test_identical_images():
    x = torch.rand(2, 3, 16, 16)
    assert torch.isinf(psnr(x, x)).all() and (psnr(x, x) > 0).all()
    torch.testing.assert_close(ssim(x, x), torch.ones(2))
    assert torch.isinf(sr_metrics(x, x, scale=2).psnr).all()


# ---------------------------------------------------------------------------------------------
# SSIM
# ---------------------------------------------------------------------------------------------


def test_gaussian_window_is_wang_et_al():
    g = gaussian_window()
    assert g.numel() == 11
    t = torch.arange(-5, 6, dtype=torch.float64)
    ref = torch.exp(-(t**2) / (2 * 1.5**2))
    torch.testing.assert_close(g, ref / ref.sum())


def test_ssim_matches_skimage_on_random_rgb_and_gray(pairs):
    x, y = pairs
    got = ssim(x, y)
    assert got.shape == (3,)
    for i in range(3):
        ref = sk_ssim(x[i].numpy(), y[i].numpy(), channel_axis=0)
        assert got[i].item() == pytest.approx(ref, abs=TOL)
    gray = ssim(x[:, :1], y[:, :1])
    for i in range(3):
        assert gray[i].item() == pytest.approx(sk_ssim(x[i, 0].numpy(), y[i, 0].numpy()), abs=TOL)
    assert mean_ssim(x, y) == pytest.approx(got.mean().item())


def test_ssim_constants_on_dark_low_contrast_images():
    # where means and variances are tiny, C1 = (0.01 L)^2 and C2 = (0.03 L)^2 dominate, so this
    # pins K1, K2 and the window: changing any of them moves SSIM by far more than the tolerance
    g = torch.Generator().manual_seed(0)
    x = 0.04 * torch.rand(2, 3, 24, 30, generator=g)
    y = (x + 0.01 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    got = ssim(x, y)
    for i in range(2):
        assert got[i].item() == pytest.approx(sk_ssim(x[i].numpy(), y[i].numpy(), 0), abs=TOL)
    for changed in (ssim(x, y, k1=0.02), ssim(x, y, k2=0.035), ssim(x, y, sigma=1.4)):
        assert (changed - got).abs().min() > 1.5 * TOL


def test_ssim_and_psnr_match_skimage_on_a_photo(photo):
    sr, hr = photo
    ref_ssim = sk_ssim(sr.numpy(), hr.numpy(), channel_axis=0)
    assert ssim(sr, hr).item() == pytest.approx(ref_ssim, abs=TOL)
    assert 0.3 < ref_ssim < 0.99  # a real, imperfect reconstruction: not a trivial case
    ref_psnr = peak_signal_noise_ratio(hr.numpy(), sr.numpy(), data_range=1.0)
    assert psnr(sr, hr).item() == pytest.approx(ref_psnr, abs=TOL)
    # and on the Y channel, with data_range 1.0 on the /255 scale
    ys, yh = sk_y(sr.numpy()), sk_y(hr.numpy())
    assert ssim(rgb_to_y(sr), rgb_to_y(hr)).item() == pytest.approx(sk_ssim(ys, yh), abs=TOL)
    ref = peak_signal_noise_ratio(yh, ys, data_range=1.0)
    assert psnr(rgb_to_y(sr), rgb_to_y(hr)).item() == pytest.approx(ref, abs=TOL)


def test_ssim_map_is_valid_filtered(pairs):
    x, y = pairs
    assert ssim_map(x, y).shape == (3, 3, 24 - 10, 30 - 10)  # no padding: 5 pixels lost per side
    assert ssim_map(x[0], y[0]).shape == (3, 14, 20)


def test_single_image_gives_scalars(pairs):
    x, y = pairs
    assert (
        psnr(x[0], y[0]).shape == ()
        and ssim(x[0], y[0]).shape == ()
        and mse(x[0], y[0]).shape == ()
    )
    assert psnr(x[0], y[0]).item() == pytest.approx(psnr(x, y)[0].item())
    assert ssim(x[0], y[0]).item() == pytest.approx(ssim(x, y)[0].item())


# ---------------------------------------------------------------------------------------------
# Y channel, border, the benchmarks' convention
# ---------------------------------------------------------------------------------------------


def test_rgb_to_y_matches_skimage(pairs):
    x, _ = pairs
    y = rgb_to_y(x)
    assert y.shape == (3, 1, 24, 30)
    for i in range(3):
        np.testing.assert_allclose(y[i, 0].numpy(), sk_y(x[i].numpy()), rtol=0, atol=1e-6)
    # studio range: black -> 16, white -> 235 (on the 0..255 scale)
    corners = torch.tensor([0.0, 1.0]).view(2, 1, 1, 1).expand(2, 3, 1, 1)
    torch.testing.assert_close(rgb_to_y(corners).flatten() * 255, torch.tensor([16.0, 235.0]))
    with pytest.raises(ValueError, match="RGB"):
        rgb_to_y(torch.rand(2, 1, 8, 8))


def test_crop_border():
    x = torch.arange(2 * 3 * 8 * 10, dtype=torch.float32).view(2, 3, 8, 10)
    c = crop_border(x, 2)
    assert c.shape == (2, 3, 4, 6)
    torch.testing.assert_close(c, x[:, :, 2:6, 2:8])
    assert crop_border(x, 0) is x
    with pytest.raises(ValueError, match="nothing would remain"):
        crop_border(x, 4)


def test_sr_metrics_follow_the_benchmark_convention(photo):
    sr, hr = photo
    g = torch.Generator().manual_seed(0)
    sr_b = torch.stack([sr, (sr + 0.02 * torch.randn(sr.shape, generator=g)).clamp(0, 1)])
    hr_b = torch.stack([hr, hr])
    got = sr_metrics(sr_b, hr_b, scale=4)
    assert isinstance(got, SRMetrics) and got.psnr.shape == (2,) and got.ssim.shape == (2,)
    for i in range(2):
        # the reference pipeline, step by step with numpy/scikit-image
        s8 = np.round(sr_b[i].numpy() * 255) / 255
        h8 = np.round(hr_b[i].numpy() * 255) / 255
        ys, yh = sk_y(s8)[4:-4, 4:-4], sk_y(h8)[4:-4, 4:-4]
        assert got.psnr[i].item() == pytest.approx(
            peak_signal_noise_ratio(yh, ys, data_range=1.0), abs=TOL
        )
        assert got.ssim[i].item() == pytest.approx(sk_ssim(ys, yh), abs=TOL)
    rgb = sr_metrics(sr_b, hr_b, scale=4, y_channel=False, quantize=False)
    ref = peak_signal_noise_ratio(
        hr[:, 4:-4, 4:-4].numpy(), sr[:, 4:-4, 4:-4].numpy(), data_range=1
    )
    assert rgb.psnr[0].item() == pytest.approx(ref, abs=TOL)
    assert rgb.psnr[0] != got.psnr[0]  # Y and RGB give different numbers


def test_srmetrics_cat_and_mean():
    a = SRMetrics(torch.tensor([30.0, 32.0]), torch.tensor([0.8, 0.9]))
    b = SRMetrics(torch.tensor([28.0]), torch.tensor([0.7]))
    both = SRMetrics.cat([a, b])
    assert both.psnr.tolist() == [30.0, 32.0, 28.0]
    assert both.mean() == pytest.approx((30.0, 0.8))
    with pytest.raises(ValueError):
        SRMetrics.cat([])


def test_errors_speak_to_the_learner():
    with pytest.raises(ValueError, match="same shape"):
        psnr(torch.rand(1, 3, 16, 16), torch.rand(1, 3, 64, 64))
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8))
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        mse(torch.rand(8, 8), torch.rand(8, 8))


# ---------------------------------------------------------------------------------------------
# the paper's table
# ---------------------------------------------------------------------------------------------

RESULTS = {
    "bicubic": {"Set5": (28.43, 0.8211), "Set14": (25.99, 0.7486)},
    "SRResNet": {"Set5": (32.05, 0.9019), "Set14": (28.49, 0.8184)},
    "SRGAN": {"Set5": (29.40, 0.8472)},
}


def test_paper_table_layout_and_numbers():
    text = paper_table(RESULTS, caption="4x upscaling")
    lines = text.splitlines()
    assert lines[0] == "4x upscaling"
    assert lines[1].split() == ["bicubic", "SRResNet", "SRGAN"]  # methods are columns
    assert lines[2].split() == ["Set5", "PSNR", "28.43", "32.05*", "29.40"]
    assert lines[3].split() == ["SSIM", "0.8211", "0.9019*", "0.8472"]
    assert lines[4].split() == ["Set14", "PSNR", "25.99", "28.49*", "-"]
    assert lines[5].split() == ["SSIM", "0.7486", "0.8184*", "-"]
    # numbers are right-aligned in their columns (the star hangs one place to the right)
    assert lines[2].index("28.43") + 5 == lines[3].index("0.8211") + 6
    assert lines[2].index("32.05*") == lines[3].index("0.9019*") + 1


def test_paper_table_transposed_and_unmarked():
    text = paper_table(RESULTS, methods_as_rows=True, mark_best=False)
    lines = text.splitlines()
    assert lines[0].split() == ["Set5", "PSNR", "Set5", "SSIM", "Set14", "PSNR", "Set14", "SSIM"]
    assert lines[1].split() == ["bicubic", "28.43", "0.8211", "25.99", "0.7486"]
    assert lines[3].split() == ["SRGAN", "29.40", "0.8472", "-", "-"]
    assert "*" not in text
    with pytest.raises(ValueError, match="paper_table needs"):
        paper_table({})
