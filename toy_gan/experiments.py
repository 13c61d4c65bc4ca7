"""Experiments behind lesson 02: MH chains and their autocorrelation, the KS null distribution,
rejection curves (false alarms and power against sample size and drift), and the detector widget.

Everything here is built on the other ``toy_gan`` modules and is what the lesson's plots and its
widget call, so that tests reach it too (introduced in lesson 02).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
from matplotlib.figure import Figure
from scipy import special, stats

from toy_gan.anomaly import AnomalyDetector, Source, make_source, typical_batch
from toy_gan.gan import Generator
from toy_gan.ks import CDF, critical_value, ks_batches, ks_statistics
from toy_gan.plots import plot_density
from toy_gan.sampling import normal_logpdf

# --- Metropolis-Hastings: many chains at once, and how correlated they are ----------------------


def metropolis_chains(
    chains: int, length: int, step: float = 2.4, x0: float = 0.0, seed: int = 0
) -> tuple[np.ndarray, float]:
    """``chains`` independent random-walk MH chains targeting N(0, 1), run side by side.

    The same rule as :func:`toy_gan.sampling.metropolis_hastings` (propose x' = x + step * z,
    accept when log u <= log f(x') - log f(x)), vectorised over chains and without burn-in or
    thinning: returns the raw ``(chains, length)`` array and the overall acceptance rate. With
    ``chains=1`` it reproduces ``metropolis_hastings(length, step=step, x0=x0, burn_in=0, thin=1,
    seed=seed)`` draw for draw (same random numbers, drawn in the same order).
    """
    if chains < 1 or length < 1:
        raise ValueError(f"chains and length must be positive, got {chains} and {length}")
    if step <= 0:
        raise ValueError(f"step must be positive, got {step}")
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal((length, chains)) * step  # (T, C)
    log_u = np.log(rng.random((length, chains)))  # (T, C)
    out = np.empty((length, chains))
    x = np.full(chains, float(x0))
    log_fx = normal_logpdf(x)
    accepted = 0
    for t in range(length):
        proposal = x + noise[t]
        log_fp = normal_logpdf(proposal)
        ok = log_u[t] <= log_fp - log_fx
        x = np.where(ok, proposal, x)
        log_fx = np.where(ok, log_fp, log_fx)
        accepted += int(ok.sum())
        out[t] = x
    return out.T.copy(), accepted / (length * chains)


def autocorrelation(x: np.ndarray, max_lag: int) -> np.ndarray:
    """Sample autocorrelation rho_k of a 1-D series for k = 0..max_lag (rho_0 = 1).

    rho_k = sum_t (x_t - m)(x_{t+k} - m) / sum_t (x_t - m)^2, the usual biased estimator
    (computed for all k at once with an FFT).
    """
    x = np.asarray(x, dtype=np.float64).ravel()
    if not 0 <= max_lag < x.size:
        raise ValueError(f"max_lag must be in [0, {x.size - 1}], got {max_lag}")
    x = x - x.mean()
    # All lagged sums at once: the autocovariance is the inverse FFT of the power spectrum
    # (zero-padded to 2n so that the sums do not wrap around).
    spectrum = np.fft.rfft(x, 2 * x.size)
    acov = np.fft.irfft(spectrum * np.conj(spectrum))[: max_lag + 1]
    if acov[0] <= 1e-12 * x.size:
        raise ValueError("the series is constant: its autocorrelation is undefined")
    return acov / acov[0]


def effective_sample_size(x: np.ndarray, max_lag: int | None = None) -> float:
    """n / (1 + 2 sum_k rho_k): how many independent draws the correlated series is worth.

    The sum runs over lags k >= 1 until the first rho_k <= 0 (beyond that the estimates are
    noise), at most ``max_lag`` (default n // 10).
    """
    x = np.asarray(x, dtype=np.float64).ravel()
    max_lag = min(max_lag or x.size // 10, x.size - 1)
    rho = autocorrelation(x, max_lag)[1:]
    stop = int(np.argmax(rho <= 0)) if np.any(rho <= 0) else rho.size
    return float(x.size / (1.0 + 2.0 * rho[:stop].sum()))


# --- the KS statistic under H0 -----------------------------------------------------------------


def null_distribution(
    n: int, trials: int = 10_000, seed: int = 0, dist=stats.norm, chunk: int = 1_000_000
) -> np.ndarray:
    """``trials`` values of D_n for samples of size ``n`` drawn from ``dist`` itself (H0 true).

    ``dist`` is a (frozen) SciPy distribution with ``rvs`` and ``cdf``. Because F(X) ~ U(0, 1)
    for any continuous F, the result has the same law whatever ``dist`` is: the KS test is
    distribution-free, and ``scipy.stats.kstwo(n)`` is that law.
    """
    if n < 1 or trials < 1:
        raise ValueError(f"n and trials must be positive, got {n} and {trials}")
    rng = np.random.default_rng(seed)
    rows = max(1, chunk // n)
    out = []
    for start in range(0, trials, rows):
        size = min(rows, trials - start)
        out.append(ks_statistics(dist.rvs(size=(size, n), random_state=rng), dist.cdf))
    return np.concatenate(out)


# --- detectors and rejection curves --------------------------------------------------------------


class Detector(Protocol):
    """What :func:`rejection_curves` needs: ``AnomalyDetector`` and ``IdealDetector`` have it."""

    alpha: float
    cdf: CDF

    def transform(self, u: np.ndarray) -> np.ndarray: ...


class IdealDetector:
    """The detector with a *perfect* generator, G = Phi^{-1} (inverse transform sampling).

    With it, only the statistics of the KS test are left: a healthy source is flagged in exactly
    alpha of the batches at every n. (Because KS is unchanged by a monotone map, testing
    Phi^{-1}(u) against N(0, 1) is the same as testing u against U(0, 1).)
    """

    reference = "normal"

    def __init__(self, alpha: float = 0.05) -> None:
        if not 0.0 < alpha < 1.0:
            raise ValueError(f"alpha must be in (0, 1), got {alpha}")
        self.alpha = alpha
        self.cdf: CDF = special.ndtr  # Phi, the N(0, 1) CDF (= scipy.stats.norm.cdf, faster)

    def transform(self, u: np.ndarray) -> np.ndarray:
        """Phi^{-1}(u), elementwise."""
        return special.ndtri(np.asarray(u, dtype=np.float64))


def statistics(
    detector: Detector,
    source: Source,
    n: int,
    batches: int,
    rng: np.random.Generator,
    chunk: int = 250_000,
) -> np.ndarray:
    """KS statistics D_n of ``batches`` batches of size ``n`` from ``source`` through ``detector``.

    Works through the batches in chunks of about ``chunk`` numbers to bound memory (G's hidden
    layer holds 50 floats per input).
    """
    rows = max(1, chunk // n)
    out = []
    for start in range(0, batches, rows):
        size = min(rows, batches - start)
        out.append(ks_statistics(detector.transform(source.draw(rng, (size, n))), detector.cdf))
    return np.concatenate(out)


def rejection_curves(
    detector: Detector,
    sources: Sequence[Source],
    sizes: Sequence[int],
    batches: int = 200,
    seed: int = 0,
    progress: bool = False,
) -> dict[str, np.ndarray]:
    """Fraction of batches flagged (p < ``detector.alpha``) for each source at each sample size.

    Returns ``{source.label: rates}`` with ``rates[j]`` the flag rate at ``sizes[j]``: the
    false-alarm rate for a healthy source, the power for a broken one. Batches for source k at
    size j come from ``default_rng([seed, k, j])``, so two detectors given the same arguments
    see the same noise (a fair comparison). Draw with ``toy_gan.plots.plot_rejection_curves``.
    """
    if batches < 1 or any(int(n) < 1 for n in sizes):
        raise ValueError("batches and every sample size must be positive")
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(sources) * len(sizes), desc="rejection curves", leave=False)
    rates: dict[str, np.ndarray] = {}
    for k, source in enumerate(sources):
        r = np.empty(len(sizes))
        for j, n in enumerate(sizes):
            rng = np.random.default_rng([seed, k, j])
            d = statistics(detector, source, int(n), batches, rng)
            r[j] = np.mean(d > critical_value(int(n), detector.alpha))  # same as p < alpha
            if bar is not None:
                bar.update(1)
        rates[source.label] = r
    if bar is not None:
        bar.close()
    return rates


def drifted_source(kind: str, drift: float) -> Source:
    """A source that drifts away from U(0, 1) by ``drift`` (0 = healthy).

    ``"beta"``: beta(1, 1 + drift), its density tilting towards 0; ``"uniform"``:
    uniform(0, 1 - drift), the top of the range going missing.
    """
    if kind == "beta":
        if drift < 0:
            raise ValueError(f"drift must be >= 0 for 'beta', got {drift}")
        return make_source("beta", a=1.0, b=1.0 + drift)
    if kind == "uniform":
        if not 0 <= drift < 1:
            raise ValueError(f"drift must be in [0, 1) for 'uniform', got {drift}")
        return make_source("uniform", low=0.0, high=1.0 - drift)
    raise ValueError(f"kind must be 'beta' or 'uniform', got {kind!r}")


# --- the widget ---------------------------------------------------------------------------------


def explore_detector(
    source: str = "beta",
    drift: float = 0.2,
    n: int = 100,
    alpha: float = 0.05,
    generator: Generator | None = None,
    reference: str = "normal",
    batches: int = 200,
    seed: int = 0,
) -> Figure:
    """The widget's callback: one drifted source (see :func:`drifted_source`) through a detector.

    Draws three panels: a batch of source outputs against the U(0, 1) density, G of that batch
    against N(0, 1) (D and p in the title), and the p-values over ``batches`` batches with the
    fraction flagged. ``generator=None`` uses the perfect generator Phi^{-1}
    (:class:`IdealDetector`); otherwise an ``AnomalyDetector`` with ``reference``. Returns a
    figure not registered with pyplot (nothing is shown twice or left open).
    """
    src = drifted_source(source, drift)
    if generator is None:
        detector: Detector = IdealDetector(alpha)
        g_name = r"$\Phi^{-1}$ (perfect G)"
    else:
        detector = AnomalyDetector(generator, alpha, reference)
        g_name = "G" if reference == "normal" else "G, calibrated"
    rng = np.random.default_rng(seed)
    u = src.draw(rng, (batches, n))  # (batches, n)
    x = detector.transform(u)
    d, p = ks_batches(x, detector.cdf)
    typical = typical_batch(p)
    flagged = float(np.mean(p < alpha))

    fig = Figure(figsize=(13, 3.6), layout="constrained")
    ax_u, ax_x, ax_p = fig.subplots(1, 3)
    ax_u.hist(u[typical], bins=20, range=(0, 1), density=True, color="tab:green", alpha=0.6)
    ax_u.axhline(1.0, color="k", lw=1.5, label="U(0,1)")
    grid = np.linspace(0.001, 0.999, 300)
    ax_u.plot(grid, source_pdf(src, grid), "--", color="tab:green", lw=1.5, label=src.label)
    ax_u.set_xlabel("u (source output)")
    ax_u.set_ylabel("density")
    ax_u.set_title(f"one batch from {src.label}, n={n}", fontsize=10)
    ax_u.legend(fontsize=8)
    verdict = "ANOMALY" if p[typical] < alpha else "normal"
    plot_density(
        x[typical],
        ax_x,
        bins=20,
        title=f"{g_name} of that batch\nD={d[typical]:.3f}, p={p[typical]:.3g}: {verdict}",
    )
    ax_p.hist(p, bins=np.linspace(0, 1, 21), color="tab:blue", alpha=0.7)
    ax_p.axvline(alpha, color="k", ls="--", lw=1, label=f"alpha = {alpha:g}")
    ax_p.set_xlabel("p-value")
    ax_p.set_ylabel("batches")
    kind = "false alarms" if src.healthy else "power"
    ax_p.set_title(
        f"{100 * flagged:.1f}% of {batches} batches flagged ({kind})",
        fontsize=10,
    )
    ax_p.legend(fontsize=8)
    return fig


def source_pdf(source: Source, u: np.ndarray) -> np.ndarray:
    """Density of a ``uniform`` or ``beta`` source at ``u`` (for the widget's first panel)."""
    p = source.params
    if source.name == "uniform":
        return stats.uniform.pdf(u, p["low"], p["high"] - p["low"])
    if source.name == "beta":
        return stats.beta.pdf(u, p["a"], p["b"])
    raise ValueError(f"no density for source {source.name!r}")


def detector_widget(generator: Generator | None = None, batches: int = 200):
    """An ``ipywidgets.interactive`` around :func:`explore_detector`: pick the source's kind,
    its drift, the sample size n and alpha (and, given a generator, the reference law)."""
    import ipywidgets as w

    style = {"description_width": "initial"}
    controls = {
        "source": w.Dropdown(options=["beta", "uniform"], value="beta", description="source"),
        "drift": w.FloatSlider(
            value=0.2, min=0.0, max=0.9, step=0.01, description="drift", continuous_update=False
        ),
        "n": w.SelectionSlider(
            options=[10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000],
            value=100,
            description="sample size n",
            style=style,
            continuous_update=False,
        ),
        "alpha": w.SelectionSlider(
            options=[0.001, 0.01, 0.05, 0.1, 0.2],
            value=0.05,
            description="alpha",
            continuous_update=False,
        ),
        "reference": w.Dropdown(options=["normal", "generator"], value="normal")
        if generator is not None
        else w.fixed("normal"),
        "generator": w.fixed(generator),
        "batches": w.fixed(batches),
        "seed": w.fixed(0),
    }
    return w.interactive(explore_detector, {"auto_display": True}, **controls)
