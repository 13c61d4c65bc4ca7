"""Lesson 10's exercise checks: right answers pass, typical wrong answers are named."""

import pytest
import torch
import torch.nn.functional as F

from srgan_edu.exercises import lesson10 as check
from srgan_edu.exercises.feedback import CheckFailed

pytestmark = pytest.mark.usefixtures("one_thread")


def stub(*args, **kwargs):
    raise NotImplementedError("write your solution here")


# ---------------------------------------------------------------------------------- 10.1


def rrdb_by_hand(
    x,
    rrdb,
    slope=0.2,
    act_last=False,
    reverse=False,
    beta_in=None,
    beta_out=None,
    inner_skip=True,
    outer_skip=True,
):
    h = x
    for block in rrdb.blocks:
        features = [h]
        for k, conv in enumerate(block.convs):
            out = conv(torch.cat(features[::-1] if reverse else features, dim=1))
            features.append(F.leaky_relu(out, slope) if (k < 4 or act_last) else out)
        b = block.beta if beta_in is None else beta_in
        h = h + b * features[-1] if inner_skip else b * features[-1]
    b = rrdb.beta if beta_out is None else beta_out
    return x + b * h if outer_skip else b * h


def not_dense(x, rrdb):  # each conv sees only the previous output: channel counts do not fit
    h = x
    for block in rrdb.blocks:
        t = h
        for conv in block.convs[:-1]:
            t = F.leaky_relu(conv(t), 0.2)
        h = h + block.beta * block.convs[-1](t)
    return x + rrdb.beta * h


def test_rrdb_forward_right_answer(capsys):
    check.rrdb_forward(rrdb_by_hand)
    assert "✓ 10.1" in capsys.readouterr().out
    check.rrdb_forward(rrdb_by_hand, hidden=True)
    assert "(with the hidden cases)" in capsys.readouterr().out


def test_rrdb_forward_stub_propagates():
    with pytest.raises(NotImplementedError):
        check.rrdb_forward(stub)


@pytest.mark.parametrize(
    ("wrong", "match"),
    [
        (lambda x, m: rrdb_by_hand(x, m, outer_skip=False), "outer skip connection is missing"),
        (lambda x, m: rrdb_by_hand(x, m, inner_skip=False), "dense blocks' own skips"),
        (lambda x, m: rrdb_by_hand(x, m, beta_out=1.0), "outer skip is not scaled"),
        (lambda x, m: rrdb_by_hand(x, m, beta_in=1.0), "dense blocks' skips are not scaled"),
        (lambda x, m: rrdb_by_hand(x, m, beta_in=1.0, beta_out=1.0), "neither skip is scaled"),
        (lambda x, m: rrdb_by_hand(x, m, act_last=True), "after the fifth convolution"),
        (lambda x, m: rrdb_by_hand(x, m, slope=0.0), "you used ReLU"),
        (lambda x, m: rrdb_by_hand(x, m, slope=0.01), "default slope 0.01"),
        (lambda x, m: rrdb_by_hand(x, m, reverse=True), "concatenated in the wrong order"),
        (lambda x, m: m(x), "called the RRDB's"),
        (lambda x, m: x + m.beta * m.blocks(x), "called the RRDB's"),
        (not_dense, "concatenated with"),
        (lambda x, m: rrdb_by_hand(x, m)[:, :2], "has shape"),
        (lambda x, m: rrdb_by_hand(x, m) + 1e-3, "relative error"),
    ],
)
def test_rrdb_forward_names_the_mistake(wrong, match):
    with pytest.raises(CheckFailed, match=match):
        check.rrdb_forward(wrong)


def test_rrdb_forward_hidden_catches_hard_coded_beta():
    def fixed_beta(x, rrdb):
        return rrdb_by_hand(x, rrdb, beta_in=0.2, beta_out=0.2)

    check.rrdb_forward(fixed_beta)  # the visible RRDB has beta = 0.2 ...
    with pytest.raises(CheckFailed, match="read it from rrdb.beta"):
        check.rrdb_forward(fixed_beta, hidden=True)  # ... the hidden ones do not


# ---------------------------------------------------------------------------------- 10.2


def ra_losses(real, fake):
    real_rel, fake_rel = real - fake.mean(), fake - real.mean()
    l_d = F.softplus(-real_rel).mean() + F.softplus(fake_rel).mean()
    l_g = F.softplus(real_rel).mean() + F.softplus(-fake_rel).mean()
    return l_d, l_g


def ra_unstable(real, fake):
    d_real = torch.sigmoid(real - fake.mean())
    d_fake = torch.sigmoid(fake - real.mean())
    l_d = -torch.log(d_real).mean() - torch.log(1 - d_fake).mean()
    l_g = -torch.log(1 - d_real).mean() - torch.log(d_fake).mean()
    return l_d, l_g


def ra_detached(real, fake):
    real_rel = real - fake.mean().detach()
    fake_rel = fake - real.mean()
    l_d = F.softplus(-real_rel).mean() + F.softplus(fake_rel).mean()
    return l_d, F.softplus(real_rel).mean() + F.softplus(-fake_rel).mean()


def own_mean(real, fake):
    r, f = real - real.mean(), fake - fake.mean()
    return (
        F.softplus(-r).mean() + F.softplus(f).mean(),
        F.softplus(r).mean() + F.softplus(-f).mean(),
    )


def standard(real, fake):
    return F.softplus(-real).mean() + F.softplus(fake).mean(), F.softplus(-fake).mean()


def no_real_term(real, fake):
    l_d, _ = ra_losses(real, fake)
    return l_d, F.softplus(-(fake - real.mean())).mean()


def test_relativistic_losses_right_answer(capsys):
    check.relativistic_losses(ra_losses)
    assert "✓ 10.2" in capsys.readouterr().out
    check.relativistic_losses(ra_losses, hidden=True)
    assert "(with the hidden cases)" in capsys.readouterr().out


def test_relativistic_losses_stub_propagates():
    with pytest.raises(NotImplementedError):
        check.relativistic_losses(stub)


@pytest.mark.parametrize(
    ("wrong", "match"),
    [
        (lambda r, f: ra_losses(r, f)[::-1], "swapped"),
        (standard, "SRGAN's standard losses"),
        (own_mean, "mean of its \\*own\\* kind"),
        (no_real_term, "L_G lacks its real term"),
        (lambda r, f: tuple(0.5 * v for v in ra_losses(r, f)), "halved"),
        (ra_unstable, "softplus"),
        (ra_detached, "is detached"),
        (lambda r, f: tuple(v.detach() for v in ra_losses(r, f)), "carries no gradient"),
        (lambda r, f: ra_losses(r, f)[0], "should return a pair"),
        (
            lambda r, f: tuple(float(v.detach()) for v in ra_losses(r, f)),
            "should be a torch tensor",
        ),
        (lambda r, f: (r - f, r), "raised RuntimeError"),
        (lambda r, f: (ra_losses(r, f)[0], ra_losses(r, f)[1] * 1.01), "your L_G"),
    ],
)
def test_relativistic_losses_names_the_mistake(wrong, match):
    with pytest.raises(CheckFailed, match=match):
        check.relativistic_losses(wrong)
