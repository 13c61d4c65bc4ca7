"""Lesson 03 (convolution): hand-written 2-D convolutions, classic kernels, pictures and a widget.

Everything the lesson derives by hand is here, so that ``tests/test_teach_conv.py`` can check it
against PyTorch:

* :func:`conv_output_size` - the output-size formula floor((n + 2p - k) / s) + 1, with a message
  that says what to change when the kernel does not fit.
* :func:`conv2d_loops` - a convolution written as two loops over output positions.
* :func:`im2col` and :func:`conv2d_im2col` - the same convolution as one matrix product over
  unfolded patches (how fast implementations think about it). Both equal
  ``torch.nn.functional.conv2d`` (values and gradients) for any stride and zero padding.
* :func:`make_kernel` - the kernels of the lesson (the worked example's X, box, Gaussian, Sobel,
  Laplacian, sharpen) as (k, k) tensors.
* :func:`plot_conv_steps`, :func:`plot_kernel_gallery` - the lesson's pictures.
* :func:`explore_conv` (the widget's callback) and :func:`conv_widget` (the widget around it).
* :func:`conv_shapes` - input and output size of every ``nn.Conv2d`` of a network, next to the
  formula's prediction (the SRGAN generator and discriminator at the end of the lesson).

Like ``torch.nn.functional.conv2d``, everything here is a *cross-correlation*: the kernel slides
over the image as it is, not flipped (a convolution in the signal-processing sense flips it).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.colors import Normalize
from matplotlib.patches import Rectangle
from torch import nn

from srgan_edu.degrade import bicubic_down, gaussian_kernel1d

__all__ = [
    "EXAMPLE_IMAGE",
    "EXAMPLE_KERNEL",
    "KERNEL_NAMES",
    "LESSON_IMAGES",
    "ConvShape",
    "conv2d_im2col",
    "conv2d_loops",
    "conv_output_size",
    "conv_shapes",
    "conv_widget",
    "explore_conv",
    "im2col",
    "lesson_image",
    "make_kernel",
    "plot_conv_steps",
    "plot_kernel_gallery",
    "same_padding",
]

EXAMPLE_IMAGE = (
    (1, 1, 1, 0, 0),
    (0, 1, 1, 1, 0),
    (0, 0, 1, 1, 1),
    (0, 0, 1, 1, 0),
    (0, 1, 1, 0, 0),
)
"""The 5x5 binary image of the worked example (a classic of convolution tutorials)."""

EXAMPLE_KERNEL = ((1, 0, 1), (0, 1, 0), (1, 0, 1))
"""The 3x3 "X" kernel of the worked example."""

_FIXED_KERNELS = {
    "X (worked example)": EXAMPLE_KERNEL,
    "identity 3x3": ((0, 0, 0), (0, 1, 0), (0, 0, 0)),
    "sobel x": ((-1, 0, 1), (-2, 0, 2), (-1, 0, 1)),
    "sobel y": ((-1, -2, -1), (0, 0, 0), (1, 2, 1)),
    "laplacian": ((0, 1, 0), (1, -4, 1), (0, 1, 0)),
    "sharpen": ((0, -1, 0), (-1, 5, -1), (0, -1, 0)),
}

KERNEL_NAMES = (
    "X (worked example)",
    "identity 3x3",
    "box 3x3",
    "box 7x7",
    "gaussian σ=1 (9x9)",
    "gaussian σ=2 (17x17)",
    "sobel x",
    "sobel y",
    "laplacian",
    "sharpen",
)
"""Names :func:`make_kernel` knows (and the widget offers)."""

LESSON_IMAGES = ("5x5 example", "photo: eye 24x24", "photo: face 64x64")
"""Inputs the widget offers (:func:`lesson_image`)."""


# ----------------------------------------------------------------------------------------------
# the output-size formula
# ----------------------------------------------------------------------------------------------


def _pair(value: int | tuple[int, int], name: str, minimum: int) -> tuple[int, int]:
    """``value`` as (vertical, horizontal) ints >= ``minimum``, or a ValueError saying so."""
    pair = value if isinstance(value, (tuple, list)) else (value, value)
    if len(pair) != 2 or any(
        isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < minimum for v in pair
    ):
        raise ValueError(f"{name} must be an integer >= {minimum} or a pair of them, got {value!r}")
    return int(pair[0]), int(pair[1])


def conv_output_size(n: int, k: int, stride: int = 1, padding: int = 0) -> int:
    """Output length of a convolution along one axis: floor((n + 2p - k) / s) + 1.

    ``n`` input pixels, padded with ``padding`` zeros on each side, a window of ``k`` pixels moved
    by ``stride`` pixels at a time. The window's first position starts at 0 and its last start
    must leave room for k pixels, so there are floor((n + 2p - k) / s) + 1 positions. Raises a
    ValueError when the kernel does not fit at all (k > n + 2p).
    """
    for name, value, minimum in (("n", n, 1), ("k", k, 1), ("stride", stride, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
            raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if isinstance(padding, bool) or not isinstance(padding, (int, np.integer)) or padding < 0:
        raise ValueError(f"padding must be an integer >= 0, got {padding!r}")
    if k > n + 2 * padding:
        need = -(-(k - n) // 2)  # ceil((k - n) / 2)
        raise ValueError(
            f"a {k}-pixel kernel does not fit into {n} pixels padded by {padding} on each side "
            f"({n + 2 * padding} in all): a convolution needs n + 2p >= k. Use padding >= {need}, "
            "a smaller kernel or a larger input."
        )
    return (n + 2 * padding - k) // stride + 1


def same_padding(k: int) -> int:
    """Zero padding that keeps the size at stride 1 ("same"): p = (k - 1) / 2, for odd k."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1 or k % 2 == 0:
        raise ValueError(
            f"'same' padding needs an odd kernel size (1, 3, 5, ...), got {k!r}: an even kernel "
            "would need one more zero on one side than on the other"
        )
    return (int(k) - 1) // 2


