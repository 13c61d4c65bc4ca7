"""The reference the speed benchmark compares against: SRGAN training as public code writes it.

Plain eager PyTorch in fp32 with the default (NCHW) memory layout and the default Adam: no
autocast, no channels_last, no fused optimizer, no compilation. Its batches are float tensors
already on the device (made once, before timing), so the library's path, which degrades and crops
on the device inside every step, is given no head start. Same networks, same batch and the same
losses (eqs. 2-4) as ``srgan_edu.steps``; only the way they run differs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def reference_srresnet_step(
    G: nn.Module, opt_g: torch.optim.Optimizer, lr: torch.Tensor, hr: torch.Tensor
) -> torch.Tensor:
    """One SRResNet update, fp32: pixel MSE (eq. 4)."""
    loss = F.mse_loss(G(lr), hr)
    opt_g.zero_grad()
    loss.backward()
    opt_g.step()
    return loss.detach()


def reference_srgan_step(
    G: nn.Module,
    D: nn.Module,
    vgg: nn.Module,
    opt_g: torch.optim.Optimizer,
    opt_d: torch.optim.Optimizer,
    lr: torch.Tensor,
    hr: torch.Tensor,
    adv_weight: float = 1e-3,
) -> torch.Tensor:
    """One SRGAN update, fp32: D on eq. 2, then G on VGG content + adv_weight * adversarial (eq. 3).

    ``vgg`` maps an image in [-1, 1] to its (rescaled) feature maps, as the library's content loss
    does; the discriminator returns logits.
    """
    sr = G(lr)
    real, fake = D(hr), D(sr.detach())
    loss_d = F.binary_cross_entropy_with_logits(
        real, torch.ones_like(real)
    ) + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake))
    opt_d.zero_grad()
    loss_d.backward()
    opt_d.step()
    for p in D.parameters():
        p.requires_grad_(False)
    with torch.no_grad():
        target = vgg(hr)
    content = F.mse_loss(vgg(sr), target)
    logits = D(sr)
    adversarial = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))
    loss_g = content + adv_weight * adversarial
    opt_g.zero_grad()
    loss_g.backward()
    opt_g.step()
    for p in D.parameters():
        p.requires_grad_(True)
    return loss_g.detach()
