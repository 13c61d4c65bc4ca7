"""KS statistic by hand vs SciPy; the null distribution; rejection rates."""

import numpy as np
import pytest
from scipy import stats

from toy_gan import ks


@pytest.mark.parametrize("n", [1, 5, 100, 1000])
def test_statistic_and_pvalue_equal_scipy(n):
    x = np.random.default_rng(n).normal(0.2, 1.1, n)
    ours = ks.ks_test(x)
    ref = stats.kstest(x, "norm", method="exact")
    assert ours.statistic == pytest.approx(ref.statistic, abs=1e-12)
    assert ours.pvalue == pytest.approx(ref.pvalue, rel=1e-6)
    assert ours.n == n


def test_statistic_with_other_cdf():
    x = np.random.default_rng(0).exponential(size=300)
    assert ks.ks_statistic(x, stats.expon.cdf) == pytest.approx(
        stats.kstest(x, "expon").statistic, abs=1e-12
    )


def test_batches_equal_single_tests():
    x = np.random.default_rng(1).normal(size=(20, 50))
    d, p = ks.ks_batches(x)
    for row, di, pi in zip(x, d, p, strict=True):
        ref = ks.ks_test(row)
        assert di == pytest.approx(ref.statistic) and pi == pytest.approx(ref.pvalue)


def test_false_alarm_rate_is_alpha_and_power_grows():
    def normal(rng, b, n):
        return rng.normal(size=(b, n))

    def shifted(rng, b, n):
        return rng.normal(0.3, 1.0, size=(b, n))

    rate = ks.rejection_rate(normal, n=100, alpha=0.05, batches=4000, seed=0)
    assert rate == pytest.approx(0.05, abs=0.012)  # 3.5 binomial standard errors
    powers = [ks.rejection_rate(shifted, n=n, batches=500, seed=0) for n in (20, 100, 500)]
    assert powers[0] < powers[1] < powers[2] and powers[2] > 0.99


def test_critical_value():
    assert ks.critical_value(100, 0.05) == pytest.approx(0.134, abs=1e-3)
    assert stats.kstwo.sf(ks.critical_value(100, 0.05), 100) == pytest.approx(0.05)


def test_rejects_and_empty():
    assert ks.KSResult(0.5, 0.01, 10).rejects(0.05)
    assert not ks.KSResult(0.1, 0.5, 10).rejects(0.05)
    with pytest.raises(ValueError):
        ks.ks_statistic(np.array([]))
