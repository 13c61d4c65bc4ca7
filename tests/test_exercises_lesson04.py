"""Lesson 04's exercise checks: right answers pass, typical wrong answers get named feedback."""

import pytest
import torch
import torch.nn.functional as F

from srgan_edu.exercises import lesson04 as check
from srgan_edu.exercises.feedback import CheckFailed

pytestmark = pytest.mark.usefixtures("one_thread")


def not_done(*args, **kwargs):
    raise NotImplementedError("Exercise: replace this line with your solution")


def crashes(*args, **kwargs):
    return [1, 2][5]


# --- 04.1 fold batch norm into the convolution -------------------------------------------------


def fold_bn(weight, gamma, beta, running_mean, running_var, eps=1e-5):
    """The solution: scale = gamma / sqrt(var + eps) per output channel."""
    scale = gamma / torch.sqrt(running_var + eps)  # (C_out,)
    return weight * scale.view(-1, 1, 1, 1), beta - running_mean * scale


def test_fold_right_answer_passes(capsys):
    check.fold_batch_norm(fold_bn)
    out = capsys.readouterr().out
    assert out == "✓ Exercise 04.1, fold batch norm into the convolution: 1 check(s) passed\n"
    check.fold_batch_norm(fold_bn, hidden=True)
    assert "3 check(s) passed (with the hidden cases)" in capsys.readouterr().out


def test_fold_equals_torch_modules():
    """The check's reference (library batch_norm2d) agrees with nn.Conv2d + nn.BatchNorm2d."""
    case = check._fold_case(3, 5, 3, 1e-5, 7)
    conv = torch.nn.Conv2d(3, 5, 3, padding=1, bias=False)
    bn = torch.nn.BatchNorm2d(5).eval()
    with torch.no_grad():
        conv.weight.copy_(case["weight"])
        bn.weight.copy_(case["gamma"])
        bn.bias.copy_(case["beta"])
        bn.running_mean.copy_(case["running_mean"])
        bn.running_var.copy_(case["running_var"])
        w, b = fold_bn(
            *(case[k] for k in ("weight", "gamma", "beta", "running_mean", "running_var"))
        )
        assert torch.allclose(F.conv2d(case["x"], w, b, padding=1), bn(conv(case["x"])), atol=1e-4)


def test_fold_not_done_and_crash():
    with pytest.raises(NotImplementedError):
        check.fold_batch_norm(not_done)
    with pytest.raises(CheckFailed, match=r"fold_bn raised IndexError"):
        check.fold_batch_norm(crashes)


def _scaled(factor):
    """A fold that gets the weight's scale wrong as ``factor(gamma, var, eps)``, bias right."""

    def fold(weight, gamma, beta, running_mean, running_var, eps=1e-5):
        scale = factor(gamma, running_var, eps)
        right = gamma / torch.sqrt(running_var + eps)
        return weight * scale.view(-1, 1, 1, 1), beta - running_mean * right

    return fold


def _biased(bias):
    def fold(weight, gamma, beta, running_mean, running_var, eps=1e-5):
        scale = gamma / torch.sqrt(running_var + eps)
        return weight * scale.view(-1, 1, 1, 1), bias(beta, running_mean, scale)

    return fold


@pytest.mark.parametrize(
    ("wrong", "feedback"),
    [
        (_scaled(lambda g, v, e: g / v.sqrt()), "left out eps"),
        (_scaled(lambda g, v, e: g / (v.sqrt() + e)), "eps goes inside the square root"),
        (_scaled(lambda g, v, e: g / (v + e)), "divided by the variance"),
        (_scaled(lambda g, v, e: 1 / (v + e).sqrt()), "forgot gamma"),
        (_scaled(lambda g, v, e: g * (v + e).sqrt()), "multiplied by the standard deviation"),
        (_biased(lambda beta, mean, s: beta), "bias is beta alone"),
        (_biased(lambda beta, mean, s: beta - mean), "gets scaled too"),
        (_biased(lambda beta, mean, s: (beta - mean) * s), "must not be scaled"),
        (_biased(lambda beta, mean, s: beta + mean * s), "wrong sign"),
        (_biased(lambda beta, mean, s: -mean * s), "forgot beta"),
        (_biased(lambda beta, mean, s: beta - mean * s + 0.01), "relative error"),
        (lambda w, g, b, m, v, eps=1e-5: fold_bn(w, g, b, m, v, eps)[0], "two tensors"),
        (lambda w, g, b, m, v, eps=1e-5: None, "forget the return"),
    ],
)
def test_fold_names_the_mistake(wrong, feedback):
    with pytest.raises(CheckFailed, match=feedback):
        check.fold_batch_norm(wrong)


