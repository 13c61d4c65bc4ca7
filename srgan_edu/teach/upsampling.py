"""Lesson 05 (Upsampling): interpolation, sub-pixel convolution and transposed convolution.

What the lesson computes, kept here so that tests reach it:

* Interpolation: :func:`upscale` (nearest / bilinear from ``F.interpolate``, bicubic from
  :func:`srgan_edu.degrade.bicubic_up`), the 1-D kernels behind them
  (:func:`interpolation_kernel`, :func:`kernel_response`), and what the upscaled image holds in the
  frequency domain (:func:`log_spectrum`, :func:`radial_power`, :func:`band_energy`).
* Sub-pixel convolution (Shi et al. 2016): the periodic shuffle written with reshape / permute
  (:func:`pixel_shuffle`, :func:`pixel_unshuffle`), which input channel lands on which output pixel
  (:func:`source_channel_map`, :func:`plot_pixel_shuffle`), and the ICNR initialisation
  (:func:`icnr_`, Aitken et al. 2017) that starts it without a checkerboard.
* Transposed convolution and its checkerboard (Odena et al. 2016): how many kernel taps reach each
  output pixel (:func:`overlap_count`), the output of freshly initialised upsampling layers on a
  constant input (:func:`upsampling_layers`, :func:`constant_input_outputs`, :func:`ripple`).
* Bookkeeping: :func:`count_macs` and :func:`trace_shapes` (what a network costs and what shape each
  part returns).
* The widgets: :func:`explore_interpolation` / :func:`interpolation_widget` and
  :func:`explore_transposed_conv` / :func:`transposed_conv_widget`; each callback returns a
  matplotlib figure and is a plain function you can call in a cell.

Images are tensors in [0, 1], shape (C, H, W) or (B, C, H, W), as everywhere in :mod:`srgan_edu`.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from srgan_edu.degrade import bicubic_down, bicubic_up, cubic_kernel
from srgan_edu.metrics import psnr, rgb_to_y

METHODS = ("nearest", "bilinear", "bicubic")
"""Interpolation methods of :func:`upscale`; bicubic is MATLAB's (Keys, a = -0.5)."""

KERNELS = ("nearest", "linear", "cubic")
"""1-D interpolation kernels of :func:`interpolation_kernel`: box, tent, Keys cubic (a = -0.5)."""

LAYERS = (
    "transposed k3 s2",
    "transposed k4 s2",
    "conv + PixelShuffle",
    "ICNR conv + PixelShuffle",
    "nearest + conv",
)
"""The x2 upsampling layers :func:`upsampling_layers` builds, in this order."""


# ----------------------------------------------------------------------------------------------
# interpolation
# ----------------------------------------------------------------------------------------------


def modcrop(x: torch.Tensor, scale: int) -> torch.Tensor:
    """Crop (..., H, W) at the bottom / right so that H and W are multiples of ``scale``."""
    h, w = x.shape[-2:]
    if h < scale or w < scale:
        raise ValueError(f"a {h}x{w} image is smaller than one {scale}x{scale} block")
    return x[..., : h - h % scale, : w - w % scale]


