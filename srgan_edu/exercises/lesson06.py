"""Checks for the exercises of lesson 06 (measuring image quality: PSNR and SSIM).

* :func:`psnr` - exercise 06.1: PSNR per image of a batch, 10 log10(MAX^2 / MSE), checked
  against :func:`srgan_edu.metrics.psnr`.
* :func:`ssim_map` - exercise 06.2: the SSIM map of Wang et al. (2004) for a batch, checked
  against :func:`srgan_edu.metrics.ssim_map`.

Both checks recognise the usual slips: the batch averaged into one number, MAX not squared,
20 log10 instead of 10 log10, the natural log, E[x^2] used as the variance, a box window instead
of the Gaussian, constants not scaled by the data range, "same" padding.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from srgan_edu import metrics
from srgan_edu.exercises.feedback import (
    CheckFailed,
    call,
    expect_close,
    expect_shape,
    forbidden,
    passed,
    relative_error,
    result,
    single_threaded,
)
from srgan_edu.metrics import filter_valid, gaussian_window
from srgan_edu.metrics import psnr as library_psnr
from srgan_edu.metrics import ssim_map as library_ssim_map
from srgan_edu.teach import quality

__all__ = ["psnr", "ssim_map"]

_METRICS = [
    (metrics, "mse"),
    (metrics, "local_moments"),
    (metrics, "ssim_map"),
    (quality, "local_moments"),
    (quality, "mse"),
]
"""Library functions that would do the exercises (``psnr`` / ``ssim`` / ``ssim_terms`` call them
through these module attributes, so the names the lesson imported refuse to work too)."""


def _matches(got: torch.Tensor, want: torch.Tensor, rtol: float = 1e-4) -> bool:
    return (
        got.shape == want.shape
        and bool(torch.isfinite(want).all())
        and (relative_error(got, want) <= rtol)
    )


def _image_pair(
    shape: tuple[int, ...], data_range: float, seed: int, noise: float = 0.1
) -> tuple[torch.Tensor, torch.Tensor]:
    """A smooth-ish reference and a distorted copy (gain, offset, noise), float32, within
    [0, data_range] (or [-1, 1] when ``data_range`` is 2)."""
    g = torch.Generator().manual_seed(seed)
    b, c, h, w = shape
    x = torch.rand(b, c, h, w, generator=g)
    x = F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, stride=1)  # (B, C, H, W)
    x = (x - x.amin()) / (x.amax() - x.amin())  # spread over [0, 1]
    levels = torch.rand(b, 1, 1, 1, generator=g) * noise + noise / 2  # a different error per image
    y = (0.85 * x + 0.08 + levels * torch.randn(b, c, h, w, generator=g)).clamp(0, 1)
    if data_range == 2.0:  # signed images in [-1, 1]
        return x * 2 - 1, y * 2 - 1
    return x * data_range, y * data_range


# ----------------------------------------------------------------------------------------------
# exercise 06.1: PSNR
# ----------------------------------------------------------------------------------------------

_PSNR_TITLE = "Exercise 06.1, PSNR by hand"


def _psnr_mistakes(x: torch.Tensor, y: torch.Tensor, peak: float) -> list[tuple[torch.Tensor, str]]:
    """Per-image values of the typical wrong PSNR formulas, with what each one means."""
    x, y = x.double(), y.double()
    err = (x - y).pow(2).flatten(1).mean(dim=1)  # (B,) the MSE per image
    sse = (x - y).pow(2).flatten(1).sum(dim=1)
    mistakes = [
        (
            20 * torch.log10(peak**2 / err),
            "you used 20 log10 with MAX^2 / MSE. The factor 20 belongs to MAX / RMSE; with "
            "MAX^2 / MSE it is 10 log10",
        ),
        (
            10 * torch.log(peak**2 / err),
            "you used the natural logarithm; decibels are 10 * log10 (torch.log10)",
        ),
        (
            10 * torch.log10(peak / err),
            "MAX must be squared: 10 log10(MAX^2 / MSE)",
        ),
        (
            10 * torch.log10(peak**2 / err.sqrt()),
            "you divided by the RMSE: with 10 log10 it is the MSE, the mean of the squared "
            "differences, not its square root",
        ),
        (
            10 * torch.log10(peak**2 / sse),
            "you summed the squared differences; the MSE is their mean over C*H*W values",
        ),
        (
            10 * torch.log10(err / peak**2),
            "wrong sign: PSNR = 10 log10(MAX^2 / MSE) grows as the error shrinks",
        ),
    ]
    if peak != 1.0:
        mistakes.insert(
            0,
            (
                10 * torch.log10(1.0 / err),
                f"you ignored data_range (here {peak:g}): PSNR = 10 log10(data_range^2 / MSE)",
            ),
        )
    return mistakes


@single_threaded
def psnr(answer: Callable[..., Any], *, hidden: bool = False) -> None:
    """Check ``psnr_by_hand(x, y, data_range=1.0)``: one PSNR in dB per image of (B, C, H, W)
    batches, as :func:`srgan_edu.metrics.psnr` computes it."""
    cases = [((3, 3, 8, 8), 1.0, 0, False), ((2, 3, 6, 7), 255.0, 1, False)]
    if hidden:
        cases += [((1, 1, 5, 7), 1.0, 2, False), ((2, 3, 8, 8), 2.0, 3, False)]
        cases += [((3, 2, 6, 6), 1.0, 4, True)]  # one image identical to its reference
    for shape, peak, seed, identical in cases:
        x, y = _image_pair(shape, peak, seed)
        if peak == 255.0:
            x, y = x.round(), y.round()  # 8-bit values 0..255
        if identical:
            y[1] = x[1]
        what = f"psnr_by_hand(x, y of shape {shape}, data_range={peak:g})"
        with forbidden(_METRICS, "psnr_by_hand", "the library's mse / psnr"):
            out = call(answer, x.clone(), y.clone(), data_range=peak, what="psnr_by_hand")
        got = result(out, what)
        want = library_psnr(x.double(), y.double(), data_range=peak)  # (B,)
        b = shape[0]
        if b > 1 and got.numel() == 1:
            raise CheckFailed(
                f"{what} returned one number for {b} images: return one PSNR per image, a "
                f"({b},) tensor. Average the squared error over (C, H, W), dims (1, 2, 3), not "
                "over the whole batch"
            )
        if got.shape == shape[:2] and shape[1] > 1:
            raise CheckFailed(
                f"{what} returned shape {tuple(got.shape)}, one value per image and channel: "
                "average the squared error over the channels too, dims (1, 2, 3)"
            )
        if got.numel() == b and got.shape != want.shape:
            got = got.reshape(b)  # (B, 1) or similar: the values are what matter
        expect_shape(got, want.shape, what)
        finite = torch.isfinite(want)
        if not bool(finite.all()):
            i = int((~finite).nonzero()[0])
            if not (math.isinf(float(got[i])) and float(got[i]) > 0):
                raise CheckFailed(
                    f"{what}: image {i} equals its reference, so its MSE is 0 and its PSNR is "
                    f"+inf; yours gave {float(got[i]):g}. Do not add an epsilon to the MSE "
                    "(torch.log10 of +inf is +inf, which is the right answer)"
                )
        got_f, want_f = got[finite], want[finite]
        if relative_error(got_f, want_f) <= 1e-4:
            continue
        xs, ys = x[finite], y[finite]
        for wrong, message in _psnr_mistakes(xs, ys, peak):
            if _matches(got_f, wrong):
                raise CheckFailed(f"{what}: {message}")
        expect_close(
            got_f,
            want_f,
            what,
            rtol=1e-4,
            hint="PSNR = 10 log10(data_range^2 / MSE), the MSE taken per image over C, H, W.",
        )
    passed(_PSNR_TITLE, len(cases), hidden)


# ----------------------------------------------------------------------------------------------
# exercise 06.2: the SSIM map
# ----------------------------------------------------------------------------------------------

_SSIM_TITLE = "Exercise 06.2, the SSIM map by hand"


def _ssim_variant(
    x: torch.Tensor,
    y: torch.Tensor,
    data_range: float,
    *,
    box: bool = False,
    centred: bool = True,
    scale_constants: bool = True,
    swap_constants: bool = False,
    c3_full: bool = False,
) -> torch.Tensor:
    """SSIM map (float64) with one typical mistake switched on (all off: the right formula)."""
    x, y = x.double(), y.double()
    g = torch.full((11,), 1 / 11, dtype=torch.float64) if box else gaussian_window(1.5)
    peak = data_range if scale_constants else 1.0
    c1, c2 = (0.01 * peak) ** 2, (0.03 * peak) ** 2
    if swap_constants:
        c1, c2 = c2, c1
    mu_x, mu_y = filter_valid(x, g), filter_valid(y, g)
    var_x, var_y, cov = filter_valid(x * x, g), filter_valid(y * y, g), filter_valid(x * y, g)
    if centred:
        var_x, var_y, cov = var_x - mu_x**2, var_y - mu_y**2, cov - mu_x * mu_y
    lum = (2 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1)
    if not c3_full:
        return lum * (2 * cov + c2) / (var_x + var_y + c2)
    sd_x, sd_y = var_x.clamp_min(0).sqrt(), var_y.clamp_min(0).sqrt()
    con = (2 * sd_x * sd_y + c2) / (var_x + var_y + c2)
    return lum * con * (cov + c2) / (sd_x * sd_y + c2)


_SSIM_MISTAKES = (
    (
        {"centred": False},
        "your variances and covariance are E[x^2] and E[xy]: subtract the local means, "
        "sigma_x^2 = E[x^2] - mu_x^2 and sigma_xy = E[xy] - mu_x mu_y",
    ),
    (
        {"box": True},
        "you averaged over each 11 x 11 window with equal weights; SSIM's window is a Gaussian "
        "with sigma 1.5 (gaussian_window(1.5), outer product with itself)",
    ),
    (
        {"scale_constants": False},
        "C1 and C2 grow with the data range: C1 = (0.01 L)^2 and C2 = (0.03 L)^2 with "
        "L = data_range",
    ),
    (
        {"swap_constants": True},
        "C1 and C2 are swapped: C1 = (0.01 L)^2 goes with the means (luminance), "
        "C2 = (0.03 L)^2 with the variances (contrast and structure)",
    ),
    (
        {"c3_full": True},
        "the structure term's constant is C3 = C2 / 2, not C2 (with C3 = C2 / 2, contrast "
        "times structure becomes (2 sigma_xy + C2) / (sigma_x^2 + sigma_y^2 + C2))",
    ),
)


@single_threaded
def ssim_map(answer: Callable[..., Any], *, hidden: bool = False) -> None:
    """Check ``ssim_map_by_hand(x, y, data_range=1.0)``: (B, C, H, W) -> (B, C, H-10, W-10),
    as :func:`srgan_edu.metrics.ssim_map` (Wang et al. 2004, eq. 13, 'valid' positions)."""
    cases = [((2, 3, 24, 24), 1.0, 0), ((1, 1, 20, 16), 255.0, 1)]
    if hidden:
        cases += [((1, 2, 11, 13), 1.0, 2), ((2, 1, 16, 16), 2.0, 3), ((1, 3, 14, 14), 0.0, 4)]
    for shape, peak, seed in cases:
        if peak == 0.0:  # identical images: every position is exactly 1
            x = _image_pair(shape, 1.0, seed)[0]
            y, peak = x.clone(), 1.0
        else:
            x, y = _image_pair(shape, peak, seed)
        b, c, h, w = shape
        what = f"ssim_map_by_hand(x, y of shape {shape}, data_range={peak:g})"
        with forbidden(_METRICS, "ssim_map_by_hand", "the library's SSIM"):
            out = call(answer, x.clone(), y.clone(), data_range=peak, what="ssim_map_by_hand")
        got = result(out, what)
        want = library_ssim_map(x.double(), y.double(), data_range=peak)  # (B, C, H-10, W-10)
        if tuple(got.shape) == shape:
            raise CheckFailed(
                f"{what} has shape {tuple(got.shape)}, the input's: you padded the images. SSIM "
                "is computed only where the 11 x 11 window fits ('valid', no padding): "
                f"(B, C, H - 10, W - 10) = {tuple(want.shape)}"
            )
        if tuple(got.shape) == (b, 1, h - 10, w - 10) and c > 1:
            raise CheckFailed(
                f"{what} has one channel instead of {c}: your convolution summed over the "
                "channels. Filter each channel on its own (groups=C, or reshape to "
                "(B*C, 1, H, W))"
            )
        expect_shape(got, want.shape, what)
        if not bool(torch.isfinite(got).all()):
            raise CheckFailed(
                f"{what} contains NaN or inf: if you take square roots of the variances, clamp "
                "them at 0 first (rounding can make E[x^2] - mu^2 slightly negative), or use "
                "the combined form (2 sigma_xy + C2) / (sigma_x^2 + sigma_y^2 + C2)"
            )
        if relative_error(got, want) <= 5e-4:  # float32 arithmetic is off by up to ~1e-5
            continue
        for options, message in _SSIM_MISTAKES:
            wrong = _ssim_variant(x, y, peak, **options)
            if _matches(got, wrong, rtol=5e-4) and relative_error(wrong, want) > 1e-3:
                raise CheckFailed(f"{what}: {message}")
        expect_close(
            got,
            want,
            what,
            rtol=5e-4,
            hint="SSIM = (2 mu_x mu_y + C1)(2 sigma_xy + C2) / ((mu_x^2 + mu_y^2 + C1)"
            "(sigma_x^2 + sigma_y^2 + C2)), local statistics weighted by the 11 x 11 Gaussian.",
        )
    passed(_SSIM_TITLE, len(cases), hidden)