def test_fold_wrong_axis_and_wrong_bias_shape():
    def input_axis(weight, gamma, beta, running_mean, running_var, eps=1e-5):
        scale = gamma / torch.sqrt(running_var + eps)
        return weight * scale.view(1, -1, 1, 1), beta - running_mean * scale

    with pytest.raises(CheckFailed, match=r"input channels \(dim 1\).*dim 0"):
        check.fold_batch_norm(input_axis)  # the visible case has C_in == C_out

    def bias_per_input(weight, gamma, beta, running_mean, running_var, eps=1e-5):
        w, b = fold_bn(weight, gamma, beta, running_mean, running_var, eps)
        return w, (b if weight.shape[0] == weight.shape[1] else b.new_zeros(weight.shape[1]))

    check.fold_batch_norm(bias_per_input)  # right while C_in == C_out
    with pytest.raises(CheckFailed, match=r"one entry per \*input\* channel \(3\)"):
        check.fold_batch_norm(bias_per_input, hidden=True)


def test_fold_eps_is_passed_on():
    """The hidden cases use eps = 1e-3: a fold that hard-codes 1e-5 fails there only."""

    def fixed_eps(weight, gamma, beta, running_mean, running_var, eps=1e-5):
        return fold_bn(weight, gamma, beta, running_mean, running_var)

    check.fold_batch_norm(fixed_eps)
    with pytest.raises(CheckFailed, match="eps=0.001"):
        check.fold_batch_norm(fixed_eps, hidden=True)


# --- 04.2 the fraction of dead units -----------------------------------------------------------


def dead_fraction(out):
    """The solution: units on dim 1, dead when 0 for every input and pixel."""
    units = out.shape[1]
    per_unit = out.transpose(0, 1).reshape(units, -1)  # (units, inputs x pixels)
    return (per_unit == 0).all(dim=1).float().mean().item()


def test_dead_right_answer_passes(capsys):
    check.dead_unit_fraction(dead_fraction)
    assert (
        capsys.readouterr().out
        == "✓ Exercise 04.2, the fraction of dead units: 2 check(s) passed\n"
    )
    check.dead_unit_fraction(dead_fraction, hidden=True)
    assert "5 check(s) passed (with the hidden cases)" in capsys.readouterr().out

    def with_all(out):  # another right way: reduce over every dim except 1
        dims = [d for d in range(out.dim()) if d != 1]
        return (out == 0).all(dim=dims[0]) if len(dims) == 1 else (out == 0).amin(dim=dims)

    check.dead_unit_fraction(lambda out: with_all(out).float().mean(), hidden=True)


def test_dead_not_done_and_crash():
    with pytest.raises(NotImplementedError):
        check.dead_unit_fraction(not_done)
    with pytest.raises(CheckFailed, match=r"dead_fraction raised IndexError"):
        check.dead_unit_fraction(crashes)


def test_dead_cases_tell_the_mistakes_apart():
    """Every typical wrong answer gives a value different from the right one and the others."""
    for shape, seed in (((32, 10), 0), ((4, 6, 5, 5), 1), ((16, 12, 2, 3), 4)):
        out = torch.relu(check._dead_case(shape, "mixed", seed))
        values = [v for v, _ in check._dead_mistakes(out)] + [dead_fraction(out)]
        assert len({round(v, 6) for v in values}) == len(values), (shape, values)


def _units(out):
    return out.transpose(0, 1).reshape(out.shape[1], -1)


@pytest.mark.parametrize(
    ("wrong", "feedback"),
    [
        (lambda out: (out == 0).float().mean(), "counted zero \\*values\\*"),
        (lambda out: (_units(out) == 0).any(dim=1).float().mean(), "used .any\\(\\)"),
        (lambda out: (out.reshape(out.shape[0], -1) == 0).all(1).float().mean(), "wrong axis"),
        (lambda out: (_units(out) == 0).all(dim=1).sum(), "number of dead units"),
        (
            lambda out: (out.reshape(out.shape[1], -1) == 0).all(1).float().mean(),
            r"reshape\(10, -1\) does not gather",
        ),
        (lambda out: 100 * (_units(out) == 0).all(dim=1).float().mean(), "percentage"),
        (lambda out: (_units(out) > 0).any(dim=1).float().mean(), "alive"),
        (lambda out: (_units(out) < 0).all(dim=1).float().mean(), "never negative"),
        (lambda out: (_units(out) == 0).all(dim=1), "one per unit"),
        (lambda out: (_units(out) == 0).all(dim=1).float().mean() + 0.01, "relative error"),
    ],
)
def test_dead_names_the_mistake(wrong, feedback):
    with pytest.raises(CheckFailed, match=feedback):
        check.dead_unit_fraction(wrong)


