"""Checks for the exercises of lesson 10 (beyond SRGAN: what ESRGAN changed).

10.1 writes an RRDB's forward pass from its convolutions: dense connections, LeakyReLU(0.2), and
the residual scaling beta at both levels (ESRGAN Sec. 3.1); 10.2 writes the relativistic average
discriminator's two losses (ESRGAN Sec. 3.2), numerically stable. Each check compares with
:mod:`srgan_edu.teach.esrgan` (``RRDB``, ``ra_discriminator_loss``, ``ra_generator_loss``) and
names the usual mistakes.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from srgan_edu.exercises.feedback import (
    CheckFailed,
    as_tensor,
    call,
    expect,
    expect_close,
    expect_shape,
    passed,
    relative_error,
)
from srgan_edu.losses import adversarial_loss, discriminator_loss
from srgan_edu.teach.esrgan import LEAKY_SLOPE, RRDB, ra_discriminator_loss, ra_generator_loss

__all__ = ["relativistic_losses", "rrdb_forward"]


# ----------------------------------------------------------------------------------------------
# 10.1 an RRDB, by hand
# ----------------------------------------------------------------------------------------------


def _rrdb(
    x: torch.Tensor,
    rrdb: RRDB,
    *,
    slope: float = LEAKY_SLOPE,
    act_last: bool = False,
    reverse: bool = False,
    inner_beta: float | None = None,
    outer_beta: float | None = None,
    inner_skip: bool = True,
    outer_skip: bool = True,
) -> torch.Tensor:
    """RRDB(x) from its convolutions, with switches that reproduce the usual mistakes."""
    h = x
    for block in rrdb.blocks:
        beta = block.beta if inner_beta is None else inner_beta
        features = [h]  # (B, C, h, w), then (B, g, h, w) per convolution
        for k, conv in enumerate(block.convs):
            joined = torch.cat(features[::-1] if reverse else features, dim=1)
            out = conv(joined)
            if k < 4 or act_last:
                out = F.leaky_relu(out, slope)
            features.append(out)
        h = h + beta * features[-1] if inner_skip else beta * features[-1]
    beta = rrdb.beta if outer_beta is None else outer_beta
    return x + beta * h if outer_skip else beta * h


_RRDB_MISTAKES: list[tuple[dict, str]] = [
    (
        {"outer_skip": False},
        "the outer skip connection is missing: an RRDB returns x + beta * DB3(DB2(DB1(x))), "
        "not just the scaled branch",
    ),
    (
        {"inner_skip": False},
        "the dense blocks' own skips are missing: each dense block returns h + beta * conv5(...)",
    ),
    (
        {"outer_beta": 1.0},
        "the outer skip is not scaled: RRDB(x) = x + beta * DB3(DB2(DB1(x))), with beta = "
        "rrdb.beta (residual scaling, 0.2 in ESRGAN)",
    ),
    (
        {"inner_beta": 1.0},
        "the dense blocks' skips are not scaled: each returns h + beta * conv5([h, f1, f2, f3, "
        "f4]), with beta = the block's .beta",
    ),
    (
        {"inner_beta": 1.0, "outer_beta": 1.0},
        "neither skip is scaled: residual scaling multiplies both branches by beta before "
        "adding them (rrdb.beta and each dense block's .beta)",
    ),
    (
        {"act_last": True},
        "you applied LeakyReLU after the fifth convolution too: conv5's output is added to the "
        "skip as it is, without an activation",
    ),
    (
        {"slope": 0.0},
        "you used ReLU: the dense blocks use LeakyReLU with slope 0.2 (F.leaky_relu(t, 0.2))",
    ),
    (
        {"slope": 0.01},
        "you used LeakyReLU's default slope 0.01: ESRGAN's is 0.2 (F.leaky_relu(t, 0.2))",
    ),
    (
        {"reverse": True},
        "the channels are concatenated in the wrong order: conv k reads torch.cat([h, f1, ..., "
        "f_{k-1}], dim=1), the block input first, then the features in the order they were made",
    ),
]


class _Watch:
    """Counts calls of the RRDB's and the dense blocks' own forward (not of the convolutions)."""

    def __init__(self, rrdb: RRDB) -> None:
        self.calls = 0
        modules = [rrdb, rrdb.blocks, *rrdb.blocks]
        self.handles = [m.register_forward_pre_hook(self._hook) for m in modules]

    def _hook(self, module: nn.Module, inputs: tuple) -> None:
        self.calls += 1

    def remove(self) -> None:
        for h in self.handles:
            h.remove()


def _make_rrdb(channels: int, growth: int, beta: float, seed: int) -> RRDB:
    """An RRDB with large random weights and biases, so that every mistake shows clearly."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        rrdb = RRDB(channels, growth, beta=beta, init_scale=1.0)
        with torch.no_grad():
            for block in rrdb.blocks:
                for conv in block.convs:
                    conv.bias.uniform_(-0.3, 0.3)
    return rrdb.requires_grad_(False)


