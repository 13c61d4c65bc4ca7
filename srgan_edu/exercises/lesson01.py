"""Checks for lesson 01's exercises (the 1-D GAN): the discriminator's loss, a generator step.

Exercise 01.1 asks for D's binary cross-entropy -V(G, D) from logits, exercise 01.2 for one
update of G with the non-saturating loss. Both are compared with ``toy_gan.gan`` on seeded inputs;
the usual mistakes (labels swapped, the sign of V, a sum instead of a mean, a detached G(u), a
missing ``zero_grad``) are recognised and named. Introduced in lesson 01.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from srgan_edu.exercises.feedback import (
    CheckFailed,
    as_tensor,
    call,
    expect,
    expect_close,
    passed,
    reject_named_mistake,
    relative_error,
)
from toy_gan.gan import Discriminator, Generator
from toy_gan.gan import discriminator_loss as library_discriminator_loss
from toy_gan.gan import generator_loss as library_generator_loss

__all__ = ["discriminator_loss", "generator_step"]


def _logits(seed: int, n: int, scale: float, shift: float = 0.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (shift + scale * torch.randn(n, 1, generator=g)).requires_grad_(True)  # (N, 1)


# --- exercise 01.1: the discriminator's loss ---------------------------------------------------


def discriminator_loss(answer: Callable[..., Any], *, hidden: bool = False) -> None:
    """Check ``answer(real_logits, fake_logits)`` against ``toy_gan.gan.discriminator_loss``.

    The loss is -V(G, D) = -mean log D(x) - mean log(1 - D(G(u))) with D = sigmoid(logit)
    (Goodfellow et al. 2014, eq. 1, negated). Checks the value, that it is one differentiable
    number, and its gradient with respect to both batches of logits.
    """
    what = "discriminator_loss_by_hand(real_logits, fake_logits)"
    cases = [
        ("real (8, 1), fake (8, 1)", _logits(0, 8, 2.0, 0.5), _logits(1, 8, 2.0, -0.5)),
        ("real (5, 1), fake (9, 1)", _logits(2, 5, 1.5, 1.0), _logits(3, 9, 1.5)),
    ]
    if hidden:
        zeros = torch.zeros(6, 1, requires_grad=True)
        cases += [
            ("logits 0 (D = 1/2 everywhere)", zeros, zeros.detach().clone().requires_grad_(True)),
            ("D confidently wrong, logits up to +-150", _logits(4, 7, 60.0), _logits(5, 7, 60.0)),
            ("a batch of 1000", _logits(6, 1000, 3.0, 1.0), _logits(7, 1000, 3.0, -1.0)),
        ]
    for name, real, fake in cases:
        _check_d_loss_case(answer, what, name, real, fake)
    passed("Exercise 01.1, the discriminator's loss", len(cases), hidden)


def _check_d_loss_case(
    answer: Callable[..., Any], what: str, name: str, real: torch.Tensor, fake: torch.Tensor
) -> None:
    r, f = real.detach().clone().requires_grad_(True), fake.detach().clone().requires_grad_(True)
    want = library_discriminator_loss(r, f)
    want.backward()
    got = call(answer, real, fake, what=what)
    where = f"{what} on {name}"
    expect(
        isinstance(got, torch.Tensor),
        f"{where} returned a {type(got).__name__}; return the loss as a torch tensor (no .item() "
        "or float(...)) so that loss.backward() can compute D's gradients",
    )
    expect(
        got.numel() == 1,
        f"{where} returned shape {tuple(got.shape)}, one value per sample; the loss is one number: "
        "average each term over its batch (.mean()) and add the two averages",
    )
    if not bool(torch.isfinite(got).all()):
        big = max(float(real.detach().abs().max()), float(fake.detach().abs().max())) > 30
        if big:
            raise CheckFailed(
                f"{where} is {float(got.detach()):.3g}: log(sigmoid(l)) underflows to log(0) "
                "when |l| is large. Use the stable forms -log D = softplus(-l) and "
                "-log(1 - D) = softplus(l) (torch.nn.functional.softplus), which is why D returns "
                "logits"
            )
        raise CheckFailed(
            f"{where} is {float(got.detach()):.3g}: the inputs are logits (any real number), not "
            "probabilities. D(x) = sigmoid(logit); -log D = softplus(-logit)"
        )
    ns_real, ns_fake = F.softplus(-real).detach(), F.softplus(fake).detach()  # per-sample terms
    both = torch.cat([ns_real, ns_fake])
    mistakes = {
        f"{where}: the labels are swapped. D must say 1 (real) on data and 0 on G's samples: "
        "-log D(x) on the real logits, -log(1 - D(G(u))) on the fake ones": (
            F.softplus(real).mean() + F.softplus(-fake).mean()
        ),
        f"{where} has the wrong sign: you returned V(G, D), but D maximises V, so its loss "
        "(what the optimiser minimises) is -V": -want.detach(),
        f"{where}: you summed over each batch instead of averaging; the expectations in V are "
        "means (.mean())": ns_real.sum() + ns_fake.sum(),
        f"{where} is half the expected value: the loss is the *sum* of the two means, "
        "-mean log D(x) - mean log(1 - D(G(u))), not their average (nor one mean over the real "
        "and fake samples together)": want.detach() / 2,
        f"{where}: you took one mean over the real and fake samples together; V has two "
        "expectations, each the mean over its own batch, and adds them": both.mean(),
        f"{where}: you took one mean over the real and fake samples together (times 2); V has "
        "two expectations, each the mean over its own batch, and adds them. They differ when the "
        "batches have different sizes": 2 * both.mean(),
        f"{where} uses only the real samples' term; add -mean log(1 - D(G(u))) for the fake "
        "ones": ns_real.mean(),
        f"{where} uses only the fake samples' term; add -mean log D(x) for the real ones": (
            ns_fake.mean()
        ),
    }
    g = as_tensor(got, what).reshape(())
    w = want.detach().to(torch.float64)
    reject_named_mistake(g, w, mistakes, rtol=1e-4)
    expect_close(
        g, w, where, rtol=1e-4, hint="Recall -log D = softplus(-l), -log(1-D) = softplus(l)."
    )
    expect(
        got.requires_grad,
        f"{where} has the right value but no gradient: keep it a tensor computed from the logits "
        "(no .detach(), .item() or torch.tensor(...) around it) so that backward() reaches D",
    )
    grads = torch.autograd.grad(got.sum(), (real, fake), allow_unused=True)
    for label, grad, ref in (("real", grads[0], r.grad), ("fake", grads[1], f.grad)):
        expect(
            grad is not None,
            f"{where}: the loss does not depend on the {label} logits (no gradient reaches them)",
        )
        expect_close(grad, ref, f"the gradient of {what} with respect to the {label} logits", 1e-4)


# --- exercise 01.2: one generator step ---------------------------------------------------------


def _players(seed: int, hidden_g: int = 50) -> tuple[Generator, Discriminator]:
    """A seeded (G, D) pair; the global RNG is left as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return Generator(hidden_g), Discriminator()


