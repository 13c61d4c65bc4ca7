"""Lesson 06 (measuring image quality): distortions of equal MSE, SSIM's terms, VGG distances.

The lesson puts five distortions of one photo side by side, all with the *same* mean squared
error, and asks which of them MSE, SSIM and a VGG feature distance call good. Everything it needs
beyond the core library is here, so that ``tests/test_teach_quality.py`` can check it:

* :data:`DISTORTIONS` and :func:`distort` - Gaussian blur, Gaussian noise, JPEG compression,
  contrast stretch and a sub-pixel shift, each with one strength parameter.
* :func:`match_mse` / :func:`match_all` - a bracketing search (regula falsi) on that parameter
  until the distorted image has a chosen MSE (or PSNR) to within a relative tolerance.
* :func:`jpeg_tables` - the IJG quantisation tables for any (also fractional) quality, so that
  JPEG's strength is continuous enough for the search; at whole qualities they are exactly
  Pillow's.
* :func:`ssim_terms` - the luminance, contrast and structure maps of SSIM (Wang et al. 2004),
  whose product is :func:`srgan_edu.metrics.ssim_map`.
* :func:`load_content_loss` - a :class:`srgan_edu.losses.ContentLoss` with the best VGG19 weights
  this machine has for a layer (full ImageNet, the course's partial ImageNet copy, else seeded
  random weights), and a plain statement of which ones it got (:class:`VGGChoice`).
* :func:`feature_distance`, :func:`feature_distance_maps`, :func:`receptive_field` - VGG distances
  per image and per position, and how much of the image one feature sees.
* :func:`quality_sweep` - SSIM and VGG distances of every distortion over a range of PSNRs.
* the pictures: :func:`plot_images`, :func:`plot_ssim_terms`, :func:`plot_damage_maps`,
  :func:`plot_feature_maps`, :func:`plot_sweep`.
* :func:`explore_distortion` (the widget's callback) and :func:`quality_widget`.

Images are (3, H, W) tensors in [0, 1] (a batch (B, 3, H, W) where noted).
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

import srgan_edu
from srgan_edu.degrade import gaussian_blur
from srgan_edu.imaging import to_pil, unit_to_signed
from srgan_edu.losses import ContentLoss
from srgan_edu.metrics import gaussian_window, local_moments, mse, psnr
from srgan_edu.vgg import (
    WEIGHTS_ENV,
    VGGFeatures,
    VGGWeightsError,
    imagenet_weights_path,
    load_weights_file,
    vgg19_layer,
    vgg19_layers,
)

__all__ = [
    "DISTORTIONS",
    "JPEG_CHROMA",
    "JPEG_LUMA",
    "Distortion",
    "Matched",
    "VGGChoice",
    "add_noise",
    "blur",
    "contrast_stretch",
    "distort",
    "explore_distortion",
    "feature_distance",
    "feature_distance_maps",
    "jpeg",
    "jpeg_tables",
    "load_content_loss",
    "match_all",
    "match_mse",
    "mse_for_psnr",
    "plot_damage_maps",
    "plot_feature_maps",
    "plot_images",
    "plot_ssim_terms",
    "plot_sweep",
    "quality_sweep",
    "quality_widget",
    "receptive_field",
    "shared_vgg_dir",
    "shift",
    "ssim_terms",
]

# ----------------------------------------------------------------------------------------------
# the five distortions
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Distortion:
    """One distortion of the lesson and the range its strength parameter is searched in.

    ``stronger`` is +1 when a larger parameter damages more (blur sigma, noise std, contrast
    gain, shift) and -1 when a smaller one does (JPEG quality).
    """

    name: str
    title: str
    parameter: str
    low: float
    high: float
    stronger: int = 1

    def weakest(self) -> float:
        """The parameter value that changes the image least."""
        return self.low if self.stronger > 0 else self.high

    def at(self, u: float) -> float:
        """The parameter at fraction ``u`` in [0, 1] of the way from weakest to strongest."""
        span = self.high - self.low
        return self.low + u * span if self.stronger > 0 else self.high - u * span


DISTORTIONS: dict[str, Distortion] = {
    "blur": Distortion("blur", "Gaussian blur", "sigma [px]", 0.0, 12.0),
    "noise": Distortion("noise", "Gaussian noise", "std", 0.0, 1.0),
    "jpeg": Distortion("jpeg", "JPEG compression", "quality", 1.0, 100.0, stronger=-1),
    "contrast": Distortion("contrast", "contrast stretch", "gain", 1.0, 10.0),
    "shift": Distortion("shift", "shift to the right", "pixels", 0.0, 4.0),
}
"""The lesson's distortions by key, in the order the lesson shows them."""


