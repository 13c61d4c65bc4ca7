"""Lesson 08's exercise checks: right answers pass, typical wrong answers are named."""

import pytest
import torch
import torch.nn.functional as F

from srgan_edu.config import apply_overrides, get_preset
from srgan_edu.exercises import lesson08 as check
from srgan_edu.exercises.feedback import CheckFailed
from srgan_edu.imaging import signed_to_unit
from srgan_edu.train import phase_at, phase_plan, total_steps

pytestmark = pytest.mark.usefixtures("one_thread")


def stub(*args, **kwargs):
    raise NotImplementedError("write your solution here")


# ---------------------------------------------------------------------------------- 08.1


def first_phase_steps(config):
    return config.srresnet_steps if config.phase in ("srresnet", "both") else 0


def schedule(config, step):
    n1 = first_phase_steps(config)
    if step >= n1 and step - n1 >= config.lr_decay_step:
        return config.lr * config.lr_decay_factor
    return config.lr


def test_reference_schedule_is_the_loops_scheduler():
    """The check's reference equals what the loop's MultiStepLR sets, update by update."""
    c = apply_overrides(
        get_preset("smoke"), {"srresnet_steps": 4, "srgan_steps": 9, "lr_decay_step": 3}
    )
    rates = []
    for phase, n in phase_plan(c):
        opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=c.lr)
        sched = None
        if phase == "srgan":
            sched = torch.optim.lr_scheduler.MultiStepLR(opt, [c.lr_decay_step], c.lr_decay_factor)
        for _ in range(n):
            rates.append(opt.param_groups[0]["lr"])
            if sched is not None:
                opt.step()
                sched.step()
    assert rates == pytest.approx([check.reference_learning_rate(c, s) for s in range(len(rates))])
    assert rates == pytest.approx([schedule(c, s) for s in range(total_steps(c))])


def test_learning_rate_right_answer(capsys):
    check.learning_rate(schedule)
    assert "✓ 08.1" in capsys.readouterr().out
    check.learning_rate(schedule, hidden=True)
    assert "(with the hidden cases)" in capsys.readouterr().out


def test_learning_rate_with_phase_at_passes():
    def with_phase_at(config, step):
        phase, k = phase_at(config, step)
        decayed = phase == "srgan" and k >= config.lr_decay_step
        return config.lr / 10 * (10 * config.lr_decay_factor) if decayed else config.lr

    check.learning_rate(with_phase_at, hidden=True)


def test_learning_rate_stub_propagates():
    with pytest.raises(NotImplementedError):
        check.learning_rate(stub)


def shifted(delta):
    def rate(config, step):
        n1 = first_phase_steps(config)
        k = step - n1
        return (
            config.lr * config.lr_decay_factor
            if step >= n1 and k + delta >= config.lr_decay_step
            else config.lr
        )

    return rate


def step_lr(config, step):
    n1 = first_phase_steps(config)
    k = max(step - n1, -1)
    return (
        config.lr * config.lr_decay_factor ** (k // config.lr_decay_step) if k >= 0 else config.lr
    )


def also_phase1(config, step):
    n1 = first_phase_steps(config)
    k = step if step < n1 else step - n1
    return config.lr * config.lr_decay_factor if k >= config.lr_decay_step else config.lr


@pytest.mark.parametrize(
    ("wrong", "match", "hidden"),
    [
        (
            lambda c, s: c.lr * c.lr_decay_factor if s >= c.lr_decay_step else c.lr,
            "start of the run",
            False,
        ),
        (shifted(-1), "one update late", False),
        (shifted(+1), "one update early", False),
        (lambda c, s: c.lr, "never changes", False),
        (step_lr, "like StepLR", True),
        (also_phase1, "in phase 1 too", False),
        (lambda c, s: str(c.lr), "should return a float", False),
        (lambda c, s: phase_at(c, s + 10**7), "raised ValueError", False),
        (lambda c, s: schedule(c, s) * (1.01 if s == 7 else 1), "update 7", False),
    ],
)
def test_learning_rate_names_the_mistake(wrong, match, hidden):
    with pytest.raises(CheckFailed, match=match):
        check.learning_rate(wrong, hidden=hidden)


def test_learning_rate_hidden_catches_srgan_only_runs():
    def assumes_phase1(config, step):  # ignores config.phase: always counts srresnet_steps first
        k = step - config.srresnet_steps
        return config.lr * config.lr_decay_factor if k >= config.lr_decay_step else config.lr

    check.learning_rate(assumes_phase1)  # right for phase="both" ...
    with pytest.raises(CheckFailed, match="phase='srgan'"):
        check.learning_rate(assumes_phase1, hidden=True)  # ... not for a phase-2-only run


# ---------------------------------------------------------------------------------- 08.2


def update(G, opt, lr, hr):
    loss = F.mse_loss(G(lr), hr)
    opt.zero_grad()
    loss.backward()
    opt.step()
    return loss.item()


def make_wrong(how):
    def wrong(G, opt, lr, hr):
        if how == "eval":
            G.eval()
        sr = G(lr)
        loss = {
            "l1": lambda: F.l1_loss(sr, hr),
            "sum": lambda: ((sr - hr) ** 2).sum(),
            "unit": lambda: F.mse_loss(signed_to_unit(sr), signed_to_unit(hr)),
            "half": lambda: F.mse_loss(signed_to_unit(sr), hr),
        }.get(how, lambda: F.mse_loss(sr, hr))()
        if how != "no zero_grad":
            opt.zero_grad()
        loss.backward()
        if how == "zero between":
            opt.zero_grad()
        if how != "no step":
            opt.step()
        if how == "after":
            return F.mse_loss(G(lr), hr).item()
        return None if how == "none" else loss.item()

    return wrong


def test_srresnet_update_right_answer(capsys):
    check.srresnet_update(update)
    assert "✓ 08.2" in capsys.readouterr().out
    check.srresnet_update(update, hidden=True)
    assert "(with the hidden cases)" in capsys.readouterr().out


def test_srresnet_update_stub_propagates():
    with pytest.raises(NotImplementedError):
        check.srresnet_update(stub)


@pytest.mark.parametrize(
    ("how", "match"),
    [
        ("l1", "L1 loss"),
        ("sum", "summed the squared differences"),
        ("unit", r"compared in \[0, 1\]"),
        ("half", r"converted only G's output"),
        ("after", "loss after the update"),
        ("eval", "eval mode"),
        ("no step", "did not change"),
        ("zero between", "did not change"),
        ("no zero_grad", "added up"),
        ("none", "returned None"),
    ],
)
def test_srresnet_update_names_the_mistake(how, match):
    with pytest.raises(CheckFailed, match=match):
        check.srresnet_update(make_wrong(how))


def test_srresnet_update_crash_names_the_function():
    with pytest.raises(CheckFailed, match=r"srresnet_update\(G, opt, lr, hr\) raised"):
        check.srresnet_update(lambda G, opt, lr, hr: G(lr).sum(dim=7))
