"""Lesson 01's exercise checks: right answers pass, typical wrong answers get named feedback."""

import pytest
import torch
import torch.nn.functional as F

from srgan_edu.exercises import lesson01 as check
from srgan_edu.exercises.feedback import CheckFailed

pytestmark = pytest.mark.usefixtures("one_thread")


def not_done(*args, **kwargs):
    raise NotImplementedError("Exercise: replace this line with your solution")


def crashes(*args, **kwargs):
    return [1, 2][5]


# --- 01.1 the discriminator's loss -------------------------------------------------------------


def d_loss(real_logits, fake_logits):
    """The solution of the lesson: -log D(x) = softplus(-l), -log(1 - D) = softplus(l)."""
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def test_discriminator_loss_right_answer_passes(capsys):
    check.discriminator_loss(d_loss)
    assert (
        "✓ Exercise 01.1, the discriminator's loss: 2 check(s) passed\n" == capsys.readouterr().out
    )
    check.discriminator_loss(d_loss, hidden=True)
    assert "5 check(s) passed (with the hidden cases)" in capsys.readouterr().out


def test_discriminator_loss_log_sigmoid_passes_visible_but_not_hidden():
    def naive(real, fake):  # right formula, but log(sigmoid) underflows for large logits
        return -torch.log(torch.sigmoid(real)).mean() - torch.log(1 - torch.sigmoid(fake)).mean()

    check.discriminator_loss(naive)
    with pytest.raises(CheckFailed, match="underflows.*softplus"):
        check.discriminator_loss(naive, hidden=True)


def test_discriminator_loss_not_done_and_crash():
    with pytest.raises(NotImplementedError):
        check.discriminator_loss(not_done)
    with pytest.raises(CheckFailed, match=r"discriminator_loss_by_hand.*raised IndexError"):
        check.discriminator_loss(crashes)


@pytest.mark.parametrize(
    ("wrong", "feedback"),
    [
        (lambda r, f: F.softplus(r).mean() + F.softplus(-f).mean(), "labels are swapped"),
        (lambda r, f: -(F.softplus(-r).mean() + F.softplus(f).mean()), "wrong sign.*-V"),
        (lambda r, f: F.softplus(-r).sum() + F.softplus(f).sum(), "summed over each batch"),
        (
            lambda r, f: (F.softplus(-r).mean() + F.softplus(f).mean()) / 2,
            r"half.*sum\* of the two",
        ),
        (lambda r, f: F.softplus(torch.cat([-r, f])).mean(), "half|one mean over the real and"),
        (lambda r, f: F.softplus(-r).mean(), "only the real samples' term"),
        (lambda r, f: F.softplus(f).mean(), "only the fake samples' term"),
        (lambda r, f: -torch.log(r).mean() - torch.log(1 - f).mean(), "logits.*not probabilities"),
        (lambda r, f: F.softplus(-r) + F.softplus(f), "one value per sample.*mean"),
        (lambda r, f: d_loss(r, f).item(), "returned a float.*backward"),
        (lambda r, f: torch.tensor(d_loss(r, f).item()), "no gradient"),
        (lambda r, f: F.softplus(-r).mean() + F.softplus(f).mean() + 0.1, "relative error"),
    ],
)
def test_discriminator_loss_names_the_mistake(wrong, feedback):
    with pytest.raises(CheckFailed, match=feedback):
        check.discriminator_loss(wrong)


def test_discriminator_loss_one_mean_over_both_batches_is_named_on_unequal_batches():
    def one_mean(r, f):  # right when the batches have equal sizes, wrong otherwise
        logits, labels = torch.cat([r, f]), torch.cat([torch.ones_like(r), torch.zeros_like(f)])
        return 2 * F.binary_cross_entropy_with_logits(logits, labels)

    with pytest.raises(CheckFailed, match="one mean over the real and fake samples together"):
        check.discriminator_loss(one_mean)


# --- 01.2 a generator step ---------------------------------------------------------------------


def g_step(G, D, opt_g, u):
    """The solution of the lesson: one step on the non-saturating loss."""
    loss = F.softplus(-D(G(u))).mean()
    opt_g.zero_grad()
    loss.backward()
    opt_g.step()
    return loss.item()


def step_with(loss_of, zero_grad=True, step=True, detach=False):
    def answer(G, D, opt_g, u):
        fake = G(u).detach() if detach else G(u)
        loss = loss_of(D(fake))
        if zero_grad:
            opt_g.zero_grad()
        loss.backward()
        if step:
            opt_g.step()
        return loss.item()

    return answer


def test_generator_step_right_answer_passes(capsys):
    check.generator_step(g_step)
    assert "✓ Exercise 01.2, a generator step: 2 check(s) passed\n" == capsys.readouterr().out
    check.generator_step(g_step, hidden=True)
    assert "4 check(s) passed (with the hidden cases)" in capsys.readouterr().out


def test_generator_step_accepts_log_sigmoid_and_a_tensor_loss():
    def other_form(G, D, opt_g, u):
        G.zero_grad()
        loss = -torch.log(torch.sigmoid(D(G(u)))).mean()
        loss.backward()
        opt_g.step()
        return loss.detach()

    check.generator_step(other_form, hidden=True)


def test_generator_step_not_done_and_crash():
    with pytest.raises(NotImplementedError):
        check.generator_step(not_done)
    with pytest.raises(CheckFailed, match=r"generator_step\(G, D, opt_g, u\) raised IndexError"):
        check.generator_step(crashes)


def test_generator_step_leaves_the_global_rng_alone():
    state = torch.get_rng_state()
    check.generator_step(g_step)
    assert torch.equal(state, torch.get_rng_state())


def nonsat(logit):
    return F.softplus(-logit).mean()


def step_d_too(G, D, opt_g, u):
    loss = g_step(G, D, opt_g, u)
    torch.optim.SGD(D.parameters(), lr=0.1).step()  # D got gradients from backward: it moves
    return loss


@pytest.mark.parametrize(
    ("wrong", "feedback"),
    [
        (step_with(lambda logit: -F.softplus(logit).mean()), "saturating loss"),
        (step_with(lambda logit: F.softplus(logit).mean()), r"pushes D\(G\(u\)\) \*down\*"),
        (step_with(lambda logit: -F.softplus(-logit).mean()), "sign of the loss reversed"),
        (step_with(lambda logit: F.softplus(-logit).sum()), "sums over the batch"),
        (step_with(nonsat, zero_grad=False), "left over.*zero_grad"),
        (step_with(nonsat, step=False), "did not change G's weights.*opt_g.step"),
        (step_with(nonsat, detach=True), r"detach\(\) G\(u\)"),
        (step_d_too, "changed D's weights"),
        (lambda G, D, opt, u: g_step(G, D, opt, u) and None, "returned None"),
        (lambda G, D, opt, u: g_step(G, D, opt, u) + 1.0, "loss returned.*relative error"),
        (step_with(lambda logit: F.softplus(-logit).mean() + 0.01 * logit.pow(2).mean()), "error"),
    ],
)
def test_generator_step_names_the_mistake(wrong, feedback):
    with pytest.raises(CheckFailed, match=feedback):
        check.generator_step(wrong)