def _check_image(x: torch.Tensor, what: str = "image") -> None:
    if not isinstance(x, torch.Tensor) or x.dim() != 3 or x.shape[0] != 3:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{what} must be an RGB tensor of shape (3, H, W) in [0, 1], got {shape}")


def blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur with standard deviation ``sigma`` pixels (mirrored borders); 0 = unchanged."""
    _check_image(x)
    if sigma <= 0:
        return x.clone()
    return gaussian_blur(x, float(sigma))


def add_noise(x: torch.Tensor, std: float, seed: int = 0) -> torch.Tensor:
    """``x`` plus white Gaussian noise of standard deviation ``std``, clipped to [0, 1].

    The noise pattern depends only on ``seed`` and the image size, so a larger ``std`` scales
    the same pattern (what makes the MSE search smooth).
    """
    _check_image(x)
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn(x.shape, generator=generator, dtype=torch.float32).to(x.device, x.dtype)
    return (x + float(std) * noise).clamp(0.0, 1.0)


JPEG_LUMA = (
    16, 11, 10, 16, 24, 40, 51, 61,
    12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77,
    24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101,
    72, 92, 95, 98, 112, 100, 103, 99,
)  # fmt: skip
"""The JPEG standard's example luminance quantisation table (Annex K.1), row by row."""

JPEG_CHROMA = (
    17, 18, 24, 47, 99, 99, 99, 99,
    18, 21, 26, 66, 99, 99, 99, 99,
    24, 26, 56, 99, 99, 99, 99, 99,
    47, 66, 99, 99, 99, 99, 99, 99,
    99, 99, 99, 99, 99, 99, 99, 99,
    99, 99, 99, 99, 99, 99, 99, 99,
    99, 99, 99, 99, 99, 99, 99, 99,
    99, 99, 99, 99, 99, 99, 99, 99,
)  # fmt: skip
"""The JPEG standard's example chrominance quantisation table (Annex K.2), row by row."""


