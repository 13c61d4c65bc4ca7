"""HR -> LR: how the low-resolution training inputs are made from high-resolution images.

Ledig et al. (2017), Sec. 2: the LR training input is the HR image, Gaussian-filtered, then
downsampled by the factor r. The SR benchmarks (Set5, Set14, BSD100) instead use MATLAB's
``imresize(img, 1/r, 'bicubic')``, which is also what most SRGAN code trains on. Both live here:

* :func:`blur_downsample` - Gaussian blur (:func:`gaussian_blur`), then every r-th pixel.
* :func:`imresize` - MATLAB-compatible bicubic resizing (Keys cubic, a = -0.5, antialiased when
  shrinking), with the wrappers :func:`bicubic_down` and :func:`bicubic_up` (the bicubic baseline).
* :func:`degrade` - the single entry point the training loop calls.

Everything works on batches ``(B, C, H, W)`` of floats in [0, 1] (a single ``(C, H, W)`` image is
accepted too), on whatever device and dtype the input has. Introduced in lesson 04.

Rounding: MATLAB's ``imresize`` on a uint8 image clips to [0, 255] and rounds after each of its two
1-D passes. Here both passes run in floating point and nothing is rounded; :func:`degrade` can clip
and quantise to 8-bit levels at the end (``quantize=True``) when you want LR images exactly as a
PNG on disk would hold them. The difference is at most about half a grey level.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

PAD_MODES = ("symmetric", "reflect", "replicate")
"""Boundary handling for :func:`gaussian_blur`; scipy.ndimage calls them reflect/mirror/nearest."""


# ----------------------------------------------------------------------------------------------
# input checks and boundary indices
# ----------------------------------------------------------------------------------------------


def _as_batch(x: torch.Tensor, name: str = "x") -> tuple[torch.Tensor, bool]:
    """Return ``x`` as (B, C, H, W) and whether it was a single (C, H, W) image."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (B, C, H, W), got {type(x)}")
    if not x.is_floating_point():
        raise TypeError(
            f"{name} must be a float tensor in [0, 1], got dtype {x.dtype}; "
            "convert with x.float() / 255 first"
        )
    if x.dim() == 3:
        return x.unsqueeze(0), True
    if x.dim() != 4:
        raise ValueError(f"{name} must have shape (B, C, H, W) or (C, H, W), got {tuple(x.shape)}")
    return x, False


def _mirror(i: torch.Tensor, n: int) -> torch.Tensor:
    """Fold any integer indices into 0..n-1 by mirroring with the edge repeated (period 2n)."""
    i = i % (2 * n)
    return torch.where(i >= n, 2 * n - 1 - i, i)


def _pad_index(n: int, pad: int, mode: str, device: torch.device | None = None) -> torch.Tensor:
    """Indices into a length-``n`` axis for positions -pad .. n-1+pad under a boundary ``mode``.

    symmetric: ... c b a | a b c ... (edge repeated; MATLAB 'symmetric', scipy 'reflect')
    reflect:   ... d c b | a b c d ... (edge not repeated; torch 'reflect', scipy 'mirror')
    replicate: ... a a a | a b c ... (edge value extended; scipy 'nearest')
    Works for any ``pad``, even one larger than ``n`` (the pattern repeats).
    """
    i = torch.arange(-pad, n + pad, device=device)
    if mode == "symmetric":
        return _mirror(i, n)
    if mode == "reflect":
        if n == 1:
            return torch.zeros_like(i)
        i = i % (2 * n - 2)
        return torch.where(i >= n, 2 * n - 2 - i, i)
    if mode == "replicate":
        return i.clamp(0, n - 1)
    raise ValueError(f"padding mode must be one of {PAD_MODES}, got {mode!r}")


# ----------------------------------------------------------------------------------------------
# Gaussian blur + downsampling (the paper's description, Sec. 2)
# ----------------------------------------------------------------------------------------------