def test_dead_names_the_conv_layer_mistake():
    """A mistake that only shows on (B, C, H, W) outputs (the right answer for (N, U) ones)."""

    def batch_only(out):
        return (out == 0).all(dim=0).float().mean()

    with pytest.raises(CheckFailed, match=r"shape \(4, 6, 5, 5\).*batch only.*dims \(0, 2, 3\)"):
        check.dead_unit_fraction(batch_only)


# --- 04.3 the residual block by hand -----------------------------------------------------------


def _bn(h, bn, training=False):
    return F.batch_norm(
        h, bn.running_mean, bn.running_var, bn.weight, bn.bias, training=training, eps=bn.eps
    )


def residual_block_forward(x, block):
    """The solution: x + BN(conv(PReLU(BN(conv(x))))) with functional calls."""
    conv1, bn1, act, conv2, bn2 = block.body
    h = F.conv2d(x, conv1.weight, padding=1)
    h = F.prelu(_bn(h, bn1), act.weight)
    h = _bn(F.conv2d(h, conv2.weight, padding=1), bn2)
    return x + h


def test_block_right_answer_passes(capsys):
    check.residual_block(residual_block_forward)
    assert (
        capsys.readouterr().out
        == "✓ Exercise 04.3, the residual block by hand: 1 check(s) passed\n"
    )
    check.residual_block(residual_block_forward, hidden=True)
    assert "3 check(s) passed (with the hidden cases)" in capsys.readouterr().out


def test_block_not_done_and_crash():
    with pytest.raises(NotImplementedError):
        check.residual_block(not_done)
    with pytest.raises(CheckFailed, match=r"residual_block_forward raised IndexError"):
        check.residual_block(crashes)


def _body(x, block, *, padding=1, training=False, act_before_bn=False, second_bn=True):
    conv1, bn1, act, conv2, bn2 = block.body
    h = F.conv2d(x, conv1.weight, padding=padding)
    if act_before_bn:
        h = _bn(F.prelu(h, act.weight), bn1, training)
    else:
        h = F.prelu(_bn(h, bn1, training), act.weight)
    h = F.conv2d(h, conv2.weight, padding=padding)
    return _bn(h, bn2, training) if second_bn else h


@pytest.mark.parametrize(
    ("wrong", "feedback"),
    [
        (lambda x, blk: _body(x, blk), "body alone: add the skip connection"),
        (lambda x, blk: x + _body(x, blk, training=True), "batch's own statistics"),
        (
            lambda x, blk: F.prelu(x + _body(x, blk), blk.body[2].weight),
            "PReLU after the sum",
        ),
        (lambda x, blk: x + _body(x, blk, second_bn=False), "followed by its batch norm"),
        (lambda x, blk: x + _body(x, blk, act_before_bn=True), "PReLU before the first batch norm"),
        (lambda x, blk: x + _body(x, blk, padding=0), "padding=1"),
        (lambda x, blk: _body(x, blk, padding=0), "padding=1"),
        (lambda x, blk: x + 1.01 * _body(x, blk), "relative error"),
        (lambda x, blk: blk(x), "called block\\(\\.\\.\\.\\)"),
        (lambda x, blk: x + blk.body(x), "called block.body\\(\\.\\.\\.\\)"),
        (
            lambda x, blk: x + blk.body[4](blk.body[3](blk.body[2](blk.body[1](blk.body[0](x))))),
            r"called block.body\[0\].*F.conv2d\(h, block.body\[0\].weight, padding=1\)",
        ),
    ],
)
def test_block_names_the_mistake(wrong, feedback):
    with pytest.raises(CheckFailed, match=feedback):
        check.residual_block(wrong)


def test_block_student_cannot_spoil_the_reference():
    """A student's training=True call updates *their copy's* running statistics only."""

    def updates_stats(x, block):
        return x + _body(x, block, training=True)

    for _ in range(2):  # the same feedback twice: the reference block was not changed
        with pytest.raises(CheckFailed, match="batch's own statistics"):
            check.residual_block(updates_stats)
    check.residual_block(residual_block_forward)
