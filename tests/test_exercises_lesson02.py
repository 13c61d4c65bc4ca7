"""Lesson 02's exercise checks: right answers pass, typical wrong answers get named feedback."""

import numpy as np
import pytest
from scipy import stats

from srgan_edu.exercises import lesson02 as check
from srgan_edu.exercises.feedback import CheckFailed


def not_done(*args, **kwargs):
    raise NotImplementedError("Exercise: replace this line with your solution")


def crashes(*args, **kwargs):
    return {}["oops"]


# --- 02.1 inverse transform for Exp(rate) ------------------------------------------------------


def exponential(u, rate):
    """The solution of the lesson: F(x) = 1 - exp(-rate x) solved for x."""
    return -np.log1p(-u) / rate


def test_exponential_right_answer_passes(capsys):
    check.inverse_transform_exponential(exponential)
    out = capsys.readouterr().out
    assert out == "✓ Exercise 02.1, inverse transform sampling of Exp(rate): 2 check(s) passed\n"
    check.inverse_transform_exponential(exponential, hidden=True)
    assert "4 check(s) passed (with the hidden cases)" in capsys.readouterr().out
    check.inverse_transform_exponential(lambda u, rate: -np.log(1 - u) / rate, hidden=True)


def test_exponential_not_done_and_crash():
    with pytest.raises(NotImplementedError):
        check.inverse_transform_exponential(not_done)
    with pytest.raises(CheckFailed, match=r"exponential_by_inversion\(u, rate\) raised KeyError"):
        check.inverse_transform_exponential(crashes)


def fresh_draws(u, rate):
    return np.random.default_rng(99).exponential(1 / rate, size=np.shape(u))


def in_place(u, rate):
    u *= -1
    u += 1
    return -np.log(u) / rate


@pytest.mark.parametrize(
    ("wrong", "feedback"),
    [
        (lambda u, rate: -np.log(u) / rate, r"F\^\{-1\}\(1 - u\).*increases with u"),
        (lambda u, rate: -np.log1p(-u) * rate, "multiplies by the rate"),
        (lambda u, rate: np.log1p(-u) / rate, "negative.*minus sign"),
        (lambda u, rate: -np.log10(1 - u) / rate, "base-10 logarithm"),
        (fresh_draws, "look like Exp.*not F\\^\\{-1\\} of the numbers u"),
        (lambda u, rate: np.sort(-np.log1p(-u) / rate), "look like Exp.*no sorting"),
        (lambda u, rate: -np.log1p(-u[:10]) / rate, r"shape \(10,\), expected \(1000,\)"),
        (in_place, "changed the array u"),
        (lambda u, rate: -np.log1p(-u) / rate + 0.01, "relative error"),
    ],
)
def test_exponential_names_the_mistake(wrong, feedback):
    with pytest.raises(CheckFailed, match=feedback):
        check.inverse_transform_exponential(wrong)


def test_exponential_hidden_cases_catch_a_flattened_result():
    flat = lambda u, rate: exponential(np.ravel(u), rate)  # noqa: E731
    check.inverse_transform_exponential(flat)  # the visible cases are 1-D
    with pytest.raises(CheckFailed, match="same shape as u"):
        check.inverse_transform_exponential(flat, hidden=True)


# --- 02.2 autocorrelation ----------------------------------------------------------------------


def acf(x, max_lag):
    """The solution of the lesson: direct sums over the centred series."""
    xc = x - x.mean()
    n = len(xc)
    return np.array([xc[: n - k] @ xc[k:] for k in range(max_lag + 1)]) / (xc @ xc)


def test_autocorrelation_right_answer_passes(capsys):
    check.autocorrelation(acf)
    assert capsys.readouterr().out == (
        "✓ Exercise 02.2, autocorrelation of a chain: 2 check(s) passed\n"
    )
    check.autocorrelation(acf, hidden=True)
    assert "5 check(s) passed (with the hidden cases)" in capsys.readouterr().out


def test_autocorrelation_not_done_and_crash():
    with pytest.raises(NotImplementedError):
        check.autocorrelation(not_done)
    with pytest.raises(CheckFailed, match=r"autocorrelation_by_hand\(x, max_lag\) raised KeyError"):
        check.autocorrelation(crashes)


def no_mean(x, max_lag):
    n = len(x)
    return np.array([x[: n - k] @ x[k:] for k in range(max_lag + 1)]) / (x @ x)


def per_lag(x, max_lag):
    xc, n = x - x.mean(), len(x)
    acov = np.array([xc[: n - k] @ xc[k:] / (n - k) for k in range(max_lag + 1)])
    return acov / acov[0]


def pearson(x, max_lag):
    return np.array([1.0] + [np.corrcoef(x[:-k], x[k:])[0, 1] for k in range(1, max_lag + 1)])