def _flat(module: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in module.parameters()]).clone()


def _sgd_after(G: Generator, D: Discriminator, u: torch.Tensor, lr: float, loss_of) -> torch.Tensor:
    """G's flattened weights after one plain SGD step on ``loss_of(logits)`` (fresh gradients)."""
    G = copy.deepcopy(G)
    params = list(G.parameters())
    grads = torch.autograd.grad(loss_of(D(G(u))), params)
    return torch.cat(
        [(p - lr * g).detach().reshape(-1) for p, g in zip(params, grads, strict=True)]
    )


def _g_step_mistakes(
    where: str, G0: Generator, D: Discriminator, u: torch.Tensor, lr: float
) -> dict[str, torch.Tensor]:
    """G's weights after an SGD step with each of the usual wrong losses, keyed by the feedback."""
    n = u.shape[0]
    wrong_losses = {
        f"{where} minimises the saturating loss log(1 - D(G(u))); the exercise asks for the "
        "non-saturating -log D(G(u)), whose gradient does not vanish when D wins": (
            lambda logit: -F.softplus(logit).mean()
        ),
        f"{where} pushes D(G(u)) *down*: it minimises -log(1 - D(G(u))), D's loss on fake "
        "samples (label 0). G wants D to say 1 on its samples: minimise -log D(G(u))": (
            lambda logit: F.softplus(logit).mean()
        ),
        f"{where} has the sign of the loss reversed: it minimises log D(G(u)) and so makes D "
        "*more* sure that G's samples are fake. Minimise -log D(G(u))": (
            lambda logit: -F.softplus(-logit).mean()
        ),
        f"{where}: the loss sums over the batch instead of averaging (a step {n} times too "
        "large); use .mean()": lambda logit: F.softplus(-logit).sum(),
    }
    return {message: _sgd_after(G0, D, u, lr, loss) for message, loss in wrong_losses.items()}


