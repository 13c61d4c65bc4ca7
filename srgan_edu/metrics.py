"""Image-quality metrics of the paper's tables: MSE, PSNR, SSIM, on RGB or on the Y channel.

Ledig et al. (2017), Sec. 3.1 / Table 2 report PSNR [dB] and SSIM on the luma (Y) channel after
cutting a 4-pixel strip off every border of the 4x-upscaled image: the SR community's convention,
which :func:`sr_metrics` implements (border = scale, Y of ITU-R BT.601 as MATLAB's
``rgb2ycbcr``). SSIM is Wang et al. (2004): Gaussian window 11 x 11, sigma 1.5, K1 = 0.01,
K2 = 0.03, computed only where the window fits ('valid'), as their MATLAB ``ssim_index`` and
scikit-image's ``structural_similarity(gaussian_weights=True, use_sample_covariance=False)`` do.
:func:`paper_table` prints results laid out like Table 2.

Inputs are tensors in [0, 1], shape (B, C, H, W) (one value per image, a (B,) tensor) or
(C, H, W) (a 0-d tensor). Introduced in lesson 05.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------


def _pair(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """Check two images/batches match; return them as float (B, C, H, W) and 'was single'."""
    for name, t in (("x", x), ("y", y)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t)}")
        if t.dim() not in (3, 4):
            raise ValueError(
                f"{name} must have shape (B, C, H, W) or (C, H, W), got {tuple(t.shape)}"
            )
    if x.shape != y.shape:
        raise ValueError(
            f"the two images must have the same shape, got {tuple(x.shape)} and "
            f"{tuple(y.shape)}; crop or resize one of them (an SR output is scale x the LR size)"
        )
    single = x.dim() == 3
    if single:
        x, y = x.unsqueeze(0), y.unsqueeze(0)
    dtype = torch.promote_types(torch.promote_types(x.dtype, y.dtype), torch.float32)
    return x.to(dtype), y.to(dtype), single


def crop_border(x: torch.Tensor, border: int) -> torch.Tensor:
    """Remove ``border`` pixels from each side of (..., H, W), as the benchmarks shave ``scale``."""
    if border < 0:
        raise ValueError(f"border must be >= 0, got {border}")
    if border == 0:
        return x
    h, w = x.shape[-2:]
    if h <= 2 * border or w <= 2 * border:
        raise ValueError(
            f"cannot crop a border of {border} pixels from a {h}x{w} image: nothing would remain; "
            "use a smaller border or a larger image"
        )
    return x[..., border:-border, border:-border]


def rgb_to_y(x: torch.Tensor) -> torch.Tensor:
    """Luma Y of ITU-R BT.601 as MATLAB's ``rgb2ycbcr``: (B, 3, H, W) -> (B, 1, H, W), /255 scale.

    Y = 16 + 65.481 R + 128.553 G + 24.966 B for R, G, B in [0, 1] gives 16..235 (studio range);
    this returns Y / 255, in [16/255, 235/255]. PSNR on it uses data_range 1.0 (peak 255 on the
    0..255 scale), as the SR benchmarks do. MATLAB rounds Y when its input is uint8; we do not.
    """
    if x.dim() not in (3, 4) or x.shape[-3] != 3:
        raise ValueError(
            f"rgb_to_y expects RGB images of shape (B, 3, H, W) or (3, H, W), got {tuple(x.shape)}"
        )
    r, g, b = x.unbind(dim=-3)
    y = (16.0 + 65.481 * r + 128.553 * g + 24.966 * b) / 255.0
    return y.unsqueeze(-3)


# ----------------------------------------------------------------------------------------------
# MSE and PSNR
# ----------------------------------------------------------------------------------------------


def mse(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean squared error per image: (1 / CHW) sum (x - y)^2, shape (B,) or 0-d."""
    x, y, single = _pair(x, y)
    err = (x - y).pow(2).flatten(1).mean(dim=1)  # (B,)
    return err[0] if single else err


