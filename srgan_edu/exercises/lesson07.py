"""Checks for the exercises of lesson 07 (SRGAN, piece by piece).

07.1 counts the discriminator's parameters for any crop size (Fig. 4, the dense layer whose size
depends on the crop); 07.2 writes the generator's perceptual loss, eq. (3): the VGG content
loss of eq. (5) scaled by 1/12.75^2 plus 1e-3 times the adversarial loss of eq. (6). Each check
compares with the library (:class:`srgan_edu.models.Discriminator`,
:class:`srgan_edu.losses.PerceptualLoss`) and names the usual mistakes.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from srgan_edu.exercises.feedback import (
    CheckFailed,
    as_tensor,
    call,
    expect,
    expect_close,
    passed,
    relative_error,
)
from srgan_edu.imaging import signed_to_unit
from srgan_edu.losses import ADV_WEIGHT, VGG_RESCALE, PerceptualLoss
from srgan_edu.models import Discriminator, count_parameters
from srgan_edu.vgg import VGGFeatures

__all__ = ["discriminator_parameters", "perceptual_loss"]


# ----------------------------------------------------------------------------------------------
# 07.1 the discriminator's parameter count
# ----------------------------------------------------------------------------------------------


def _library_count(hr_size: int, channels: int, dense: int) -> int:
    with torch.device("meta"):  # shapes only: no memory, no time
        return count_parameters(Discriminator(hr_size, channels, dense))


def _count(
    hr_size: int,
    channels: int,
    dense: int,
    *,
    side: Callable[[int], int] = lambda n: math.ceil(n / 16),
    first_bias: bool = True,
    later_bias: bool = False,
    bn_on_first: bool = False,
    bn_per_channel: int = 2,
    dense_bias: bool = True,
    scale_widths: bool = True,
) -> int:
    """The discriminator's count by the four rules, with switches that reproduce the mistakes."""
    c = channels if scale_widths else 64
    widths = [c, c, 2 * c, 2 * c, 4 * c, 4 * c, 8 * c, 8 * c]
    total, c_in = 0, 3
    for k, c_out in enumerate(widths):
        total += 9 * c_in * c_out
        total += c_out if (first_bias if k == 0 else later_bias) else 0
        total += bn_per_channel * c_out if (k > 0 or bn_on_first) else 0
        c_in = c_out
    flat = widths[-1] * side(hr_size) ** 2  # what the first dense layer reads
    dense1 = flat * dense + (dense if dense_bias else 0)
    dense2 = dense + (1 if dense_bias else 0)
    return total + dense1 + dense2