def generator_step(answer: Callable[..., Any], *, hidden: bool = False) -> None:
    """Check ``answer(G, D, opt_g, u)``: one update of G with the non-saturating loss.

    Compares G's weights after the student's step with the reference step (same seeded networks,
    same noise), that D is untouched, and the returned loss. With plain SGD the update *is* the
    gradient, so a wrong loss or left-over gradients show up and are named.
    """
    what = "generator_step(G, D, opt_g, u)"
    cases = [("SGD, batch 16", 0, 16, "sgd", 1, 50), ("SGD, batch 40", 1, 40, "sgd", 1, 50)]
    if hidden:
        cases += [
            ("Adam, two steps in a row", 2, 32, "adam", 2, 50),
            ("SGD, a G with 8 hidden units, batch 1", 3, 1, "sgd", 1, 8),
        ]
    for case in cases:
        _check_g_step_case(answer, what, *case)
    passed("Exercise 01.2, a generator step", len(cases), hidden)


def _optimizer(kind: str, G: Generator) -> torch.optim.Optimizer:
    if kind == "adam":
        return torch.optim.Adam(G.parameters(), lr=2e-3, betas=(0.5, 0.999))
    return torch.optim.SGD(G.parameters(), lr=0.5)


def _check_g_step_case(
    answer: Callable[..., Any], what: str, name: str, seed: int, n: int, kind: str, steps: int,
    hidden_g: int,
) -> None:  # fmt: skip
    where = f"{what} ({name})"
    G, D = _players(seed, hidden_g)
    g_ref = copy.deepcopy(G)
    gen = torch.Generator().manual_seed(100 + seed)
    noises = [torch.rand(n, 1, generator=gen) for _ in range(steps)]  # (N, 1) each
    opt, opt_ref = _optimizer(kind, G), _optimizer(kind, g_ref)
    # Left-over gradients, as after an earlier step: a correct step clears them first.
    leftover = [0.3 * torch.ones_like(p) for p in G.parameters()]
    for p, stale in zip(G.parameters(), leftover, strict=True):
        p.grad = stale.clone()
    before, d_before = _flat(G), _flat(D)
    losses, ref_losses = [], []
    for u in noises:
        try:
            losses.append(call(answer, G, D, opt, u.clone(), what=what))
        except CheckFailed as err:
            if "does not require grad" in str(err):
                raise CheckFailed(
                    f"{where}: the loss does not depend on G's weights, so backward() has nothing "
                    "to do. Did you .detach() G(u) or compute it under torch.no_grad()? In G's "
                    "step the gradient must flow through D into G (only D's *weights* stay fixed)"
                ) from err
            raise
        loss_ref = library_generator_loss(D(g_ref(u)), "nonsaturating")
        opt_ref.zero_grad(set_to_none=True)
        loss_ref.backward()
        opt_ref.step()
        ref_losses.append(loss_ref.item())
    expect(
        torch.equal(_flat(D), d_before),
        f"{where} changed D's weights; in G's step only G's optimiser may step (D is fixed)",
    )
    after, want = _flat(G), _flat(g_ref)
    if torch.equal(after, before):
        if all(p.grad is None or not bool(p.grad.any()) for p in G.parameters()):
            raise CheckFailed(
                f"{where} did not change G's weights, and no gradient reached them. Did you "
                ".detach() G(u) or compute it under torch.no_grad()? In G's step the gradient "
                "must flow through D into G (only D's *weights* stay fixed)"
            )
        raise CheckFailed(
            f"{where} did not change G's weights: after loss.backward(), call opt_g.step() (and "
            "call opt_g.zero_grad() *before* backward, not between backward and step)"
        )
    rtol = 1e-4
    if relative_error(after - before, want - before) > rtol:
        if kind == "sgd" and steps == 1:  # plain SGD: the update is -lr * gradient, diagnosable
            lr = opt.param_groups[0]["lr"]
            stale = torch.cat([s.reshape(-1) for s in leftover])
            mistakes = _g_step_mistakes(where, _players(seed, hidden_g)[0], D, noises[0], lr)
            mistakes = {m: w - before for m, w in mistakes.items()}
            mistakes[
                f"{where}: G's update still contains the gradients left over from before the "
                "call. Call opt_g.zero_grad() before loss.backward(): backward() *adds* to .grad"
            ] = want - lr * stale - before
            reject_named_mistake(after - before, want - before, mistakes, rtol)
        expect_close(
            after - before,
            want - before,
            f"the change of G's weights made by {where}",
            rtol,
            hint="The step is: loss = -mean log D(G(u)) = softplus(-D(G(u))).mean(); "
            "opt_g.zero_grad(); loss.backward(); opt_g.step().",
        )
    for got, ref in zip(losses, ref_losses, strict=True):
        expect(
            got is not None,
            f"{where} returned None; return the loss (before the step) as a float",
        )
        expect_close(
            as_tensor(got, f"the loss returned by {where}").reshape(()),
            torch.tensor(ref, dtype=torch.float64),
            f"the loss returned by {where}",
            1e-4,
            hint="Return loss.item() of the loss you minimised, computed before opt_g.step().",
        )