# ----------------------------------------------------------------------------------------------
# hand-written convolutions
# ----------------------------------------------------------------------------------------------


def _check_conv_args(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    stride: int | tuple[int, int],
    padding: int | tuple[int, int] | str,
) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int], tuple[int, int]]:
    """Check shapes; return stride, padding, output size and kernel size, each as (rows, cols)."""
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x)
        raise ValueError(
            f"x must be a (B, C, H, W) tensor, got {got}; add a batch dimension with "
            "x.unsqueeze(0) (and a channel dimension for a grey image)"
        )
    if not isinstance(weight, torch.Tensor) or weight.dim() != 4:
        got = tuple(weight.shape) if isinstance(weight, torch.Tensor) else type(weight)
        raise ValueError(
            f"weight must be an (out_channels, in_channels, kH, kW) tensor, got {got}; "
            "a single (k, k) kernel becomes one with kernel[None, None]"
        )
    if weight.shape[1] != x.shape[1]:
        raise ValueError(
            f"weight expects {weight.shape[1]} input channels but x has {x.shape[1]} "
            f"(x {tuple(x.shape)}, weight {tuple(weight.shape)})"
        )
    if bias is not None and tuple(bias.shape) != (weight.shape[0],):
        raise ValueError(
            f"bias must have shape ({weight.shape[0]},), one value per output channel, "
            f"got {tuple(bias.shape)}"
        )
    kh, kw = weight.shape[-2:]
    stride2 = _pair(stride, "stride", 1)
    if padding == "same":
        if stride2 != (1, 1):
            raise ValueError(f"padding='same' needs stride 1, got stride {stride!r}")
        padding2 = (same_padding(kh), same_padding(kw))
    else:
        padding2 = _pair(padding, "padding", 0)
    out = (
        conv_output_size(x.shape[2], kh, stride2[0], padding2[0]),
        conv_output_size(x.shape[3], kw, stride2[1], padding2[1]),
    )
    return stride2, padding2, out, (kh, kw)


