"""Lesson 10 (beyond SRGAN): the three things ESRGAN changed, as small readable pieces.

Wang et al. (2018), *ESRGAN: Enhanced Super-Resolution Generative Adversarial Networks*, kept the
SRGAN recipe (a residual generator, a discriminator, a VGG content loss plus an adversarial
loss) and changed three parts of it. Each part is here, so that ``tests/test_teach_esrgan.py``
reaches it:

1. **The generator's block** (Sec. 3.1): no BatchNorm, and the residual block becomes a
   *Residual-in-Residual Dense Block* (RRDB). :class:`DenseBlock` (five convolutions, each one
   seeing all earlier feature maps, LeakyReLU(0.2)), :class:`RRDB` (three dense blocks inside one
   more skip connection), :class:`RRDBNet` (the whole generator), both skips scaled by the
   *residual scaling* factor beta = 0.2, and the 0.1-scaled Kaiming initialisation.
   :func:`dense_block_parameters`, :func:`rrdb_parameters`, :func:`rrdbnet_parameters` give the
   parameter counts by formula; :func:`trunk_growth` measures what the scaling does at init.
2. **The relativistic average discriminator** (Sec. 3.2, after Jolicoeur-Martineau 2018):
   :func:`relativistic_logits`, :func:`ra_discriminator_loss` (eq. 1 of the paper's Sec. 3.2),
   :func:`ra_generator_loss` (eq. 2), the generator's gradient with respect to the fake logits by
   formula (:func:`generator_logit_grads`), and the lesson's picture and widget
   (:func:`plot_generator_gradients`, :func:`explore_logits`, :func:`logits_widget`).
3. **VGG features before the activation** (Sec. 3.3): :func:`feature_stack` (every VGG19 map up
   to a layer in one pass), :func:`activation_stats` (how many units are active after each ReLU,
   and how much of a brightness change the ReLU map still shows), :func:`plot_relu_loss` (the
   one-unit picture of why a loss after the ReLU is blind to part of the signal).

The small side-by-side experiment (a tiny SRResNet with BN vs a tiny RRDBNet without BN, both
trained with pixel MSE on the same batches) is :func:`training_crops`, :func:`photo_crops`,
:func:`train_pixel_mse`, :func:`evaluate_psnr`, :func:`bn_mode_outputs`, and
:func:`without_batchnorm` (the same SRResNet with its BN layers taken out, to separate the effect
of BN from that of the block design).

Range convention (as in :mod:`srgan_edu.models`): generators take LR images in [0, 1] and return
images in [-1, 1]; discriminators return logits. Everything runs on a CPU in seconds.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from srgan_edu.data import SyntheticImages, sample_image
from srgan_edu.degrade import bicubic_up, degrade
from srgan_edu.imaging import signed_to_unit, unit_to_signed
from srgan_edu.losses import adversarial_loss, pixel_mse
from srgan_edu.metrics import sr_metrics
from srgan_edu.models import OUTPUT_ACTIVATIONS, _check_images, _check_scale, count_parameters
from srgan_edu.vgg import VGGFeatures, vgg19_layers

__all__ = [
    "INIT_SCALE",
    "LEAKY_SLOPE",
    "RESIDUAL_SCALE",
    "DenseBlock",
    "LayerStats",
    "PixelRun",
    "RRDB",
    "RRDBNet",
    "activation_stats",
    "bn_mode_outputs",
    "dense_block_parameters",
    "evaluate_psnr",
    "explore_logits",
    "feature_stack",
    "generator_logit_grads",
    "logits_widget",
    "photo_crops",
    "plot_activation_stats",
    "plot_generator_gradients",
    "plot_relu_loss",
    "ra_discriminator_loss",
    "ra_generator_loss",
    "relativistic_logits",
    "rrdb_parameters",
    "rrdbnet_parameters",
    "train_pixel_mse",
    "training_crops",
    "trunk_growth",
    "without_batchnorm",
]

RESIDUAL_SCALE = 0.2
"""ESRGAN's residual scaling beta (Sec. 3.1): each skip adds beta * (what the branch computed)."""

INIT_SCALE = 0.1
"""ESRGAN's smaller initialisation: Kaiming-normal weights multiplied by 0.1 in the dense blocks."""

LEAKY_SLOPE = 0.2
"""Negative slope of the LeakyReLU inside ESRGAN's dense blocks and upsampling stages."""


def _check_number(name: str, value, minimum: float | None = None) -> float:
    """``value`` as a finite float (>= ``minimum`` if given), or a ValueError saying so."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(v):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if minimum is not None and v < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return v


def _check_count(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


# ----------------------------------------------------------------------------------------------
# 1. the generator: dense blocks, RRDB, residual scaling, no BatchNorm
# ----------------------------------------------------------------------------------------------


def _scaled_kaiming_(conv: nn.Conv2d, scale: float) -> None:
    """ESRGAN's init: Kaiming normal (fan_in, gain sqrt(2)) times ``scale``, zero bias."""
    nn.init.kaiming_normal_(conv.weight, a=0.0, mode="fan_in")
    with torch.no_grad():
        conv.weight.mul_(scale)
        if conv.bias is not None:
            conv.bias.zero_()


