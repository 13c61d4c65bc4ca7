"""SRGAN's losses (Ledig et al. 2017, Sec. 2.2, eqs. 3-6): pixel, content, adversarial, total.

The perceptual loss of the generator is a content loss plus a small adversarial term (eq. 3):

    l^SR = l^SR_X + 1e-3 * l^SR_Gen

where the content loss l^SR_X is either the pixel MSE (eq. 4, SRResNet-MSE / SRGAN-MSE) or an MSE
between VGG19 feature maps (eq. 5, SRGAN-VGG22 / SRGAN-VGG54), and the adversarial loss is the
non-saturating -log D(G(I^LR)) (eq. 6). The discriminator returns logits; every sigmoid lives
here, folded into softplus so that huge logits give no inf or nan:

    -log sigmoid(z)     = softplus(-z)
    -log(1 - sigmoid(z)) = softplus(z)

Ranges (see :mod:`srgan_edu.imaging`): ``sr`` (generator output) and ``hr`` are in [-1, 1].
Introduced in lesson 06 (content losses) and lesson 07 (adversarial loss).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .imaging import signed_to_unit
from .vgg import PAPER_LAYERS, VGGFeatures, vgg19_layer

VGG_RESCALE = 1.0 / 12.75
"""The paper's factor on VGG feature maps (Sec. 3.2): the VGG loss shrinks by 1/12.75^2 ~ 0.006."""

ADV_WEIGHT = 1e-3
"""Weight of the adversarial loss in the perceptual loss (eq. 3)."""


def _check_pair(sr: torch.Tensor, hr: torch.Tensor, what: str) -> None:
    if sr.shape != hr.shape:
        raise ValueError(
            f"{what}: the super-resolved batch has shape {tuple(sr.shape)} but the HR batch "
            f"{tuple(hr.shape)}; they must match (is the generator's scale the dataset's?)"
        )


def pixel_mse(sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
    """Pixel-wise MSE, eq. 4: l_MSE = 1/(r^2 W H) sum_x,y (I^HR_x,y - G(I^LR)_x,y)^2.

    Averaged over batch, channels and pixels, on the [-1, 1] range (Sec. 3.2), which makes it
    4x the MSE of the same images in [0, 1].
    """
    _check_pair(sr, hr, "pixel_mse")
    return F.mse_loss(sr, hr)  # mean over (B, C, rH, rW)


class ContentLoss(nn.Module):
    """VGG content loss, eq. 5: l_VGG/i,j = 1/(W H) sum_x,y (phi(I^HR) - phi(G(I^LR)))^2.

    ``layer`` picks phi_{i,j} (``"relu2_2"`` = VGG22, ``"relu5_4"`` = VGG54, ``"conv5_4"`` before
    the ReLU, ...). The mean runs over batch, channels and positions. ``rescale`` multiplies the
    feature maps (the paper's option is 1/12.75, :data:`VGG_RESCALE`), so it multiplies the loss
    by ``rescale**2``. Gradients flow through the frozen VGG to ``sr``; ``hr`` gets none.
    """

    def __init__(
        self,
        layer: str = "relu5_4",
        weights: str | os.PathLike | None = "imagenet",
        *,
        rescale: float = 1.0,
        preprocessing: str = "auto",
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.vgg = VGGFeatures(
            layer, weights, preprocessing=preprocessing, rescale=rescale, seed=seed
        )

    def forward(self, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        """``sr`` and ``hr``: (B, 3, H, W) in [-1, 1] -> scalar loss."""
        _check_pair(sr, hr, "ContentLoss")
        # No torch.no_grad() here: the generator learns through phi(G(I^LR)).
        phi_sr = self.vgg(signed_to_unit(sr))  # (B, C, H / s, W / s)
        with torch.no_grad():
            phi_hr = self.vgg(signed_to_unit(hr))  # the target: a constant
        return F.mse_loss(phi_sr, phi_hr)


def adversarial_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Generator's adversarial loss, eq. 6: l_Gen = sum_n -log D(G(I^LR_n)), as a batch mean.

    Non-saturating (Goodfellow et al. 2014): the generator maximises log D(G(z)) instead of
    minimising log(1 - D(G(z))), which gives strong gradients while D still wins. From logits z:
    -log sigmoid(z) = softplus(-z).
    """
    return F.softplus(-fake_logits).mean()


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Discriminator loss (eq. 2 as a minimisation): -log D(I^HR) - log(1 - D(G(I^LR))).

    Each term is a mean over its batch and the two are added (equal to
    ``BCEWithLogits(real, 1) + BCEWithLogits(fake, 0)``). From logits: softplus(-z) and
    softplus(z). Pass ``fake_logits`` computed on a detached ``sr`` so G gets no gradient here.
    """
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


@dataclass
class LossParts:
    """The perceptual loss and its parts (eq. 3), as tensors; :meth:`as_floats` for logging."""

    total: torch.Tensor
    content: torch.Tensor
    adversarial: torch.Tensor

    def as_floats(self) -> dict[str, float]:
        """``{"total": ..., "content": ..., "adversarial": ...}`` as Python floats."""
        return {
            "total": float(self.total.detach()),
            "content": float(self.content.detach()),
            "adversarial": float(self.adversarial.detach()),
        }


class PerceptualLoss(nn.Module):
    """Perceptual loss for the generator, eq. 3: l^SR = l^SR_X + 1e-3 * l^SR_Gen.

    ``content``: ``"mse"`` (eq. 4), ``"vgg22"`` or ``"vgg54"`` (eq. 5 at relu2_2 / relu5_4), or
    any VGG19 layer name. Defaults follow the paper's SRGAN: VGG54, feature maps rescaled by
    1/12.75, adversarial weight 1e-3. ``weights``, ``preprocessing`` and ``seed`` go to
    :class:`VGGFeatures`.
    """

    def __init__(
        self,
        content: str = "vgg54",
        adv_weight: float = ADV_WEIGHT,
        *,
        weights: str | os.PathLike | None = "imagenet",
        rescale: float = VGG_RESCALE,
        preprocessing: str = "auto",
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.content_name = content.lower()
        self.adv_weight = float(adv_weight)
        self.content_loss: nn.Module | None = None
        if self.content_name != "mse":
            if self.content_name not in PAPER_LAYERS:
                try:
                    vgg19_layer(self.content_name)
                except ValueError as err:
                    raise ValueError(
                        f"content must be 'mse', 'vgg22', 'vgg54' or a VGG19 layer name, got "
                        f"{content!r}"
                    ) from err
            self.content_loss = ContentLoss(
                self.content_name,
                weights,
                rescale=rescale,
                preprocessing=preprocessing,
                seed=seed,
            )

    def forward(
        self, sr: torch.Tensor, hr: torch.Tensor, fake_logits: torch.Tensor | None = None
    ) -> LossParts:
        """``sr``, ``hr`` in [-1, 1]; ``fake_logits`` = D(sr), or None (SRResNet pre-training).

        Without ``fake_logits`` the adversarial part is 0 and ``total`` is the content loss.
        """
        if self.content_loss is None:
            content = pixel_mse(sr, hr)  # eq. 4
        else:
            content = self.content_loss(sr, hr)  # eq. 5
        if fake_logits is None:
            adversarial = content.new_zeros(())
        else:
            adversarial = adversarial_loss(fake_logits)  # eq. 6
        total = content + self.adv_weight * adversarial  # eq. 3
        return LossParts(total=total, content=content, adversarial=adversarial)
