"""Tests for srgan_edu.losses: hand computations, torch references, stability, gradient flow.

The VGG is random (weights=None) and cut at relu2_2 on 32x32 images: what is tested here (the
arithmetic of the losses and where gradients go) does not depend on trained weights.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from srgan_edu.losses import (
    ADV_WEIGHT,
    VGG_RESCALE,
    ContentLoss,
    LossParts,
    PerceptualLoss,
    adversarial_loss,
    discriminator_loss,
    pixel_mse,
)
from srgan_edu.vgg import TORCHVISION_MEAN, TORCHVISION_STD


def images(seed: int, shape=(2, 3, 32, 32)) -> torch.Tensor:
    """A batch in [-1, 1], like HR targets and generator outputs."""
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def logits(seed: int, n: int = 16, scale: float = 3.0) -> torch.Tensor:
    return torch.randn(n, 1, generator=torch.Generator().manual_seed(seed)) * scale


@pytest.fixture(scope="module")
def content22() -> ContentLoss:
    return ContentLoss("relu2_2", weights=None, seed=0)


# ---- pixel MSE (eq. 4) ------------------------------------------------------------------------


def test_pixel_mse_is_the_mean_square_over_everything():
    sr, hr = images(0), images(1)
    by_hand = sum(d * d for d in (sr - hr).flatten().tolist()) / sr.numel()
    assert math.isclose(float(pixel_mse(sr, hr)), by_hand, rel_tol=1e-5)
    torch.testing.assert_close(pixel_mse(sr, hr), F.mse_loss(sr, hr))
    # In [-1, 1] it is 4x the MSE of the same images in [0, 1] (Sec. 3.2).
    torch.testing.assert_close(pixel_mse(sr, hr), 4 * F.mse_loss((sr + 1) / 2, (hr + 1) / 2))


def test_pixel_mse_refuses_mismatched_shapes():
    with pytest.raises(ValueError, match=r"\(2, 3, 32, 32\) but the HR batch \(2, 3, 64, 64\)"):
        pixel_mse(images(0), images(1, (2, 3, 64, 64)))


# ---- adversarial and discriminator losses (eqs. 6 and 2) --------------------------------------


def test_adversarial_loss_matches_hand_and_bce_reference():
    z = logits(0)
    by_hand = (-torch.log(torch.sigmoid(z))).mean()
    torch.testing.assert_close(adversarial_loss(z), by_hand)
    reference = F.binary_cross_entropy_with_logits(z, torch.ones_like(z))
    torch.testing.assert_close(adversarial_loss(z), reference)
    # D(G(z)) = 0.5 everywhere -> -log 0.5 = log 2
    assert math.isclose(float(adversarial_loss(torch.zeros(4, 1))), math.log(2), rel_tol=1e-6)


def test_discriminator_loss_matches_hand_and_bce_reference():
    real, fake = logits(1), logits(2)
    by_hand = (-torch.log(torch.sigmoid(real))).mean() - torch.log(1 - torch.sigmoid(fake)).mean()
    torch.testing.assert_close(discriminator_loss(real, fake), by_hand)
    reference = F.binary_cross_entropy_with_logits(
        real, torch.ones_like(real)
    ) + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake))
    torch.testing.assert_close(discriminator_loss(real, fake), reference)
    at_half = discriminator_loss(torch.zeros(3, 1), torch.zeros(5, 1))  # D = 0.5 on both
    assert math.isclose(float(at_half), 2 * math.log(2), rel_tol=1e-6)


def test_losses_are_stable_for_huge_logits():
    z = torch.tensor([[-1e4], [-100.0], [0.0], [100.0], [1e4]], requires_grad=True)
    # Naive -log(sigmoid(z)) is inf at z = -1e4 (sigmoid underflows to 0).
    assert torch.isinf(-torch.log(torch.sigmoid(z.detach()))).any()
    gen = adversarial_loss(z)
    gen.backward()
    # -log sigmoid(z) ~ -z for z << 0 and ~ 0 for z >> 0: mean = (1e4 + 100 + log 2) / 5
    assert math.isclose(float(gen.detach()), (1e4 + 100 + math.log(2)) / 5, rel_tol=1e-6)
    assert torch.isfinite(z.grad).all()
    # The generator still gets a full gradient when D confidently rejects its output
    # (non-saturating): d/dz softplus(-z) = -sigmoid(-z) -> -1, divided by the batch of 5.
    assert math.isclose(float(z.grad[0]), -1 / 5, rel_tol=1e-6)

    real = torch.full((2, 1), -1e4, requires_grad=True)
    fake = torch.full((2, 1), 1e4, requires_grad=True)
    disc = discriminator_loss(real, fake)
    disc.backward()
    assert math.isclose(float(disc.detach()), 2e4, rel_tol=1e-6)
    assert torch.isfinite(real.grad).all() and torch.isfinite(fake.grad).all()
    assert float(discriminator_loss(-real.detach(), -fake.detach())) == 0.0


# ---- VGG content loss (eq. 5) -----------------------------------------------------------------


def test_content_loss_equals_hand_computation(content22):
    sr, hr = images(2), images(3)
    mean = torch.tensor(TORCHVISION_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(TORCHVISION_STD).view(1, 3, 1, 1)

    def phi(x):  # [-1, 1] -> [0, 1] -> ImageNet normalisation -> conv1_1 ... relu2_2
        return content22.vgg.features(((x + 1) / 2 - mean) / std)

    by_hand = (phi(sr) - phi(hr)).square().mean()
    loss = content22(sr, hr)
    torch.testing.assert_close(loss, by_hand)
    assert float(loss) > 0 and float(content22(hr, hr)) == 0.0


def test_rescale_multiplies_features_so_the_loss_scales_by_its_square(content22):
    sr, hr = images(4), images(5)
    scaled = ContentLoss("relu2_2", weights=None, seed=0, rescale=VGG_RESCALE)
    assert VGG_RESCALE == 1 / 12.75
    torch.testing.assert_close(scaled(sr, hr), content22(sr, hr) / 12.75**2, rtol=1e-6, atol=0)
    torch.testing.assert_close(
        scaled.vgg((sr + 1) / 2), content22.vgg((sr + 1) / 2) / 12.75, rtol=1e-6, atol=0
    )


def test_content_loss_gradient_reaches_sr_not_hr_nor_vgg(content22):
    sr = images(6).requires_grad_(True)
    hr = images(7).requires_grad_(True)
    loss = content22(sr, hr)
    loss.backward()
    assert sr.grad is not None and sr.grad.abs().sum() > 0
    assert hr.grad is None  # the target branch is a constant
    assert all(p.grad is None and not p.requires_grad for p in content22.parameters())
    # The gradient is the right one: a small step against it lowers the loss.
    with torch.no_grad():
        lower = content22(sr - 1e-2 * sr.grad / sr.grad.norm(), hr)
    assert float(lower) < float(loss.detach())


def test_gradient_flows_through_the_content_loss_to_a_generator(content22):
    torch.manual_seed(0)  # only for nn.Conv2d's default initialisation
    generator = nn.Sequential(
        nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(3, 3, 3, padding=1), nn.Tanh()
    )
    lr = (images(8, (2, 3, 16, 16)) + 1) / 2  # LR in [0, 1]
    hr = images(9)
    losses = []
    for _ in range(3):  # plain gradient descent on G's parameters
        generator.zero_grad()
        loss = content22(generator(lr), hr)
        loss.backward()
        with torch.no_grad():
            for p in generator.parameters():
                assert p.grad is not None and p.grad.abs().sum() > 0
                p -= 0.05 * p.grad
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0]
    assert all(p.grad is None for p in content22.vgg.parameters())


def test_content_loss_refuses_mismatched_shapes(content22):
    with pytest.raises(ValueError, match="ContentLoss"):
        content22(images(0), images(1, (2, 3, 16, 16)))


# ---- perceptual loss (eq. 3) ------------------------------------------------------------------


def test_perceptual_loss_mse_is_content_plus_weighted_adversarial():
    sr, hr, z = images(10), images(11), logits(3, n=2)
    parts = PerceptualLoss("mse")(sr, hr, z)
    assert isinstance(parts, LossParts)
    torch.testing.assert_close(parts.content, pixel_mse(sr, hr))
    torch.testing.assert_close(parts.adversarial, adversarial_loss(z))
    torch.testing.assert_close(parts.total, parts.content + 1e-3 * parts.adversarial)
    assert ADV_WEIGHT == 1e-3
    floats = parts.as_floats()
    assert set(floats) == {"total", "content", "adversarial"}
    assert all(isinstance(v, float) for v in floats.values())


def test_perceptual_loss_vgg22_uses_the_rescaled_content_loss():
    sr, hr, z = images(12).requires_grad_(True), images(13), logits(4, n=2)
    loss = PerceptualLoss("vgg22", adv_weight=0.01, weights=None, seed=0)
    assert loss.content_loss.vgg.layer == "relu2_2"
    parts = loss(sr, hr, z)
    plain = ContentLoss("relu2_2", weights=None, seed=0)(sr, hr)
    torch.testing.assert_close(parts.content, plain / 12.75**2, rtol=1e-6, atol=0)
    torch.testing.assert_close(parts.total, parts.content + 0.01 * adversarial_loss(z))
    parts.total.backward()
    assert sr.grad is not None and sr.grad.abs().sum() > 0
    loss.train()  # a training loop switching the loss module to train mode
    assert not loss.content_loss.vgg.training


def test_perceptual_loss_without_logits_is_the_content_loss_alone():
    sr, hr = images(14), images(15)
    parts = PerceptualLoss("mse")(sr, hr)
    assert float(parts.adversarial) == 0.0
    torch.testing.assert_close(parts.total, pixel_mse(sr, hr))


def test_perceptual_loss_names_and_errors():
    assert PerceptualLoss("vgg54", weights=None).content_loss.vgg.layer == "relu5_4"
    assert PerceptualLoss("conv2_2", weights=None).content_loss.vgg.layer == "conv2_2"
    assert PerceptualLoss("mse").content_loss is None
    with pytest.raises(ValueError, match=r"'mse', 'vgg22', 'vgg54' or a VGG19 layer.*'vgg33'"):
        PerceptualLoss("vgg33", weights=None)