def rrdb_forward(answer: Callable[..., torch.Tensor], *, hidden: bool = False) -> None:
    """Exercise 10.1: ``answer(x, rrdb)`` equals ``rrdb(x)``, computed from its convolutions."""
    cases = [(8, 4, 0.2, 0, (2, 8, 6, 6))]
    if hidden:
        cases += [(6, 3, 0.5, 1, (1, 6, 5, 7)), (4, 2, 0.0, 2, (3, 4, 4, 4))]
    for channels, growth, beta, seed, shape in cases:
        rrdb = _make_rrdb(channels, growth, beta, seed)
        x = torch.randn(*shape, generator=torch.Generator().manual_seed(seed + 10))
        with torch.no_grad():
            want = rrdb(x)
        watch = _Watch(rrdb)
        try:
            try:
                got = call(answer, x.clone(), rrdb, what="rrdb_forward(x, rrdb)")
            except CheckFailed as err:
                if "channels" in str(err) or "size" in str(err):
                    raise CheckFailed(
                        f"{err}. Convolution k of a dense block reads C + (k - 1) * g channels: "
                        "the block input and every earlier output, concatenated with "
                        "torch.cat(..., dim=1)"
                    ) from err
                raise
        finally:
            watch.remove()
        expect(
            watch.calls == 0,
            "rrdb_forward called the RRDB's (or a dense block's) own forward: compute it from "
            "the convolutions (rrdb.blocks[i].convs[k]), that is the exercise",
        )
        got = as_tensor(got, "rrdb_forward's result")
        expect_shape(got, want.shape, "rrdb_forward's result")
        where = f"(C={channels}, g={growth}, beta={beta})"
        if relative_error(got, want) <= 1e-5:
            continue
        mistakes = list(_RRDB_MISTAKES)
        if beta != 0.2:
            mistakes.insert(
                0,
                (
                    {"inner_beta": 0.2, "outer_beta": 0.2},
                    f"you used beta = 0.2, but this RRDB has beta = {beta}: read it from "
                    "rrdb.beta (and each dense block's .beta)",
                ),
            )
        with torch.no_grad():
            for switches, message in mistakes:
                if relative_error(got, _rrdb(x, rrdb, **switches)) <= 1e-5:
                    raise CheckFailed(f"rrdb_forward {where}: {message}.")
        expect_close(
            got,
            want,
            f"rrdb_forward's result {where}",
            hint="Check each dense block: f_k = LeakyReLU_0.2(conv_k(cat([h, f_1, ..., "
            "f_{k-1}]))) for k = 1..4, then h + beta * conv5(cat([h, f_1, ..., f_4])); three "
            "of them, then x + beta * (their output).",
        )
    passed("10.1 an RRDB by hand", len(cases), hidden)


# ----------------------------------------------------------------------------------------------
# 10.2 the relativistic average losses
# ----------------------------------------------------------------------------------------------


def _pair(result, what: str) -> tuple[torch.Tensor, torch.Tensor]:
    ok = isinstance(result, (tuple, list)) and len(result) == 2
    expect(ok, f"{what} should return a pair (L_D, L_G), got {type(result).__name__}")
    out = []
    for name, value in zip(("L_D", "L_G"), result, strict=True):
        if not isinstance(value, torch.Tensor):
            raise CheckFailed(
                f"{what}: {name} should be a torch tensor (a 0-d loss), got {type(value).__name__}"
            )
        expect(value.numel() == 1, f"{what}: {name} should be one number, got {tuple(value.shape)}")
        out.append(value.reshape(()))
    return out[0], out[1]


def _ra_variants(r: torch.Tensor, f: torch.Tensor) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """(L_D, L_G) as the usual mistakes compute them, to name the one a student made."""
    sp = F.softplus
    own_r, own_f = r - r.mean(), f - f.mean()
    rel_r, rel_f = r - f.mean(), f - r.mean()
    return {
        "the two losses are swapped: return (L_D, L_G), the discriminator's first": (
            ra_generator_loss(r, f),
            ra_discriminator_loss(r, f),
        ),
        "these are SRGAN's standard losses: the relativistic discriminator compares each "
        "logit with the *other* kind's mean, C(x_r) - mean C(x_f) and C(x_f) - mean C(x_r)": (
            discriminator_loss(r, f),
            adversarial_loss(f),
        ),
        "each logit is compared with the mean of its *own* kind: a real logit is compared "
        "with the mean *fake* logit (C(x_r) - mean C(x_f)), and a fake one with the mean real "
        "logit": (sp(-own_r).mean() + sp(own_f).mean(), sp(own_r).mean() + sp(-own_f).mean()),
        "L_G lacks its real term: L_G^Ra = -E[log(1 - D_Ra(x_r, x_f))] - E[log D_Ra(x_f, "
        "x_r)]; the real images' term is what gives G the extra push": (
            sp(-rel_r).mean() + sp(rel_f).mean(),
            sp(-rel_f).mean(),
        ),
        "you halved the losses (as the authors' code does): the lesson's losses are the plain "
        "sums of the two expectations": (
            0.5 * ra_discriminator_loss(r, f),
            0.5 * ra_generator_loss(r, f),
        ),
        "you summed over the batch: each expectation E[...] is a mean over its images": (
            sp(-rel_r).sum() + sp(rel_f).sum(),
            sp(rel_r).sum() + sp(-rel_f).sum(),
        ),
        "the signs are flipped: -log sigmoid(z) = softplus(-z) and -log(1 - sigmoid(z)) = "
        "softplus(z), both positive": (
            sp(rel_r).mean() + sp(-rel_f).mean(),
            sp(-rel_r).mean() + sp(rel_f).mean(),
        ),
    }