def autocovariance(x, max_lag):
    xc, n = x - x.mean(), len(x)
    return np.array([xc[: n - k] @ xc[k:] for k in range(max_lag + 1)]) / n


def in_place_centre(x, max_lag):
    x -= x.mean()
    return acf(x, max_lag)


@pytest.mark.parametrize(
    ("wrong", "feedback"),
    [
        (no_mean, "subtract the mean first"),
        (per_lag, "divides lag k's sum by its n - k terms"),
        (pearson, "Pearson correlation of x\\[:-k\\] and x\\[k:\\]"),
        (autocovariance, "autocovariance.*rho_0 = 1"),
        (lambda x, max_lag: acf(x, max_lag)[1:], "leaves out rho_0"),
        (lambda x, max_lag: acf(x, max_lag - 1), "stops one lag early"),
        (lambda x, max_lag: np.correlate(x, x, "full"), "np.correlate.*middle"),
        (lambda x, max_lag: acf(x, max_lag + 3), r"shape \(19,\), expected \(16,\)"),
        (in_place_centre, "changed the array x.*x = x - x.mean"),
        (lambda x, max_lag: acf(x, max_lag) * 1.01, "relative error"),
    ],
)
def test_autocorrelation_names_the_mistake(wrong, feedback):
    with pytest.raises(CheckFailed, match=feedback):
        check.autocorrelation(wrong)


# --- 02.3 the two-sample KS statistic ----------------------------------------------------------


def ks2(x, y):
    """The solution of the lesson: both empirical CDFs at every data point."""
    t = np.concatenate([x, y])
    fx = np.searchsorted(np.sort(x), t, side="right") / len(x)
    fy = np.searchsorted(np.sort(y), t, side="right") / len(y)
    return float(np.max(np.abs(fx - fy)))


def test_ks_two_sample_right_answer_passes(capsys):
    check.ks_two_sample(ks2)
    out = capsys.readouterr().out
    assert out == "✓ Exercise 02.3, the two-sample KS statistic: 2 check(s) passed\n"
    check.ks_two_sample(ks2, hidden=True)
    assert "6 check(s) passed (with the hidden cases)" in capsys.readouterr().out
    check.ks_two_sample(lambda x, y: stats.ks_2samp(x, y).statistic, hidden=True)  # agrees


def test_ks_two_sample_not_done_and_crash():
    with pytest.raises(NotImplementedError):
        check.ks_two_sample(not_done)
    with pytest.raises(CheckFailed, match=r"ks_two_sample\(x, y\) raised KeyError"):
        check.ks_two_sample(crashes)


def one_side(sign):
    def answer(x, y):
        t = np.concatenate([x, y])
        fx = np.searchsorted(np.sort(x), t, side="right") / len(x)
        fy = np.searchsorted(np.sort(y), t, side="right") / len(y)
        return float(np.max(sign * (fx - fy)))

    return answer


def after_jumps_only(x, y):
    xs = np.sort(x)
    fy = np.searchsorted(np.sort(y), xs, side="right") / len(y)
    return float(np.max(np.abs(np.arange(1, len(x) + 1) / len(x) - fy)))


def same_n(x, y):
    t = np.concatenate([x, y])
    fx = np.searchsorted(np.sort(x), t, side="right") / len(x)
    fy = np.searchsorted(np.sort(y), t, side="right") / len(x)
    return float(np.max(np.abs(fx - fy)))


def sorts_in_place(x, y):
    x.sort()
    return ks2(x, y)


@pytest.mark.parametrize(
    ("wrong", "feedback"),
    [
        (one_side(+1), "one-sided: it is only the largest F_x - F_y"),
        (one_side(-1), "one-sided: it is only the largest F_y - F_x"),
        (after_jumps_only, "only just after each jump of F_x"),
        (same_n, "divides both counts by len\\(x\\)"),
        (lambda x, y: stats.ks_2samp(x, y).pvalue, "p-value, not the statistic"),
        (lambda x, y: stats.ks_2samp(x, y), "whole test result"),
        (lambda x, y: (ks2(x, y), 0.5), "returned 2 numbers"),
        (sorts_in_place, "changed the samples.*np.sort"),
        (lambda x, y: ks2(x, y) + 1e-3, "relative error"),
    ],
)
def test_ks_two_sample_names_the_mistake(wrong, feedback):
    with pytest.raises(CheckFailed, match=feedback):
        check.ks_two_sample(wrong)


def test_ks_two_sample_names_the_quantile_gap_on_equal_sizes():
    def quantile_gap(x, y):
        if len(x) != len(y):
            return ks2(x, y)  # a student who only meets the equal-size case
        return float(np.max(np.abs(np.sort(x) - np.sort(y))))

    with pytest.raises(CheckFailed, match=r"\*horizontal\* gap between the sorted samples"):
        check.ks_two_sample(quantile_gap)