def gaussian_kernel1d(sigma: float, kernel_size: int | None = None) -> torch.Tensor:
    """A normalised 1-D Gaussian, float64, of odd length (default radius ``int(4 sigma + 0.5)``).

    The default length is scipy.ndimage.gaussian_filter's (truncate=4), so the two agree exactly.
    """
    if sigma <= 0:
        raise ValueError(f"sigma must be > 0, got {sigma}; use sigma=None for the default")
    if kernel_size is None:
        radius = int(4.0 * sigma + 0.5)
    else:
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be a positive odd integer, got {kernel_size}")
        radius = kernel_size // 2
    t = torch.arange(-radius, radius + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    return k / k.sum()


def gaussian_blur(
    x: torch.Tensor,
    sigma: float,
    kernel_size: int | None = None,
    mode: str = "symmetric",
) -> torch.Tensor:
    """Separable Gaussian blur of a (B, C, H, W) batch, each channel on its own.

    ``mode="symmetric"`` (default) mirrors the image with its edge pixel repeated, as MATLAB's
    ``imfilter(..., 'symmetric')``, ``imresize`` and scipy's default ``mode='reflect'`` do; it adds
    no dark or bright frame. With the default ``kernel_size`` the result equals
    ``scipy.ndimage.gaussian_filter(x, sigma, mode='reflect')`` per channel.
    """
    x4, single = _as_batch(x)
    if mode not in PAD_MODES:
        raise ValueError(f"padding mode must be one of {PAD_MODES}, got {mode!r}")
    b, c, h, w = x4.shape
    k = gaussian_kernel1d(sigma, kernel_size).to(device=x4.device, dtype=x4.dtype)
    r = k.numel() // 2
    y = x4.reshape(b * c, 1, h, w)  # (B*C, 1, H, W): every channel blurred alike
    y = y.index_select(2, _pad_index(h, r, mode, x4.device))  # (B*C, 1, H+2r, W)
    y = F.conv2d(y, k.view(1, 1, -1, 1))  # (B*C, 1, H, W)
    y = y.index_select(3, _pad_index(w, r, mode, x4.device))  # (B*C, 1, H, W+2r)
    y = F.conv2d(y, k.view(1, 1, 1, -1))  # (B*C, 1, H, W)
    y = y.reshape(b, c, h, w)
    return y[0] if single else y


def default_sigma(scale: int) -> float:
    """Default blur for ``blur_downsample``: sigma = r / 2 (the paper gives no value).

    Why r / 2: sigma proportional to r gives the same response at the LR grid's Nyquist
    frequency 1/(2r) for every r: exp(-2 pi^2 sigma^2 / (4 r^2)) = exp(-pi^2 / 8) ~ 0.29, and
    for r = 2 it is sigma = 1, the variance of Burt & Adelson's (1983) 5-tap pyramid kernel
    [1, 4, 6, 4, 1] / 16. scikit-image's ``resize`` uses the milder (r - 1) / 2; pass ``sigma``
    to choose another value.
    """
    return scale / 2.0


def blur_downsample(
    x: torch.Tensor,
    scale: int,
    sigma: float | None = None,
    offset: int = 0,
    mode: str = "symmetric",
) -> torch.Tensor:
    """Gaussian blur, then keep every ``scale``-th pixel: the paper's degradation (Sec. 2).

    ``offset`` picks which pixel of each r x r block is kept (0 = top-left, as most code does).
    Output size is ceil(H / r) x ceil(W / r), like :func:`bicubic_down`; note that with offset 0
    the LR grid sits (r - 1) / 2 HR pixels up-left of the bicubic one.
    """
    scale = _check_int_scale(scale)
    if not 0 <= offset < scale:
        raise ValueError(f"offset must be in 0..{scale - 1} for scale {scale}, got {offset}")
    sigma = default_sigma(scale) if sigma is None else sigma
    y = gaussian_blur(x, sigma, mode=mode)
    return y[..., offset::scale, offset::scale]


# ----------------------------------------------------------------------------------------------
# MATLAB-compatible bicubic imresize
# ----------------------------------------------------------------------------------------------


def cubic_kernel(t: torch.Tensor, a: float = -0.5) -> torch.Tensor:
    """Keys' (1981) cubic convolution kernel; a = -0.5 is MATLAB's and Pillow's bicubic.

    k(t) = (a+2)|t|^3 - (a+3)|t|^2 + 1          for |t| <= 1
    k(t) = a|t|^3 - 5a|t|^2 + 8a|t| - 4a         for 1 < |t| < 2, and 0 beyond.
    For a = -0.5: k(0) = 1, k(0.5) = 0.5625, k(1) = 0, k(1.5) = -0.0625, k(2) = 0.
    """
    s = t.abs()
    near = ((a + 2) * s - (a + 3)) * s * s + 1
    far = ((a * s - 5 * a) * s + 8 * a) * s - 4 * a
    return torch.where(s <= 1, near, torch.where(s < 2, far, torch.zeros_like(s)))


def resize_matrix(
    in_size: int,
    out_size: int,
    scale: float | None = None,
    antialias: bool = True,
) -> torch.Tensor:
    """The (out_size, in_size) float64 matrix M with ``resized_axis = M @ axis`` (MATLAB imresize).

    Output pixel j (0-based) has its centre at input coordinate u = (j + 0.5) / scale - 0.5
    (pixel centres aligned, MATLAB's mapping). Its weights are k(u - i) over the input pixels i
    near u; when shrinking with ``antialias`` the kernel is stretched to scale * k(scale * t)
    (support 4 / scale), which low-pass filters before sampling. Each row is normalised to sum 1,
    and indices outside the image are mirrored with the edge repeated (MATLAB's boundary rule).
    ``scale`` defaults to out_size / in_size.
    """
    if in_size < 1 or out_size < 1:
        raise ValueError(f"sizes must be >= 1, got in_size={in_size}, out_size={out_size}")
    scale = out_size / in_size if scale is None else float(scale)
    if scale <= 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    stretch = scale if (antialias and scale < 1) else 1.0
    width = 4.0 / stretch  # support of the (stretched) kernel, in input pixels
    u = (torch.arange(out_size, dtype=torch.float64) + 0.5) / scale - 0.5  # (out,)
    left = torch.floor(u - width / 2)  # first tap
    taps = left[:, None] + torch.arange(math.ceil(width) + 2, dtype=torch.float64)  # (out, P)
    w = stretch * cubic_kernel(stretch * (u[:, None] - taps))  # (out, P)
    w = w / w.sum(dim=1, keepdim=True)
    src = _mirror(taps.long(), in_size)  # (out, P): out-of-range taps mirrored, edge repeated
    m = torch.zeros(out_size, in_size, dtype=torch.float64)
    return m.scatter_add_(1, src, w)  # mirrored taps that land on one pixel add up


def _check_int_scale(scale: int) -> int:
    if isinstance(scale, bool) or int(scale) != scale or scale < 1:
        raise ValueError(f"scale must be a positive integer such as 2, 3 or 4, got {scale!r}")
    return int(scale)


def _out_size(n: int, scale: float) -> int:
    # MATLAB: ceil(scale * n). The tiny tolerance keeps e.g. 48 * (1/3) from becoming 17.
    return max(1, math.ceil(n * scale - 1e-9))


@functools.lru_cache(maxsize=64)
def _resize_matrix_on(
    n_in: int, n_out: int, scale: float, antialias: bool, device: torch.device, dtype: torch.dtype
) -> torch.Tensor:
    """:func:`resize_matrix` on ``device``, made once per size: training resizes the same crop
    size every step, and copying a new matrix from the host each time would make the host wait
    for the GPU (a copy from pageable memory synchronises)."""
    return resize_matrix(n_in, n_out, scale, antialias).to(device, dtype)


def _resize(
    x4: torch.Tensor,
    out_hw: tuple[int, int],
    scale_hw: tuple[float, float],
    antialias: bool,
) -> torch.Tensor:
    """Apply the two 1-D resize matrices to a (B, C, H, W) batch, shrinking axis first."""
    h, w = x4.shape[-2:]
    mh = _resize_matrix_on(h, out_hw[0], scale_hw[0], antialias, x4.device, x4.dtype)  # (H', H)
    mw = _resize_matrix_on(w, out_hw[1], scale_hw[1], antialias, x4.device, x4.dtype)  # (W', W)
    if scale_hw[0] <= scale_hw[1]:  # like MATLAB: the dimension with the smaller scale first
        return torch.matmul(torch.matmul(mh, x4), mw.T)  # (B, C, H', W)  -> (B, C, H', W')
    return torch.matmul(mh, torch.matmul(x4, mw.T))  # (B, C, H, W') -> (B, C, H', W')


def imresize(
    x: torch.Tensor,
    scale_or_size: float | Sequence[int],
    antialias: bool = True,
) -> torch.Tensor:
    """MATLAB-compatible bicubic ``imresize`` of a (B, C, H, W) or (C, H, W) float tensor.

    ``scale_or_size`` is a scale factor (a number: output ceil(H * s) x ceil(W * s), mapping with
    s itself, as MATLAB) or an output size ``(H_out, W_out)`` (mapping with H_out / H, W_out / W).
    Cubic kernel a = -0.5, antialiasing when shrinking, mirrored borders (see
    :func:`resize_matrix`). No clipping: bicubic overshoots slightly near edges.
    """
    x4, single = _as_batch(x)
    h, w = x4.shape[-2:]
    if isinstance(scale_or_size, (int, float)) and not isinstance(scale_or_size, bool):
        s = float(scale_or_size)
        if not s > 0 or math.isinf(s):
            raise ValueError(f"scale must be a positive number, got {scale_or_size}")
        out_hw, scale_hw = (_out_size(h, s), _out_size(w, s)), (s, s)
    elif (
        isinstance(scale_or_size, Sequence)
        and len(scale_or_size) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in scale_or_size)
    ):
        out_hw = (int(scale_or_size[0]), int(scale_or_size[1]))
        scale_hw = (out_hw[0] / h, out_hw[1] / w)
    else:
        raise ValueError(
            "scale_or_size must be a positive scale factor (e.g. 0.25) or an output size "
            f"(H_out, W_out) of two positive ints, got {scale_or_size!r}"
        )
    y = _resize(x4, out_hw, scale_hw, antialias)
    return y[0] if single else y