def jpeg_tables(quality: float) -> list[list[int]]:
    """The [luma, chroma] quantisation tables libjpeg uses at ``quality`` in [1, 100].

    libjpeg's rule (``jpeg_quality_scaling``): scale = 5000 / q below 50, else 200 - 2 q (in
    percent), entry = floor((base * scale + 50) / 100) clipped to [1, 255]. A fractional quality
    gives tables between those of its two whole neighbours. Larger entries = coarser rounding of
    the DCT coefficients = more loss.
    """
    q = float(quality)
    if not 1.0 <= q <= 100.0:
        raise ValueError(f"JPEG quality must be in [1, 100], got {quality}")
    scale = 5000.0 / q if q < 50 else 200.0 - 2.0 * q
    return [
        [int(min(max((b * scale + 50) // 100, 1), 255)) for b in base]
        for base in (JPEG_LUMA, JPEG_CHROMA)
    ]


def jpeg(x: torch.Tensor, quality: float) -> torch.Tensor:
    """``x`` saved as a JPEG at ``quality`` (fractional allowed, 4:2:0 chroma) and read back.

    At a whole quality the file is byte for byte what ``PIL.Image.save(..., quality=q)`` writes.
    The image is rounded to 8 bits first, as any saved image is.
    """
    _check_image(x)
    buffer = io.BytesIO()
    to_pil(x).save(buffer, "JPEG", qtables=jpeg_tables(quality), subsampling=2)
    buffer.seek(0)
    with Image.open(buffer) as img:
        arr = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0  # (H, W, 3)
    return torch.from_numpy(arr.transpose(2, 0, 1).copy()).to(x.device, x.dtype)


def contrast_stretch(x: torch.Tensor, gain: float) -> torch.Tensor:
    """Stretch the contrast about the image's mean: mean + gain (x - mean), clipped to [0, 1].

    The mean brightness stays (where nothing clips); every local difference grows by ``gain``.
    """
    _check_image(x)
    mean = x.mean()
    return (mean + float(gain) * (x - mean)).clamp(0.0, 1.0)


def shift(x: torch.Tensor, dx: float, dy: float = 0.0) -> torch.Tensor:
    """Move the picture ``dx`` pixels right and ``dy`` down; fractions allowed, nothing blurred.

    The shift multiplies the Fourier transform by exp(-2 pi i (f_x dx + f_y dy)): every spatial
    frequency keeps its amplitude and only its phase turns (an exact band-limited shift). The
    image is mirrored at its borders first, so the pixels that enter are a plausible
    continuation rather than the opposite edge.
    """
    _check_image(x)
    if dx == 0 and dy == 0:
        return x.clone()
    h, w = x.shape[-2:]
    pad = math.ceil(max(abs(dx), abs(dy))) + 8
    if pad >= min(h, w):
        raise ValueError(f"a shift of ({dx}, {dy}) px is too large for a {h}x{w} image")
    padded = F.pad(x[None].double(), (pad, pad, pad, pad), mode="reflect")[0]  # (3, H+2p, W+2p)
    fy = torch.fft.fftfreq(padded.shape[-2], dtype=torch.float64, device=x.device)[:, None]
    fx = torch.fft.fftfreq(padded.shape[-1], dtype=torch.float64, device=x.device)[None, :]
    phase = torch.exp(-2j * math.pi * (fx * float(dx) + fy * float(dy)))  # (H+2p, W+2p)
    moved = torch.fft.ifft2(torch.fft.fft2(padded) * phase).real
    return moved[:, pad : pad + h, pad : pad + w].clamp(0.0, 1.0).to(x.dtype)


def distort(x: torch.Tensor, kind: str, strength: float, seed: int = 0) -> torch.Tensor:
    """Apply distortion ``kind`` (a key of :data:`DISTORTIONS`) with parameter ``strength``.

    ``seed`` only matters for ``"noise"``.
    """
    if kind not in DISTORTIONS:
        raise ValueError(f"unknown distortion {kind!r}; choose one of {list(DISTORTIONS)}")
    if kind == "blur":
        return blur(x, strength)
    if kind == "noise":
        return add_noise(x, strength, seed)
    if kind == "jpeg":
        return jpeg(x, strength)
    if kind == "contrast":
        return contrast_stretch(x, strength)
    return shift(x, strength)


# ----------------------------------------------------------------------------------------------
# hitting a target MSE
# ----------------------------------------------------------------------------------------------


def mse_for_psnr(psnr_db: float, data_range: float = 1.0) -> float:
    """The MSE that gives ``psnr_db``: PSNR = 10 log10(MAX^2 / MSE) solved for MSE."""
    return data_range**2 * 10.0 ** (-float(psnr_db) / 10.0)


@dataclass
class Matched:
    """A distorted image and how close its MSE came to the target.

    ``reached`` is False when the target lies outside what the distortion can do on this image
    (then ``image`` is the closest it got, at one end of the range). ``tries`` counts the
    distorted images the search made.
    """

    kind: str
    strength: float
    image: torch.Tensor = field(repr=False)
    mse: float
    target: float
    reached: bool
    tries: int = 0

    @property
    def rel_error(self) -> float:
        """|MSE - target| / target."""
        return abs(self.mse - self.target) / self.target

    def describe(self) -> str:
        """E.g. ``'Gaussian blur, sigma [px] = 1.62'``."""
        spec = DISTORTIONS[self.kind]
        return f"{spec.title}, {spec.parameter} = {self.strength:.3g}"


def match_mse(
    x: torch.Tensor,
    kind: str,
    target: float,
    *,
    tol: float = 0.005,
    iters: int = 40,
    seed: int = 0,
    strict: bool = True,
) -> Matched:
    """Find the strength of distortion ``kind`` at which MSE(distorted, ``x``) = ``target``.

    The MSE grows with the strength, so the target lies between two strengths whose MSEs
    straddle it; starting from the weakest and strongest end of the distortion's range
    (:data:`DISTORTIONS`), each step tries the point where a straight line between the two
    crosses the target (regula falsi, Illinois variant; a halving when that lands near an end)
    and keeps the pair that still straddles it. It stops once the relative error is below
    ``tol`` / 10, or after ``iters`` tries, and returns the closest image seen. JPEG's MSE moves
    in tiny steps (its tables hold integers), so it may stop a little off.

    ``strict=True`` raises ``ValueError`` when no strength gets within ``tol`` (a target outside
    the distortion's reach); ``strict=False`` returns the closest image with ``reached=False``.
    """
    _check_image(x)
    if kind not in DISTORTIONS:
        raise ValueError(f"unknown distortion {kind!r}; choose one of {list(DISTORTIONS)}")
    if not target > 0:
        raise ValueError(f"the target MSE must be > 0, got {target}")
    spec = DISTORTIONS[kind]
    best: Matched | None = None
    tries = 0

    def trial(u: float) -> float:
        nonlocal best, tries
        tries += 1
        strength = spec.at(u)
        image = distort(x, kind, strength, seed)
        err = float(mse(image, x))
        if best is None or abs(err - target) < abs(best.mse - target):
            best = Matched(kind, strength, image, err, target, reached=False)
        return err - target

    a, b = 0.0, 1.0
    f_a, f_b = trial(a), trial(b)
    lowest, highest = f_a + target, f_b + target
    if f_a < 0 < f_b:
        for _ in range(iters):
            if best.rel_error < tol / 10 or abs(b - a) < 1e-4:
                break
            # regula falsi: where the straight line through (a, f_a) and (b, f_b) crosses zero;
            # a plain halving instead when that point hugs an end of the interval
            c = (a * f_b - b * f_a) / (f_b - f_a)
            if not abs(b - a) * 0.01 < c - min(a, b) < abs(b - a) * 0.99:
                c = 0.5 * (a + b)
            f_c = trial(c)
            if (f_c < 0) == (f_b < 0):
                f_a *= 0.5  # Illinois: b's side moved twice, so lean the line towards a
            else:
                a, f_a = b, f_b
            b, f_b = c, f_c
    assert best is not None
    best.reached = best.rel_error <= tol
    best.tries = tries
    if strict and not best.reached:
        raise ValueError(
            f"{spec.title} cannot reach MSE {target:.3g} on this image (PSNR "
            f"{10 * math.log10(1 / target):.1f} dB): over {spec.parameter} "
            f"{spec.low:g}..{spec.high:g} its MSE runs from {lowest:.3g} to {highest:.3g}; the "
            f"closest was {best.mse:.3g}. Pick a target in that range."
        )
    return best


def match_all(
    x: torch.Tensor,
    target: float,
    kinds: Sequence[str] | None = None,
    *,
    tol: float = 0.005,
    seed: int = 0,
    strict: bool = True,
) -> dict[str, Matched]:
    """:func:`match_mse` for every distortion in ``kinds`` (default: all of them), in order."""
    kinds = list(DISTORTIONS) if kinds is None else list(kinds)
    return {k: match_mse(x, k, target, tol=tol, seed=seed, strict=strict) for k in kinds}


# ----------------------------------------------------------------------------------------------
# SSIM's three terms
# ----------------------------------------------------------------------------------------------


def ssim_terms(
    x: torch.Tensor,
    y: torch.Tensor,
    data_range: float = 1.0,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
) -> dict[str, torch.Tensor]:
    """SSIM's luminance, contrast and structure maps and their product (Wang et al. 2004).

    With local Gaussian-weighted means mu, standard deviations s and covariance s_xy:

        l = (2 mu_x mu_y + C1) / (mu_x^2 + mu_y^2 + C1)       luminance
        c = (2 s_x s_y + C2) / (s_x^2 + s_y^2 + C2)            contrast
        s = (s_xy + C3) / (s_x s_y + C3),  C3 = C2 / 2         structure

    C1 = (k1 L)^2, C2 = (k2 L)^2. With C3 = C2 / 2 the product l c s equals
    :func:`srgan_edu.metrics.ssim_map`. Inputs (3, H, W) or (B, 3, H, W); every map has the
    shape of ``ssim_map`` (H - 10, W - 10 for the 11 x 11 window). Computed in float64.
    """
    single = x.dim() == 3
    x4 = (x[None] if single else x).double()
    y4 = (y[None] if single else y).double()
    if x4.shape != y4.shape:
        raise ValueError(f"images of different shapes: {tuple(x.shape)} and {tuple(y.shape)}")
    g = gaussian_window(sigma).to(x4.device)
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    c3 = c2 / 2
    mu_x, mu_y, var_x, var_y, cov = local_moments(x4, y4, g)
    var_x, var_y = var_x.clamp_min(0), var_y.clamp_min(0)  # rounding can dip below 0: sqrt next
    s_x, s_y = var_x.sqrt(), var_y.sqrt()
    terms = {
        "luminance": (2 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1),
        "contrast": (2 * s_x * s_y + c2) / (var_x + var_y + c2),
        "structure": (cov + c3) / (s_x * s_y + c3),
    }
    terms["ssim"] = terms["luminance"] * terms["contrast"] * terms["structure"]
    return {k: v[0] if single else v for k, v in terms.items()}


# ----------------------------------------------------------------------------------------------
# VGG weights and feature distances
# ----------------------------------------------------------------------------------------------


def shared_vgg_dir() -> Path:
    """The course's shared folder of VGG19 weights, next to the repository: shared/data/vgg19.

    It holds a partial ImageNet VGG19 (conv1_1 .. conv3_4, Caffe convention) and its MANIFEST.md.
    It is absent on a learner's machine and in CI; nothing breaks then.
    """
    return Path(srgan_edu.__file__).resolve().parents[1].parent / "shared" / "data" / "vgg19"


@dataclass(frozen=True)
class VGGChoice:
    """Which VGG19 weights a layer got, in words a reader can check.

    ``real`` is True for ImageNet weights; ``notes`` say (one line each) why better candidates
    were skipped; ``advice`` is the loader's own message on what to download and where, set
    whenever the full ImageNet weights were not used.
    """

    layer: str
    weights: str | None
    source: str
    real: bool
    notes: tuple[str, ...] = ()
    advice: str = ""

    @property
    def label(self) -> str:
        """Short, for table headers: ``'ImageNet'`` or ``'random'``."""
        return "ImageNet" if self.real else "random"

    def describe(self) -> str:
        """One line: layer, real or random, and the file (or seed) the numbers come from."""
        kind = "real ImageNet weights" if self.real else "RANDOM weights (no real ones found)"
        return f"{self.layer}: {kind} -- {self.source}"


def _full_weights_present() -> Path | None:
    env = os.environ.get(WEIGHTS_ENV, "").strip()
    if env:
        return Path(env).expanduser()
    cache = imagenet_weights_path()
    return cache if cache.is_file() else None


def load_content_loss(
    layer: str,
    *,
    download: bool = False,
    shared_dir: str | os.PathLike | None = None,
    seed: int = 0,
) -> tuple[ContentLoss, VGGChoice]:
    """A :class:`ContentLoss` at ``layer`` with the best VGG19 weights at hand, and which they are.

    Tried in order, the first that covers ``layer`` wins:

    1. the full ImageNet VGG19 through the library's loader (``weights="imagenet"``): the file
       in ``$SRGAN_EDU_VGG19_WEIGHTS`` or in torch.hub's cache; with ``download=True`` also a
       download (548 MB) when neither is there;
    2. ``*.pth`` files in ``shared_dir`` (default :func:`shared_vgg_dir`), e.g. the partial
       Caffe copy that covers conv1_1 .. conv3_4 (enough for relu2_2, not for relu5_4);
    3. random weights with ``seed``.

    Whenever step 1 does not deliver, ``advice`` carries the loader's message on what to
    download and where.
    """
    info = vgg19_layer(layer)
    notes: list[str] = []
    advice = ""
    candidates: list[tuple[str, str]] = []
    full = _full_weights_present()
    if full is not None or download:
        candidates.append(("imagenet", f"full ImageNet VGG19 ({full or 'download'})"))
    else:
        try:  # no file: ask the loader what it says about it, for the learner
            load_weights_file(imagenet_weights_path())
        except VGGWeightsError as err:
            advice = str(err)
            notes.append(f"full ImageNet VGG19: {advice.splitlines()[0]}")
    folder = Path(shared_dir) if shared_dir is not None else shared_vgg_dir()
    for path in sorted(folder.glob("*.pth")) if folder.is_dir() else []:
        candidates.append((str(path), f"ImageNet VGG19, partial copy {path}"))
    for weights, source in candidates:
        try:
            loss = ContentLoss(info.name, weights, seed=seed)
        except VGGWeightsError as err:
            notes.append(f"{source}: not usable for {info.name}: {str(err).splitlines()[0]}")
            if weights == "imagenet":
                advice = str(err)
            continue
        vgg = loss.vgg
        source = f"{vgg.source} ({vgg.preprocessing} input convention)"
        return loss, VGGChoice(info.name, weights, source, True, tuple(notes), advice)
    loss = ContentLoss(info.name, None, seed=seed)
    source = f"random He-normal weights, seed {seed}"
    return loss, VGGChoice(info.name, None, source, False, tuple(notes), advice)


def _device_of(module: torch.nn.Module) -> torch.device:
    return next(module.parameters()).device


def feature_distance_maps(
    vgg: VGGFeatures, reference: torch.Tensor, images: torch.Tensor
) -> torch.Tensor:
    """Where a VGG distance comes from: squared feature differences per position, (B, h, w).

    ``reference`` (3, H, W) and ``images`` (B, 3, H, W) in [0, 1]; the squared difference of the
    feature maps phi(image) - phi(reference) is averaged over the channels. The mean of each map
    is :func:`feature_distance`. One pass of ``vgg`` over all images together.
    """
    device = _device_of(vgg)
    with torch.no_grad():
        phi = vgg(torch.cat([reference[None], images]).to(device))  # (1 + B, C, h, w)
    return (phi[1:] - phi[:1]).pow(2).mean(dim=1).cpu()


def feature_distance(
    vgg: VGGFeatures, reference: torch.Tensor, images: torch.Tensor
) -> torch.Tensor:
    """Per image, the mean squared difference of VGG feature maps (eq. 5 of Ledig et al.): (B,).

    For one image this is what ``ContentLoss`` returns on the same pair given in [-1, 1].
    """
    return feature_distance_maps(vgg, reference, images).flatten(1).mean(dim=1)


def receptive_field(layer: str) -> int:
    """How many input pixels (side of a square) one value of VGG19's ``layer`` depends on.

    Each 3 x 3 convolution widens the view by 2 steps of the current grid, each 2 x 2 pool by
    1 step, and doubles the step: relu2_2 sees 14 x 14 pixels, relu5_4 252 x 252.
    """
    target = vgg19_layer(layer)
    size, step = 1, 1
    for module in vgg19_layers()[: target.index + 1]:
        if module.kind == "conv":
            size += 2 * step
        elif module.kind == "pool":
            size += step
            step *= 2
    return size


def quality_sweep(
    reference: torch.Tensor,
    psnrs: Sequence[float],
    vggs: Mapping[str, VGGFeatures] | None = None,
    kinds: Sequence[str] | None = None,
    seed: int = 0,
    progress: bool = True,
) -> dict[str, dict[str, list[float]]]:
    """SSIM and VGG distances of every distortion matched to each PSNR in ``psnrs``.

    Returns ``result[kind][measure]`` = one value per PSNR, where measure is ``"psnr"`` (the
    PSNR reached), ``"ssim"`` and every key of ``vggs``. Targets a distortion cannot reach on
    this image get NaN. ``progress`` shows a bar over the PSNR levels.
    """
    from tqdm.auto import tqdm

    kinds = list(DISTORTIONS) if kinds is None else list(kinds)
    vggs = dict(vggs or {})
    result = {k: {m: [] for m in ["psnr", "ssim", *vggs]} for k in kinds}
    for level in tqdm(list(psnrs), desc="PSNR levels", disable=not progress):
        matched = match_all(reference, mse_for_psnr(level), kinds, seed=seed, strict=False)
        images = torch.stack([m.image for m in matched.values()])  # (K, 3, H, W)
        values = {"psnr": psnr(images, reference.expand_as(images)).tolist()}
        smaps = ssim_terms(images, reference.expand_as(images))["ssim"]  # (K, 3, H-10, W-10)
        values["ssim"] = smaps.flatten(1).mean(1).tolist()  # = srgan_edu.metrics.ssim
        for name, vgg in vggs.items():
            values[name] = feature_distance(vgg, reference, images).tolist()
        for i, (kind, m) in enumerate(matched.items()):
            for measure, vals in values.items():
                result[kind][measure].append(vals[i] if m.reached else math.nan)
    return result


def plot_sweep(
    result: Mapping[str, Mapping[str, Sequence[float]]], measures: Sequence[str] | None = None
) -> plt.Figure:
    """One panel per measure of :func:`quality_sweep` against the PSNR, one line per distortion."""
    first = next(iter(result.values()))
    measures = [m for m in first if m != "psnr"] if measures is None else list(measures)
    fig, axes = plt.subplots(1, len(measures), figsize=(4.6 * len(measures), 3.4), squeeze=False)
    for ax, measure in zip(axes[0], measures, strict=True):
        for kind, values in result.items():
            ax.plot(values["psnr"], values[measure], "o-", ms=4, label=DISTORTIONS[kind].title)
        ax.set_xlabel("PSNR [dB] (same for every distortion at each point)")
        ax.set_ylabel(measure)
        if measure != "ssim":
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8)
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------------------------
# pictures
# ----------------------------------------------------------------------------------------------


def _hwc(x: torch.Tensor) -> np.ndarray:
    return x.detach().float().cpu().clamp(0, 1).permute(1, 2, 0).numpy()


def plot_images(
    images: Mapping[str, torch.Tensor], columns: int = 3, size: float = 3.0
) -> plt.Figure:
    """Images (3, H, W) in a grid, each titled with its key (which may hold newlines)."""
    rows = math.ceil(len(images) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(size * columns, size * rows + 0.5 * rows))
    axes = np.atleast_1d(axes).ravel()
    for ax, (title, img) in zip(axes, images.items(), strict=False):
        ax.imshow(_hwc(img), interpolation="nearest")
        ax.set_title(title, fontsize=9)
    for ax in axes:
        ax.axis("off")
    fig.tight_layout()
    return fig


def plot_ssim_terms(
    reference: torch.Tensor, matched: Mapping[str, Matched], size: float = 2.1
) -> plt.Figure:
    """One row per distortion: SSIM's luminance, contrast and structure maps and their product.

    All panels share the scale [0, 1] (the structure term can dip below 0 where the local
    patterns anti-correlate; that shows as black). The maps are averaged over the RGB channels;
    the number under each map is its mean.
    """
    titles = {
        "luminance": "luminance l",
        "contrast": "contrast c",
        "structure": "structure s",
        "ssim": "SSIM = l c s",
    }
    names = tuple(titles)
    fig, axes = plt.subplots(
        len(matched), len(names), figsize=(size * len(names) + 0.6, size * len(matched) + 0.3),
        squeeze=False,
    )  # fmt: skip
    for i, (kind, m) in enumerate(matched.items()):
        terms = ssim_terms(m.image, reference)
        for j, name in enumerate(names):
            ax = axes[i, j]
            tmap = terms[name].mean(0).float().cpu().numpy()
            ax.imshow(tmap, cmap="magma", vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(titles[name], fontsize=9)
            if j == 0:
                ax.set_ylabel(DISTORTIONS[kind].title, fontsize=9)
            ax.set_xlabel(f"{tmap.mean():.3f}", fontsize=8, labelpad=1)
    fig.tight_layout()
    return fig


def plot_damage_maps(
    reference: torch.Tensor,
    matched: Mapping[str, Matched],
    vgg_maps: Mapping[str, torch.Tensor],
    size: float = 2.1,
) -> plt.Figure:
    """One row per distortion: squared error, 1 - SSIM, and each VGG feature distance map.

    ``vgg_maps`` maps a column title to the (B, h, w) output of :func:`feature_distance_maps`
    for the images of ``matched`` in order. Every column shares one colour scale across the
    rows, so brighter = more damage by that measure; the squared-error maps all have the same
    mean (the matched MSE).
    """
    columns: dict[str, list[np.ndarray]] = {"squared error": [], "1 - SSIM": []}
    for m in matched.values():
        columns["squared error"].append((m.image - reference).pow(2).mean(0).cpu().numpy())
        smap = ssim_terms(m.image, reference)["ssim"]  # = ssim_map, computed faster
        columns["1 - SSIM"].append((1 - smap).mean(0).float().cpu().numpy())
    for title, maps in vgg_maps.items():
        if maps.shape[0] != len(matched):
            raise ValueError(f"{title}: {maps.shape[0]} maps for {len(matched)} distortions")
        columns[title] = [m.numpy() for m in maps]
    n_rows, n_cols = len(matched), len(columns)
    fig, axes = plt.subplots(
        n_rows, n_cols, figsize=(size * n_cols + 0.6, size * n_rows + 0.3), squeeze=False
    )
    for j, (title, maps) in enumerate(columns.items()):
        vmax = float(np.percentile(np.concatenate([m.ravel() for m in maps]), 99.5))
        for i, (m, kind) in enumerate(zip(maps, matched, strict=True)):
            ax = axes[i, j]
            ax.imshow(m, cmap="magma", vmin=0, vmax=vmax, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(title, fontsize=9)
            if j == 0:
                ax.set_ylabel(DISTORTIONS[kind].title, fontsize=9)
    fig.tight_layout()
    return fig


def plot_feature_maps(
    vgg: VGGFeatures, image: torch.Tensor, n: int = 6, title: str = "", size: float = 1.6
) -> plt.Figure:
    """The ``n`` most active channels of ``vgg``'s output on ``image``, each in its own scale."""
    with torch.no_grad():
        phi = vgg(image[None].to(_device_of(vgg)))[0].cpu()  # (C, h, w)
    order = phi.flatten(1).mean(1).argsort(descending=True)[:n]
    fig, axes = plt.subplots(1, n + 1, figsize=(size * (n + 1), size + 0.5))
    axes[0].imshow(_hwc(image))
    axes[0].set_title("input", fontsize=8)
    for ax, c in zip(axes[1:], order.tolist(), strict=True):
        ax.imshow(phi[c].cpu().numpy(), cmap="viridis", interpolation="nearest")
        ax.set_title(f"channel {c}", fontsize=8)
    for ax in axes:
        ax.axis("off")
    h, w = phi.shape[-2:]
    fig.suptitle(f"{title}  ({phi.shape[0]} channels of {h}x{w})", fontsize=9)
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------------------------
# the widget
# ----------------------------------------------------------------------------------------------


def explore_distortion(
    image: torch.Tensor,
    kind: str = "blur",
    psnr_db: float = 25.0,
    losses: Mapping[str, tuple[ContentLoss, VGGChoice]] | None = None,
    seed: int = 0,
) -> tuple[plt.Figure, dict[str, float]]:
    """The widget's callback: distort ``image`` with ``kind`` to ``psnr_db`` and measure it.

    Returns a figure (reference | distorted | squared error | SSIM map) and the numbers: the
    strength found, MSE, PSNR, SSIM and, for every entry of ``losses`` (name -> (content loss,
    its :class:`VGGChoice`)), the VGG distance. When the distortion cannot reach ``psnr_db`` on
    this image, the closest it gets is shown and the title says so. The figure is left open.
    """
    target = mse_for_psnr(psnr_db)
    m = match_mse(image, kind, target, seed=seed, strict=False)
    smap = ssim_terms(m.image, image)["ssim"]  # (3, H - 10, W - 10), = metrics.ssim_map
    numbers = {
        "strength": m.strength,
        "mse": float(mse(m.image, image)),
        "psnr": float(psnr(m.image, image)),
        "ssim": float(smap.mean()),
    }
    vgg_text = []
    for name, (loss, choice) in (losses or {}).items():
        pair = torch.stack([m.image, image]).to(_device_of(loss))
        with torch.no_grad():
            value = float(loss(unit_to_signed(pair[:1]), unit_to_signed(pair[1:])))
        numbers[name] = value
        vgg_text.append(f"{name} {value:.4g} ({choice.label} weights)")

    fig, axes = plt.subplots(1, 4, figsize=(11, 3.3))
    err = (m.image - image).pow(2).mean(0).cpu().numpy()
    smap = smap.mean(0).float().cpu().numpy()
    axes[0].imshow(_hwc(image))
    axes[0].set_title("reference", fontsize=9)
    axes[1].imshow(_hwc(m.image))
    axes[1].set_title(m.describe(), fontsize=9)
    axes[2].imshow(err, cmap="magma", vmin=0, vmax=max(4 * target, float(err.max()) / 4))
    axes[2].set_title("squared error", fontsize=9)
    axes[3].imshow(smap, cmap="magma_r", vmin=0, vmax=1)
    axes[3].set_title("SSIM map (dark = low)", fontsize=9)
    for ax in axes:
        ax.axis("off")
    head = f"MSE {numbers['mse']:.4g}   PSNR {numbers['psnr']:.2f} dB   SSIM {numbers['ssim']:.3f}"
    if not m.reached:
        head = f"{DISTORTIONS[kind].title} cannot reach {psnr_db:g} dB here; closest: " + head
    fig.suptitle("\n".join([head, "   ".join(vgg_text)]).strip(), fontsize=10)
    fig.tight_layout()
    return fig, numbers


def _show_distortion(**kwargs) -> None:
    """Widget body: draw :func:`explore_distortion` into the widget's output and close it."""
    from IPython.display import display

    fig, _ = explore_distortion(**kwargs)
    display(fig)
    plt.close(fig)


def quality_widget(
    image: torch.Tensor,
    losses: Mapping[str, tuple[ContentLoss, VGGChoice]] | None = None,
    psnr_db: float = 25.0,
):
    """An ipywidgets panel around :func:`explore_distortion`: pick a distortion and a PSNR.

    The image and the VGG losses are fixed. Nothing runs until the "Measure" button is pressed
    (each measurement runs the search and the VGG networks: a few seconds on a laptop CPU).
    """
    import ipywidgets as W

    style = {"description_width": "110px"}
    layout = W.Layout(width="430px")
    controls = {
        "kind": W.Dropdown(
            options=[(d.title, k) for k, d in DISTORTIONS.items()], value="blur",
            description="distortion", style=style, layout=layout,
        ),
        "psnr_db": W.FloatSlider(
            value=psnr_db, min=15.0, max=45.0, step=0.5, description="target PSNR [dB]",
            continuous_update=False, style=style, layout=layout,
        ),
    }  # fmt: skip
    return W.interactive(
        _show_distortion,
        {"manual": True, "manual_name": "Measure"},
        image=W.fixed(image),
        losses=W.fixed(losses),
        **controls,
    )