def conv2d_loops(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] | str = 0,
) -> torch.Tensor:
    """2-D convolution (cross-correlation) as two loops over the output positions.

    x: (B, C, H, W); weight: (O, C, kH, kW); bias: (O,) or None; zero ``padding`` (an int, a
    (rows, cols) pair or ``"same"``), ``stride`` an int or a pair. Returns (B, O, H', W') with
    H' = floor((H + 2p - kH) / s) + 1 (:func:`conv_output_size`). At output position (i, j)::

        out[b, o, i, j] = bias[o] + sum_{c, u, v} x_pad[b, c, i*s + u, j*s + v] * weight[o, c, u, v]

    Equal to ``F.conv2d(x, weight, bias, stride, padding)``, values and gradients, but slow: one
    Python step per output pixel. Introduced in lesson 03.
    """
    (sh, sw), (ph, pw), (ho, wo), (kh, kw) = _check_conv_args(x, weight, bias, stride, padding)
    xp = F.pad(x, (pw, pw, ph, ph))  # (B, C, H + 2p, W + 2p), zeros around
    rows = []
    for i in range(ho):
        row = []
        for j in range(wo):
            window = xp[:, :, i * sh : i * sh + kh, j * sw : j * sw + kw]  # (B, C, kH, kW)
            # every output channel o: multiply the window by its kernel, add everything up
            row.append((window[:, None] * weight[None]).sum(dim=(2, 3, 4)))  # (B, O)
        rows.append(torch.stack(row, dim=-1))  # (B, O, W')
    out = torch.stack(rows, dim=-2)  # (B, O, H', W')
    if bias is not None:
        out = out + bias.view(1, -1, 1, 1)
    return out


def im2col(
    x: torch.Tensor,
    kernel_size: int | tuple[int, int],
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] = 0,
) -> torch.Tensor:
    """Every kH x kW window of x as a column: (B, C, H, W) -> (B, C*kH*kW, H'*W').

    The same layout as ``F.unfold``: row ``c*kH*kW + u*kW + v`` holds pixel (u, v) of channel c's
    window, column ``i*W' + j`` is the window of output position (i, j). Built with one strided
    slice per kernel offset (u, v): the loop runs kH*kW times, not once per output pixel.
    """
    kh, kw = _pair(kernel_size, "kernel_size", 1)
    sh, sw = _pair(stride, "stride", 1)
    ph, pw = _pair(padding, "padding", 0)
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        raise ValueError(f"x must be a (B, C, H, W) tensor, got {getattr(x, 'shape', type(x))}")
    b, c, h, w = x.shape
    ho, wo = conv_output_size(h, kh, sh, ph), conv_output_size(w, kw, sw, pw)
    xp = F.pad(x, (pw, pw, ph, ph))  # (B, C, H + 2p, W + 2p)
    shifted = [
        xp[:, :, u : u + sh * (ho - 1) + 1 : sh, v : v + sw * (wo - 1) + 1 : sw]  # (B, C, H', W')
        for u in range(kh)
        for v in range(kw)
    ]
    patches = torch.stack(shifted, dim=2)  # (B, C, kH*kW, H', W')
    return patches.reshape(b, c * kh * kw, ho * wo)


def conv2d_im2col(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] | str = 0,
) -> torch.Tensor:
    """2-D convolution as one matrix product: (O, C*kH*kW) weights @ (C*kH*kW, H'*W') patches.

    Same arguments and result as :func:`conv2d_loops` and ``F.conv2d``. Unfolding the input with
    :func:`im2col` turns the sliding window into a single matrix multiplication, which is how
    many fast convolution routines are organised (at the price of kH*kW copies of the input).
    """
    (sh, sw), (ph, pw), (ho, wo), (kh, kw) = _check_conv_args(x, weight, bias, stride, padding)
    cols = im2col(x, (kh, kw), (sh, sw), (ph, pw))  # (B, C*kH*kW, H'*W')
    out = weight.reshape(weight.shape[0], -1) @ cols  # (O, C*kH*kW) @ (B, ., L) -> (B, O, L)
    if bias is not None:
        out = out + bias.view(1, -1, 1)
    return out.reshape(x.shape[0], weight.shape[0], ho, wo)  # (B, O, H', W')


# ----------------------------------------------------------------------------------------------
# kernels and images of the lesson
# ----------------------------------------------------------------------------------------------


