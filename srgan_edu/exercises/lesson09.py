"""Checks for the exercises of lesson 09 (evaluation: numbers, pictures and people).

09.1 writes Table 2's PSNR (Ledig et al. 2017, Sec. 3.1): 8-bit levels, luma Y of ITU-R BT.601,
a border of ``scale`` pixels removed, one value per image; 09.2 writes the bootstrap over raters
that gives a MOS its confidence interval. Each check compares with the library
(:func:`srgan_edu.metrics.sr_metrics`, :func:`srgan_edu.teach.mos.bootstrap_over_raters`) and
names the usual mistakes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch

from srgan_edu.exercises.feedback import (
    CheckFailed,
    as_tensor,
    call,
    expect,
    expect_close,
    passed,
)
from srgan_edu.metrics import sr_metrics
from srgan_edu.teach.mos import Rating, bootstrap_over_raters

__all__ = ["bootstrap_interval", "psnr_y"]


# ----------------------------------------------------------------------------------------------
# 09.1 Table 2's PSNR
# ----------------------------------------------------------------------------------------------


def _images(seed: int, batch: int, h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    """An HR batch in [0, 1] and an 'upscaled' one with extra error near the border, and a few
    values outside [0, 1] (as a generator's output can have)."""
    g = torch.Generator().manual_seed(seed)
    hr = torch.rand(batch, 3, h, w, generator=g)
    noise = 0.04 * torch.randn(batch, 3, h, w, generator=g)
    noise[..., :3, :] *= 4  # upscalers err most at the edges
    noise[..., :, -3:] *= 4
    scale = torch.linspace(0.5, 2.0, batch).view(-1, 1, 1, 1)  # a different PSNR per image
    sr = hr + scale * noise
    sr[:, :, h // 2, :5] = 1.3  # outside the range: clip before rounding
    return sr, hr


def _psnr_variant(sr: torch.Tensor, hr: torch.Tensor, border: int, how: str) -> torch.Tensor:
    """Table 2's PSNR with one of the usual mistakes, (B,)."""

    def levels(x: torch.Tensor) -> torch.Tensor:
        if how == "no rounding":
            return x
        if how == "clip only":
            return x.clamp(0, 1)
        if how == "no clip":
            return torch.round(x * 255) / 255
        if how == "floor":
            return torch.floor(x.clamp(0, 1) * 255) / 255
        return torch.round(x.clamp(0, 1) * 255) / 255

    def luma(x: torch.Tensor) -> torch.Tensor:
        r, g, b = x[:, 0:1], x[:, 1:2], x[:, 2:3]
        if how == "rgb":
            return x
        if how == "full range":
            return 0.299 * r + 0.587 * g + 0.114 * b
        y = 16.0 + 65.481 * r + 128.553 * g + 24.966 * b
        return y if how == "no /255" else y / 255.0

    def crop(x: torch.Tensor) -> torch.Tensor:
        if how == "no crop" or border == 0:
            return x
        if how == "one side":
            return x[..., border:, border:]
        return x[..., border:-border, border:-border]

    a, b = crop(luma(levels(sr))), crop(luma(levels(hr)))
    err = ((a - b) ** 2).flatten(1).mean(dim=1)  # (B,)
    if how == "peak 255":
        return 10 * torch.log10(255.0**2 / err)
    if how == "ln":
        return 10 * torch.log(1.0 / err)
    return 10 * torch.log10(1.0 / err)


_PSNR_MISTAKES = {
    "no crop": "you did not remove the border: cut `border` pixels from each of the four sides "
    "(x[..., b:-b, b:-b]) before the MSE",
    "one side": "you cut the border from the top and left only: x[..., b:, b:] keeps the bottom "
    "and right edges; use x[..., b:-b, b:-b]",
    "no rounding": "you skipped the 8-bit levels: clip both images to [0, 1] and round them to "
    "multiples of 1/255 (torch.round(x.clamp(0, 1) * 255) / 255), as saving them as PNG would",
    "clip only": "you skipped the 8-bit levels: after clipping, round both images to multiples "
    "of 1/255 (torch.round(x * 255) / 255), as saving them as PNG would",
    "no clip": "you rounded without clipping: values outside [0, 1] must be clipped first "
    "(x.clamp(0, 1)), as an 8-bit file cannot hold them",
    "floor": "you truncated instead of rounding to 8-bit levels: use torch.round(x * 255), not "
    "floor or .to(torch.uint8), which cuts off the fraction",
    "rgb": "you measured all three RGB channels: Table 2 measures the luma Y only",
    "full range": "you used the full-range luma 0.299 R + 0.587 G + 0.114 B (JPEG's): Table 2 "
    "uses MATLAB's rgb2ycbcr, Y = (16 + 65.481 R + 128.553 G + 24.966 B) / 255",
    "no /255": "your Y is on the 16..235 scale: divide it by 255, so that the peak is 1",
    "peak 255": "you used a peak of 255 on images in [0, 1]: PSNR = 10 log10(1 / MSE) here",
    "ln": "you used the natural logarithm: PSNR = 10 log10(1 / MSE), base 10",
}


def psnr_y(answer: Callable[..., torch.Tensor], *, hidden: bool = False) -> None:
    """Exercise 09.1: ``answer(sr, hr, border)`` equals ``sr_metrics(sr, hr, border).psnr``."""
    cases = [(0, 3, 32, 32, 4)]
    if hidden:
        cases += [(1, 1, 24, 40, 2), (2, 4, 20, 20, 0), (3, 2, 40, 28, 6)]
    for seed, batch, h, w, border in cases:
        sr, hr = _images(seed, batch, h, w)
        want = sr_metrics(sr, hr, border).psnr.to(torch.float64)  # (B,)
        got = call(answer, sr.clone(), hr.clone(), border, what="psnr_y(sr, hr, border)")
        got = as_tensor(got, "psnr_y's result")
        where = f"for a batch of {batch} images of {h}x{w}, border {border}"
        if got.numel() == 1 and batch > 1:
            raise CheckFailed(
                f"{where} psnr_y returned one number: return one PSNR per image, a ({batch},) "
                "tensor (Table 2 averages the per-image values; keep them apart here)"
            )
        expect(
            got.numel() == batch,
            f"{where} psnr_y returned shape {tuple(got.shape)}, expected ({batch},): one PSNR "
            "per image (the mean over channels, rows and columns of each image's squared error)",
        )
        got = got.reshape(-1)
        if float((got - want).abs().max()) <= 1e-3:
            continue
        for how, message in _PSNR_MISTAKES.items():
            if how == "no crop" and border == 0:
                continue
            variant = _psnr_variant(sr, hr, border, how).to(torch.float64)
            if float((got - variant).abs().max()) <= 1e-3:
                raise CheckFailed(f"{where}: {message}.")
        expect_close(
            got,
            want,
            f"{where} your PSNR-Y [dB]",
            rtol=1e-4,
            hint="The steps: clip to [0, 1] and round to 8-bit levels, Y = (16 + 65.481 R + "
            "128.553 G + 24.966 B) / 255, cut the border, 10 log10(1 / MSE) per image.",
        )
    passed("09.1 PSNR on Y, Table 2's way", len(cases), hidden)


# ----------------------------------------------------------------------------------------------
# 09.2 the bootstrap over raters
# ----------------------------------------------------------------------------------------------


def _study(seed: int, raters: int) -> list[np.ndarray]:
    """One method's scores 1..5, rater by rater: a personal bias each, and unequal counts,
    with the harsher raters rating more often (so that pooling and averaging differ)."""
    rng = np.random.default_rng(seed)
    bias = np.sort(rng.normal(0.0, 0.9, raters))  # harsh first
    counts = np.linspace(12, 3, raters).round().astype(int)  # the harsh rate the most
    out = []
    for b, n in zip(bias, counts, strict=True):
        out.append(np.clip(np.round(3.2 + b + rng.normal(0.0, 0.7, n)), 1, 5))
    order = rng.permutation(raters)  # raters in no particular order
    return [out[i] for i in order]


def _ratings(scores_by_rater: Sequence[np.ndarray]) -> list[Rating]:
    """The same scores as the library's Rating rows (raters named so they sort in list order)."""
    return [
        Rating(f"rater{i:03d}", f"{i}-{j}", f"img{j}", "SRGAN", int(s))
        for i, scores in enumerate(scores_by_rater)
        for j, s in enumerate(scores)
    ]


def _variants(
    scores: Sequence[np.ndarray], n_boot: int, seed: int, confidence: float
) -> dict[str, tuple[float, float]]:
    """Intervals as the usual mistakes compute them, from the same random draws."""
    r = len(scores)
    sums = np.array([s.sum() for s in scores])
    counts = np.array([len(s) for s in scores])
    means = sums / counts
    alpha = (1 - confidence) / 2
    draws = np.random.default_rng(seed).integers(0, r, size=(n_boot, r))
    pooled = sums[draws].sum(axis=1) / counts[draws].sum(axis=1)
    flat = np.concatenate(list(scores))
    flat_draws = np.random.default_rng(seed).integers(0, flat.size, size=(n_boot, flat.size))
    rng = np.random.default_rng(seed)
    no_replace = np.array(
        [sums[p].sum() / counts[p].sum() for p in (rng.permutation(r) for _ in range(n_boot))]
    )

    def q(values: np.ndarray, a: float = alpha) -> tuple[float, float]:
        lo, hi = np.quantile(values, [a, 1 - a])
        return float(lo), float(hi)

    return {
        "you resampled single ratings: draw whole raters (their scores stay together), "
        "rng.integers(0, n_raters, size=(n_boot, n_raters))": q(flat[flat_draws].mean(axis=1)),
        "you averaged the raters' means: pool the scores of the drawn raters instead (a rater "
        "with 12 ratings counts 12 times, one drawn twice counts twice)": q(
            means[draws].mean(axis=1)
        ),
        "every resample gave the same MOS: draw the raters *with* replacement (rng.integers), "
        "not a permutation": q(no_replace),
        "your interval ignores `confidence`: the quantiles are (1 - confidence) / 2 and "
        "(1 + confidence) / 2": q(pooled, 0.025),
        "you took the 5 % and 95 % quantiles (a 90 % interval): for confidence 0.95 they are "
        "2.5 % and 97.5 %": q(pooled, 0.05),
    }


def bootstrap_interval(answer: Callable[..., tuple], *, hidden: bool = False) -> None:
    """Exercise 09.2: ``answer(scores_by_rater, n_boot, seed, confidence)`` is the library's
    percentile bootstrap over raters, draw for draw."""
    cases = [(0, 12, 2000, 0, 0.95)]
    if hidden:
        cases += [(1, 5, 500, 7, 0.95), (2, 20, 1000, 3, 0.9), (3, 2, 300, 1, 0.8)]
    what = "bootstrap_interval(scores_by_rater, n_boot, seed, confidence)"
    for data_seed, raters, n_boot, seed, confidence in cases:
        scores = _study(data_seed, raters)
        want = bootstrap_over_raters(_ratings(scores), "SRGAN", confidence, n_boot, seed)
        got = call(answer, [s.copy() for s in scores], n_boot, seed, confidence, what=what)
        ok = isinstance(got, (tuple, list, np.ndarray)) and len(got) == 2
        expect(ok, f"bootstrap_interval should return a pair (low, high), got {got!r}")
        low, high = (float(v) for v in got)
        where = (
            f"for {raters} raters ({sum(len(s) for s in scores)} ratings), n_boot={n_boot}, "
            f"seed={seed}, confidence={confidence}"
        )
        expect(
            math.isfinite(low) and math.isfinite(high),
            f"{where} your interval is ({low}, {high}): expected finite numbers",
        )
        if abs(low - want[0]) <= 1e-9 and abs(high - want[1]) <= 1e-9:
            continue
        if low > high:
            raise CheckFailed(f"{where} your interval ({low:.4f}, {high:.4f}) has low > high")
        for message, (vl, vh) in _variants(scores, n_boot, seed, confidence).items():
            if abs(low - vl) <= 1e-9 and abs(high - vh) <= 1e-9:
                raise CheckFailed(f"{where}: {message}.")
        wide = bootstrap_over_raters(_ratings(scores), "SRGAN", confidence, 20_000, seed + 1)
        if abs(low - wide[0]) < 0.06 and abs(high - wide[1]) < 0.06:
            raise CheckFailed(
                f"{where} your interval ({low:.4f}, {high:.4f}) is close to the expected "
                f"({want[0]:.4f}, {want[1]:.4f}) but not draw for draw: make the draws exactly "
                "as stated, rng = np.random.default_rng(seed), then rng.integers(0, n_raters, "
                "size=(n_boot, n_raters)) (raters numbered in the order of the list), and take "
                "np.quantile of the n_boot pooled means"
            )
        raise CheckFailed(
            f"{where} your interval is ({low:.4f}, {high:.4f}), expected ({want[0]:.4f}, "
            f"{want[1]:.4f}). Each resample: n_raters raters drawn with replacement, the mean "
            "of all their scores pooled; the interval: the (1 - confidence) / 2 and "
            "(1 + confidence) / 2 quantiles of the n_boot resampled means"
        )
    passed("09.2 a bootstrap interval over raters", len(cases), hidden)