def bicubic_down(x: torch.Tensor, scale: int, clamp: bool = True) -> torch.Tensor:
    """``imresize(x, 1/scale)`` as the SR benchmarks make their LR images (clipped to [0, 1])."""
    scale = _check_int_scale(scale)
    x4, single = _as_batch(x)
    h, w = x4.shape[-2:]
    out_hw = (-(-h // scale), -(-w // scale))  # ceil(H / r), in integers
    y = _resize(x4, out_hw, (1.0 / scale, 1.0 / scale), antialias=True)
    y = y.clamp(0.0, 1.0) if clamp else y
    return y[0] if single else y


def bicubic_up(x: torch.Tensor, scale: int, clamp: bool = True) -> torch.Tensor:
    """``imresize(x, scale)``: the bicubic baseline of the paper's Table 2 (clipped to [0, 1])."""
    scale = _check_int_scale(scale)
    x4, single = _as_batch(x)
    h, w = x4.shape[-2:]
    y = _resize(x4, (h * scale, w * scale), (float(scale), float(scale)), antialias=True)
    y = y.clamp(0.0, 1.0) if clamp else y
    return y[0] if single else y


# ----------------------------------------------------------------------------------------------
# the entry point used by training and evaluation
# ----------------------------------------------------------------------------------------------

METHODS = ("bicubic", "gaussian")


def degrade(
    hr: torch.Tensor,
    scale: int,
    method: str = "bicubic",
    sigma: float | None = None,
    quantize: bool = False,
    check: bool = True,
) -> torch.Tensor:
    """HR batch in [0, 1] -> LR batch in [0, 1], (B, C, H, W) -> (B, C, ceil(H/r), ceil(W/r)).

    ``method="bicubic"``: MATLAB ``imresize(hr, 1/r)`` (the benchmarks' LR images).
    ``method="gaussian"``: Gaussian blur (``sigma``, default r/2) and every r-th pixel, as the
    paper's Sec. 2 describes. ``quantize=True`` rounds to 8-bit levels like an LR PNG on disk.
    ``check=False`` skips the range check, which reads a value back from the device (a training
    loop that knows its range saves that synchronisation).
    """
    hr4, single = _as_batch(hr, "hr")
    lowest = float(hr4.min()) if check and hr4.numel() else 0.0
    if lowest < -1e-3:
        raise ValueError(
            f"degrade expects HR images in [0, 1], found values down to {lowest:.3f}; if these "
            "are generator-range images in [-1, 1], convert them with "
            "srgan_edu.imaging.signed_to_unit first"
        )
    if method == "bicubic":
        lr = bicubic_down(hr4, scale, clamp=True)
    elif method == "gaussian":
        lr = blur_downsample(hr4, scale, sigma=sigma).clamp(0.0, 1.0)
    else:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if quantize:
        lr = torch.round(lr * 255.0) / 255.0
    return lr[0] if single else lr
