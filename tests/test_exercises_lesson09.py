"""Lesson 09's exercise checks: right answers pass, typical wrong answers are named."""

import numpy as np
import pytest
import torch

from srgan_edu.exercises import lesson09 as check
from srgan_edu.exercises.feedback import CheckFailed

pytestmark = pytest.mark.usefixtures("one_thread")


def stub(*args, **kwargs):
    raise NotImplementedError("write your solution here")


# ---------------------------------------------------------------------------------- 09.1


def psnr_y(sr, hr, border, levels="round", luma="bt601", crop="both", peak=1.0, log=torch.log10):
    def prepare(x):
        if levels == "round":
            x = torch.round(x.clamp(0, 1) * 255) / 255
        elif levels == "no clip":
            x = torch.round(x * 255) / 255
        elif levels == "floor":
            x = (x.clamp(0, 1) * 255).to(torch.uint8).float() / 255
        if luma == "bt601":
            x = (16 + 65.481 * x[:, 0] + 128.553 * x[:, 1] + 24.966 * x[:, 2]) / 255
        elif luma == "jpeg":
            x = 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]
        else:  # RGB: (B, 3, H, W) -> channels kept
            pass
        if border and crop == "both":
            x = x[..., border:-border, border:-border]
        elif border and crop == "one side":
            x = x[..., border:, border:]
        return x

    err = ((prepare(sr) - prepare(hr)) ** 2).flatten(1).mean(dim=1)
    return 10 * log(peak**2 / err)


def test_psnr_y_right_answer(capsys):
    check.psnr_y(psnr_y)
    assert "✓ 09.1" in capsys.readouterr().out
    check.psnr_y(psnr_y, hidden=True)
    assert "(with the hidden cases)" in capsys.readouterr().out


def test_psnr_y_stub_propagates():
    with pytest.raises(NotImplementedError):
        check.psnr_y(stub)


@pytest.mark.parametrize(
    ("wrong", "match"),
    [
        (lambda sr, hr, b: psnr_y(sr, hr, 0), "did not remove the border"),
        (lambda sr, hr, b: psnr_y(sr, hr, b, crop="one side"), "top and left only"),
        (lambda sr, hr, b: psnr_y(sr, hr, b, levels="none"), "skipped the 8-bit levels"),
        (
            lambda sr, hr, b: psnr_y(sr.clamp(0, 1), hr, b, levels="none"),
            "after clipping, round",
        ),
        (lambda sr, hr, b: psnr_y(sr, hr, b, levels="no clip"), "rounded without clipping"),
        (lambda sr, hr, b: psnr_y(sr, hr, b, levels="floor"), "truncated instead of rounding"),
        (lambda sr, hr, b: psnr_y(sr, hr, b, luma="rgb"), "all three RGB channels"),
        (lambda sr, hr, b: psnr_y(sr, hr, b, luma="jpeg"), "full-range luma"),
        (lambda sr, hr, b: psnr_y(sr, hr, b, peak=255.0), "peak of 255"),
        (lambda sr, hr, b: psnr_y(sr, hr, b, log=torch.log), "natural logarithm"),
        (lambda sr, hr, b: psnr_y(sr, hr, b).mean(), "returned one number"),
        (lambda sr, hr, b: psnr_y(sr, hr, b)[:2], "expected \\(3,\\)"),
        (lambda sr, hr, b: psnr_y(sr, hr, b) + 0.01, "relative error"),
        (lambda sr, hr, b: psnr_y(sr[:, :2], hr, b), r"psnr_y\(sr, hr, border\) raised"),
    ],
)
def test_psnr_y_names_the_mistake(wrong, match):
    with pytest.raises(CheckFailed, match=match):
        check.psnr_y(wrong)


def test_psnr_y_luma_on_the_255_scale_is_named():
    def no_div(sr, hr, b):
        def y(x):
            x = torch.round(x.clamp(0, 1) * 255) / 255
            y = 16 + 65.481 * x[:, 0] + 128.553 * x[:, 1] + 24.966 * x[:, 2]
            return y[..., b:-b, b:-b]

        return 10 * torch.log10(1 / ((y(sr) - y(hr)) ** 2).flatten(1).mean(1))

    with pytest.raises(CheckFailed, match="16..235 scale"):
        check.psnr_y(no_div)


def test_psnr_y_hidden_catches_a_fixed_border():
    fixed = lambda sr, hr, b: psnr_y(sr, hr, 4)  # noqa: E731 -- ignores `border`
    check.psnr_y(fixed)  # the visible case has border 4 ...
    with pytest.raises(CheckFailed, match="border"):
        check.psnr_y(fixed, hidden=True)