def make_kernel(name: str) -> torch.Tensor:
    """The lesson's kernel called ``name`` (one of :data:`KERNEL_NAMES`) as a float32 (k, k).

    Box kernels average (all entries 1/k^2); the Gaussians are the outer product of
    :func:`srgan_edu.degrade.gaussian_kernel1d` with itself (radius 4 sigma, sum 1); Sobel x / y
    respond to brightness rising to the right / downwards (as cross-correlations); the Laplacian
    sums to 0 and responds to curvature; "sharpen" is identity minus Laplacian.
    """
    if name in _FIXED_KERNELS:
        return torch.tensor(_FIXED_KERNELS[name], dtype=torch.float32)
    if name in ("box 3x3", "box 7x7"):
        k = int(name[-1])
        return torch.full((k, k), 1.0 / k**2)
    if name in ("gaussian σ=1 (9x9)", "gaussian σ=2 (17x17)"):
        g = gaussian_kernel1d(1.0 if "σ=1" in name else 2.0)
        return torch.outer(g, g).float()
    raise ValueError(f"unknown kernel {name!r}; choose one of {', '.join(KERNEL_NAMES)}")


@functools.lru_cache(maxsize=1)
def _photo_gray() -> torch.Tensor:
    """Luma (mean of R, G, B) of the sample photo, (H, W) float32 in [0, 1]; read once."""
    from srgan_edu.data import sample_image

    return sample_image().mean(dim=0)


def lesson_image(name: str = "5x5 example") -> torch.Tensor:
    """A grey (H, W) float32 input for the widget: one of :data:`LESSON_IMAGES`.

    ``"5x5 example"`` is :data:`EXAMPLE_IMAGE`; the photo crops come from
    :func:`srgan_edu.data.sample_image` (grey = mean of R, G, B): one eye (at half size) and the
    whole face (at a quarter size), small enough to see every pixel.
    """
    if name == "5x5 example":
        return torch.tensor(EXAMPLE_IMAGE, dtype=torch.float32)
    if name == "photo: eye 24x24":
        half = bicubic_down(_photo_gray()[None], 2)[0]  # (300, 256)
        return half[84:108, 98:122].clone()
    if name == "photo: face 64x64":
        quarter = bicubic_down(_photo_gray()[None], 4)[0]  # (150, 128)
        return quarter[30:94, 34:98].clone()
    raise ValueError(f"unknown image {name!r}; choose one of {', '.join(LESSON_IMAGES)}")


# ----------------------------------------------------------------------------------------------
# pictures
# ----------------------------------------------------------------------------------------------


def _fmt(v: float) -> str:
    """A kernel or pixel value, short: integers as integers, others with 2 significant digits."""
    return f"{v:.0f}" if float(v).is_integer() else f"{v:.2g}".replace("0.", ".")


def _annotate(ax: plt.Axes, values: np.ndarray, fontsize: float, shown: dict) -> None:
    """Write each value in its cell, black on light colours and white on dark ones."""
    cmap, norm = plt.get_cmap(shown["cmap"]), Normalize(shown["vmin"], shown["vmax"])
    for (r, c), v in np.ndenumerate(values):
        red, green, blue, _ = cmap(norm(v))
        light = 0.299 * red + 0.587 * green + 0.114 * blue > 0.5
        ax.text(c, r, _fmt(v), ha="center", va="center", fontsize=fontsize,
                color="black" if light else "white")  # fmt: skip


def _signed(kernel: np.ndarray) -> bool:
    return bool((kernel < 0).any())


def _image_kwargs(values: np.ndarray, signed: bool) -> dict:
    """imshow arguments: a diverging map centred at 0 for signed results, grey otherwise.

    Large signed images are scaled to the 99th percentile of |value| (the strongest edges clip).
    """
    if signed:
        # large images: the 99th percentile, so that a few strong edges do not wash out the rest
        m = float(np.percentile(np.abs(values), 99) if values.size > 100 else np.abs(values).max())
        m = m or 1.0
        return {"cmap": "RdBu_r", "vmin": -m, "vmax": m}
    lo, hi = float(values.min()), float(values.max())
    if hi <= lo:  # a constant array (a box kernel): mid grey
        lo, hi = lo - 1.0, hi + 1.0
    return {"cmap": "gray", "vmin": lo, "vmax": hi}