def upscale(x: torch.Tensor, scale: int, method: str = "bicubic") -> torch.Tensor:
    """Enlarge images in [0, 1] by an integer ``scale`` with one of :data:`METHODS`, clip to [0, 1].

    ``nearest`` and ``bilinear`` are ``F.interpolate`` (pixel centres aligned, i.e.
    ``align_corners=False``); ``bicubic`` is :func:`srgan_edu.degrade.bicubic_up`, MATLAB's
    ``imresize`` (Keys cubic with a = -0.5). Note that ``F.interpolate(mode="bicubic")`` uses
    a = -0.75 instead, a slightly sharper kernel. Shape (C, h, w) or (B, C, h, w) in, same rank out.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if isinstance(scale, bool) or int(scale) != scale or scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale!r}")
    scale = int(scale)
    if method == "bicubic":
        return bicubic_up(x, scale)
    single = x.dim() == 3
    x4 = x.unsqueeze(0) if single else x
    y = F.interpolate(x4, scale_factor=scale, mode=method).clamp(0.0, 1.0)
    return y[0] if single else y


def interpolation_kernel(name: str, t: torch.Tensor | np.ndarray) -> np.ndarray:
    """The 1-D kernel k(t) of an interpolation, t in input pixels: interpolated value at x is
    sum_i f[i] k(x - i).

    ``nearest``: box, 1 on [-1/2, 1/2); ``linear``: tent, max(0, 1 - |t|); ``cubic``: Keys' cubic
    with a = -0.5 (:func:`srgan_edu.degrade.cubic_kernel`), support |t| < 2, negative lobes.
    """
    t = np.asarray(t, dtype=np.float64)
    if name == "nearest":
        return ((t >= -0.5) & (t < 0.5)).astype(np.float64)
    if name == "linear":
        return np.clip(1.0 - np.abs(t), 0.0, None)
    if name == "cubic":
        return cubic_kernel(torch.from_numpy(t)).numpy()
    raise ValueError(f"kernel must be one of {KERNELS}, got {name!r}")


def kernel_response(name: str, freqs: np.ndarray) -> np.ndarray:
    """|K(f)|, the Fourier transform of :func:`interpolation_kernel` at ``freqs`` (cycles per input
    pixel), by numerical integration. 1 at f = 0 for all three kernels; the box gives |sinc f|,
    the tent sinc^2 f."""
    t = np.linspace(-2.0, 2.0, 8001)
    k = interpolation_kernel(name, t)
    f = np.asarray(freqs, dtype=np.float64)
    integrand = k[None, :] * np.cos(2 * np.pi * f[:, None] * t[None, :])  # kernels are even
    dt = t[1] - t[0]
    integral = dt * (integrand.sum(axis=1) - 0.5 * (integrand[:, 0] + integrand[:, -1]))
    return np.abs(integral)


def plot_kernels(scale: int = 4) -> plt.Figure:
    """Left: the three kernels k(t). Right: their frequency responses |K(f)|, with the LR image's
    Nyquist frequency (f = 1/2 cycle per LR pixel) marked; ``scale`` sets the HR axis on top."""
    fig, axes = plt.subplots(1, 2, figsize=(10.5, 3.3))
    t = np.linspace(-2.5, 2.5, 1001)
    f = np.linspace(0.0, 2.0, 401)
    for name, style in zip(KERNELS, ("-", "--", "-"), strict=True):
        axes[0].plot(t, interpolation_kernel(name, t), style, label=name)
        axes[1].plot(f, kernel_response(name, f), style, label=name)
    axes[0].axhline(0, color="k", lw=0.6)
    axes[0].set_xlabel("t (distance in LR pixels)")
    axes[0].set_ylabel("k(t)")
    axes[0].set_title("interpolation kernels", fontsize=10)
    axes[1].axvline(0.5, color="gray", ls=":", lw=1)
    axes[1].text(0.52, 0.9, "LR Nyquist", color="gray", fontsize=8)
    axes[1].set_xlabel("f (cycles per LR pixel)")
    axes[1].set_ylabel("|K(f)|")
    axes[1].set_title(
        f"what each kernel passes (x{scale}: HR Nyquist at f = {scale / 2:g})", fontsize=10
    )
    for ax in axes:
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------------------------
# spectra
# ----------------------------------------------------------------------------------------------


def _luma(x: torch.Tensor) -> np.ndarray:
    """Y of an RGB (3, H, W) / (1, 3, H, W) image, or a (H, W) / (1, H, W) gray one, as float64."""
    x = x.detach().cpu().double()
    if x.dim() == 4:
        x = x[0]
    if x.dim() == 3 and x.shape[0] == 3:
        x = rgb_to_y(x)[0]
    elif x.dim() == 3 and x.shape[0] == 1:
        x = x[0]
    if x.dim() != 2:
        raise ValueError(f"expected an RGB or gray image, got shape {tuple(x.shape)}")
    return x.numpy()


def _spectrum(x: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centred 2-D FFT of the image's Y (mean removed, Hann window), and its frequency axes."""
    y = _luma(x)
    y = y - y.mean()
    h, w = y.shape
    window = np.outer(np.hanning(h), np.hanning(w))  # no cross from the image's hard edges
    spec = np.fft.fftshift(np.fft.fft2(y * window))
    fy = np.fft.fftshift(np.fft.fftfreq(h))  # cycles per pixel, -1/2 .. 1/2
    fx = np.fft.fftshift(np.fft.fftfreq(w))
    return spec, fy, fx


