"""Classical samplers, tested statistically with fixed seeds (deterministic, not flaky)."""

import numpy as np
import pytest
from scipy import special, stats

from toy_gan import sampling


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_inverse_transform_is_normal(seed):
    s = sampling.inverse_transform(4000, seed=seed)
    # 1% critical value of D_4000 is about 0.0257: a correct sampler passes for almost all seeds.
    assert stats.kstest(s.x, "norm").statistic < 0.0257
    assert s.acceptance_rate == 1.0


def test_inverse_transform_other_law():
    s = sampling.inverse_transform(4000, ppf=stats.expon.ppf, seed=0)
    assert stats.kstest(s.x, "expon").pvalue > 0.01
    assert stats.kstest(s.x, "norm").pvalue < 1e-6  # and it is not a normal


def test_inverse_transform_is_phi_inverse_of_the_same_uniforms():
    u = np.random.default_rng(5).random(10)
    np.testing.assert_allclose(sampling.inverse_transform(10, seed=5).x, special.ndtri(u))


@pytest.mark.parametrize(
    "proposal, bound",
    [("laplace", np.sqrt(2 * np.e / np.pi)), ("cauchy", np.sqrt(2 * np.pi / np.e))],
)
def test_accept_reject(proposal, bound):
    s = sampling.accept_reject(20_000, proposal=proposal, seed=0)
    assert len(s.x) == 20_000
    assert stats.kstest(s.x, "norm").pvalue > 0.01
    # acceptance probability is 1/M; binomial standard error at ~25k proposals is ~0.003
    assert s.acceptance_rate == pytest.approx(1 / bound, abs=0.01)


def test_accept_reject_bound_is_the_true_supremum():
    x = np.linspace(-10, 10, 200_001)
    ratio = sampling.normal_pdf(x) / (0.5 * np.exp(-np.abs(x)))
    assert ratio.max() == pytest.approx(sampling.LAPLACE_BOUND, rel=1e-6)


def test_accept_reject_with_a_too_small_bound_is_biased():
    # M < sup f/g breaks the method: the result is visibly not normal (the test can fail).
    s = sampling.accept_reject(20_000, bound=0.5, seed=0)
    assert stats.kstest(s.x, "norm").pvalue < 1e-4


def test_metropolis_hastings_reaches_the_target():
    s = sampling.metropolis_hastings(5000, seed=0)
    assert stats.kstest(s.x, "norm").pvalue > 0.01
    assert 0.3 < s.acceptance_rate < 0.6  # ~0.44 is the textbook value for step 2.4


def test_metropolis_hastings_thinning_reduces_autocorrelation():
    def lag1(x):
        x = x - x.mean()
        return float(np.dot(x[:-1], x[1:]) / np.dot(x, x))

    raw = sampling.metropolis_hastings(20_000, thin=1, seed=0).x
    thinned = sampling.metropolis_hastings(20_000, thin=10, seed=0).x
    assert lag1(raw) > 0.4 and abs(lag1(thinned)) < 0.05


def test_metropolis_hastings_with_unnormalised_target():
    # MH needs the density only up to a constant: a shifted log-density gives the same chain.
    a = sampling.metropolis_hastings(500, seed=3).x
    b = sampling.metropolis_hastings(500, log_target=lambda x: -0.5 * x**2 + 17.0, seed=3).x
    np.testing.assert_allclose(a, b)


def test_bad_arguments():
    with pytest.raises(ValueError, match="proposal"):
        sampling.accept_reject(10, proposal="gauss")
    with pytest.raises(ValueError, match="step"):
        sampling.metropolis_hastings(10, step=0)