class DenseBlock(nn.Module):
    """ESRGAN's residual dense block (Fig. 4, right): x + beta * conv5([x, f1, f2, f3, f4]).

    Five 3x3 convolutions; convolution k (k = 1..4) sees the block input *and* every earlier
    output, concatenated along the channels (``channels + (k - 1) * growth`` in, ``growth``
    out), followed by LeakyReLU(0.2). The fifth maps all ``channels + 4 * growth`` back to
    ``channels`` with no activation, and its output is scaled by ``beta`` before it is added to
    the input. No BatchNorm anywhere; every convolution has a bias. Shape kept: (B, C, h, w).
    """

    def __init__(
        self,
        channels: int = 64,
        growth: int = 32,
        beta: float = RESIDUAL_SCALE,
        init_scale: float = INIT_SCALE,
    ) -> None:
        super().__init__()
        self.channels = _check_count("channels", channels, 1)
        self.growth = _check_count("growth", growth, 1)
        self.beta = _check_number("beta", beta, 0.0)
        c, g = self.channels, self.growth
        self.convs = nn.ModuleList(
            [nn.Conv2d(c + k * g, g, 3, padding=1) for k in range(4)]  # (B, g, h, w) each
            + [nn.Conv2d(c + 4 * g, c, 3, padding=1)]  # back to (B, C, h, w)
        )
        self.act = nn.LeakyReLU(LEAKY_SLOPE)
        for conv in self.convs:
            _scaled_kaiming_(conv, _check_number("init_scale", init_scale, 0.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]  # (B, C, h, w), then (B, g, h, w) per convolution
        for conv in self.convs[:-1]:
            features.append(self.act(conv(torch.cat(features, dim=1))))
        out = self.convs[-1](torch.cat(features, dim=1))  # (B, C, h, w), no activation
        return x + self.beta * out  # residual scaling


class RRDB(nn.Module):
    """Residual-in-Residual Dense Block (Fig. 4): x + beta * DB3(DB2(DB1(x))), shape kept.

    Each dense block has its own scaled skip, and the three together get one more: residual
    learning at two levels. ``beta = 0`` makes the whole block the identity.
    """

    def __init__(
        self,
        channels: int = 64,
        growth: int = 32,
        beta: float = RESIDUAL_SCALE,
        init_scale: float = INIT_SCALE,
    ) -> None:
        super().__init__()
        self.beta = _check_number("beta", beta, 0.0)
        self.blocks = nn.Sequential(
            *[DenseBlock(channels, growth, beta, init_scale) for _ in range(3)]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.beta * self.blocks(x)  # (B, C, h, w)


def _stage_factors(scale: int) -> list[int]:
    return [3] if scale == 3 else [2] * int(math.log2(scale))


class RRDBNet(nn.Module):
    """ESRGAN's generator (Wang et al. 2018, Sec. 3.1): SRResNet's layout with RRDBs, no BN.

    conv3x3 (3 -> C) | ``n_blocks`` x :class:`RRDB` | conv3x3 | + the long skip | per x2 stage:
    nearest-neighbour x2, conv3x3, LeakyReLU(0.2) | conv3x3 + LeakyReLU(0.2) | conv3x3 (C -> 3).
    The paper's network is ``n_blocks=23, channels=64, growth=32``: 16,697,987 parameters
    (:func:`rrdbnet_parameters`). Only the dense blocks get the 0.1-scaled init; the other
    convolutions keep PyTorch's default, as in the authors' code (BasicSR).

    As :class:`srgan_edu.models.SRResNet`: LR input in [0, 1], (B, 3, h, w); output (B, 3,
    scale*h, scale*w) squashed into [-1, 1] by ``tanh``, so both generators plug into the same
    losses and metrics. ``output_activation="none"`` gives ESRGAN's unbounded output.
    """

    def __init__(
        self,
        scale: int = 4,
        n_blocks: int = 23,
        channels: int = 64,
        growth: int = 32,
        beta: float = RESIDUAL_SCALE,
        init_scale: float = INIT_SCALE,
        output_activation: str = "tanh",
        seed: int | None = None,
    ) -> None:
        super().__init__()
        self.scale = _check_scale(scale)
        self.n_blocks = _check_count("n_blocks", n_blocks, 0)
        self.channels = _check_count("channels", channels, 1)
        self.growth = _check_count("growth", growth, 1)
        if output_activation not in OUTPUT_ACTIVATIONS:
            raise ValueError(
                f"output_activation must be one of {OUTPUT_ACTIVATIONS}, got {output_activation!r}"
            )
        self.output_activation = output_activation
        c = self.channels
        with torch.random.fork_rng(devices=[], enabled=seed is not None):
            if seed is not None:
                torch.manual_seed(seed)
            self.head = nn.Conv2d(3, c, 3, padding=1)
            self.blocks = nn.Sequential(
                *[RRDB(c, self.growth, beta, init_scale) for _ in range(self.n_blocks)]
            )
            self.fuse = nn.Conv2d(c, c, 3, padding=1)
            stages: list[nn.Module] = []
            for r in _stage_factors(self.scale):
                stages += [
                    nn.Upsample(scale_factor=r, mode="nearest"),  # (B, C, r*h, r*w)
                    nn.Conv2d(c, c, 3, padding=1),
                    nn.LeakyReLU(LEAKY_SLOPE),
                ]
            self.upsample = nn.Sequential(*stages)
            self.hr_conv = nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.LeakyReLU(LEAKY_SLOPE))
            self.tail = nn.Conv2d(c, 3, 3, padding=1)

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        _check_images(lr, "RRDBNet")
        h = self.head(lr)  # (B, C, h, w)
        y = h + self.fuse(self.blocks(h))  # (B, C, h, w): the long skip
        y = self.upsample(y)  # (B, C, s*h, s*w)
        y = self.tail(self.hr_conv(y))  # (B, 3, s*h, s*w)
        return torch.tanh(y) if self.output_activation == "tanh" else y


def _conv_parameters(c_in: int, c_out: int, k: int = 3) -> int:
    return k * k * c_in * c_out + c_out  # weights + biases


def dense_block_parameters(channels: int = 64, growth: int = 32) -> int:
    """Parameters of one :class:`DenseBlock`, by formula (3x3 convolutions with bias)::

        sum_{k=0..3} (9 (C + k g) g + g)  +  9 (C + 4 g) C + C

    239,808 for ESRGAN's C = 64, g = 32.
    """
    c, g = channels, growth
    return sum(_conv_parameters(c + k * g, g) for k in range(4)) + _conv_parameters(c + 4 * g, c)


def rrdb_parameters(channels: int = 64, growth: int = 32) -> int:
    """Parameters of one :class:`RRDB`: three dense blocks (beta is a constant, not learned)."""
    return 3 * dense_block_parameters(channels, growth)


def rrdbnet_parameters(
    scale: int = 4, n_blocks: int = 23, channels: int = 64, growth: int = 32
) -> int:
    """Parameters of an :class:`RRDBNet`, by formula: 16,697,987 for the paper's network.

    head (3 -> C) + n_blocks RRDBs + fuse (C -> C) + one C -> C conv per upsampling stage +
    hr_conv (C -> C) + tail (C -> 3), all 3x3 with bias.
    """
    c = channels
    stages = len(_stage_factors(_check_scale(scale)))
    return (
        _conv_parameters(3, c)
        + n_blocks * rrdb_parameters(c, growth)
        + (2 + stages) * _conv_parameters(c, c)
        + _conv_parameters(c, 3)
    )


def trunk_growth(
    n_blocks: int = 8,
    beta: float = RESIDUAL_SCALE,
    init_scale: float = INIT_SCALE,
    channels: int = 16,
    growth: int = 8,
    size: int = 16,
    seed: int = 0,
) -> list[float]:
    """How far a stack of freshly initialised RRDBs moves its input, block by block.

    Feeds a (4, C, size, size) standard-normal input through ``n_blocks`` RRDBs and returns
    ``std(x_k) / std(x_0)`` after each block k = 1..n_blocks. Without BatchNorm nothing
    rescales the signal: each block adds its branch to it, so with ``beta=1`` and plain Kaiming
    weights (``init_scale=1``) the ratio grows with depth; ESRGAN's beta = 0.2 and 0.1-scaled
    init keep every block close to the identity.
    """
    _check_count("n_blocks", n_blocks, 1)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        stack = nn.Sequential(*[RRDB(channels, growth, beta, init_scale) for _ in range(n_blocks)])
        x = torch.randn(4, channels, size, size)
    ratios = []
    with torch.no_grad():
        h = x
        for block in stack:
            h = block(h)
            ratios.append(float(h.std() / x.std()))
    return ratios


# ----------------------------------------------------------------------------------------------
# 2. the relativistic average discriminator
# ----------------------------------------------------------------------------------------------


def relativistic_logits(
    real_logits: torch.Tensor, fake_logits: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The logits of D_Ra: ``C(x_r) - mean C(x_f)`` and ``C(x_f) - mean C(x_r)``.

    D_Ra(x_r, x_f) = sigmoid(C(x_r) - E_{x_f}[C(x_f)]): the probability that a real image is
    *more realistic than the average fake* (and the same with the roles swapped). ``C`` is the
    discriminator's raw output, which is what :class:`srgan_edu.models.Discriminator` returns;
    the expectation is the batch mean. Shapes are kept.
    """
    if real_logits.numel() == 0 or fake_logits.numel() == 0:
        raise ValueError("relativistic logits need at least one real and one fake logit")
    return real_logits - fake_logits.mean(), fake_logits - real_logits.mean()


def ra_discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """ESRGAN's discriminator loss (Sec. 3.2, first equation):

        L_D^Ra = -E_{x_r}[log D_Ra(x_r, x_f)] - E_{x_f}[log(1 - D_Ra(x_f, x_r))]

    With -log sigmoid(z) = softplus(-z) and -log(1 - sigmoid(z)) = softplus(z), on the logits
    of :func:`relativistic_logits`. Equal to ``BCEWithLogits(real_rel, 1) + BCEWithLogits(
    fake_rel, 0)``; the authors' code (BasicSR) takes half of this sum. Adding one constant to
    every logit changes nothing: only differences between reals and fakes count. Pass fake
    logits computed on a detached SR batch so that G gets no gradient here.
    """
    real_rel, fake_rel = relativistic_logits(real_logits, fake_logits)
    return F.softplus(-real_rel).mean() + F.softplus(fake_rel).mean()


def ra_generator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """ESRGAN's adversarial loss for the generator (Sec. 3.2, second equation), symmetric to D's:

        L_G^Ra = -E_{x_r}[log(1 - D_Ra(x_r, x_f))] - E_{x_f}[log D_Ra(x_f, x_r)]

    The real images enter too: the first term depends on G through E[C(x_f)] inside D_Ra, so G
    learns from the real images' logits as well as from its own (compare
    :func:`srgan_edu.losses.adversarial_loss`, where the real images play no part). The real
    logits can be detached: G cannot change them.
    """
    real_rel, fake_rel = relativistic_logits(real_logits, fake_logits)
    return F.softplus(real_rel).mean() + F.softplus(-fake_rel).mean()


def generator_logit_grads(
    real_logits: torch.Tensor, fake_logits: torch.Tensor
) -> dict[str, torch.Tensor]:
    """The generator's loss gradients with respect to each fake logit, by formula.

    With m real and n fake logits, r_bar and f_bar their means, s = sigmoid:

    * standard (non-saturating, ``adversarial_loss``): dL/df_j = -(1 - s(f_j)) / n;
    * relativistic (``ra_generator_loss``): dL/df_j = -(mean_i s(r_i - f_bar) + 1 -
      s(f_j - r_bar)) / n, the sum of a part from the *real* term, ``"ra_from_real"``, equal
      for every fake, and a part from the fake term, ``"ra_from_fake"``.

    Returns ``{"standard", "relativistic", "ra_from_real", "ra_from_fake"}``, each shaped like
    ``fake_logits``. Negative values mean "raise this logit": G wants D to find the fake real.
    """
    r = real_logits.detach().double()
    f = fake_logits.detach().double()
    n = f.numel()
    from_real = -torch.sigmoid(r - f.mean()).mean().expand_as(f) / n
    from_fake = -torch.sigmoid(-(f - r.mean())) / n  # 1 - s(z) = s(-z), exact for large z
    standard = -torch.sigmoid(-f) / n
    out = {
        "standard": standard,
        "relativistic": from_real + from_fake,
        "ra_from_real": from_real,
        "ra_from_fake": from_fake,
    }
    return {k: v.to(fake_logits.dtype) for k, v in out.items()}


def plot_generator_gradients(
    real_levels: Sequence[float] = (-2.0, 0.0, 2.0, 4.0),
    fake_range: tuple[float, float] = (-8.0, 8.0),
) -> plt.Figure:
    """How hard the adversarial loss pushes G, against how sure D is that a fake is fake.

    Left: one real image with logit r (one curve per ``real_levels``) and one fake with logit f;
    |dL_G/df| against f. The standard loss gives one curve whatever r is, sigmoid(-f); the
    relativistic one is 2 sigmoid(r - f), a function of the margin r - f only. Right: one batch
    of fakes spread over ``fake_range`` (mean 0) and one real at the largest r: each fake's
    relativistic gradient (times the batch size) split into the part from its own term and the
    part from the real term, which is the same for every fake. Returns the figure.
    """
    f = torch.linspace(*fake_range, 241, dtype=torch.float64)
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    ax = axes[0]
    std = generator_logit_grads(torch.zeros(1), f)["standard"].abs().numpy() * f.numel()
    ax.plot(f.numpy(), std, "k-", lw=2.2, label="standard (any r)")
    colours = plt.cm.viridis(np.linspace(0.1, 0.85, len(real_levels)))
    for r, colour in zip(real_levels, colours, strict=True):
        # one real and one fake logit per point: both terms of generator_logit_grads are then
        # sigmoid(r - f) (tests/test_teach_esrgan.py checks this), so |dL_G/df| = 2 sigmoid(r - f)
        g = 2 * torch.sigmoid(float(r) - f)
        ax.plot(
            f.numpy(), g.numpy(), color=colour, lw=1.5, label=f"relativistic, real at r = {r:g}"
        )
        ax.axvline(r, color=colour, lw=0.6, ls=":")
    ax.set_xlabel("fake logit f   (D: surely fake <-  -> surely real)")
    ax.set_ylabel("|dL_G / df|")
    ax.set_title("G's push on one fake: standard vs relativistic loss", fontsize=10)
    ax.legend(fontsize=8, loc="upper center", ncol=2)
    ax = axes[1]
    r = float(real_levels[-1])
    grads = generator_logit_grads(torch.tensor([r], dtype=torch.float64), f)
    n = f.numel()
    own = grads["ra_from_fake"].abs().numpy() * n
    shared = grads["ra_from_real"].abs().numpy() * n
    ax.fill_between(
        f.numpy(), 0, own, color="tab:red", alpha=0.55, label="from its own (fake) term"
    )
    ax.fill_between(f.numpy(), own, own + shared, color="tab:blue", alpha=0.55,
                    label="from the real term (same for all)")  # fmt: skip
    ax.plot(f.numpy(), std, "k-", lw=2.2, label="standard")
    ax.axvline(r, color="gray", lw=0.8, ls=":")
    mean = round(float(f.mean()), 6) + 0.0
    ax.set_xlabel(f"this fake's logit (a batch of {n} fakes, mean {mean:g}; real at {r:g})")
    ax.set_ylabel("|dL_G / df_j| x batch size")
    ax.set_title("one batch: each fake's relativistic push, by term", fontsize=10)
    ax.legend(fontsize=8, loc="upper center", ncol=2)
    for ax in axes:
        ax.set_ylim(0, 2.6)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def _logit_batch(mean: float, spread: float, n: int) -> torch.Tensor:
    offsets = torch.linspace(-1.0, 1.0, n, dtype=torch.float64) if n > 1 else torch.zeros(1)
    return mean + spread * offsets.to(torch.float64)


def explore_logits(
    real_mean: float = 2.0, fake_mean: float = -2.0, spread: float = 1.0, n: int = 4
) -> tuple[plt.Figure, dict[str, float]]:
    """The widget's callback: a batch of ``n`` real and ``n`` fake logits -> both kinds of loss.

    Real logits are spread evenly over ``real_mean +- spread``, fake ones over ``fake_mean +-
    spread``. Returns a figure (the logits and what D says about them; the four losses; G's
    gradient on each fake logit, standard vs relativistic split into its two terms) and the
    numbers: ``d_standard``, ``g_standard``, ``d_relativistic``, ``g_relativistic``,
    ``grad_standard`` and ``grad_relativistic`` (mean |dL_G/df| times n), ``grad_from_real``
    (the part of the relativistic one that comes from the real term), ``p_real_standard`` /
    ``p_fake_standard`` (mean sigmoid of the logits) and ``p_real_ra`` / ``p_fake_ra`` (mean
    D_Ra). Finite for any finite input; the figure is left open.
    """
    real_mean = _check_number("real_mean", real_mean)
    fake_mean = _check_number("fake_mean", fake_mean)
    spread = _check_number("spread", spread, 0.0)
    n = _check_count("n", n, 1)
    from srgan_edu.losses import discriminator_loss

    real, fake = _logit_batch(real_mean, spread, n), _logit_batch(fake_mean, spread, n)
    real_rel, fake_rel = relativistic_logits(real, fake)
    grads = generator_logit_grads(real, fake)
    g_std = float(grads["standard"].abs().mean()) * n
    g_ra = float(grads["relativistic"].abs().mean()) * n
    from_real = float(grads["ra_from_real"].abs().mean()) * n
    numbers = {
        "d_standard": float(discriminator_loss(real, fake)),
        "g_standard": float(adversarial_loss(fake)),
        "d_relativistic": float(ra_discriminator_loss(real, fake)),
        "g_relativistic": float(ra_generator_loss(real, fake)),
        "grad_standard": g_std,
        "grad_relativistic": g_ra,
        "grad_from_real": from_real,
        "p_real_standard": float(torch.sigmoid(real).mean()),
        "p_fake_standard": float(torch.sigmoid(fake).mean()),
        "p_real_ra": float(torch.sigmoid(real_rel).mean()),
        "p_fake_ra": float(torch.sigmoid(fake_rel).mean()),
    }

    fig, axes = plt.subplots(1, 3, figsize=(12.5, 3.5), gridspec_kw={"width_ratios": [1.3, 1, 1]})
    ax = axes[0]
    ax.scatter(real.numpy(), np.full(n, 1.0), color="tab:blue", s=40, label="real logits")
    ax.scatter(fake.numpy(), np.full(n, 0.0), color="tab:red", s=40, label="fake logits")
    ax.plot([real_mean] * 2, [0.8, 1.2], color="tab:blue", lw=2)
    ax.plot([fake_mean] * 2, [-0.2, 0.2], color="tab:red", lw=2)
    lo = min(real_mean, fake_mean) - spread - 1.0
    hi = max(real_mean, fake_mean) + spread + 1.0
    ax.set_xlim(lo, hi)
    ax.set_ylim(-0.8, 1.8)
    ax.set_yticks([0, 1], ["fakes", "reals"])
    ax.set_xlabel("logit")
    ax.set_title(
        f"standard D: P(real) {numbers['p_real_standard']:.2f} / {numbers['p_fake_standard']:.2f}"
        f"\nrelativistic: D_Ra {numbers['p_real_ra']:.2f} / {numbers['p_fake_ra']:.2f}"
        "  (reals / fakes)",
        fontsize=9,
    )
    ax.grid(alpha=0.3, axis="x")
    ax = axes[1]
    labels = ["D loss", "G loss"]
    x = np.arange(2)
    std_vals = [numbers["d_standard"], numbers["g_standard"]]
    ra_vals = [numbers["d_relativistic"], numbers["g_relativistic"]]
    ax.bar(x - 0.2, std_vals, 0.38, color="gray", label="standard")
    ax.bar(x + 0.2, ra_vals, 0.38, color="tab:purple", label="relativistic")
    for xi, v in zip(np.r_[x - 0.2, x + 0.2], std_vals + ra_vals, strict=True):
        ax.text(xi, v, f"{v:.3g}", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(x, labels)
    ax.set_title("the losses", fontsize=10)
    ax.legend(fontsize=8)
    ax = axes[2]
    idx = np.arange(n)
    scale_n = float(n)
    per_fake = {k: v.abs().numpy() * scale_n for k, v in grads.items()}
    ax.bar(idx - 0.2, per_fake["standard"], 0.38, color="gray", label="standard")
    fake_part, real_part = per_fake["ra_from_fake"], per_fake["ra_from_real"]
    ax.bar(idx + 0.2, fake_part, 0.38, color="tab:red", alpha=0.7, label="rel.: fake term")
    ax.bar(idx + 0.2, real_part, 0.38, bottom=fake_part, color="tab:blue", alpha=0.7,
           label="rel.: real term")  # fmt: skip
    ax.set_xticks(idx, [f"fake {i + 1}" for i in idx])
    ax.set_ylim(0, 2.1)
    ax.set_ylabel("|dL_G / df| x n")
    ax.set_title(
        f"G's push on each fake (mean): standard {g_std:.2f}, relativistic {g_ra:.2f}",
        fontsize=9,
    )
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    return fig, numbers


def _show_logits(**kwargs) -> None:
    """Widget body: draw :func:`explore_logits` into the widget's output and close the figure."""
    from IPython.display import display

    fig, _ = explore_logits(**kwargs)
    display(fig)
    plt.close(fig)


def logits_widget(real_mean: float = 2.0, fake_mean: float = -2.0, spread: float = 1.0):
    """An ipywidgets panel around :func:`explore_logits`: move the real and fake logits."""
    import ipywidgets as W

    style = {"description_width": "120px"}
    layout = W.Layout(width="430px")

    def slider(value: float, lo: float, hi: float, text: str) -> W.FloatSlider:
        return W.FloatSlider(
            value=value, min=lo, max=hi, step=0.25, description=text,
            continuous_update=False, style=style, layout=layout,
        )  # fmt: skip

    return W.interactive(
        _show_logits,
        real_mean=slider(real_mean, -8.0, 8.0, "real logits (mean)"),
        fake_mean=slider(fake_mean, -8.0, 8.0, "fake logits (mean)"),
        spread=slider(spread, 0.0, 4.0, "spread (+-)"),
        n=W.fixed(4),
    )


# ----------------------------------------------------------------------------------------------
# 3. VGG features before vs after the activation
# ----------------------------------------------------------------------------------------------

_LAYER_NAMES = [layer.name for layer in vgg19_layers()]


def feature_stack(vgg: VGGFeatures, images: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every VGG19 map from ``conv1_1`` up to ``vgg.layer``, by name, in one pass.

    ``images``: (B, 3, H, W) in [0, 1]. ``"conv5_4"`` is the map before its ReLU, ``"relu5_4"``
    after it (ReLUs are not in-place, so both survive). Computed without gradients.
    """
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"feature_stack expects (B, 3, H, W) images, got {tuple(images.shape)}")
    out: dict[str, torch.Tensor] = {}
    device = next(vgg.parameters()).device
    with torch.no_grad():
        h = vgg.normalize(images.to(device))
        for name, module in zip(_LAYER_NAMES, vgg.features, strict=False):
            h = module(h)
            out[name] = h
    if vgg.output_scale != 1.0:  # the rescale and the Caffe-to-torchvision factor, as forward
        out = {k: v * vgg.output_scale for k, v in out.items()}
    return out


@dataclass(frozen=True)
class LayerStats:
    """One VGG layer before and after its ReLU, measured on one image.

    ``active``: fraction of units > 0 after the ReLU (the rest are exactly 0). ``seen``: the
    ReLU map's share of a brightness change, ||relu(a') - relu(a)||^2 / ||a' - a||^2, where a and
    a' are the pre-activation maps of the image and of the image made brighter or darker by
    ``shift`` (averaged over both directions); 1 means the loss after the ReLU sees all of it.
    """

    layer: str  # e.g. "relu5_4"; its pre-activation map is "conv5_4"
    active: float
    seen: float


def activation_stats(vgg: VGGFeatures, image: torch.Tensor, shift: float = 0.1) -> list[LayerStats]:
    """:class:`LayerStats` for every ReLU of ``vgg`` (up to its layer), on one (3, H, W) image.

    ESRGAN's argument for features *before* the activation: after a ReLU most units of deep
    layers are 0 (the paper counts 11.17% active at VGG19-54 on 'baboon'), and a loss on them
    ignores every change that stays below 0. Three passes through ``vgg``.
    """
    if image.dim() != 3:
        raise ValueError(f"activation_stats expects one (3, H, W) image, got {tuple(image.shape)}")
    shift = _check_number("shift", shift, 0.0)
    batch = torch.stack([image, image + shift, image - shift])  # brightness shifts, unclamped
    maps = feature_stack(vgg, batch)
    stats = []
    for name in maps:
        if not name.startswith("relu"):
            continue
        pre, post = maps["conv" + name[4:]], maps[name]
        d_pre = (pre[1:] - pre[:1]).pow(2).sum()
        d_post = (post[1:] - post[:1]).pow(2).sum()
        seen = float(d_post / d_pre) if float(d_pre) > 0 else 1.0
        stats.append(LayerStats(name, float((post[0] > 0).float().mean()), seen))
    return stats


def plot_activation_stats(
    runs: dict[str, list[LayerStats]], paper: tuple[str, float] | None = ("relu5_4", 0.1117)
) -> plt.Figure:
    """Bars of the active fraction per ReLU layer for each entry of ``runs`` (label -> stats),
    with ESRGAN's reported value as a star (``paper`` = (layer, fraction))."""
    layers = [n for n in _LAYER_NAMES if n.startswith("relu")]
    x = np.arange(len(layers))
    fig, ax = plt.subplots(figsize=(11, 3.4))
    width = 0.8 / max(len(runs), 1)
    for k, (label, stats) in enumerate(runs.items()):
        by = {s.layer: s.active for s in stats}
        values = [by.get(n, np.nan) for n in layers]
        ax.bar(x - 0.4 + width * (k + 0.5), values, width, label=label)
    if paper is not None:
        ax.plot(layers.index(paper[0]), paper[1], "k*", ms=12, label="ESRGAN paper (baboon)")
    ax.set_xticks(x, [n.replace("relu", "") for n in layers], fontsize=8)
    ax.set_xlabel("VGG19 layer (relu i_j)")
    ax.set_ylabel("fraction of units > 0")
    ax.set_ylim(0, 1)
    ax.axhline(0.5, color="gray", lw=0.6, ls=":")
    ax.set_title("how many units survive the ReLU", fontsize=10)
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    return fig


def plot_relu_loss(targets: Sequence[float] = (1.0, -1.0)) -> plt.Figure:
    """One unit, one target: the squared error before the ReLU, (a - t)^2, and after it,
    (relu(a) - relu(t))^2, as the SR image's pre-activation a moves, for each target t."""
    a = np.linspace(-3, 3, 301)
    fig, axes = plt.subplots(1, len(targets), figsize=(4.2 * len(targets), 3.0), sharey=True)
    axes = np.atleast_1d(axes)
    for ax, t in zip(axes, targets, strict=True):
        ax.plot(a, (a - t) ** 2, color="tab:green", lw=2, label="before ReLU: (a - t)$^2$")
        ax.plot(a, (np.maximum(a, 0) - max(t, 0)) ** 2, color="tab:orange", lw=2, ls="--",
                label="after ReLU: (relu a - relu t)$^2$")  # fmt: skip
        ax.axvline(t, color="k", lw=0.8, ls=":")
        state = "active" if t > 0 else "inactive (0 after ReLU)"
        ax.set_title(f"target unit t = {t:g}: {state}", fontsize=10)
        ax.set_xlabel("SR image's pre-activation a")
        ax.set_ylim(0, 6)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("loss of this unit")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=2, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return fig


# ----------------------------------------------------------------------------------------------
# the side-by-side experiment: BN SRResNet vs BN-free RRDBNet, pixel MSE, same batches
# ----------------------------------------------------------------------------------------------


def training_crops(n: int, size: int, seed: int = 0) -> torch.Tensor:
    """``n`` procedural HR images (``SyntheticImages``) of ``size`` x ``size``: (n, 3, s, s)."""
    data = SyntheticImages(_check_count("n", n, 1), size, seed=seed)
    return torch.stack([data[i] for i in range(n)])


def photo_crops(size: int, n: int = 4, image: torch.Tensor | None = None) -> torch.Tensor:
    """``n`` non-overlapping ``size`` x ``size`` HR crops of a photo (default the lesson photo,
    Grace Hopper), taken along its diagonal: (n, 3, size, size) in [0, 1]."""
    img = sample_image() if image is None else image
    h, w = img.shape[-2:]
    if n * size > min(h, w):
        raise ValueError(
            f"{n} crops of {size}x{size} do not fit along the diagonal of a {h}x{w} image"
        )
    top0, left0 = (h - n * size) // 2, (w - n * size) // 2
    return torch.stack(
        [img[:, top0 + k * size : top0 + (k + 1) * size, left0 + k * size : left0 + (k + 1) * size]
         for k in range(n)]
    )  # fmt: skip


@dataclass
class PixelRun:
    """One generator trained with pixel MSE: its name, parameter count, losses and time."""

    name: str
    model: nn.Module
    params: int
    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0


def train_pixel_mse(
    model: nn.Module,
    hr: torch.Tensor,
    scale: int,
    steps: int,
    batch_size: int = 16,
    lr: float = 1e-3,
    seed: int = 0,
    name: str | None = None,
    device: torch.device | str | None = None,
    progress: bool = False,
    callback: Callable[[int, float], None] | None = None,
) -> PixelRun:
    """Train ``model`` in place with Adam on pixel MSE (eq. 4 of SRGAN), as SRResNet is trained.

    ``hr``: (N, 3, H, W) HR images in [0, 1]; their LR versions come from
    :func:`srgan_edu.degrade.degrade` (bicubic, once). Batch k draws its images with a
    ``torch.Generator`` seeded with ``seed``, so two models given the same seed see exactly the
    same batches. Returns a :class:`PixelRun` (the model is left in train mode).
    """
    _check_count("steps", steps, 0)
    device = torch.device(device) if device is not None else torch.device("cpu")
    model.to(device).train()
    lr_all = degrade(hr, scale)  # (N, 3, H/s, W/s) in [0, 1]
    target_all = unit_to_signed(hr)  # the generator's [-1, 1] range
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    run = PixelRun(name or type(model).__name__, model, count_parameters(model))
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=steps, desc=run.name, leave=False)
    start = time.perf_counter()
    for step in range(steps):
        idx = torch.randint(len(hr), (batch_size,), generator=g)
        sr = model(lr_all[idx].to(device))  # (B, 3, H, W) in [-1, 1]
        loss = pixel_mse(sr, target_all[idx].to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        run.losses.append(float(loss.detach()))
        if callback is not None:
            callback(step, run.losses[-1])
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    run.seconds = time.perf_counter() - start
    return run


def without_batchnorm(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with every BatchNorm layer replaced by the identity (EDSR's change).

    For the library's SRResNet this leaves everything else as it was: the same convolutions
    (those before a BN have no bias), PReLUs, skips and upsampling, so training the copy from
    the same initial weights isolates what BN does. ``model`` itself is not changed.
    """
    clone = copy.deepcopy(model)

    def strip(module: nn.Module) -> None:
        for name, child in module.named_children():
            if isinstance(child, nn.modules.batchnorm._BatchNorm):
                setattr(module, name, nn.Identity())
            else:
                strip(child)

    strip(clone)
    return clone


def _super_resolve(model: nn.Module, lr: torch.Tensor, train_mode: bool) -> torch.Tensor:
    """SR images in [0, 1] from ``model`` in eval or train mode, without touching its state."""
    net = copy.deepcopy(model) if train_mode else model  # train mode updates BN's running stats
    was_training = net.training
    net.train(train_mode)
    device = next(net.parameters()).device
    with torch.no_grad():
        out = signed_to_unit(net(lr.to(device))).clamp(0, 1).cpu()
    net.train(was_training)
    return out


def evaluate_psnr(
    models: dict[str, nn.Module], hr: torch.Tensor, scale: int, train_mode: bool = False
) -> dict[str, float]:
    """Mean PSNR [dB] (Y channel, ``scale``-pixel border, 8-bit: :func:`sr_metrics`) per model
    on the HR images ``hr`` (N, 3, H, W) in [0, 1], plus ``"bicubic"`` as the baseline.

    Models run in eval mode (``train_mode=False``) on the whole batch at once; their own mode is
    restored afterwards. ``train_mode=True`` runs each image alone in train mode on a copy, so
    that BatchNorm normalises with that image's own statistics.
    """
    lr = degrade(hr, scale)
    results = {"bicubic": float(sr_metrics(bicubic_up(lr, scale), hr, scale).psnr.mean())}
    for name, model in models.items():
        if train_mode:
            sr = torch.cat([_super_resolve(model, lr[i : i + 1], True) for i in range(len(lr))])
        else:
            sr = _super_resolve(model, lr, False)
        results[name] = float(sr_metrics(sr, hr, scale).psnr.mean())
    return results


def bn_mode_outputs(model: nn.Module, lr: torch.Tensor) -> dict[str, torch.Tensor]:
    """The same LR image(s) through ``model`` in eval mode and in train mode (batch statistics).

    Returns ``{"eval", "train", "diff"}``: SR images in [0, 1] and |train - eval| averaged over
    the colour channels, (B, H, W). For a network without BatchNorm (or dropout) the two are
    identical. The model's parameters, running statistics and mode are left as they were.
    """
    eval_out = _super_resolve(model, lr, False)
    train_out = _super_resolve(model, lr, True)
    return {"eval": eval_out, "train": train_out, "diff": (train_out - eval_out).abs().mean(1)}
