"""Checks for the exercises of lesson 04 (building blocks: batch norm, PReLU, skip connections).

* :func:`fold_batch_norm` - exercise 04.1: fold an eval-mode BatchNorm into the convolution in
  front of it (the train / eval distinction of section 1, and why such a conv needs no bias).
* :func:`dead_unit_fraction` - exercise 04.2: the fraction of dead units of a ReLU layer
  (section 3), checked against :func:`srgan_edu.teach.blocks.unit_activity`.
* :func:`residual_block` - exercise 04.3: the forward pass of the generator's residual block
  (Ledig et al. 2017, Fig. 4) written with ``torch.nn.functional``, checked against
  :class:`srgan_edu.models.ResidualBlock`.

Each check runs the student's function on seeded inputs, compares with the library, and names
the typical mistakes it recognises (wrong axis, eps outside the square root, batch statistics
in eval mode, a missing skip connection, ...).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from srgan_edu.exercises.feedback import (
    CheckFailed,
    call,
    expect,
    expect_close,
    expect_shape,
    passed,
    relative_error,
    result,
    single_threaded,
)
from srgan_edu.models import ResidualBlock
from srgan_edu.teach.blocks import batch_norm2d, unit_activity

__all__ = ["dead_unit_fraction", "fold_batch_norm", "residual_block"]


def _matches(got: torch.Tensor, want: torch.Tensor, rtol: float = 1e-4) -> bool:
    """Same shape and within ``rtol`` (relative to the largest entry of ``want``)."""
    return got.shape == want.shape and relative_error(got, want) <= rtol


# ----------------------------------------------------------------------------------------------
# exercise 04.1: fold batch norm into the convolution
# ----------------------------------------------------------------------------------------------

_FOLD_TITLE = "Exercise 04.1, fold batch norm into the convolution"


def _fold_case(c_in: int, c_out: int, k: int, eps: float, seed: int) -> dict[str, Any]:
    """A bias-free conv weight and eval-mode BN statistics; one channel's variance is tiny, so
    that forgetting eps (or putting it outside the square root) shows."""
    g = torch.Generator().manual_seed(seed)
    running_var = torch.rand(c_out, generator=g) * 2 + 0.2  # (C_out,)
    gamma = torch.randn(c_out, generator=g) * 0.5 + 1.0
    running_var[0], gamma[0] = 3e-5, 0.005  # scale ~0.8, but 15 % off without eps
    return {
        "weight": torch.randn(c_out, c_in, k, k, generator=g),  # (C_out, C_in, k, k)
        "gamma": gamma,
        "beta": torch.randn(c_out, generator=g),
        "running_mean": torch.randn(c_out, generator=g),
        "running_var": running_var,
        "eps": eps,
        "x": torch.randn(2, c_in, 6, 6, generator=g),  # (B, C_in, H, W) to run both versions on
    }


def _weight_mistakes(case: dict[str, Any]) -> list[tuple[torch.Tensor, str]]:
    """Folded weights of the typical wrong answers, with what each one means."""
    w, gamma = case["weight"].double(), case["gamma"].double()
    var, eps = case["running_var"].double(), case["eps"]
    col = (-1, 1, 1, 1)  # one factor per output channel (dim 0 of the weight)
    mistakes = [
        (
            w * (gamma / var.sqrt()).view(col),
            "you left out eps: the scale is gamma / sqrt(running_var + eps). eps matters for "
            "channels with a tiny variance (this check has one)",
        ),
        (
            w * (gamma / (var.sqrt() + eps)).view(col),
            "eps goes inside the square root: gamma / sqrt(running_var + eps), not "
            "gamma / (sqrt(running_var) + eps)",
        ),
        (
            w * (gamma / (var + eps)).view(col),
            "you divided by the variance; BN divides by the standard deviation, "
            "sqrt(running_var + eps)",
        ),
        (
            w / (var + eps).sqrt().view(col),
            "you forgot gamma: the scale is gamma / sqrt(running_var + eps)",
        ),
        (
            w * (gamma * (var + eps).sqrt()).view(col),
            "you multiplied by the standard deviation; BN divides by it: "
            "scale = gamma / sqrt(running_var + eps)",
        ),
    ]
    if w.shape[0] == w.shape[1]:  # as many inputs as outputs: right shape, wrong axis
        scale = gamma / (var + eps).sqrt()
        mistakes.append(
            (
                w * scale.view(1, -1, 1, 1),
                "you scaled the weight's input channels (dim 1). BN scales each *output* "
                "channel of the convolution, dim 0: weight * scale.view(-1, 1, 1, 1)",
            )
        )
    return mistakes


def _bias_mistakes(case: dict[str, Any]) -> list[tuple[torch.Tensor, str]]:
    gamma, beta = case["gamma"].double(), case["beta"].double()
    mean, var, eps = case["running_mean"].double(), case["running_var"].double(), case["eps"]
    scale = gamma / (var + eps).sqrt()
    return [
        (
            beta,
            "your bias is beta alone: BN also subtracts the running mean, so the folded bias is "
            "beta - running_mean * scale",
        ),
        (
            beta - mean,
            "the running mean is subtracted *before* the scaling, so it gets scaled too: "
            "bias = beta - running_mean * gamma / sqrt(running_var + eps)",
        ),
        (
            (beta - mean) * scale,
            "beta is added *after* the scaling, so it must not be scaled: "
            "bias = beta - running_mean * scale",
        ),
        (
            beta + mean * scale,
            "wrong sign: BN subtracts the mean, bias = beta - running_mean * scale",
        ),
        (-mean * scale, "you forgot beta: bias = beta - running_mean * scale"),
    ]


@single_threaded
def fold_batch_norm(answer: Callable[..., Any], *, hidden: bool = False) -> None:
    """Check ``fold_bn(weight, gamma, beta, running_mean, running_var, eps=1e-5) -> (w, b)``.

    conv2d(x, w, b) must equal eval-mode BatchNorm (Ioffe & Szegedy 2015, with the running
    statistics) applied to conv2d(x, weight), computed by
    :func:`srgan_edu.teach.blocks.batch_norm2d`.
    """
    cases = [(4, 4, 3, 1e-5, 0)]
    if hidden:
        cases += [(3, 5, 3, 1e-5, 1), (6, 2, 1, 1e-3, 2)]
    for c_in, c_out, k, eps, seed in cases:
        case = _fold_case(c_in, c_out, k, eps, seed)
        what = f"fold_bn (conv weight of shape {(c_out, c_in, k, k)}, eps={eps:g})"
        args = [case[n].clone() for n in ("weight", "gamma", "beta", "running_mean", "running_var")]
        out = call(answer, *args, eps=eps, what="fold_bn")
        expect(out is not None, "fold_bn returned None: did you forget the return statement?")
        expect(
            isinstance(out, (tuple, list)) and len(out) == 2,
            f"fold_bn should return two tensors, (folded weight, folded bias); got "
            f"{type(out).__name__}" + (f" of length {len(out)}" if hasattr(out, "__len__") else ""),
        )
        w_got = result(out[0], f"{what}: the folded weight")
        b_got = result(out[1], f"{what}: the folded bias")
        expect_shape(w_got, (c_out, c_in, k, k), f"{what}: the folded weight")
        if b_got.shape == (c_in,) and c_in != c_out:
            raise CheckFailed(
                f"{what}: the folded bias has one entry per *input* channel ({c_in}); the "
                f"convolution's bias has one per output channel ({c_out}), like BN's parameters"
            )
        expect_shape(b_got, (c_out,), f"{what}: the folded bias")

        x = case["x"].double()
        want = batch_norm2d(
            F.conv2d(x, case["weight"].double(), padding=k // 2),
            case["gamma"].double(),
            case["beta"].double(),
            case["running_mean"].double().clone(),
            case["running_var"].double().clone(),
            training=False,
            eps=eps,
        )  # (B, C_out, H, W): the library's eval-mode BN after the original conv
        got = F.conv2d(x, w_got, b_got, padding=k // 2)
        if relative_error(got, want) <= 1e-4:
            continue
        # Wrong: say which part. The folded weight is unique (conv is linear), so compare parts.
        scale = case["gamma"].double() / (case["running_var"].double() + eps).sqrt()
        w_want = case["weight"].double() * scale.view(-1, 1, 1, 1)
        if not _matches(w_got, w_want):
            for w_wrong, message in _weight_mistakes(case):
                if _matches(w_got, w_wrong):
                    raise CheckFailed(f"{what}: the folded weight is wrong: {message}")
            expect_close(
                w_got,
                w_want,
                f"{what}: the folded weight",
                rtol=1e-4,
                hint="Each output channel o of the weight is multiplied by "
                "gamma[o] / sqrt(running_var[o] + eps).",
            )
        for b_wrong, message in _bias_mistakes(case):
            if _matches(b_got, b_wrong):
                raise CheckFailed(f"{what}: the weight is right, the bias is wrong: {message}")
        b_want = case["beta"].double() - case["running_mean"].double() * scale
        expect_close(
            b_got,
            b_want,
            f"{what}: the folded bias",
            rtol=1e-4,
            hint="BN(z) = scale * (z - running_mean) + beta, so the bias is "
            "beta - running_mean * scale.",
        )
    passed(_FOLD_TITLE, len(cases), hidden)


# ----------------------------------------------------------------------------------------------
# exercise 04.2: the fraction of dead units
# ----------------------------------------------------------------------------------------------

_DEAD_TITLE = "Exercise 04.2, the fraction of dead units"


def _dead_case(shape: tuple[int, ...], kind: str, seed: int) -> torch.Tensor:
    """Pre-activations of shape (N, U) or (B, C, H, W) whose ReLU has some dead units.

    ``kind``: ``"mixed"`` (a few units far below 0, some mostly below, some alive, and a few
    inputs on which every unit is off), ``"alive"`` (no dead unit), ``"dead"`` (all dead).
    """
    g = torch.Generator().manual_seed(seed)
    pre = torch.randn(*shape, generator=g)
    units = shape[1]
    view = [1] * len(shape)
    view[1] = units
    if kind == "mixed":
        offsets = torch.linspace(-1.5, 2.5, units)[torch.randperm(units, generator=g)]
        dead = torch.randperm(units, generator=g)[: max(1, units // 3)]
        offsets[dead] = -8.0  # these units are below 0 for every input
        pre = pre + offsets.view(view)
        pre[: max(1, shape[0] // 8)] -= 20.0  # inputs that switch every unit off
    elif kind == "alive":
        pre = pre + 3.0
    elif kind == "dead":
        pre = -pre.abs() - 0.1
    return pre


def _dead_mistakes(out: torch.Tensor) -> list[tuple[float, str]]:
    """Fractions that the typical wrong answers give on ``out``, with what each one means."""
    zero = out == 0
    units = out.shape[1]
    per_unit = zero.transpose(0, 1).reshape(units, -1)  # (units, inputs x pixels)
    dead = per_unit.all(dim=1)  # (units,)
    mistakes = [
        (
            zero.float().mean().item(),
            "you counted zero *values*. A unit is dead only if its output is 0 for every "
            "input (and every pixel): reduce with .all() over every dimension except dim 1, "
            "then take the mean over the units",
        ),
        (
            per_unit.any(dim=1).float().mean().item(),
            "you used .any(): a unit with *some* zero outputs is normal for ReLU. Dead means "
            "zero for *every* input: use .all()",
        ),
        (
            zero.reshape(out.shape[0], -1).all(dim=1).float().mean().item(),
            "you reduced over the wrong axis: that is the fraction of *inputs* on which every "
            "unit is off. The units are dim 1; reduce with .all() over the other dimensions",
        ),
        (
            zero.reshape(units, -1).all(dim=1).float().mean().item(),
            f"out.reshape({units}, -1) does not gather one unit's values: it cuts the memory "
            "into equal pieces that run across inputs. Move the unit axis first, "
            f"out.transpose(0, 1).reshape({units}, -1), or reduce with .all() over every "
            "dimension except 1",
        ),
        (
            float(dead.sum().item()),
            "you returned the number of dead units; return the fraction (divide by the number "
            "of units, out.shape[1])",
        ),
        (
            100.0 * dead.float().mean().item(),
            "you returned a percentage; return a fraction between 0 and 1",
        ),
        (
            (1 - dead.float().mean()).item(),
            "you returned the fraction of units that are alive; the exercise asks for the dead "
            "ones",
        ),
        (
            (out < 0).transpose(0, 1).reshape(units, -1).all(dim=1).float().mean().item(),
            "ReLU outputs are never negative, so testing out < 0 finds nothing: a dead unit's "
            "outputs are all == 0",
        ),
    ]
    if out.dim() > 2:
        mistakes.insert(
            0,
            (
                zero.all(dim=0).float().mean().item(),
                "you reduced over the batch only, so each (channel, pixel) pair counted as a "
                "unit. A unit of a conv layer is a whole channel: reduce over dims (0, 2, 3)",
            ),
        )
    return mistakes


@single_threaded
def dead_unit_fraction(answer: Callable[..., Any], *, hidden: bool = False) -> None:
    """Check ``dead_fraction(out) -> float``: the fraction of units (dim 1) of a ReLU layer's
    output that are 0 for every input, compared with
    :func:`srgan_edu.teach.blocks.unit_activity`."""
    cases = [((32, 10), "mixed", 0), ((4, 6, 5, 5), "mixed", 1)]
    if hidden:
        cases += [((64, 7), "alive", 2), ((2, 8, 3, 3), "dead", 3), ((16, 12, 2, 3), "mixed", 4)]
    relu = nn.Sequential(nn.ReLU())
    for shape, kind, seed in cases:
        pre = _dead_case(shape, kind, seed)
        out = torch.relu(pre)
        want = unit_activity(relu, pre).dead[0]  # the library's measurement
        what = f"dead_fraction(out of shape {shape})"
        got = result(call(answer, out.clone(), what="dead_fraction"), what)
        if got.numel() == shape[1] and got.numel() > 1:
            raise CheckFailed(
                f"{what} returned {got.numel()} values, one per unit: return one number, the "
                "fraction of dead units (the mean over units of your per-unit answer)"
            )
        expect(
            got.numel() == 1,
            f"{what} should return one number (a float), got shape {tuple(got.shape)}",
        )
        value = float(got.reshape(()))
        if abs(value - want) <= 1e-6:
            continue
        for wrong, message in _dead_mistakes(out):
            if abs(value - wrong) <= 1e-6 and abs(wrong - want) > 1e-6:
                raise CheckFailed(f"{what} returned {value:.4g}, expected {want:.4g}: {message}")
        expect_close(
            value,
            want,
            what,
            rtol=1e-6,
            hint="A unit (dim 1) is dead when its output is 0 for every input and every pixel.",
        )
    passed(_DEAD_TITLE, len(cases), hidden)


# ----------------------------------------------------------------------------------------------
# exercise 04.3: the residual block's forward pass
# ----------------------------------------------------------------------------------------------

_BLOCK_TITLE = "Exercise 04.3, the residual block by hand"


def _layer_advice(layer: nn.Module, name: str) -> str:
    """The functional call that replaces ``layer`` (known in the student's code as ``name``)."""
    if isinstance(layer, nn.Conv2d):
        return f"F.conv2d(h, {name}.weight, padding=1)"
    if isinstance(layer, nn.BatchNorm2d):
        return (
            f"F.batch_norm(h, {name}.running_mean, {name}.running_var, {name}.weight, "
            f"{name}.bias, training=False, eps={name}.eps)"
        )
    return f"F.prelu(h, {name}.weight)"


def _forbid(module: nn.Module, name: str, advice: str) -> None:
    """Make calling ``module`` raise feedback instead (the exercise is to write the forward)."""

    def refuse(*args: Any, **kwargs: Any) -> torch.Tensor:
        raise CheckFailed(
            f"residual_block_forward called {name}(...): the exercise is to write that "
            f"computation yourself with torch.nn.functional: {advice}"
        )

    module.forward = refuse  # type: ignore[method-assign]


def _block_case(
    channels: int, batch: int, size: int, seed: int
) -> tuple[ResidualBlock, torch.Tensor]:
    """A :class:`ResidualBlock` in eval mode with non-trivial BN statistics and PReLU slopes."""
    g = torch.Generator().manual_seed(seed)
    block = ResidualBlock(channels)
    with torch.no_grad():
        for conv in (block.body[0], block.body[3]):
            conv.weight.copy_(torch.randn(conv.weight.shape, generator=g) * 0.3)
        for bn in (block.body[1], block.body[4]):
            bn.weight.copy_(torch.rand(channels, generator=g) + 0.5)
            bn.bias.copy_(torch.randn(channels, generator=g) * 0.5)
            bn.running_mean.copy_(torch.randn(channels, generator=g))
            bn.running_var.copy_(torch.rand(channels, generator=g) * 2 + 0.1)
        block.body[2].weight.copy_(torch.rand(channels, generator=g) * 0.5 - 0.1)
    x = torch.randn(batch, channels, size, size, generator=g)  # (B, C, H, W)
    return block.eval(), x


def _block_variant(
    x: torch.Tensor,
    block: ResidualBlock,
    *,
    skip: bool = True,
    training: bool = False,
    act_after_sum: bool = False,
    second_bn: bool = True,
    act_before_bn: bool = False,
) -> torch.Tensor:
    """The block's forward pass with one typical mistake switched on (all off: the right one)."""
    conv1, bn1, act, conv2, bn2 = block.body

    def bn(h: torch.Tensor, layer: nn.BatchNorm2d) -> torch.Tensor:
        mean, var = layer.running_mean.clone(), layer.running_var.clone()  # never update them
        return F.batch_norm(h, mean, var, layer.weight, layer.bias, training, 0.1, layer.eps)

    h = F.conv2d(x, conv1.weight, padding=1)
    h = bn(F.prelu(h, act.weight), bn1) if act_before_bn else F.prelu(bn(h, bn1), act.weight)
    h = F.conv2d(h, conv2.weight, padding=1)
    if second_bn:
        h = bn(h, bn2)
    y = x + h if skip else h
    return F.prelu(y, act.weight) if act_after_sum else y


_BLOCK_MISTAKES = (
    (
        {"skip": False},
        "your output is the block's body alone: add the skip connection, return x + body(x) "
        "(the elementwise sum of Fig. 4)",
    ),
    (
        {"training": True},
        "you normalised with the batch's own statistics (training=True). The block is in eval "
        "mode: F.batch_norm must use bn.running_mean and bn.running_var with training=False",
    ),
    (
        {"act_after_sum": True},
        "you applied PReLU after the sum as well (the original ResNet's post-activation). "
        "SRGAN's block has PReLU only between the two convolutions, nothing after the sum",
    ),
    (
        {"second_bn": False},
        "the second convolution must be followed by its batch norm (block.body[4]) before the sum",
    ),
    (
        {"act_before_bn": True},
        "the order inside the block is conv -> BN -> PReLU -> conv -> BN; you applied PReLU "
        "before the first batch norm",
    ),
)


@single_threaded
def residual_block(answer: Callable[..., Any], *, hidden: bool = False) -> None:
    """Check ``residual_block_forward(x, block) -> y`` against :class:`ResidualBlock` in eval
    mode: y = x + BN(conv(PReLU(BN(conv(x))))) (Ledig et al. 2017, Fig. 4)."""
    cases = [(4, 2, 8, 0)]
    if hidden:
        cases += [(6, 1, 5, 1), (3, 3, 7, 2)]
    for channels, batch, size, seed in cases:
        block, x = _block_case(channels, batch, size, seed)
        with torch.no_grad():
            want = block(x).double()  # the library's block
        what = f"residual_block_forward(x of shape {tuple(x.shape)}, block)"
        student_block = copy.deepcopy(block)  # whatever the student does, the reference is safe
        layers = "F.conv2d, F.batch_norm, F.prelu, F.conv2d, F.batch_norm"
        _forbid(student_block, "block", f"x + the body's five layers ({layers})")
        _forbid(student_block.body, "block.body", f"the five layers one by one ({layers})")
        for i, layer in enumerate(student_block.body):
            _forbid(layer, f"block.body[{i}]", _layer_advice(layer, f"block.body[{i}]"))
        try:
            with torch.no_grad():
                out = call(answer, x.clone(), student_block, what="residual_block_forward")
        except CheckFailed as err:
            cause = err.__cause__
            if isinstance(cause, RuntimeError) and "size of tensor" in str(cause):
                raise CheckFailed(
                    f"{err}. The body's output and x differ in size: each 3x3 convolution "
                    "needs padding=1 to keep H and W, F.conv2d(h, conv.weight, padding=1)"
                ) from cause
            raise
        got = result(out, what)
        if got.shape[:2] == want.shape[:2] and got.shape[2:] != want.shape[2:]:
            raise CheckFailed(
                f"{what} returned shape {tuple(got.shape)}, expected {tuple(want.shape)}: the "
                "block keeps H and W, so each 3x3 convolution needs padding=1"
            )
        expect_shape(got, want.shape, what)
        if relative_error(got, want) <= 1e-4:
            continue
        for options, message in _BLOCK_MISTAKES:
            with torch.no_grad():
                wrong = _block_variant(x, block, **options).double()
            if _matches(got, wrong):
                raise CheckFailed(f"{what}: {message}")
        expect_close(
            got,
            want,
            what,
            rtol=1e-4,
            hint="The block computes x + BN2(conv2(PReLU(BN1(conv1(x))))) with BN in eval mode.",
        )
    passed(_BLOCK_TITLE, len(cases), hidden)