def _box(ax: plt.Axes, top: float, left: float, h: float, w: float, **kw) -> None:
    ax.add_patch(Rectangle((left - 0.5, top - 0.5), w, h, fill=False, **kw))


def plot_conv_steps(
    image: torch.Tensor | None = None,
    kernel: torch.Tensor | None = None,
    stride: int = 1,
    padding: int = 0,
) -> plt.Figure:
    """The sliding window, one panel per output position: where the window sits, the kernel's
    weights written next to the pixels they multiply, and the sum that becomes that output pixel.

    Defaults: the worked example (:data:`EXAMPLE_IMAGE`, :data:`EXAMPLE_KERNEL`). For small inputs
    only (one panel per output pixel). Returns the figure (not shown, not closed).
    """
    img = torch.tensor(EXAMPLE_IMAGE, dtype=torch.float32) if image is None else image.float()
    ker = torch.tensor(EXAMPLE_KERNEL, dtype=torch.float32) if kernel is None else kernel.float()
    kh, kw = ker.shape
    ho = conv_output_size(img.shape[0], kh, stride, padding)
    wo = conv_output_size(img.shape[1], kw, stride, padding)
    if ho * wo > 36:
        raise ValueError(
            f"plot_conv_steps draws one panel per output pixel; {ho}x{wo} = {ho * wo} is too "
            "many. Use a smaller input (up to 6x6 outputs), or explore_conv for large ones."
        )
    xp = F.pad(img, (padding,) * 4).numpy()
    out = conv2d_loops(img[None, None], ker[None, None], stride=stride, padding=padding)[0, 0]
    k = ker.numpy()
    fig, axes = plt.subplots(ho, wo, figsize=(2.3 * wo, 2.5 * ho), squeeze=False)
    for i in range(ho):
        for j in range(wo):
            ax = axes[i, j]
            ax.imshow(xp, cmap="Greys", vmin=0, vmax=max(float(xp.max()), 1.0) * 2.5)
            top, left = i * stride, j * stride
            for (r, c), v in np.ndenumerate(xp):
                inside = top <= r < top + kh and left <= c < left + kw
                ax.text(c, r - 0.12 * inside, _fmt(v), ha="center", va="center", fontsize=9,
                        fontweight="bold" if inside else "normal")  # fmt: skip
                if inside:
                    w = k[r - top, c - left]
                    ax.text(c + 0.22, r + 0.28, f"×{_fmt(w)}", ha="center", va="center",
                            fontsize=6.5, color="tab:red")  # fmt: skip
            _box(ax, top, left, kh, kw, edgecolor="tab:red", lw=2)
            if padding:
                _box(ax, padding, padding, *img.shape, edgecolor="tab:blue", lw=1, ls="--")
            ax.set_title(f"out[{i},{j}] = {_fmt(float(out[i, j]))}", fontsize=10)
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout()
    return fig