_COUNT_MISTAKES: list[tuple[dict, str]] = [
    (
        {"side": lambda n: n // 16},
        "you rounded the last map's side down: a 3x3 convolution with stride 2 and padding 1 maps "
        "n pixels to floor((n + 2 - 3) / 2) + 1 = ceil(n / 2), so four of them give "
        "ceil(hr_size / 16) (e.g. 100 -> 50 -> 25 -> 13 -> 7), not hr_size // 16",
    ),
    (
        {"side": lambda n: 6},
        "your count does not change with hr_size: the last map is ceil(hr_size / 16) pixels on "
        "a side (6 only for 96x96 crops), and the first dense layer reads all 8C x side x side "
        "numbers of it",
    ),
    (
        {"later_bias": True},
        "you gave every convolution a bias: only the first one has a bias; the seven "
        "convolutions followed by batch norm have none (BN's shift would cancel it)",
    ),
    (
        {"first_bias": False},
        "you left out the first convolution's bias: the first 3x3 convolution (3 -> C) has no "
        "batch norm after it, so it keeps its C biases",
    ),
    (
        {"bn_on_first": True},
        "you counted a batch norm after the first convolution: D has batch norm after all "
        "convolutions but the first",
    ),
    (
        {"bn_per_channel": 4},
        "you counted 4 numbers per batch-norm channel: gamma and beta are parameters (2 per "
        "channel); the running mean and variance are buffers, not parameters",
    ),
    (
        {"bn_per_channel": 0},
        "you left out the batch norms: each has 2 parameters per channel (gamma and beta)",
    ),
    (
        {"dense_bias": False},
        "you left out the dense layers' biases: a dense layer from n to m units has n*m weights "
        "plus m biases (1024 + 1 for the two dense layers)",
    ),
    (
        {"scale_widths": False},
        "your count ignores `channels`: the eight convolutions have C, C, 2C, 2C, 4C, 4C, 8C, "
        "8C output channels, with C = channels (64 in the paper)",
    ),
]


def discriminator_parameters(answer: Callable[..., int], *, hidden: bool = False) -> None:
    """Exercise 07.1: ``answer(hr_size, channels, dense)`` equals D's parameter count."""
    cases = [(96, 64, 1024), (128, 64, 1024), (100, 64, 1024), (32, 16, 64)]
    if hidden:
        cases += [(50, 8, 32), (17, 4, 16), (200, 32, 256), (16, 1, 1), (81, 3, 7)]
    for hr_size, channels, dense in cases:
        got = call(
            answer,
            hr_size,
            channels,
            dense,
            what="discriminator_parameters(hr_size, channels, dense)",
        )
        want = _library_count(hr_size, channels, dense)
        where = f"for hr_size={hr_size}, channels={channels}, dense={dense}"
        if isinstance(got, float) and got == want:
            raise CheckFailed(
                f"{where} you returned the float {got!r}: a parameter count is an int "
                "(use math.ceil(...) or integer division, not '/', for the side)"
            )
        expect(
            isinstance(got, int) and not isinstance(got, bool),
            f"{where} discriminator_parameters should return an int, got {type(got).__name__} "
            f"{got!r}",
        )
        if got == want:
            continue
        for switches, message in _COUNT_MISTAKES:
            if got == _count(hr_size, channels, dense, **switches):
                raise CheckFailed(f"{where} you returned {got:,}, expected {want:,}: {message}.")
        raise CheckFailed(
            f"{where} you returned {got:,}, expected {want:,} (off by {got - want:+,}). Count "
            "part by part as in section 3: the first conv (3 -> C, with bias), seven convs "
            "without bias each followed by BN (2 per channel), the dense layer from "
            "8C x ceil(hr_size/16)^2 to `dense`, and the dense layer from `dense` to 1."
        )
    passed("07.1 the discriminator's parameters", len(cases), hidden)


# ----------------------------------------------------------------------------------------------
# 07.2 the perceptual loss, eq. 3
# ----------------------------------------------------------------------------------------------


def _inputs(seed: int, batch: int, size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    hr = torch.rand(batch, 3, size, size, generator=g) * 2 - 1  # (B, 3, H, W) in [-1, 1]
    sr = (hr + 0.3 * torch.randn(batch, 3, size, size, generator=g)).clamp(-1, 1)
    logits = 2.0 * torch.randn(batch, 1, generator=g)  # (B, 1) D's logits on sr
    return sr, hr, logits


def _content(vgg: VGGFeatures, sr: torch.Tensor, hr: torch.Tensor, how: str) -> torch.Tensor:
    """Variants of the content part, for naming the mistake."""
    if how == "signed":
        return VGG_RESCALE**2 * F.mse_loss(vgg(sr), vgg(hr))
    if how == "pixels":
        return F.mse_loss(sr, hr)
    raw = F.mse_loss(vgg(signed_to_unit(sr)), vgg(signed_to_unit(hr)))
    return raw if how == "unscaled" else VGG_RESCALE * raw  # "not squared"


def _run(answer, sr, hr, logits, vgg) -> torch.Tensor:
    got = call(
        answer,
        sr,
        hr,
        logits,
        vgg,
        what="perceptual_loss_by_hand(sr, hr, fake_logits, vgg)",
    )
    if not isinstance(got, torch.Tensor):
        raise CheckFailed(
            "perceptual_loss_by_hand should return a torch tensor (a 0-d loss that autograd can "
            f"differentiate), got {type(got).__name__}"
        )
    expect(
        got.numel() == 1,
        f"perceptual_loss_by_hand should return one number (a 0-d tensor), got shape "
        f"{tuple(got.shape)}: take the mean over the batch, channels and positions",
    )
    return got.reshape(())


def perceptual_loss(answer: Callable[..., torch.Tensor], *, hidden: bool = False) -> None:
    """Exercise 07.2: ``answer(sr, hr, fake_logits, vgg)`` equals PerceptualLoss's total (eq. 3).

    Three looks: the adversarial part alone (sr == hr, so the content part is 0), the content
    part alone (huge fake logits, so -log D(G) is 0), then both together and the gradient to sr.
    """
    settings = [("relu2_2", 0, 2, 16)]
    if hidden:
        settings += [("relu1_2", 3, 3, 12), ("relu2_1", 5, 1, 20)]
    n_cases = 0
    for layer, seed, batch, size in settings:
        vgg = VGGFeatures(layer, weights=None, seed=seed)  # frozen, rescale 1, images in [0, 1]
        library = PerceptualLoss(layer, weights=None, seed=seed)  # 1/12.75, 1e-3: the paper's
        sr, hr, logits = _inputs(seed, batch, size)

        # 1) the adversarial part alone: sr == hr makes every content loss 0
        got = _run(answer, hr.clone(), hr, logits, vgg)
        want = library(hr, hr, logits).total
        adv = F.softplus(-logits).mean()  # -log D(G), batch mean
        if not bool(torch.isfinite(got)):
            raise CheckFailed("perceptual_loss_by_hand returned NaN or inf")
        if relative_error(got.detach(), want) > 1e-4:
            wrong = {
                "you left out the weight 1e-3 of the adversarial loss (eq. 3: content "
                "+ 1e-3 x adversarial)": adv,
                "you used the saturating log(1 - D(G)) of the game (eq. 2); the generator "
                "minimises the non-saturating -log D(G) (eq. 6), softplus(-z) from a logit "
                "z": ADV_WEIGHT * -F.softplus(logits).mean(),
                "you summed -log D(G) over the batch; the library takes the batch mean": (
                    ADV_WEIGHT * F.softplus(-logits).sum()
                ),
                "you used log D(G) with the wrong sign: -log D(G) = softplus(-z) is positive "
                "and shrinks as D is fooled": -ADV_WEIGHT * adv,
                "you took -log(1 - D(G)) (D's loss on generated images) instead of -log D(G)": (
                    ADV_WEIGHT * F.softplus(logits).mean()
                ),
            }
            for message, value in wrong.items():
                if relative_error(got.detach(), value) < 1e-4:
                    raise CheckFailed(f"With sr == hr (content loss 0): {message}.")
            expect_close(
                got.detach(),
                want,
                "With sr == hr (content loss 0) your loss",
                rtol=1e-4,
                hint="This is the adversarial part alone: 1e-3 x mean(-log sigmoid(z)) over the "
                "batch, with z = fake_logits.",
            )

        # 2) the content part alone: D fooled for sure makes -log D(G) = 0
        sure = torch.full_like(logits, 40.0)
        got = _run(answer, sr, hr, sure, vgg)
        want = library(sr, hr, sure).total
        if not bool(torch.isfinite(got)):
            raise CheckFailed("perceptual_loss_by_hand returned NaN or inf")
        if relative_error(got.detach(), want) > 1e-4:
            with torch.no_grad():
                wrong = {
                    "you left out the paper's rescaling: the feature maps are multiplied by "
                    "1/12.75 (VGG_RESCALE), so the loss by 1/12.75^2": "unscaled",
                    "you multiplied the loss by 1/12.75 once: the factor scales the feature "
                    "maps, so the squared difference gets (1/12.75)^2 = VGG_RESCALE**2": (
                        "not squared"
                    ),
                    "you fed the [-1, 1] images to the VGG: it takes images in [0, 1], "
                    "convert with signed_to_unit(x) = (x + 1) / 2 first": "signed",
                    "you computed a pixel MSE: the content loss here is the MSE between VGG "
                    "feature maps vgg(...) of the two images (eq. 5)": "pixels",
                }
                for message, how in wrong.items():
                    if relative_error(got.detach(), _content(vgg, sr, hr, how)) < 1e-4:
                        raise CheckFailed(f"With D surely fooled (adversarial loss 0): {message}.")
            expect_close(
                got.detach(),
                want,
                "With D surely fooled (adversarial loss 0) your loss",
                rtol=1e-4,
                hint="This is the content part alone: VGG_RESCALE**2 x the mean over batch, "
                "channels and positions of (vgg(sr01) - vgg(hr01))**2.",
            )

        # 3) both parts, and the gradient that reaches the generator's output
        sr_leaf = sr.clone().requires_grad_(True)
        got = _run(answer, sr_leaf, hr, logits, vgg)
        ref_leaf = sr.clone().requires_grad_(True)
        want = library(ref_leaf, hr, logits).total
        expect_close(got.detach(), want.detach(), "Your perceptual loss", rtol=1e-4)
        expect(
            got.requires_grad,
            "your loss has the right value but carries no gradient (requires_grad is False): "
            "compute it without torch.no_grad() and without .detach() on the SR side, or the "
            "generator never learns from it (section 8 shows this mistake)",
        )
        (want_grad,) = torch.autograd.grad(want, ref_leaf)
        (got_grad,) = torch.autograd.grad(got, sr_leaf, allow_unused=True)
        if got_grad is None or float(got_grad.abs().max()) == 0.0:
            raise CheckFailed(
                "your loss sends no gradient to sr: the SR features must be computed with "
                "autograd on (no torch.no_grad(), no .detach() on the SR side)"
            )
        expect_close(
            as_tensor(got_grad, "the gradient"),
            want_grad,
            "The gradient of your loss with respect to sr",
            rtol=1e-3,
            hint="The value is right but the gradient is not: did you detach part of the SR "
            "features, or compute the HR features from sr?",
        )
        n_cases += 3

    if hidden:  # huge logits: -log sigmoid(z) must not become inf
        vgg = VGGFeatures("relu1_2", weights=None, seed=1)
        library = PerceptualLoss("relu1_2", weights=None, seed=1)
        sr, hr, _ = _inputs(1, 2, 12)
        logits = torch.tensor([[-200.0], [150.0]])
        got = _run(answer, sr, hr, logits, vgg)
        if not bool(torch.isfinite(got)):
            raise CheckFailed(
                "with a fake logit of -200 your loss is inf or NaN: sigmoid(-200) rounds to 0 in "
                "float32 and log(0) = -inf. Use -log sigmoid(z) = softplus(-z) (F.softplus)"
            )
        expect_close(
            got.detach(), library(sr, hr, logits).total, "Your loss for logits -200 and 150"
        )
        n_cases += 1
    passed("07.2 the perceptual loss (eq. 3)", n_cases, hidden)