# ---------------------------------------------------------------------------------- 09.2


def bootstrap(scores_by_rater, n_boot=2000, seed=0, confidence=0.95, how="right"):
    r = len(scores_by_rater)
    rng = np.random.default_rng(seed)
    if how == "loop":
        draws = np.stack([rng.integers(0, r, size=r) for _ in range(n_boot)])
    elif how == "permutation":
        draws = np.stack([rng.permutation(r) for _ in range(n_boot)])
    else:
        draws = rng.integers(0, r, size=(n_boot, r))
    if how == "rater means":
        mos = np.array([np.mean([scores_by_rater[i].mean() for i in row]) for row in draws])
    elif how == "ratings":
        flat = np.concatenate(scores_by_rater)
        draws = np.random.default_rng(seed).integers(0, flat.size, size=(n_boot, flat.size))
        mos = flat[draws].mean(axis=1)
    else:
        mos = np.array([np.concatenate([scores_by_rater[i] for i in row]).mean() for row in draws])
    a = {"fixed": 0.025, "90": 0.05}.get(how, (1 - confidence) / 2)
    low, high = np.quantile(mos, [a, 1 - a])
    return low, high


def test_bootstrap_interval_right_answer(capsys):
    check.bootstrap_interval(bootstrap)
    assert "✓ 09.2" in capsys.readouterr().out
    check.bootstrap_interval(bootstrap, hidden=True)
    assert "(with the hidden cases)" in capsys.readouterr().out


def test_bootstrap_interval_loop_and_percentile_pass():
    """Drawing one resample at a time (same random stream) and np.percentile are fine too."""

    def loop(scores, n_boot, seed, confidence):
        return bootstrap(scores, n_boot, seed, confidence, how="loop")

    def percentile(scores, n_boot, seed, confidence):
        rng = np.random.default_rng(seed)
        r = len(scores)
        mos = [
            np.concatenate([scores[i] for i in rng.choice(r, size=r)]).mean() for _ in range(n_boot)
        ]
        half = 50 * confidence
        return tuple(np.percentile(mos, [50 - half, 50 + half]))

    check.bootstrap_interval(loop, hidden=True)
    check.bootstrap_interval(percentile, hidden=True)


def test_bootstrap_interval_stub_propagates():
    with pytest.raises(NotImplementedError):
        check.bootstrap_interval(stub)


def other_stream(scores, n_boot, seed, confidence):  # right idea, not the stated draws
    rng = np.random.default_rng(seed + 1000)
    r = len(scores)
    mos = [
        np.concatenate([scores[i] for i in rng.integers(0, r, size=r)]).mean()
        for _ in range(n_boot)
    ]
    return tuple(np.quantile(mos, [(1 - confidence) / 2, (1 + confidence) / 2]))


@pytest.mark.parametrize(
    ("how", "match"),
    [
        ("ratings", "resampled single ratings"),
        ("rater means", "averaged the raters' means"),
        ("permutation", "with\\* replacement"),
        ("90", "5 % and 95 %"),
    ],
)
def test_bootstrap_interval_names_the_mistake(how, match):
    def wrong(scores, n_boot, seed, confidence):
        return bootstrap(scores, n_boot, seed, confidence, how=how)

    with pytest.raises(CheckFailed, match=match):
        check.bootstrap_interval(wrong)


@pytest.mark.parametrize(
    ("wrong", "match"),
    [
        (other_stream, "not draw for draw"),
        (lambda s, n, seed, c: bootstrap(s, n, seed, c)[0], "should return a pair"),
        (lambda s, n, seed, c: bootstrap(s, n, seed, c)[::-1], "low > high"),
        (lambda s, n, seed, c: (float("nan"), 1.0), "finite numbers"),
        (lambda s, n, seed, c: (1.0, 5.0), r"expected \("),
        (lambda s, n, seed, c: np.quantile(s, [0.025, 0.975]), "raised"),
    ],
)
def test_bootstrap_interval_other_wrong_answers(wrong, match):
    with pytest.raises(CheckFailed, match=match):
        check.bootstrap_interval(wrong)


def test_bootstrap_interval_hidden_catches_a_fixed_confidence():
    def fixed(scores, n_boot, seed, confidence):
        return bootstrap(scores, n_boot, seed, confidence, how="fixed")

    check.bootstrap_interval(fixed)  # the visible case asks for 95 % ...
    with pytest.raises(CheckFailed, match="ignores `confidence`"):
        check.bootstrap_interval(fixed, hidden=True)
