"""One training update of each phase: the code the training loop and the benchmarks both run.

SRResNet (phase 1): one generator step on the pixel MSE (eq. 4). SRGAN (phase 2, k = 1): one
discriminator step on real HR against the detached SR (eq. 2), then one generator step on
content + 1e-3 adversarial (eq. 3) through the frozen discriminator. Losses come back as tensors
on the device, so a caller that does not print them never waits for the GPU.
"""

from __future__ import annotations

import torch
from torch import nn

from srgan_edu.losses import PerceptualLoss, discriminator_loss, pixel_mse

__all__ = ["srgan_step", "srresnet_step"]


def srresnet_step(
    g_run: nn.Module,
    opt_g: torch.optim.Optimizer,
    lr: torch.Tensor,
    hr: torch.Tensor,
    amp: bool = False,
) -> dict[str, torch.Tensor]:
    """One SRResNet update on a batch: LR (B, 3, h, w) in [0, 1], HR (B, 3, rh, rw) in [-1, 1].

    ``amp`` runs the generator's forward under bf16 autocast; the loss is taken in fp32.
    Returns ``{"mse": loss}``.
    """
    with torch.autocast(lr.device.type, dtype=torch.bfloat16, enabled=amp):
        sr = g_run(lr)  # (B, 3, rh, rw) in [-1, 1]
    loss = pixel_mse(sr.float(), hr)  # eq. 4
    opt_g.zero_grad(set_to_none=True)
    loss.backward()
    opt_g.step()
    return {"mse": loss.detach()}


def srgan_step(
    g_run: nn.Module,
    d_run: nn.Module,
    D: nn.Module,
    perceptual: PerceptualLoss,
    opt_g: torch.optim.Optimizer,
    opt_d: torch.optim.Optimizer,
    lr: torch.Tensor,
    hr: torch.Tensor,
    amp: bool = False,
) -> dict[str, torch.Tensor]:
    """One SRGAN update (k = 1): D on eq. 2, then G on eq. 3 through a frozen D.

    ``g_run``/``d_run`` are the networks as the loop runs them (possibly wrapped in DDP or
    compiled); ``D`` is the bare discriminator, used for the generator's step so that no DDP
    gradient sync runs for parameters that do not change there. Returns the losses and the mean
    probabilities D gives to real and to generated images.
    """
    with torch.autocast(lr.device.type, dtype=torch.bfloat16, enabled=amp):
        sr = g_run(lr)  # (B, 3, rh, rw) in [-1, 1]
        real_logits, fake_logits = d_run(hr), d_run(sr.detach())  # (B, 1) each
    loss_d = discriminator_loss(real_logits.float(), fake_logits.float())  # eq. 2
    opt_d.zero_grad(set_to_none=True)
    loss_d.backward()
    opt_d.step()
    D.requires_grad_(False)
    try:
        with torch.autocast(lr.device.type, dtype=torch.bfloat16, enabled=amp):
            parts = perceptual(sr, hr, D(sr))  # eq. 3: content + adv_weight * adversarial
        opt_g.zero_grad(set_to_none=True)
        parts.total.float().backward()
        opt_g.step()
    finally:
        D.requires_grad_(True)
    return {
        "g_total": parts.total.detach(),
        "content": parts.content.detach(),
        "adversarial": parts.adversarial.detach(),
        "d_loss": loss_d.detach(),
        "d_real": torch.sigmoid(real_logits.detach().float()).mean(),
        "d_fake": torch.sigmoid(fake_logits.detach().float()).mean(),
    }
