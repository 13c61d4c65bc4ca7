"""The Kolmogorov-Smirnov test, by hand and through SciPy, and rejection rates (lesson 02).

The one-sample KS statistic is the largest vertical gap between the empirical CDF of the sample
and the CDF F of the hypothesised law:

    D_n = sup_x |F_n(x) - F(x)| = max_i max(i/n - F(x_(i)), F(x_(i)) - (i-1)/n)

Under H0 ("the sample comes from F") the law of D_n does not depend on F; its upper tail is the
p-value (``scipy.stats.kstwo``, exact for continuous F).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import stats

CDF = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class KSResult:
    """Outcome of one KS test."""

    statistic: float  # D_n
    pvalue: float
    n: int

    def rejects(self, alpha: float) -> bool:
        """True when H0 is rejected at level ``alpha`` (p < alpha)."""
        return self.pvalue < alpha


def ks_statistic(sample: np.ndarray, cdf: CDF = stats.norm.cdf) -> float:
    """D_n computed by hand from the sorted sample (equals ``scipy.stats.kstest``'s statistic)."""
    x = np.sort(np.asarray(sample, dtype=np.float64).ravel())
    n = x.size
    if n == 0:
        raise ValueError("the KS test needs at least one sample")
    f = cdf(x)
    i = np.arange(1, n + 1)
    d_plus = np.max(i / n - f)  # ECDF above F just after a jump
    d_minus = np.max(f - (i - 1) / n)  # F above the ECDF just before a jump
    return float(max(d_plus, d_minus))


def ks_pvalue(statistic: float | np.ndarray, n: int) -> float | np.ndarray:
    """P(D_n >= d) under H0: the exact KS distribution for sample size ``n``."""
    return stats.kstwo.sf(statistic, n)


def ks_test(sample: np.ndarray, cdf: CDF = stats.norm.cdf) -> KSResult:
    """One-sample KS test of ``sample`` against ``cdf`` (default N(0, 1))."""
    sample = np.asarray(sample).ravel()
    d = ks_statistic(sample, cdf)
    return KSResult(d, float(ks_pvalue(d, sample.size)), sample.size)


def ks_statistics(samples: np.ndarray, cdf: CDF = stats.norm.cdf) -> np.ndarray:
    """D_n of each row of a (batches, n) array, vectorised (no p-values).

    Deciding "p < alpha" needs only D_n > :func:`critical_value`, one number per n, which is
    much cheaper than an exact p-value per batch.
    """
    x = np.sort(np.asarray(samples, dtype=np.float64), axis=1)  # (batches, n)
    n = x.shape[1]
    f = cdf(x)
    i = np.arange(1, n + 1)
    return np.maximum(np.max(i / n - f, axis=1), np.max(f - (i - 1) / n, axis=1))


def ks_batches(samples: np.ndarray, cdf: CDF = stats.norm.cdf) -> tuple[np.ndarray, np.ndarray]:
    """KS statistics and p-values for each row of a (batches, n) array, vectorised."""
    d = ks_statistics(samples, cdf)
    return d, ks_pvalue(d, np.shape(samples)[1])


def critical_value(n: int, alpha: float) -> float:
    """The D_n above which the KS test rejects at level ``alpha``."""
    return float(stats.kstwo.isf(alpha, n))


def rejection_rate(
    draw: Callable[[np.random.Generator, int, int], np.ndarray],
    n: int,
    alpha: float = 0.05,
    batches: int = 1000,
    cdf: CDF = stats.norm.cdf,
    seed: int | np.random.Generator | None = 0,
) -> float:
    """Fraction of ``batches`` samples of size ``n`` for which the KS test rejects at ``alpha``.

    ``draw(rng, batches, n)`` returns a (batches, n) array. When the samples come from ``cdf``
    this estimates the false-alarm rate (about ``alpha``); otherwise the test's power.
    """
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    _, p = ks_batches(draw(rng, batches, n), cdf)
    return float(np.mean(p < alpha))
