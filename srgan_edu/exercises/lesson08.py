"""Checks for the exercises of lesson 08 (training SRGAN).

08.1 writes the paper's learning-rate schedule (Sec. 3.2) for any configuration: phase 1 at a
constant rate, phase 2 divided by 10 after ``lr_decay_step`` of its updates, as the training
loop's ``MultiStepLR`` does; 08.2 writes one phase-1 (SRResNet) update on the pixel MSE (eq. 4).
Each check compares with the library (:func:`srgan_edu.train.phase_at` and the scheduler the
loop builds; :func:`srgan_edu.steps.srresnet_step`) and names the usual mistakes.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
import torch.nn.functional as F

from srgan_edu.config import TrainConfig, apply_overrides, get_preset
from srgan_edu.exercises.feedback import (
    CheckFailed,
    as_tensor,
    call,
    expect,
    expect_close,
    one_thread,
    passed,
    relative_error,
)
from srgan_edu.imaging import signed_to_unit
from srgan_edu.models import SRResNet
from srgan_edu.steps import srresnet_step
from srgan_edu.train import phase_at, total_steps

__all__ = ["learning_rate", "srresnet_update"]


# ----------------------------------------------------------------------------------------------
# 08.1 the learning-rate schedule
# ----------------------------------------------------------------------------------------------


def reference_learning_rate(config: TrainConfig, step: int) -> float:
    """The rate of global update ``step`` (0-based) as the training loop sets it.

    Phase 1 keeps ``config.lr``. Phase 2 starts fresh optimisers with a ``MultiStepLR`` at one
    milestone, ``lr_decay_step``, stepped after every update: its update k runs at ``lr`` for
    k < lr_decay_step and at ``lr * lr_decay_factor`` from then on (``tests`` compare this with
    the scheduler itself).
    """
    phase, k = phase_at(config, step)
    if phase == "srgan" and k >= config.lr_decay_step:
        return config.lr * config.lr_decay_factor
    return config.lr


def _config(**fields) -> TrainConfig:
    return apply_overrides(get_preset("smoke"), fields)


def _schedule_mistakes(c: TrainConfig) -> list[tuple[Callable[[int], float], str]]:
    """(rate of a typical wrong schedule, what the mistake is) for ``c``."""
    n1 = c.srresnet_steps if c.phase in ("srresnet", "both") else 0
    lr, factor, decay = c.lr, c.lr_decay_factor, c.lr_decay_step

    def in_phase2(step: int) -> int | None:
        return step - n1 if step >= n1 else None

    def rule(step, k_of, decayed):
        k = k_of(step)
        return lr * factor if (k is not None and decayed(k)) else lr

    return [
        (
            lambda s: lr * factor if s >= decay else lr,
            "you counted lr_decay_step from the start of the run: it counts SRGAN updates, "
            "from the first update of phase 2 (global update srresnet_steps)",
        ),
        (
            lambda s: rule(s, in_phase2, lambda k: k > decay),
            "the decay comes one update late: with 0-based counting, phase-2 update k runs at "
            "the lower rate once k >= lr_decay_step",
        ),
        (
            lambda s: rule(s, in_phase2, lambda k: k + 1 >= decay),
            "the decay comes one update early: with 0-based counting, phase-2 update k runs at "
            "the lower rate once k >= lr_decay_step (k + 1 counts from 1)",
        ),
        (
            lambda s: lr,
            "your rate never changes: phase 2 multiplies it by lr_decay_factor after "
            "lr_decay_step of its updates",
        ),
        (
            lambda s: lr * factor ** ((s - n1) // decay) if s >= n1 else lr,
            "you decay again every lr_decay_step updates (like StepLR): the paper divides the "
            "rate by 10 once (one milestone, MultiStepLR)",
        ),
        (
            lambda s: lr * factor if (s if s < n1 else s - n1) >= decay else lr,
            "you decay in phase 1 too: SRResNet (phase 1) keeps config.lr for all its updates; "
            "only phase 2 decays",
        ),
    ]


def learning_rate(answer: Callable[[TrainConfig, int], float], *, hidden: bool = False) -> None:
    """Exercise 08.1: ``answer(config, step)`` is the rate of global update ``step``."""
    paper = get_preset("paper")
    small = _config(srresnet_steps=5, srgan_steps=9, lr_decay_step=3, lr=2e-4, lr_decay_factor=0.5)
    cases = [
        (paper, [0, 999_999, 1_000_000, 1_099_999, 1_100_000, 1_199_999]),
        (small, list(range(total_steps(small)))),
    ]
    if hidden:
        only2 = _config(phase="srgan", srgan_steps=7, lr_decay_step=2, lr=1e-3)
        only1 = _config(phase="srresnet", srresnet_steps=6, lr_decay_step=2, lr=3e-4)
        long2 = _config(srresnet_steps=3, srgan_steps=12, lr_decay_step=4, lr_decay_factor=0.25)
        cases += [(c, list(range(total_steps(c)))) for c in (only2, only1, long2)]
    n_cases = 0
    for config, steps in cases:
        got = {}
        for step in steps:
            value = call(answer, config, step, what="learning_rate(config, step)")
            expect(
                isinstance(value, (int, float)) and not isinstance(value, bool),
                f"learning_rate should return a float, got {type(value).__name__} {value!r}",
            )
            got[step] = float(value)
        wrong = [
            s for s in steps if abs(got[s] - reference_learning_rate(config, s)) > 1e-9 * config.lr
        ]
        n_cases += len(steps)
        if not wrong:
            continue
        setting = (
            f"phase={config.phase!r}, srresnet_steps={config.srresnet_steps:,}, "
            f"srgan_steps={config.srgan_steps:,}, lr={config.lr:g}, "
            f"lr_decay_step={config.lr_decay_step:,}, lr_decay_factor={config.lr_decay_factor:g}"
        )
        s = wrong[0]
        first = (
            f"with {setting}: update {s:,} (0-based) got {got[s]:g}, expected "
            f"{reference_learning_rate(config, s):g}"
        )
        for rate, message in _schedule_mistakes(config):
            if all(abs(got[t] - rate(t)) <= 1e-9 * config.lr for t in steps):
                raise CheckFailed(f"{first}: {message}.")
        raise CheckFailed(
            f"{first}. Phase 1 runs srresnet_steps updates at config.lr (none for "
            "phase='srgan'); phase-2 update k (counted from 0 within phase 2) runs at config.lr "
            "for k < lr_decay_step and at config.lr * config.lr_decay_factor after."
        )
    passed("08.1 the learning-rate schedule", n_cases, hidden)


# ----------------------------------------------------------------------------------------------
# 08.2 one phase-1 update
# ----------------------------------------------------------------------------------------------


def _batch(seed: int, batch: int, lr_side: int, scale: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    lr = torch.rand(batch, 3, lr_side, lr_side, generator=g)  # (B, 3, h, w) in [0, 1]
    hr = torch.rand(batch, 3, scale * lr_side, scale * lr_side, generator=g) * 2 - 1  # [-1, 1]
    return lr, hr


def _flat(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def _optimiser(model: torch.nn.Module, kind: str) -> torch.optim.Optimizer:
    if kind == "plain":
        return torch.optim.SGD(model.parameters(), lr=0.1)
    return torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)


def srresnet_update(answer: Callable[..., float], *, hidden: bool = False) -> None:
    """Exercise 08.2: ``answer(G, opt, lr, hr)`` makes one SRResNet update, returns the loss.

    Two updates in a row on two batches, compared with the library's ``srresnet_step`` run on
    a copy of the same network with the same kind of optimiser: the returned losses and the
    weights after each update. SGD with momentum (linear in the gradient) makes every mistake
    visible (Adam's first step is about lr * sign(gradient), which hides the gradient's size).
    """
    settings = [(0, 2, 1, 6, 2, 4, "sgd")]
    if hidden:
        settings += [(1, 3, 2, 4, 3, 2, "sgd"), (2, 2, 1, 8, 2, 4, "plain")]
    with one_thread():
        _check_updates(answer, settings)
    passed("08.2 one SRResNet update", 2 * len(settings), hidden)


def _check_updates(answer: Callable[..., float], settings: list[tuple]) -> None:
    what = "srresnet_update(G, opt, lr, hr)"
    for seed, batch, n_blocks, channels, lr_side, scale, kind in settings:
        base = SRResNet(scale, n_blocks=n_blocks, channels=channels, seed=seed).train()
        G, ref = copy.deepcopy(base), copy.deepcopy(base)
        opt, opt_ref = _optimiser(G, kind), _optimiser(ref, kind)
        before = _flat(base)
        for update in (1, 2):
            lr, hr = _batch(seed + 10 * update, batch, lr_side, scale)
            at_start = copy.deepcopy(ref)  # the network this update starts from
            got = call(answer, G, opt, lr, hr, what=what)
            want = float(srresnet_step(ref, opt_ref, lr, hr)["mse"])
            expect(
                got is not None,
                "srresnet_update returned None: return the loss of this update (a float)",
            )
            got = float(as_tensor(got, "srresnet_update's loss").reshape(-1)[0])
            where = f"update {update} (SGD, batch of {batch})"
            if abs(got - want) > 1e-5 * abs(want):
                with torch.no_grad():
                    eval_sr = copy.deepcopy(at_start).eval()(lr)  # before BN's stats move
                    sr = at_start(lr)
                    variants = {
                        "you returned an L1 loss: the phase-1 loss is the pixel MSE, the mean "
                        "of the squared differences (eq. 4)": F.l1_loss(sr, hr),
                        "you summed the squared differences: eq. 4 takes the mean over batch, "
                        "channels and pixels": ((sr - hr) ** 2).sum(),
                        "you compared in [0, 1]: both G's output and the HR batch are in "
                        "[-1, 1], compare them as they are": F.mse_loss(
                            signed_to_unit(sr), signed_to_unit(hr)
                        ),
                        "you converted only G's output to [0, 1]: G's output and the HR batch "
                        "are both in [-1, 1]": F.mse_loss(signed_to_unit(sr), hr),
                        "you returned the loss after the update: return the loss you "
                        "backpropagated (computed before opt.step())": F.mse_loss(
                            copy.deepcopy(ref)(lr), hr
                        )
                        if update == 1
                        else None,
                        "you ran G in eval mode: training runs in train mode, where batch norm "
                        "uses the batch's statistics (do not call G.eval())": F.mse_loss(
                            eval_sr, hr
                        ),
                    }
                for message, value in variants.items():
                    if value is not None and abs(got - float(value)) <= 1e-5 * abs(float(value)):
                        raise CheckFailed(f"{where}: {message}.")
                raise CheckFailed(
                    f"{where}: your loss is {got:.6g}, expected {want:.6g} (the pixel MSE of "
                    "G(lr) against hr, before the update, eq. 4)"
                )
            now = _flat(G)
            if update == 1 and torch.equal(now, before):
                raise CheckFailed(
                    f"{where}: G's weights did not change. Call opt.step() after loss.backward(), "
                    "and zero the old gradients before backward (not between backward and step)"
                )
            if relative_error(now, _flat(ref)) > 1e-4:
                if update == 2:
                    raise CheckFailed(
                        f"{where}: the first update was right, the second is not: the gradients "
                        "of the first update were still there and added up. Call "
                        "opt.zero_grad() before loss.backward() in every update"
                    )
                expect_close(
                    now,
                    _flat(ref),
                    f"{where}: G's weights after the update",
                    rtol=1e-4,
                    hint="Backpropagate the pixel MSE you return (loss.backward()) and step the "
                    "optimiser you were given, once.",
                )
        expect(
            G.training,
            "srresnet_update left G in eval mode: training runs in train mode (do not call "
            "G.eval() in a training step)",
        )