def log_spectrum(x: torch.Tensor) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """log10 |FFT| of the image's luma (mean removed, Hann-windowed), centred on f = 0.

    Returns the (H, W) array and the ``extent`` for ``plt.imshow`` in cycles per pixel.
    """
    spec, fy, fx = _spectrum(x)
    extent = (float(fx[0]), float(fx[-1]), float(fy[-1]), float(fy[0]))
    return np.log10(np.abs(spec) + 1e-8), extent


def radial_power(x: torch.Tensor, n_bins: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Power |FFT|^2 of the luma averaged over rings of equal frequency radius: (freqs, power).

    ``freqs`` are the ring centres in cycles per pixel (0 .. 1/2).
    """
    spec, fy, fx = _spectrum(x)
    radius = np.hypot(fy[:, None], fx[None, :])
    edges = np.linspace(0.0, 0.5, n_bins + 1)
    which = np.digitize(radius, edges) - 1
    power = np.abs(spec) ** 2
    inside = (which >= 0) & (which < n_bins)
    total = np.bincount(which[inside], power[inside], minlength=n_bins)
    count = np.bincount(which[inside], minlength=n_bins)
    return 0.5 * (edges[1:] + edges[:-1]), total / np.maximum(count, 1)


def band_energy(up: torch.Tensor, hr: torch.Tensor, scale: int) -> dict[str, float]:
    """Compare an upscaled image with the original, below and above the LR Nyquist frequency.

    The LR image of a x``scale`` reduction can only hold frequencies up to 1 / (2 scale) cycles
    per HR pixel along each axis: the *low band*; the rest is the *high band*. Returns energies of
    the luma spectra (see :func:`log_spectrum`):

    * ``hr_high``: fraction of the original's energy in the high band;
    * ``high_kept``: high-band energy of ``up`` / that of ``hr`` (how much is there at all);
    * ``high_error``: high-band energy of ``up - hr`` / that of ``hr``: 1 means none of the missing
      detail came back (``up`` is empty there), above 1 means what is there is wrong;
    * ``low_error``: the same ratio in the low band (near 0: the coarse image is right).
    """
    if up.shape[-2:] != hr.shape[-2:]:
        raise ValueError(f"images differ in size: {tuple(up.shape)} vs {tuple(hr.shape)}")
    s_up, fy, fx = _spectrum(up)
    s_hr, _, _ = _spectrum(hr)
    high = np.maximum(np.abs(fy)[:, None], np.abs(fx)[None, :]) > 1.0 / (2 * scale)

    def energy(s: np.ndarray, band: np.ndarray) -> float:
        return float((np.abs(s[band]) ** 2).sum())

    return {
        "hr_high": energy(s_hr, high) / (energy(s_hr, high) + energy(s_hr, ~high)),
        "high_kept": energy(s_up, high) / energy(s_hr, high),
        "high_error": energy(s_up - s_hr, high) / energy(s_hr, high),
        "low_error": energy(s_up - s_hr, ~high) / energy(s_hr, ~high),
    }


# ----------------------------------------------------------------------------------------------
# sub-pixel convolution (Shi et al. 2016)
# ----------------------------------------------------------------------------------------------


def _check_factor(r: int) -> int:
    if isinstance(r, bool) or int(r) != r or r < 1:
        raise ValueError(f"the upscale factor r must be a positive integer, got {r!r}")
    return int(r)


def pixel_shuffle(x: torch.Tensor, r: int) -> torch.Tensor:
    """The periodic shuffle of Shi et al. (2016), by hand: (B, r^2 C, H, W) -> (B, C, rH, rW).

    out[b, c, r*h + i, r*w + j] = x[b, c*r*r + i*r + j, h, w], the same as ``nn.PixelShuffle(r)``.
    """
    r = _check_factor(r)
    b, c_in, h, w = x.shape
    if c_in % (r * r):
        raise ValueError(f"pixel_shuffle(r={r}) needs channels divisible by {r * r}, got {c_in}")
    c = c_in // (r * r)
    y = x.reshape(b, c, r, r, h, w)  # channel c*r*r + i*r + j -> (c, i, j)
    y = y.permute(0, 1, 4, 2, 5, 3)  # (B, C, H, i, W, j): row h*r + i, column w*r + j
    return y.reshape(b, c, h * r, w * r)


def pixel_unshuffle(x: torch.Tensor, r: int) -> torch.Tensor:
    """The inverse of :func:`pixel_shuffle`: (B, C, rH, rW) -> (B, r^2 C, H, W), as
    ``nn.PixelUnshuffle(r)``."""
    r = _check_factor(r)
    b, c, hr, wr = x.shape
    if hr % r or wr % r:
        raise ValueError(f"pixel_unshuffle(r={r}) needs H and W divisible by {r}, got {hr}x{wr}")
    h, w = hr // r, wr // r
    y = x.reshape(b, c, h, r, w, r)  # (B, C, H, i, W, j)
    y = y.permute(0, 1, 3, 5, 2, 4)  # (B, C, i, j, H, W)
    return y.reshape(b, c * r * r, h, w)


def source_channel_map(r: int, h: int, w: int, channels: int = 1) -> torch.Tensor:
    """(channels, r h, r w) integers: the input channel each output pixel of ``PixelShuffle(r)``
    comes from (feed a tensor whose channel k holds the value k through the shuffle)."""
    r = _check_factor(r)
    k = torch.arange(channels * r * r).view(1, -1, 1, 1).expand(1, -1, h, w)
    return pixel_shuffle(k, r)[0]


def plot_pixel_shuffle(r: int = 2, h: int = 3, w: int = 3) -> plt.Figure:
    """The r^2 input channels of one output channel (each an h x w grid, own colour) and the
    (r h, r w) image PixelShuffle(r) makes of them; each cell names its channel and LR pixel."""
    r = _check_factor(r)
    src = source_channel_map(r, h, w)[0].numpy()
    cmap = plt.get_cmap("tab10" if r * r <= 10 else "tab20")
    fig, axes = plt.subplots(
        1,
        r * r + 1,
        figsize=(1.3 * (r * r) + 2.9, 2.6),
        gridspec_kw={"width_ratios": [1] * (r * r) + [r]},
    )
    for k in range(r * r):
        ax = axes[k]
        ax.imshow(np.full((h, w), k), cmap=cmap, vmin=0, vmax=cmap.N - 1, alpha=0.75)
        for yy in range(h):
            for xx in range(w):
                ax.text(xx, yy, f"{yy},{xx}", ha="center", va="center", fontsize=7)
        ax.set_title(f"channel {k}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    ax = axes[-1]
    ax.imshow(src, cmap=cmap, vmin=0, vmax=cmap.N - 1, alpha=0.75)
    for yy in range(h * r):
        for xx in range(w * r):
            ax.text(xx, yy, f"{yy // r},{xx // r}", ha="center", va="center", fontsize=7)
    for v in range(1, max(h, w)):
        ax.axhline(v * r - 0.5, color="k", lw=1.2)
        ax.axvline(v * r - 0.5, color="k", lw=1.2)
    ax.set_title(f"PixelShuffle({r}): {r * r} x {h}x{w} -> 1 x {r * h}x{r * w}", fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    return fig


def icnr_(conv: nn.Conv2d, r: int) -> nn.Conv2d:
    """ICNR initialisation (Aitken et al. 2017) of the convolution in front of ``PixelShuffle(r)``.

    Draw one kernel per output channel with PyTorch's default initialisation and give it to all
    r^2 sub-pixel positions: then conv -> PixelShuffle equals conv -> nearest-neighbour upsampling
    at the start of training, so it starts with no checkerboard. Modifies ``conv`` in place.
    """
    r = _check_factor(r)
    out_ch = conv.out_channels
    if out_ch % (r * r):
        raise ValueError(f"ICNR for r={r} needs out_channels divisible by {r * r}, got {out_ch}")
    base = nn.Conv2d(
        conv.in_channels, out_ch // (r * r), conv.kernel_size, bias=conv.bias is not None
    )
    with torch.no_grad():
        conv.weight.copy_(base.weight.repeat_interleave(r * r, dim=0))  # channel c*r*r + k <- c
        if conv.bias is not None:
            conv.bias.copy_(base.bias.repeat_interleave(r * r))
    return conv


# ----------------------------------------------------------------------------------------------
# transposed convolution and the checkerboard (Odena et al. 2016)
# ----------------------------------------------------------------------------------------------


def transposed_output_size(n: int, kernel: int, stride: int, padding: int = 0) -> int:
    """Output length of a transposed convolution: (n - 1) * stride - 2 * padding + kernel."""
    return (n - 1) * stride - 2 * padding + kernel


def overlap_count(
    kernel: int, stride: int, n: int = 6, padding: int = 0, dims: int = 2
) -> torch.Tensor:
    """How many kernel taps reach each output pixel of a transposed convolution of an n (x n) input.

    Each input pixel stamps a kernel x kernel patch (stride apart) onto the output; the count is
    the transposed convolution of an all-ones input with an all-ones kernel. ``dims=1`` gives the
    1-D pattern (length ``transposed_output_size``), ``dims=2`` the 2-D one (the outer product).
    Uneven counts in the interior are the checkerboard's cause (Odena et al. 2016): they are even
    exactly when ``stride`` divides ``kernel``.
    """
    for name, v, lo in (
        ("kernel", kernel, 1),
        ("stride", stride, 1),
        ("n", n, 1),
        ("padding", padding, 0),
    ):
        if isinstance(v, bool) or int(v) != v or v < lo:
            raise ValueError(f"{name} must be an integer >= {lo}, got {v!r}")
    if dims not in (1, 2):
        raise ValueError(f"dims must be 1 or 2, got {dims!r}")
    size = transposed_output_size(n, kernel, stride, padding)
    if size < 1:
        raise ValueError(
            f"padding {padding} removes the whole output: (n - 1) * stride - 2 * padding + kernel "
            f"= {size}; use padding <= {((n - 1) * stride + kernel - 1) // 2}"
        )
    ones = torch.ones(1, 1, n, dtype=torch.float64)
    row = F.conv_transpose1d(
        ones, torch.ones(1, 1, kernel, dtype=torch.float64), stride=stride, padding=padding
    )[0, 0]
    counts = row.round().long()
    return counts if dims == 1 else counts[:, None] * counts[None, :]


def upsampling_layers(channels: int = 8, seed: int = 0) -> dict[str, nn.Module]:
    """Five freshly initialised x2 upsampling layers (C -> C channels), keyed as :data:`LAYERS`.

    * ``transposed k3 s2``: ConvTranspose2d(k=3, s=2, padding=1, output_padding=1);
    * ``transposed k4 s2``: ConvTranspose2d(k=4, s=2, padding=1);
    * ``conv + PixelShuffle``: Conv2d(C, 4C, 3) -> PixelShuffle(2) (the SRGAN generator's);
    * ``ICNR conv + PixelShuffle``: the same, started with :func:`icnr_`;
    * ``nearest + conv``: Upsample(nearest) -> Conv2d(C, C, 3) (the "resize-convolution").

    All map (B, C, h, w) to (B, C, 2h, 2w), with PyTorch's default initialisation drawn from
    ``seed`` (the global random state is left alone).
    """
    c = channels
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        layers = {
            LAYERS[0]: nn.ConvTranspose2d(c, c, 3, stride=2, padding=1, output_padding=1),
            LAYERS[1]: nn.ConvTranspose2d(c, c, 4, stride=2, padding=1),
            LAYERS[2]: nn.Sequential(nn.Conv2d(c, 4 * c, 3, padding=1), nn.PixelShuffle(2)),
            LAYERS[3]: nn.Sequential(
                icnr_(nn.Conv2d(c, 4 * c, 3, padding=1), 2), nn.PixelShuffle(2)
            ),
            LAYERS[4]: nn.Sequential(
                nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c, c, 3, padding=1)
            ),
        }
    return layers


def constant_input_outputs(
    channels: int = 8, size: int = 16, seed: int = 0
) -> dict[str, torch.Tensor]:
    """Feed a constant image (all ones, (1, C, size, size)) through each of
    :func:`upsampling_layers`; returns each (C, 2 size, 2 size) output. A flat input should give
    a flat output away from the borders; whatever pattern appears is the layer's own."""
    x = torch.ones(1, channels, size, size)
    with torch.no_grad():
        return {name: layer(x)[0] for name, layer in upsampling_layers(channels, seed).items()}


def ripple(y: torch.Tensor, border: int = 4) -> float:
    """How far a layer's output on a constant input is from flat, away from the borders.

    For each channel of ``y`` (C, H, W), the range (max - min) over the interior (``border``
    pixels cut from each side), averaged over channels and divided by the RMS of the interior
    values: 0 for a flat output, about 1 or more when the pattern is as large as the signal.
    """
    inner = y[..., border:-border, border:-border] if border else y
    if inner.numel() == 0:
        raise ValueError(f"border {border} leaves nothing of a {tuple(y.shape)} output")
    flat = inner.reshape(inner.shape[0], -1).double()
    spread = (flat.amax(dim=1) - flat.amin(dim=1)).mean()
    rms = flat.pow(2).mean().sqrt()
    return float(spread / rms) if rms > 0 else 0.0


# ----------------------------------------------------------------------------------------------
# bookkeeping: cost and shapes
# ----------------------------------------------------------------------------------------------


def count_macs(module: nn.Module, x: torch.Tensor) -> int:
    """Multiply-accumulates of the Conv2d / ConvTranspose2d layers of ``module`` for input ``x``.

    A Conv2d costs (output values) x (in_channels / groups) x kh x kw; a transposed one
    (input values) x (out_channels / groups) x kh x kw. Other layers are not counted.
    """
    total = 0

    def hook(layer: nn.Module, inputs: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal total
        kh, kw = layer.kernel_size
        if isinstance(layer, nn.ConvTranspose2d):
            total += inputs[0].numel() * (layer.out_channels // layer.groups) * kh * kw
        else:
            total += out.numel() * (layer.in_channels // layer.groups) * kh * kw

    handles = [
        m.register_forward_hook(hook)
        for m in module.modules()
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))
    ]
    try:
        with torch.no_grad():
            module(x)
    finally:
        for h in handles:
            h.remove()
    return total


def trace_shapes(
    model: nn.Module, x: torch.Tensor, names: Sequence[str] | None = None
) -> list[tuple[str, tuple[int, ...]]]:
    """Run ``model(x)`` once (no gradients) and return (name, output shape) of its submodules, in
    the order they ran: the named ones (``names``, e.g. ``["head", "upsample.0"]``), or by default
    its direct children."""
    wanted = set(names) if names is not None else {n for n, _ in model.named_children()}
    modules = dict(model.named_modules())
    missing = sorted(wanted - set(modules))
    if missing:
        raise ValueError(f"the model has no submodules {missing}; it has {sorted(modules)[:20]}")
    seen: list[tuple[str, tuple[int, ...]]] = []
    handles = [
        modules[n].register_forward_hook(
            lambda _m, _i, out, n=n: seen.append((n, tuple(out.shape)))
        )
        for n in wanted
    ]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return seen


# ----------------------------------------------------------------------------------------------
# widgets
# ----------------------------------------------------------------------------------------------

_IMAGE_CACHE: dict[str, torch.Tensor] = {}


def _sample_photo() -> torch.Tensor:
    if "photo" not in _IMAGE_CACHE:
        from srgan_edu.data import sample_image

        _IMAGE_CACHE["photo"] = sample_image()
    return _IMAGE_CACHE["photo"]


def _show(ax: plt.Axes, img: torch.Tensor, title: str) -> None:
    ax.imshow(img.permute(1, 2, 0).clamp(0, 1).numpy(), interpolation="nearest")
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])


def explore_interpolation(
    method: str = "bicubic",
    scale: int = 4,
    top: float = 0.25,
    left: float = 0.45,
    size: int = 96,
    image: torch.Tensor | None = None,
) -> plt.Figure:
    """Shrink a photo x``scale`` (MATLAB bicubic), enlarge it back with ``method``; show one crop.

    The callback of lesson 05's interpolation widget. ``top`` and ``left`` in [0, 1] place a
    ``size`` x ``size`` crop (moved inside the image, aligned to the LR grid) in the HR image;
    panels: original, the LR pixels (as blocks), the upscaled result, and its error. PSNR of the
    crop and of the whole image (RGB, 8-bit not applied) are in the titles. ``image`` defaults to
    :func:`srgan_edu.data.sample_image`. Returns the figure (not shown, not closed).
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if not (0.0 <= top <= 1.0 and 0.0 <= left <= 1.0):
        raise ValueError(f"top and left are fractions in [0, 1], got top={top}, left={left}")
    hr = modcrop(_sample_photo() if image is None else image, scale)  # (3, H, W)
    lr = bicubic_down(hr, scale)  # (3, H/s, W/s)
    up = upscale(lr, scale, method)  # (3, H, W)
    h, w = hr.shape[-2:]
    side = max(scale, min(int(size), h, w) // scale * scale)  # whole LR pixels only
    y0 = int(round(top * (h - side))) // scale * scale
    x0 = int(round(left * (w - side))) // scale * scale
    box = (slice(None), slice(y0, y0 + side), slice(x0, x0 + side))
    lr_box = (
        slice(None),
        slice(y0 // scale, (y0 + side) // scale),
        slice(x0 // scale, (x0 + side) // scale),
    )
    crop_psnr = float(psnr(up[box], hr[box]))
    err = (up[box] - hr[box]).abs().mean(dim=0, keepdim=True)  # (1, side, side)
    fig, axes = plt.subplots(1, 4, figsize=(11, 3.2))
    _show(axes[0], hr[box], f"original, crop at ({y0}, {x0})")
    _show(axes[1], lr[lr_box], f"LR: {side // scale}x{side // scale} pixels (x1/{scale})")
    _show(axes[2], up[box], f"{method} x{scale}: {crop_psnr:.1f} dB")
    axes[3].imshow(err[0].numpy(), cmap="magma", vmin=0, vmax=0.25)
    axes[3].set_title("|error| (0 to 0.25)", fontsize=9)
    axes[3].set_xticks([])
    axes[3].set_yticks([])
    fig.suptitle(f"{method} x{scale}, whole image: PSNR {float(psnr(up, hr)):.2f} dB", fontsize=10)
    fig.tight_layout()
    return fig


def explore_transposed_conv(
    kernel: int = 3, stride: int = 2, padding: int = 0, weights: str = "random", seed: int = 0
) -> plt.Figure:
    """One transposed convolution (1 channel in and out, no bias) on a constant 8x8 input.

    The callback of lesson 05's checkerboard widget. Left: :func:`overlap_count`, how many kernel
    taps reach each output pixel. Middle: the layer's output with ``weights`` "random" (PyTorch's
    default initialisation, from ``seed``) or "ones" (then it equals the left panel). Right: the
    middle row of both. Returns the figure (not shown, not closed).
    """
    if weights not in ("random", "ones"):
        raise ValueError(f"weights must be 'random' or 'ones', got {weights!r}")
    n = 8
    counts = overlap_count(kernel, stride, n, padding)  # validates the settings
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        layer = nn.ConvTranspose2d(1, 1, kernel, stride=stride, padding=padding, bias=False)
    if weights == "ones":
        nn.init.ones_(layer.weight)
    with torch.no_grad():
        out = layer(torch.ones(1, 1, n, n))[0, 0]  # (H', W')
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.4), gridspec_kw={"width_ratios": [1, 1, 1.3]})
    im = axes[0].imshow(counts.numpy(), cmap="viridis", vmin=0)
    fig.colorbar(im, ax=axes[0], fraction=0.046)
    axes[0].set_title(f"taps per output pixel (k={kernel}, s={stride}, p={padding})", fontsize=9)
    im = axes[1].imshow(out.numpy(), cmap="coolwarm")
    fig.colorbar(im, ax=axes[1], fraction=0.046)
    axes[1].set_title(f"output, {weights} weights, on a constant input", fontsize=9)
    mid = int(counts.sum(dim=1).argmax())  # a row that many taps reach
    axes[2].plot(counts[mid].numpy(), "o-", label="taps (left)")
    ax2 = axes[2].twinx()
    ax2.plot(out[mid].numpy(), "s--", color="C3", label="output (middle)")
    axes[2].set_xlabel("column")
    axes[2].set_ylabel("taps")
    ax2.set_ylabel("output", color="C3")
    axes[2].set_title(f"row {mid}; stride divides kernel: {kernel % stride == 0}", fontsize=9)
    for ax in axes[:2]:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return fig


def _display_and_close(fig: plt.Figure) -> None:
    from IPython.display import display

    display(fig)
    plt.close(fig)


def _show_interpolation(**kwargs) -> None:
    """Widget callback: draw :func:`explore_interpolation`, then close the figure."""
    _display_and_close(explore_interpolation(**kwargs))


def _show_transposed_conv(**kwargs) -> None:
    """Widget callback: draw :func:`explore_transposed_conv`, then close the figure."""
    _display_and_close(explore_transposed_conv(**kwargs))


def interpolation_widget():
    """ipywidgets panel around :func:`explore_interpolation`: method, scale, crop position, size."""
    import ipywidgets as W

    style = {"description_width": "70px"}
    layout = W.Layout(width="380px")
    return W.interactive(
        _show_interpolation,
        method=W.ToggleButtons(
            options=list(METHODS), value="bicubic", description="method", style=style
        ),
        scale=W.Dropdown(
            options=[2, 3, 4, 8], value=4, description="scale", style=style, layout=layout
        ),
        top=W.FloatSlider(
            value=0.25,
            min=0,
            max=1,
            step=0.05,
            description="crop top",
            continuous_update=False,
            style=style,
            layout=layout,
        ),
        left=W.FloatSlider(
            value=0.45,
            min=0,
            max=1,
            step=0.05,
            description="crop left",
            continuous_update=False,
            style=style,
            layout=layout,
        ),
        size=W.IntSlider(
            value=96,
            min=16,
            max=256,
            step=16,
            description="crop size",
            continuous_update=False,
            style=style,
            layout=layout,
        ),
    )


def transposed_conv_widget():
    """ipywidgets panel around :func:`explore_transposed_conv`: kernel, stride, padding, weights."""
    import ipywidgets as W

    style = {"description_width": "70px"}
    layout = W.Layout(width="380px")
    return W.interactive(
        _show_transposed_conv,
        kernel=W.IntSlider(
            value=3,
            min=1,
            max=8,
            description="kernel",
            continuous_update=False,
            style=style,
            layout=layout,
        ),
        stride=W.IntSlider(
            value=2,
            min=1,
            max=4,
            description="stride",
            continuous_update=False,
            style=style,
            layout=layout,
        ),
        padding=W.IntSlider(
            value=0,
            min=0,
            max=3,
            description="padding",
            continuous_update=False,
            style=style,
            layout=layout,
        ),
        weights=W.ToggleButtons(
            options=["random", "ones"], value="random", description="weights", style=style
        ),
        seed=W.IntSlider(
            value=0,
            min=0,
            max=20,
            description="seed",
            continuous_update=False,
            style=style,
            layout=layout,
        ),
    )


def explore_all_layers(channels: int = 8, size: int = 16, seed: int = 0) -> plt.Figure:
    """One panel per :func:`upsampling_layers` entry: channel 0 of its output on a constant input,
    with the :func:`ripple` of all channels in the title."""
    outs = constant_input_outputs(channels, size, seed)
    fig, axes = plt.subplots(1, len(outs), figsize=(2.4 * len(outs), 2.9))
    for ax, (name, y) in zip(axes, outs.items(), strict=True):
        ax.imshow(y[0].numpy(), cmap="coolwarm")
        ax.set_title(f"{name}\nripple {ripple(y):.2f}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return fig


__all__ = [
    "KERNELS",
    "LAYERS",
    "METHODS",
    "band_energy",
    "constant_input_outputs",
    "count_macs",
    "explore_all_layers",
    "explore_interpolation",
    "explore_transposed_conv",
    "icnr_",
    "interpolation_kernel",
    "interpolation_widget",
    "kernel_response",
    "log_spectrum",
    "modcrop",
    "overlap_count",
    "pixel_shuffle",
    "pixel_unshuffle",
    "plot_kernels",
    "plot_pixel_shuffle",
    "radial_power",
    "ripple",
    "source_channel_map",
    "trace_shapes",
    "transposed_conv_widget",
    "transposed_output_size",
    "upsampling_layers",
    "upscale",
]
