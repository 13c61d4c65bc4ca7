"""Checks for lesson 02's exercises (sampling and the KS test).

Exercise 02.1 asks for an inverse-transform sampler of the exponential law, 02.2 for the
autocorrelation of a Markov chain, 02.3 for the two-sample KS statistic. Each is compared with
``toy_gan`` (``sampling.inverse_transform``, ``experiments.autocorrelation``, ``ks.ks_statistic``
against an empirical CDF) on seeded inputs; the usual mistakes (the mirrored map, rate taken as a
scale, the mean not subtracted, a one-sided statistic, ...) are recognised and named.
Introduced in lesson 02.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
import torch
from scipy import stats

from srgan_edu.exercises.feedback import (
    CheckFailed,
    as_tensor,
    call,
    expect,
    expect_close,
    expect_shape,
    passed,
    reject_named_mistake,
    relative_error,
)
from toy_gan.experiments import autocorrelation as library_autocorrelation
from toy_gan.experiments import metropolis_chains
from toy_gan.ks import ks_statistic
from toy_gan.sampling import inverse_transform

__all__ = ["autocorrelation", "inverse_transform_exponential", "ks_two_sample"]


# --- exercise 02.1: inverse transform sampling of Exp(rate) ------------------------------------


def _expon_ppf(q: np.ndarray, rate: float) -> np.ndarray:
    return stats.expon.ppf(q, scale=1.0 / rate)


def inverse_transform_exponential(answer: Callable[..., Any], *, hidden: bool = False) -> None:
    """Check ``answer(u, rate)`` = F^{-1}(u) = -ln(1 - u) / rate, the Exp(rate) quantile function.

    The reference is ``toy_gan.sampling.inverse_transform`` with SciPy's exponential quantile
    function, fed the same seeded uniforms.
    """
    what = "exponential_by_inversion(u, rate)"
    cases = [
        ("1000 uniforms, rate 1", 0, (1000,), 1.0),
        ("1000 uniforms, rate 2.5", 1, (1000,), 2.5),
    ]
    if hidden:
        cases += [
            ("u of shape (4, 50), rate 0.2", 2, (4, 50), 0.2),
            ("u = 0 and u close to 1, rate 3", None, (3,), 3.0),
        ]
    for name, seed, shape, rate in cases:
        if seed is None:
            u = np.array([0.0, 0.5, 1.0 - 1e-12])
            want = _expon_ppf(u, rate)
        else:
            n = int(np.prod(shape))
            # inverse_transform(n, seed=s) draws exactly default_rng(s).random(n)
            want = inverse_transform(n, ppf=partial(_expon_ppf, rate=rate), seed=seed).x
            u = np.random.default_rng(seed).random(n)
            want, u = want.reshape(shape), u.reshape(shape)
        _check_exponential_case(answer, what, f"{what} on {name}", u, rate, want)
    passed("Exercise 02.1, inverse transform sampling of Exp(rate)", len(cases), hidden)


def _check_exponential_case(
    answer: Callable[..., Any], what: str, where: str, u: np.ndarray, rate: float, want: np.ndarray
) -> None:
    given = u.copy()
    got = as_tensor(call(answer, given, rate, what=what), where)
    expect(
        np.array_equal(given, u),
        f"{where} changed the array u it was given; compute a new array instead",
    )
    expect_shape(got, u.shape, f"{where} (one sample per uniform number, same shape as u)")
    w = torch.as_tensor(want)
    rtol = 1e-6
    if relative_error(got, w) <= rtol:
        return
    with np.errstate(divide="ignore"):
        mistakes = {
            f"{where} returned F^{{-1}}(1 - u) = -ln(u) / rate. Its samples have the right "
            "distribution (1 - U is uniform too), but the map decreases with u; the exercise asks "
            "for the quantile function F^{-1}(u) = -ln(1 - u) / rate, which increases with u": (
                -np.log(u) / rate
            ),
            f"{where} multiplies by the rate; Exp(rate) has mean 1/rate, so divide: "
            "-ln(1 - u) / rate": -np.log1p(-u) * rate,
            f"{where} is negative: ln(1 - u) < 0 for u in (0, 1), so "
            "F^{-1}(u) = -ln(1 - u) / rate needs the minus sign": np.log1p(-u) / rate,
            f"{where} uses the base-10 logarithm; the exponential law's CDF 1 - exp(-rate x) "
            "inverts with the natural logarithm (np.log)": -np.log10(1.0 - u) / rate,
        }
    reject_named_mistake(got, w, mistakes, rtol)
    finite = bool(torch.isfinite(got).all())
    if finite and got.numel() >= 100:
        values = got.numpy().ravel()
        fits = stats.kstest(values, stats.expon(scale=1.0 / rate).cdf).pvalue > 0.01
        follows_u = abs(stats.spearmanr(values, u.ravel()).statistic) > 0.5
        if fits and not follows_u:
            raise CheckFailed(
                f"{where}: your values look like Exp({rate:g}) draws, but they are not F^{{-1}} of "
                "the numbers u you were given. Transform u itself (no new random numbers, no "
                "sorting): x = -ln(1 - u) / rate, element by element"
            )
    expect_close(got, w, where, rtol, hint="Solve u = F(x) = 1 - exp(-rate x) for x.")


# --- exercise 02.2: autocorrelation of a chain -------------------------------------------------


def _ar1(seed: int, n: int, phi: float, mean: float) -> np.ndarray:
    """An AR(1) series x_t = mean + y_t, y_t = phi y_{t-1} + e_t: correlated like an MH chain."""
    e = np.random.default_rng(seed).standard_normal(n)
    y = np.empty(n)
    y[0] = e[0] / np.sqrt(1.0 - phi**2)
    for t in range(1, n):
        y[t] = phi * y[t - 1] + e[t]
    return mean + y


def _acf_raw(x: np.ndarray, max_lag: int, centre: bool, per_lag_n: bool) -> np.ndarray:
    """rho_k by the direct sums, with or without the mean and with sum/n or sum/(n - k)."""
    x = x - x.mean() if centre else x
    n = x.size
    acov = np.array([x[: n - k] @ x[k:] for k in range(max_lag + 1)])
    if per_lag_n:
        acov = acov / (n - np.arange(max_lag + 1))
    return acov / acov[0]


def autocorrelation(answer: Callable[..., Any], *, hidden: bool = False) -> None:
    """Check ``answer(x, max_lag)`` = rho_0..rho_max_lag against the library's autocorrelation.

    rho_k = sum_t (x_t - m)(x_{t+k} - m) / sum_t (x_t - m)^2 (``toy_gan.experiments``).
    """
    what = "autocorrelation_by_hand(x, max_lag)"
    cases = [
        ("an AR(1) series around 3 (n = 400), max_lag 15", _ar1(0, 400, 0.8, 3.0), 15),
        ("an MH chain with step 0.5 (n = 800), max_lag 30", _chain(1, 1000, 0.5), 30),
    ]
    if hidden:
        cases += [
            ("a sticky MH chain with step 12, max_lag 10", _chain(2, 1200, 12.0), 10),
            ("max_lag 0", _ar1(3, 50, 0.5, -1.0), 0),
            ("max_lag n - 1 (n = 30)", _ar1(4, 30, 0.3, 2.0), 29),
        ]
    for name, x, max_lag in cases:
        _check_acf_case(answer, what, f"{what} on {name}", x, max_lag)
    passed("Exercise 02.2, autocorrelation of a chain", len(cases), hidden)


def _chain(seed: int, length: int, step: float) -> np.ndarray:
    chains, _ = metropolis_chains(1, length, step=step, seed=seed)  # (1, length)
    return chains[0, 200:]  # after a burn-in of 200 steps


def _check_acf_case(
    answer: Callable[..., Any], what: str, where: str, x: np.ndarray, max_lag: int
) -> None:
    given = x.copy()
    got = as_tensor(call(answer, given, max_lag, what=what), where)
    expect(
        np.array_equal(given, x),
        f"{where} changed the array x it was given (x -= x.mean() works in place); write "
        "x = x - x.mean() to make a new array",
    )
    want = torch.as_tensor(library_autocorrelation(x, max_lag))  # (max_lag + 1,)
    if got.shape != want.shape:
        if got.dim() == 1 and got.numel() == max_lag and max_lag > 0:
            if relative_error(got, want[1:]) <= 1e-6:
                raise CheckFailed(
                    f"{where} leaves out rho_0 = 1: return the lags 0, 1, ..., max_lag "
                    f"({max_lag + 1} values)"
                )
            if relative_error(got, want[:-1]) <= 1e-6:
                raise CheckFailed(
                    f"{where} stops one lag early: return the lags 0, 1, ..., max_lag "
                    f"({max_lag + 1} values; range(max_lag + 1))"
                )
        if got.numel() == 2 * x.size - 1:
            raise CheckFailed(
                f"{where} has {got.numel()} values, the full output of np.correlate(x, x, 'full'); "
                f"keep the lags 0..{max_lag}, which start in the middle (index n - 1)"
            )
        expect_shape(got, want.shape, f"{where} (one value per lag 0..max_lag)")
    rtol = 1e-6
    if relative_error(got, want) <= rtol:
        return
    xc = x - x.mean()
    mistakes = {
        f"{where}: subtract the mean first. Without it, a series whose mean is not 0 looks "
        "strongly correlated at every lag": _acf_raw(x, max_lag, centre=False, per_lag_n=False),
        f"{where} divides lag k's sum by its n - k terms; the estimator divides every lag by the "
        "same lag-0 sum, sum_t (x_t - m)^2": _acf_raw(x, max_lag, centre=True, per_lag_n=True),
        f"{where} computes a Pearson correlation of x[:-k] and x[k:] (each piece with its own mean "
        "and spread); use the overall mean m and divide by the lag-0 sum sum_t (x_t - m)^2": (
            [1.0] + [np.corrcoef(x[:-k], x[k:])[0, 1] for k in range(1, max_lag + 1)]
        ),
        f"{where} is the autocovariance sum_t (x_t - m)(x_(t+k) - m) / n; divide by its value "
        "at lag 0 so that rho_0 = 1": np.array(
            [xc[: x.size - k] @ xc[k:] for k in range(max_lag + 1)]
        )
        / x.size,
    }
    reject_named_mistake(got, want, mistakes, rtol)
    expect_close(
        got, want, where, rtol, hint="rho_k = sum_t (x_t - m)(x_(t+k) - m) / sum_t (x_t - m)^2."
    )


# --- exercise 02.3: the two-sample KS statistic ------------------------------------------------


def _ecdf(sample: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    s = np.sort(sample)
    return lambda v: np.searchsorted(s, v, side="right") / s.size


def _two_sample_reference(x: np.ndarray, y: np.ndarray) -> float:
    """sup_t |F_x(t) - F_y(t)|: the one-sample statistic of x against y's empirical CDF.

    Exact for samples without ties: the gap is largest at a jump of F_x, just after or just
    before it (the same construction as ``toy_gan.anomaly.generator_cdf``'s calibrated test).
    """
    return ks_statistic(x, cdf=_ecdf(y))


def _one_sided(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    t = np.concatenate([x, y])
    fx, fy = _ecdf(x)(t), _ecdf(y)(t)
    return float(np.max(fx - fy)), float(np.max(fy - fx))


def ks_two_sample(answer: Callable[..., Any], *, hidden: bool = False) -> None:
    """Check ``answer(x, y)`` = D = sup_t |F_x(t) - F_y(t)|, the two-sample KS statistic."""
    what = "ks_two_sample(x, y)"
    rng = np.random.default_rng(0)
    cases = [
        (
            "x: 200 from N(0, 1), y: 300 from N(0.3, 1)",
            rng.normal(0, 1, 200),
            rng.normal(0.3, 1, 300),
        ),
        (
            "x: 150 from N(0, 1), y: 150 from N(0, 1.5^2)",
            rng.normal(0, 1, 150),
            rng.normal(0, 1.5, 150),
        ),
    ]
    if hidden:
        cases += [
            ("x: 1 number, y: 50 from N(0, 1)", rng.normal(0, 1, 1), rng.normal(0, 1, 50)),
            ("x entirely below y", rng.uniform(0, 1, 40), rng.uniform(2, 3, 60)),
            (
                "x: 2000 from N(0, 1), y: 500 from N(0, 1)",
                rng.normal(0, 1, 2000),
                rng.normal(0, 1, 500),
            ),
            (
                "x: 60 from N(1, 1), y: 700 from N(0, 1)",
                rng.normal(1, 1, 60),
                rng.normal(0, 1, 700),
            ),
        ]
    for name, x, y in cases:
        _check_ks_case(answer, what, f"{what} on {name}", x, y)
    passed("Exercise 02.3, the two-sample KS statistic", len(cases), hidden)


def _check_ks_case(
    answer: Callable[..., Any], what: str, where: str, x: np.ndarray, y: np.ndarray
) -> None:
    gx, gy = x.copy(), y.copy()
    result = call(answer, gx, gy, what=what)
    expect(
        np.array_equal(gx, x) and np.array_equal(gy, y),
        f"{where} changed the samples it was given (x.sort() sorts in place); use np.sort(x)",
    )
    if hasattr(result, "statistic"):
        raise CheckFailed(
            f"{where} returned a whole test result ({type(result).__name__}); return the statistic "
            "D as one number, computed from the two empirical CDFs yourself"
        )
    got = as_tensor(result, where)
    expect(
        got.numel() == 1,
        f"{where} returned {got.numel()} numbers (shape {tuple(got.shape)}); return one number, "
        "the largest gap between the two empirical CDFs",
    )
    got = got.reshape(())
    want = torch.tensor(_two_sample_reference(x, y), dtype=torch.float64)
    rtol = 1e-9
    if relative_error(got, want) <= rtol:
        return
    d_plus, d_minus = _one_sided(x, y)
    n, m = x.size, y.size
    xs = np.sort(x)
    mistakes = {
        f"{where} is one-sided: it is only the largest F_x - F_y. The statistic is the largest "
        "gap in either direction, max(D+, D-)": d_plus,
        f"{where} is one-sided: it is only the largest F_y - F_x. The statistic is the largest "
        "gap in either direction, max(D+, D-)": d_minus,
        f"{where} compares the CDFs only just after each jump of F_x (i/n); the gap can be "
        "largest just before a jump, where F_x is still (i-1)/n. Evaluating both empirical CDFs "
        "at every point of x and y covers both": np.max(
            np.abs(np.arange(1, n + 1) / n - _ecdf(y)(xs))
        ),
        f"{where} divides both counts by len(x); F_y(t) is the fraction of y's *own* {m} points "
        "at or below t": np.max(
            np.abs(
                np.searchsorted(xs, np.concatenate([x, y]), side="right") / n
                - np.searchsorted(np.sort(y), np.concatenate([x, y]), side="right") / n
            )
        ),
        f"{where} is a p-value, not the statistic D: return the largest vertical gap between "
        "the two empirical CDFs": stats.ks_2samp(x, y).pvalue,
    }
    if n == m:
        mistakes[
            f"{where} is the largest *horizontal* gap between the sorted samples (quantiles); KS "
            "measures the largest *vertical* gap between the two CDFs, sup_t |F_x(t) - F_y(t)|"
        ] = np.max(np.abs(xs - np.sort(y)))
    reject_named_mistake(got, want, mistakes, rtol)
    expect_close(
        got,
        want,
        where,
        rtol,
        hint="F_x(t) = (number of x_i <= t) / len(x); evaluate both CDFs at every point of x "
        "and y (np.searchsorted(np.sort(x), t, side='right')) and take the largest |difference|.",
    )