def relativistic_losses(answer: Callable[..., tuple], *, hidden: bool = False) -> None:
    """Exercise 10.2: ``answer(real_logits, fake_logits)`` gives ``(L_D^Ra, L_G^Ra)``.

    Values against the library, stability for large logits, and the generator's gradient with
    respect to the fake logits (which must flow through the mean fake logit too).
    """
    g = torch.Generator().manual_seed(10)
    cases = [
        (torch.tensor([2.0, 0.5, 1.0]), torch.tensor([-1.0, 0.3])),
        (torch.randn(5, generator=g) + 1.0, torch.randn(4, generator=g) - 1.0),
        (torch.tensor([120.0, 80.0]), torch.tensor([-90.0, -150.0, -60.0])),
    ]
    if hidden:
        cases += [
            (torch.randn(8, 1, generator=g) * 3, torch.randn(8, 1, generator=g) * 3 + 2),
            (torch.tensor([0.7]), torch.tensor([0.7])),
            (torch.tensor([-300.0, 250.0]), torch.tensor([400.0])),
        ]
    what = "relativistic_losses(real_logits, fake_logits)"
    for real, fake in cases:
        fake_leaf = fake.clone().requires_grad_(True)
        got_d, got_g = _pair(call(answer, real.clone(), fake_leaf, what=what), what)
        want_d, want_g = ra_discriminator_loss(real, fake), ra_generator_loss(real, fake)
        where = f"for real logits {real.flatten().tolist()} and fake {fake.flatten().tolist()}"
        big = float(torch.cat([real.flatten(), fake.flatten()]).abs().max()) > 50
        if not (bool(torch.isfinite(got_d)) and bool(torch.isfinite(got_g))):
            raise CheckFailed(
                f"{where} your losses are inf or NaN"
                + (
                    ": sigmoid of a large logit rounds to exactly 0 or 1 and its log is -inf. "
                    "Write -log sigmoid(z) as F.softplus(-z) and -log(1 - sigmoid(z)) as "
                    "F.softplus(z)"
                    if big
                    else ""
                )
            )
        d, gl = got_d.detach(), got_g.detach()
        if max(relative_error(d, want_d), relative_error(gl, want_g)) > 1e-5:
            for message, (vd, vg) in _ra_variants(real, fake).items():
                if max(relative_error(d, vd), relative_error(gl, vg)) <= 1e-5:
                    raise CheckFailed(f"{where}: {message}.")
            expect_close(d, want_d, f"{where} your L_D^Ra", rtol=1e-5)
            expect_close(gl, want_g, f"{where} your L_G^Ra", rtol=1e-5)
        expect(
            got_g.requires_grad,
            "your L_G^Ra carries no gradient to the fake logits: compute it with autograd on "
            "(no .detach(), no .item(), no numpy)",
        )
        (got_grad,) = torch.autograd.grad(got_g, fake_leaf, allow_unused=True)
        ref_leaf = fake.clone().requires_grad_(True)
        (want_grad,) = torch.autograd.grad(ra_generator_loss(real, ref_leaf), ref_leaf)
        if got_grad is None:
            raise CheckFailed("your L_G^Ra does not depend on the fake logits in autograd's eyes")
        if relative_error(got_grad, want_grad) > 1e-4:
            f = fake.clone().requires_grad_(True)
            fake_term_only = (
                F.softplus(real - f.mean().detach()).mean() + F.softplus(-(f - real.mean())).mean()
            )
            (cut,) = torch.autograd.grad(fake_term_only, f)
            if relative_error(got_grad, cut) <= 1e-4:
                raise CheckFailed(
                    f"{where} L_G^Ra has the right value but the wrong gradient: the mean fake "
                    "logit inside the real term is detached. G learns from the real images "
                    "exactly through E[C(x_f)] there; do not detach it"
                )
            expect_close(
                got_grad,
                want_grad,
                f"{where} the gradient of your L_G^Ra with respect to the fake logits",
                rtol=1e-4,
            )
    passed("10.2 the relativistic average losses", len(cases), hidden)
