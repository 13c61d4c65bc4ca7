"""Lesson 07's exercise checks: right answers pass, typical wrong answers are named."""

import math

import pytest
import torch
import torch.nn.functional as F

from srgan_edu.exercises import lesson07 as check
from srgan_edu.exercises.feedback import CheckFailed
from srgan_edu.imaging import signed_to_unit
from srgan_edu.losses import ADV_WEIGHT, VGG_RESCALE

pytestmark = pytest.mark.usefixtures("one_thread")


def stub(*args, **kwargs):
    raise NotImplementedError("write your solution here")


# ---------------------------------------------------------------------------------- 07.1


def d_params(
    hr_size,
    channels=64,
    dense=1024,
    side=None,
    first_bias=True,
    later_bias=False,
    bn_first=False,
    dense_bias=True,
    bn=2,
):
    side = math.ceil(hr_size / 16) if side is None else side(hr_size)
    widths = [channels, channels, 2 * channels, 2 * channels]
    widths += [4 * channels, 4 * channels, 8 * channels, 8 * channels]
    total, c_in = 0, 3
    for k, c_out in enumerate(widths):
        total += 9 * c_in * c_out + (c_out if (first_bias if k == 0 else later_bias) else 0)
        total += bn * c_out if (k > 0 or bn_first) else 0
        c_in = c_out
    total += widths[-1] * side * side * dense + (dense if dense_bias else 0)
    return total + dense + (1 if dense_bias else 0)


def test_discriminator_parameters_right_answer(capsys):
    check.discriminator_parameters(d_params)
    assert "✓ 07.1" in capsys.readouterr().out
    check.discriminator_parameters(d_params, hidden=True)
    assert "(with the hidden cases)" in capsys.readouterr().out


def test_discriminator_parameters_stub_propagates():
    with pytest.raises(NotImplementedError):
        check.discriminator_parameters(stub)


@pytest.mark.parametrize(
    ("wrong", "match"),
    [
        (lambda n, c=64, d=1024: d_params(n, c, d, side=lambda n: n // 16), "rounded the last"),
        (lambda n, c=64, d=1024: d_params(n, c, d, side=lambda n: 6), "does not change with"),
        (lambda n, c=64, d=1024: d_params(n, c, d, later_bias=True), "every convolution a bias"),
        (lambda n, c=64, d=1024: d_params(n, c, d, first_bias=False), "first convolution's bias"),
        (lambda n, c=64, d=1024: d_params(n, c, d, bn_first=True), "batch norm after the first"),
        (lambda n, c=64, d=1024: d_params(n, c, d, bn=4), "running mean and variance"),
        (lambda n, c=64, d=1024: d_params(n, c, d, dense_bias=False), "dense layers' biases"),
        (lambda n, c=64, d=1024: d_params(n, 64, d), "ignores `channels`"),
        (lambda n, c=64, d=1024: float(d_params(n, c, d)), "float"),
        (lambda n, c=64, d=1024: d_params(n, c, d) + 1, r"off by \+1"),
        (lambda n, c=64, d=1024: n / 0, "ZeroDivisionError"),
    ],
)
def test_discriminator_parameters_names_the_mistake(wrong, match):
    with pytest.raises(CheckFailed, match=match):
        check.discriminator_parameters(wrong, hidden=True)


# ---------------------------------------------------------------------------------- 07.2


def perceptual(sr, hr, fake_logits, vgg):
    content = F.mse_loss(vgg(signed_to_unit(sr)), vgg(signed_to_unit(hr)))
    return VGG_RESCALE**2 * content + ADV_WEIGHT * F.softplus(-fake_logits).mean()


def make_wrong(content_how="right", adv_how="right", no_grad=False):
    def loss(sr, hr, fake_logits, vgg):
        def phi(x):
            return vgg(x if content_how == "signed" else signed_to_unit(x))

        if content_how == "pixels":
            content = F.mse_loss(sr, hr)
        elif no_grad:
            with torch.no_grad():
                content = VGG_RESCALE**2 * F.mse_loss(phi(sr), phi(hr))
        else:
            content = F.mse_loss(phi(sr), phi(hr))
            factor = {"unscaled": 1.0, "not squared": VGG_RESCALE}.get(content_how, VGG_RESCALE**2)
            content = factor * content
        d = torch.sigmoid(fake_logits)
        adv = {
            "right": ADV_WEIGHT * F.softplus(-fake_logits).mean(),
            "unweighted": F.softplus(-fake_logits).mean(),
            "saturating": ADV_WEIGHT * torch.log(1 - d).mean(),
            "sum": ADV_WEIGHT * F.softplus(-fake_logits).sum(),
            "unstable": -ADV_WEIGHT * torch.log(d).mean(),
        }[adv_how]
        return content + adv

    return loss


def test_perceptual_loss_right_answer(capsys):
    check.perceptual_loss(perceptual)
    assert "✓ 07.2" in capsys.readouterr().out
    check.perceptual_loss(perceptual, hidden=True)
    assert "(with the hidden cases)" in capsys.readouterr().out


def test_perceptual_loss_stub_propagates():
    with pytest.raises(NotImplementedError):
        check.perceptual_loss(stub)


@pytest.mark.parametrize(
    ("wrong", "match"),
    [
        (make_wrong(adv_how="unweighted"), "left out the weight 1e-3"),
        (make_wrong(adv_how="saturating"), "saturating log"),
        (make_wrong(adv_how="sum"), "summed -log D"),
        (make_wrong(content_how="unscaled"), "left out the paper's rescaling"),
        (make_wrong(content_how="not squared"), "multiplied the loss by 1/12.75 once"),
        (make_wrong(content_how="signed"), r"fed the \[-1, 1\] images to the VGG"),
        (make_wrong(content_how="pixels"), "computed a pixel MSE"),
        (make_wrong(no_grad=True), "carries no gradient"),
        (lambda sr, hr, z, vgg: float(perceptual(sr, hr, z, vgg)), "should return a torch tensor"),
        (lambda sr, hr, z, vgg: vgg(sr).mean() / 0 + "x", "raised TypeError"),
    ],
)
def test_perceptual_loss_names_the_mistake(wrong, match):
    with pytest.raises(CheckFailed, match=match):
        check.perceptual_loss(wrong)


def test_perceptual_loss_hidden_catches_unstable_log():
    unstable = make_wrong(adv_how="unstable")
    check.perceptual_loss(unstable)  # fine for moderate logits ...
    with pytest.raises(CheckFailed, match="softplus"):
        check.perceptual_loss(unstable, hidden=True)  # ... not for a logit of -200
