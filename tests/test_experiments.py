"""Lesson 02's experiment helpers: MH chains, autocorrelation, the KS null law, rejection curves,
the detector widget and its callback. Fast: no GAN training (a tiny untrained G where needed)."""

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from scipy import stats

from toy_gan import experiments as ex
from toy_gan.anomaly import AnomalyDetector, make_source
from toy_gan.gan import Generator
from toy_gan.ks import critical_value, ks_batches
from toy_gan.sampling import metropolis_hastings


def test_one_chain_equals_library_metropolis_hastings():
    chains, rate = ex.metropolis_chains(1, 3000, step=2.4, seed=7)
    ref = metropolis_hastings(3000, step=2.4, burn_in=0, thin=1, seed=7)
    np.testing.assert_array_equal(chains[0], ref.x)
    assert rate == pytest.approx(ref.acceptance_rate)


def test_chains_target_normal_and_smaller_steps_correlate_more():
    x, rate = ex.metropolis_chains(200, 300, step=2.4, seed=0)
    assert x.shape == (200, 300)
    assert 0.35 < rate < 0.55  # ~0.44 for the near-optimal step on N(0, 1)
    assert stats.kstest(x[:, -1], "norm").pvalue > 1e-3  # the chains' last states are N(0, 1)
    small, _ = ex.metropolis_chains(1, 20_000, step=0.3, seed=1)
    good, _ = ex.metropolis_chains(1, 20_000, step=2.4, seed=1)
    assert ex.autocorrelation(small[0], 1)[1] > ex.autocorrelation(good[0], 1)[1] > 0.3
    assert ex.effective_sample_size(small[0]) < ex.effective_sample_size(good[0]) < 20_000


def test_autocorrelation_matches_corrcoef_and_white_noise_ess():
    rng = np.random.default_rng(0)
    x = np.cumsum(rng.normal(size=5000)) * 0.05 + rng.normal(size=5000)
    rho = ex.autocorrelation(x, 5)
    assert rho[0] == pytest.approx(1.0)
    xc = x - x.mean()
    for k in range(1, 6):  # the FFT gives the lagged sums of products
        assert rho[k] == pytest.approx(np.dot(xc[:-k], xc[k:]) / np.dot(xc, xc), abs=1e-10)
        assert rho[k] == pytest.approx(np.corrcoef(x[:-k], x[k:])[0, 1], abs=0.02)
    iid = rng.normal(size=20_000)
    assert ex.effective_sample_size(iid) == pytest.approx(20_000, rel=0.1)
    with pytest.raises(ValueError):
        ex.autocorrelation(x, 5000)


def test_null_distribution_is_kstwo_and_distribution_free():
    n = 50
    d_norm = ex.null_distribution(n, trials=4000, seed=0)
    d_exp = ex.null_distribution(n, trials=4000, seed=1, dist=stats.expon)
    assert d_norm.shape == (4000,)
    q = [0.1, 0.5, 0.9, 0.95]
    expected = stats.kstwo(n).ppf(q)  # the exact null law's quantiles
    np.testing.assert_allclose(np.quantile(d_norm, q), expected, rtol=0.04)
    np.testing.assert_allclose(np.quantile(d_exp, q), expected, rtol=0.04)
    # chunking changes nothing
    np.testing.assert_array_equal(
        ex.null_distribution(n, 300, seed=2), ex.null_distribution(n, 300, seed=2, chunk=n * 7)
    )


def test_ideal_detector_false_alarms_at_alpha_and_power_grows():
    det = ex.IdealDetector(alpha=0.05)
    sources = [make_source("uniform"), ex.drifted_source("beta", 0.3)]
    rates = ex.rejection_curves(det, sources, [20, 2000], batches=600, seed=0)
    assert list(rates) == ["uniform(0,1)", "beta(1,1.3)"]
    assert np.all(np.abs(rates["uniform(0,1)"] - 0.05) < 0.03)
    power = rates["beta(1,1.3)"]
    assert power[0] < 0.3 and power[1] > 0.99


def test_rejection_curves_fair_comparison_and_chunking():
    det = ex.IdealDetector(alpha=0.1)
    src = [ex.drifted_source("uniform", 0.1)]
    a = ex.rejection_curves(det, src, [30, 300], batches=50, seed=3)
    b = ex.rejection_curves(det, src, [30, 300], batches=50, seed=3)
    np.testing.assert_array_equal(a["uniform(0,0.9)"], b["uniform(0,0.9)"])
    rng1, rng2 = np.random.default_rng(0), np.random.default_rng(0)
    d1 = ex.statistics(det, src[0], 100, 37, rng1)
    d2 = ex.statistics(det, src[0], 100, 37, rng2, chunk=500)
    np.testing.assert_allclose(d1, d2)
    # flagging by the critical value is the same decision as p < alpha
    u = np.random.default_rng(5).random((400, 40))
    d, p = ks_batches(det.transform(u), det.cdf)
    np.testing.assert_array_equal(d > critical_value(40, 0.1), p < 0.1)
    np.testing.assert_allclose(ex.ks_statistics(det.transform(u), det.cdf), d)
    with pytest.raises(ValueError):
        ex.rejection_curves(det, src, [0], batches=5)


def test_generator_detector_works_in_rejection_curves():
    torch.manual_seed(0)
    g = Generator()  # untrained: far from N(0, 1), so the healthy source is always flagged
    rates = ex.rejection_curves(AnomalyDetector(g), [make_source("uniform")], [200], batches=20)
    assert rates["uniform(0,1)"][0] == 1.0
    calibrated = AnomalyDetector(g, reference="generator")
    rates = ex.rejection_curves(calibrated, [make_source("uniform")], [200], batches=300)
    assert abs(rates["uniform(0,1)"][0] - 0.05) < 0.04


def test_drifted_source():
    assert ex.drifted_source("beta", 0.0).healthy is False  # beta(1,1) is uniform in law only
    assert ex.drifted_source("uniform", 0.0).healthy
    assert ex.drifted_source("uniform", 0.25).params == {"low": 0.0, "high": 0.75}
    assert ex.drifted_source("beta", 0.5).label == "beta(1,1.5)"
    for kind, drift in (("uniform", 1.0), ("beta", -0.1), ("gamma", 0.1)):
        with pytest.raises(ValueError):
            ex.drifted_source(kind, drift)


@pytest.mark.parametrize("generator", [None, "untrained"])
def test_explore_detector_returns_a_figure(generator):
    g = Generator() if generator else None
    fig = ex.explore_detector("uniform", 0.3, n=50, alpha=0.05, generator=g, batches=30)
    assert isinstance(fig, Figure) and len(fig.axes) == 3
    assert "flagged" in fig.axes[2].get_title()


def test_detector_widget_builds_and_runs_the_callback():
    pytest.importorskip("ipywidgets")
    widget = ex.detector_widget(batches=20)
    names = {getattr(c, "description", "") for c in widget.children}
    assert {"source", "drift", "sample size n", "alpha"} <= names
    assert isinstance(widget.result, Figure)