def plot_kernel_gallery(
    image: torch.Tensor, names: list[str] | tuple[str, ...], show_values: bool = True
) -> plt.Figure:
    """Each kernel (top row) and the grey ``image`` (H, W) filtered with it, 'same' zero padding.

    Kernels whose weights sum to 0 (edge detectors) give signed results, drawn in a diverging map
    (red > 0, blue < 0, white = 0); the others (blurs, sharpen: sum 1) in grey on [0, 1], clipped.
    Kernel values are written in the cells when ``show_values`` and the kernel is at most 3x3.
    """
    n = len(names)
    fig, axes = plt.subplots(2, n, figsize=(2.4 * n, 4.2), height_ratios=[1, 2.6], squeeze=False)
    x = image.float()[None, None]  # (1, 1, H, W)
    for col, name in enumerate(names):
        ker = make_kernel(name)
        k = ker.numpy()
        y = F.conv2d(x, ker[None, None], padding="same")[0, 0].numpy()  # (H, W)
        ax = axes[0, col]
        shown = _image_kwargs(k, _signed(k))
        ax.imshow(k, **shown)
        if show_values and max(k.shape) <= 3:
            _annotate(ax, k, 9, shown)
        ax.set_title(name, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
        ax = axes[1, col]
        if abs(float(k.sum())) < 1e-6:  # an edge detector: the result is signed, 0 = flat
            ax.imshow(y, **_image_kwargs(y, signed=True))
        else:  # weights summing to 1 keep the brightness: show on the image's own scale
            ax.imshow(y, cmap="gray", vmin=0.0, vmax=1.0)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel(f"range [{y.min():.2f}, {y.max():.2f}]", fontsize=8)
    fig.tight_layout()
    return fig


def _covered(n: int, k: int, stride: int, padding: int, out: int) -> np.ndarray:
    """Which of the n input pixels along one axis fall inside at least one window."""
    seen = np.zeros(n + 2 * padding, dtype=bool)
    for i in range(out):
        seen[i * stride : i * stride + k] = True
    return seen[padding : padding + n]


def explore_conv(
    kernel: str = "sobel x",
    stride: int = 1,
    padding: int = 0,
    image: str = "5x5 example",
) -> plt.Figure:
    """Input (zero-padded), kernel and output side by side, with the output size from the formula.

    The callback of lesson 03's widget. The input panel marks the first window (red) and the
    window one stride step to the right (orange, dashed); the output is drawn at the input's pixel
    scale so that its size can be compared directly. Where the kernel does not fit the padded
    input, the output panel says so (and what to change) instead of raising. Returns the figure
    (not shown, not closed): the caller displays or closes it.
    """
    img = lesson_image(image)
    ker = make_kernel(kernel)
    stride, padding = int(stride), int(padding)
    (h, w), (kh, kw) = img.shape, ker.shape
    xp = F.pad(img, (padding,) * 4).numpy()  # (H + 2p, W + 2p)
    k = ker.numpy()
    small = max(xp.shape) <= 13
    fig, axes = plt.subplots(
        1, 3, figsize=(11.5, 4.2), width_ratios=[1, 0.55, 1], layout="constrained"
    )

    ax = axes[0]
    shown = {"cmap": "gray", "vmin": 0.0, "vmax": 1.0}
    ax.imshow(xp, interpolation="nearest", **shown)
    if small:
        _annotate(ax, xp, 9 if max(xp.shape) <= 9 else 7, shown)
    if padding:
        _box(ax, padding, padding, h, w, edgecolor="tab:blue", lw=1.5, ls="--")
    if kh <= xp.shape[0] and kw <= xp.shape[1]:
        _box(ax, 0, 0, kh, kw, edgecolor="tab:red", lw=2.5)
        if stride + kw <= xp.shape[1]:
            _box(ax, 0, stride, kh, kw, edgecolor="tab:orange", lw=2, ls="--")
    ax.set_title(
        f"input {h}x{w}, zero padding p={padding} → {h + 2 * padding}x{w + 2 * padding}",
        fontsize=10,
    )
    ax.set_xlabel("red: first window; orange: one stride step on", fontsize=8)

    ax = axes[1]
    shown = _image_kwargs(k, _signed(k))
    ax.imshow(k, interpolation="nearest", **shown)
    if max(k.shape) <= 7:
        _annotate(ax, k, 10 if max(k.shape) <= 3 else 7, shown)
    ax.set_title(f"kernel {kernel}: k={kh}", fontsize=10)
    same = ""
    if kh % 2 and padding == (kh - 1) // 2:  # p = (k - 1) / 2 keeps the size at stride 1
        same = " ('same' padding)" if stride == 1 else " ('same' at stride 1)"
    ax.set_xlabel(f"stride s={stride}, padding p={padding}{same}", fontsize=9)

    ax = axes[2]
    try:
        ho = conv_output_size(h, kh, stride, padding)
        wo = conv_output_size(w, kw, stride, padding)
    except ValueError as err:
        ax.set_facecolor("0.93")
        ax.text(0.5, 0.5, "no output:\n" + _wrap(str(err), 44), ha="center", va="center",
                fontsize=9, color="tab:red", transform=ax.transAxes)  # fmt: skip
        ax.set_title("output: the kernel does not fit", fontsize=10)
    else:
        y = conv2d_im2col(img[None, None], ker[None, None], stride=stride, padding=padding)
        y = y[0, 0].numpy()
        shown = _image_kwargs(y, signed=abs(float(k.sum())) < 1e-6)
        ax.imshow(y, interpolation="nearest", **shown)
        if small:
            _annotate(ax, y, 9 if max(y.shape) <= 9 else 7, shown)
        ax.set_title(
            f"output: ⌊({h} + 2·{padding} − {kh}) / {stride}⌋ + 1 = {ho}"
            + ("" if (h, kh) == (w, kw) else f", width {wo}"),
            fontsize=10,
        )
        unused = (~np.outer(_covered(h, kh, stride, padding, ho),
                            _covered(w, kw, stride, padding, wo))).sum()  # fmt: skip
        note = f"{ho}x{wo} pixels"
        if unused:
            note += f"; {unused} input pixels are in no window"
        ax.set_xlabel(note, fontsize=9)
    ax.set_aspect("equal")
    ax.set_xlim(-0.5, xp.shape[1] - 0.5)  # the input's pixel scale: sizes compare directly
    ax.set_ylim(xp.shape[0] - 0.5, -0.5)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    return fig


def _wrap(text: str, width: int) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width))