def psnr(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio per image, in dB: 10 log10(data_range^2 / MSE).

    Identical images give +inf. ``data_range`` is the peak value: 1.0 for images in [0, 1]
    (and for Y from :func:`rgb_to_y`, the benchmarks' peak of 255 on the 0..255 scale).
    """
    err = mse(x, y)
    return 10.0 * torch.log10(data_range**2 / err)  # err = 0 -> +inf


def mean_psnr(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> float:
    """PSNR averaged over the images of a batch (the mean of per-image dB, as the tables do)."""
    return float(psnr(x, y, data_range).mean())


# ----------------------------------------------------------------------------------------------
# SSIM (Wang et al. 2004)
# ----------------------------------------------------------------------------------------------


def gaussian_window(sigma: float = 1.5, truncate: float = 3.5) -> torch.Tensor:
    """The 1-D Gaussian of SSIM, radius int(truncate * sigma + 0.5): 11 taps for sigma 1.5.

    Its outer product with itself is MATLAB's ``fspecial('gaussian', 11, 1.5)``.
    """
    radius = int(truncate * sigma + 0.5)
    t = torch.arange(-radius, radius + 1, dtype=torch.float64)
    g = torch.exp(-0.5 * (t / sigma) ** 2)
    return g / g.sum()


def filter_valid(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Filter each channel with the 1-D ``g`` along H, then W, no padding ('valid').

    (B, C, H, W) -> (B, C, H-k+1, W-k+1). Two 1-D passes equal one pass of the 2-D window g g^T
    (the window is separable) at a fraction of the cost; SSIM's local means are these.
    """
    c = x.shape[1]
    x = F.conv2d(x, g.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
    return F.conv2d(x, g.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)


def local_moments(
    x: torch.Tensor, y: torch.Tensor, g: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """SSIM's local statistics under the window ``g g^T``: means, (biased) variances, covariance.

    ``(mu_x, mu_y, var_x, var_y, cov_xy)``, each (B, C, H-k+1, W-k+1), as E[xy] - E[x]E[y].
    """
    mu_x, mu_y = filter_valid(x, g), filter_valid(y, g)
    var_x = filter_valid(x * x, g) - mu_x * mu_x
    var_y = filter_valid(y * y, g) - mu_y * mu_y
    cov_xy = filter_valid(x * y, g) - mu_x * mu_y
    return mu_x, mu_y, var_x, var_y, cov_xy


def ssim_map(
    x: torch.Tensor,
    y: torch.Tensor,
    data_range: float = 1.0,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
) -> torch.Tensor:
    """The local SSIM map (B, C, H-10, W-10) of Wang et al. (2004), eq. (13).

    SSIM = ((2 mu_x mu_y + C1)(2 sigma_xy + C2)) / ((mu_x^2 + mu_y^2 + C1)(sigma_x^2 + sigma_y^2
    + C2)), C1 = (K1 L)^2, C2 = (K2 L)^2, L = data_range; local means and (biased) variances are
    Gaussian-weighted over each window position where the window fits in the image.
    """
    x, y, single = _pair(x, y)
    g = gaussian_window(sigma).to(device=x.device, dtype=x.dtype)
    k = g.numel()
    if x.shape[-1] < k or x.shape[-2] < k:
        raise ValueError(
            f"SSIM needs images of at least {k}x{k} pixels (its Gaussian window), got "
            f"{x.shape[-2]}x{x.shape[-1]}; use larger images or a smaller border crop"
        )
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    mu_x, mu_y, var_x, var_y, cov_xy = local_moments(x, y, g)
    num = (2 * mu_x * mu_y + c1) * (2 * cov_xy + c2)
    den = (mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2)
    s = num / den  # (B, C, H', W')
    return s[0] if single else s


def ssim(
    x: torch.Tensor,
    y: torch.Tensor,
    data_range: float = 1.0,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
) -> torch.Tensor:
    """Mean SSIM per image (mean over channels and positions of :func:`ssim_map`): (B,) or 0-d."""
    s = ssim_map(x, y, data_range, sigma, k1, k2)
    return s.flatten(-3).mean(dim=-1)


def mean_ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> float:
    """SSIM averaged over the images of a batch."""
    return float(ssim(x, y, data_range).mean())


# ----------------------------------------------------------------------------------------------
# the benchmarks' convention
# ----------------------------------------------------------------------------------------------


@dataclass
class SRMetrics:
    """Per-image PSNR [dB] and SSIM of a batch, each a (B,) tensor on the CPU."""

    psnr: torch.Tensor
    ssim: torch.Tensor

    def mean(self) -> tuple[float, float]:
        """(mean PSNR, mean SSIM) over the images: what a table cell reports."""
        return float(self.psnr.mean()), float(self.ssim.mean())

    @staticmethod
    def cat(parts: Sequence[SRMetrics]) -> SRMetrics:
        """Join the per-image values of several batches (e.g. a whole test set)."""
        if not parts:
            raise ValueError("SRMetrics.cat needs at least one batch of results")
        return SRMetrics(
            torch.cat([p.psnr.reshape(-1) for p in parts]),
            torch.cat([p.ssim.reshape(-1) for p in parts]),
        )


def sr_metrics(
    sr: torch.Tensor,
    hr: torch.Tensor,
    scale: int,
    y_channel: bool = True,
    quantize: bool = True,
) -> SRMetrics:
    """PSNR / SSIM of super-resolved vs HR images in [0, 1] as Table 2 measures them.

    With the defaults: both images clipped and rounded to 8-bit levels (as if saved as PNG),
    converted to Y (:func:`rgb_to_y`), ``scale`` pixels cropped from each border, then PSNR and
    SSIM with data_range 1.0 (peak 255). ``y_channel=False`` measures all three RGB channels.
    """
    sr4, hr4, _ = _pair(sr, hr)
    if quantize:
        sr4 = torch.round(sr4.clamp(0.0, 1.0) * 255.0) / 255.0
        hr4 = torch.round(hr4.clamp(0.0, 1.0) * 255.0) / 255.0
    if y_channel:
        sr4, hr4 = rgb_to_y(sr4), rgb_to_y(hr4)  # (B, 1, H, W)
    sr4, hr4 = crop_border(sr4, scale), crop_border(hr4, scale)
    return SRMetrics(
        psnr(sr4, hr4, 1.0).detach().cpu(),
        ssim(sr4, hr4, 1.0).detach().cpu(),
    )


def paper_table(
    results: Mapping[str, Mapping[str, tuple[float, float]]],
    methods_as_rows: bool = False,
    mark_best: bool = True,
    caption: str | None = None,
) -> str:
    """Format ``results[method][dataset] = (psnr, ssim)`` like the paper's Table 2, as text.

    Default layout follows Table 2: one column per method (in the order given, e.g. bicubic,
    SRResNet, SRGAN), two rows per dataset (PSNR [dB] with 2 decimals, SSIM with 4). With
    ``methods_as_rows=True`` it is transposed: one row per method. ``mark_best`` puts a ``*``
    after the highest value of each row (the paper sets it in bold). Missing cells show ``-``.
    """
    methods = list(results)
    datasets: list[str] = []
    for per_dataset in results.values():
        datasets += [d for d in per_dataset if d not in datasets]
    if not methods or not datasets:
        raise ValueError(
            "paper_table needs results like {'bicubic': {'Set5': (28.43, 0.8211)}}, got "
            f"{dict(results)!r}"
        )

    def cells(dataset: str, k: int) -> list[str]:
        """The formatted PSNR (k=0) or SSIM (k=1) of every method on one dataset."""
        vals = [results[m][dataset][k] if dataset in results[m] else None for m in methods]
        found = [v for v in vals if v is not None and not math.isnan(v)]
        best = max(found) if found else None
        out = []
        for v in vals:
            if v is None or math.isnan(v):
                out.append("-" + (" " if mark_best else ""))
                continue
            text = f"{v:.2f}" if k == 0 else f"{v:.4f}"
            star = mark_best and len(found) > 1 and v == best
            out.append(text + ("*" if star else " " if mark_best else ""))
        return out

    metric_names = ("PSNR", "SSIM")
    lines: list[list[str]] = []
    if not methods_as_rows:
        lines.append(["", ""] + methods)
        for d in datasets:
            for k, name in enumerate(metric_names):
                lines.append([d if k == 0 else "", name] + cells(d, k))
        label_cols = 2
    else:
        lines.append([""] + [f"{d} {name}" for d in datasets for name in metric_names])
        columns = [cells(d, k) for d in datasets for k in range(2)]
        for i, m in enumerate(methods):
            lines.append([m] + [col[i] for col in columns])
        label_cols = 1
    widths = [max(len(row[j]) for row in lines) for j in range(len(lines[0]))]
    text = [
        "  ".join(
            cell.ljust(widths[j]) if j < label_cols else cell.rjust(widths[j])
            for j, cell in enumerate(row)
        ).rstrip()
        for row in lines
    ]
    if caption:
        text.insert(0, caption)
    return "\n".join(text)