def _show_conv(**kwargs) -> None:
    """Widget callback: draw :func:`explore_conv` into the widget's output, then close it."""
    from IPython.display import display

    fig = explore_conv(**kwargs)
    display(fig)
    plt.close(fig)


def conv_widget(
    kernel: str = "X (worked example)",
    stride: int = 1,
    padding: int = 0,
    image: str = "5x5 example",
):
    """An ipywidgets panel around :func:`explore_conv`: kernel, stride, padding and input image.

    Redraws on every change (a drawing takes well under a second).
    """
    import ipywidgets as W

    style = {"description_width": "70px"}
    layout = W.Layout(width="360px")
    controls = {
        "kernel": W.Dropdown(options=list(KERNEL_NAMES), value=kernel, description="kernel",
                             style=style, layout=layout),
        "stride": W.IntSlider(value=stride, min=1, max=5, description="stride",
                              continuous_update=False, style=style, layout=layout),
        "padding": W.IntSlider(value=padding, min=0, max=8, description="padding",
                               continuous_update=False, style=style, layout=layout),
        "image": W.Dropdown(options=list(LESSON_IMAGES), value=image, description="input",
                            style=style, layout=layout),
    }  # fmt: skip
    return W.interactive(_show_conv, **controls)


# ----------------------------------------------------------------------------------------------
# shapes inside a network
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConvShape:
    """One ``nn.Conv2d`` call: its settings, the sizes it saw and the formula's prediction."""

    name: str
    in_channels: int
    out_channels: int
    kernel: int
    stride: int
    padding: int
    in_hw: tuple[int, int]
    out_hw: tuple[int, int]
    predicted_hw: tuple[int, int]
    parameters: int


def conv_shapes(model: nn.Module, x: torch.Tensor) -> list[ConvShape]:
    """Run ``model(x)`` once (no gradients) and record every ``nn.Conv2d`` it calls, in order.

    Each entry holds the layer's name, channels, (square) kernel size, stride and padding, the
    spatial size in and out, the size :func:`conv_output_size` predicts, and its parameter count
    (C_in * C_out * k * k weights, plus C_out biases if it has them).
    """
    records: list[ConvShape] = []
    names = {m: n for n, m in model.named_modules()}

    def hook(module: nn.Conv2d, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        (k, _), (s, _), (p, _) = module.kernel_size, module.stride, module.padding
        h, w = inputs[0].shape[-2:]
        records.append(
            ConvShape(
                name=names[module],
                in_channels=module.in_channels,
                out_channels=module.out_channels,
                kernel=k,
                stride=s,
                padding=p,
                in_hw=(h, w),
                out_hw=tuple(output.shape[-2:]),
                predicted_hw=(conv_output_size(h, k, s, p), conv_output_size(w, k, s, p)),
                parameters=sum(q.numel() for q in module.parameters()),
            )
        )

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    return records
