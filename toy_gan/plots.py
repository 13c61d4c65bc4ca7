"""Figures for lessons 01-02 and the anomaly CLI (matplotlib only, no global state).

Every function takes what it draws as arguments and returns the figure, so that notebooks,
widgets and tests call the same code. ``LiveView`` and ``SnapshotRecorder`` are callbacks for
``train_gan(callback=...)``.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from scipy import special, stats

from toy_gan.gan import Generator, History, TrainResult, generate
from toy_gan.ks import ks_statistic

LOG4 = float(np.log(4.0))


def _axes(ax, figsize=(5, 3.5)):
    if ax is not None:
        return ax.figure, ax
    fig, ax = plt.subplots(figsize=figsize)
    return fig, ax


def plot_density(samples: np.ndarray, ax=None, title: str | None = None, bins: int = 40):
    """Histogram of samples (as a density) over the N(0, 1) target density."""
    fig, ax = _axes(ax)
    samples = np.asarray(samples).ravel()
    lo, hi = min(-4.0, float(samples.min())), max(4.0, float(samples.max()))
    ax.hist(
        samples,
        bins=bins,
        range=(lo, hi),
        density=True,
        alpha=0.6,
        color="tab:orange",
        label="samples",
    )
    grid = np.linspace(lo, hi, 400)
    ax.plot(grid, stats.norm.pdf(grid), "k-", lw=1.5, label="N(0,1)")
    ax.set_xlabel("x")
    ax.set_ylabel("density")
    ax.legend(loc="upper right", fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    return fig


def plot_quantile_map(generator: Generator, ax=None):
    """The learned map G(u) against the true quantile function Phi^{-1}(u).

    A perfect generator for N(0, 1) *is* Phi^{-1} (inverse transform sampling), or its mirror
    image Phi^{-1}(1 - u): both give the same distribution.
    """
    fig, ax = _axes(ax)
    u = np.linspace(0.001, 0.999, 500)
    ax.plot(u, special.ndtri(u), "k-", lw=1.5, label=r"$\Phi^{-1}(u)$")
    ax.plot(
        u,
        generate(generator, len(u), noise=torch.from_numpy(u)),
        color="tab:orange",
        lw=2,
        label="G(u)",
    )
    ax.set_xlabel("u ~ U(0, 1)")
    ax.set_ylabel("x")
    ax.set_ylim(-4, 4)
    ax.legend(fontsize=8)
    ax.set_title("the generator as a distribution transformer", fontsize=10)
    return fig


def optimal_discriminator(x: np.ndarray, generated: np.ndarray) -> np.ndarray:
    """D*(x) = p_data(x) / (p_data(x) + p_g(x)) (Goodfellow et al. 2014, Prop. 1).

    p_data is the N(0, 1) density; p_g is estimated from generated samples by a Gaussian kernel
    density estimate. D* = 1/2 everywhere exactly when p_g = p_data.
    """
    p_data = stats.norm.pdf(x)
    generated = np.asarray(generated, dtype=np.float64).ravel()
    if generated.std() < 1e-9:  # G collapsed to one point: p_g is a spike, so D* = 1 elsewhere
        return np.where(np.abs(x - generated.mean()) < 1e-6, 0.0, 1.0)
    p_g = stats.gaussian_kde(generated)(x)
    return p_data / np.maximum(p_data + p_g, 1e-12)


def plot_discriminator(result: TrainResult, ax=None, n: int = 5000):
    """D(x) of the trained discriminator against the optimal D* for the current generator."""
    fig, ax = _axes(ax)
    x = np.linspace(-4, 4, 400)
    with torch.no_grad():
        d = torch.sigmoid(result.discriminator(torch.from_numpy(x).float()[:, None]))
    ax.plot(x, d.squeeze(1).numpy(), color="tab:blue", lw=2, label="D(x)")
    ax.plot(
        x,
        optimal_discriminator(x, result.sample(n, seed=0)),
        "k--",
        lw=1.2,
        label=r"$D^*=p_{data}/(p_{data}+p_g)$",
    )
    ax.axhline(0.5, color="gray", lw=0.8, ls=":")
    ax.set_ylim(0, 1)
    ax.set_xlabel("x")
    ax.set_ylabel("P(real)")
    ax.legend(fontsize=8, loc="lower center")
    return fig


def plot_losses(history: History, ax=None, smooth: int = 25):
    """Discriminator and generator losses and V(G, D), with V = -log 4 at the equilibrium."""
    fig, ax = _axes(ax)

    def run_mean(v):
        v = np.asarray(v)
        k = max(1, min(smooth, len(v)))
        return np.convolve(v, np.ones(k) / k, mode="valid")

    steps = np.asarray(history.step)
    for values, label in (
        (history.loss_d, "D loss (= -V)"),
        (history.loss_g, "G loss"),
        (history.value, "V(G, D)"),
    ):
        y = run_mean(values)
        ax.plot(steps[len(steps) - len(y) :], y, label=label, lw=1.2)
    ax.axhline(-LOG4, color="gray", ls=":", lw=1)
    ax.axhline(LOG4, color="gray", ls=":", lw=1)
    ax.text(steps[-1] if len(steps) else 0, -LOG4, " -log 4", va="center", fontsize=8)
    ax.set_xlabel("step")
    ax.legend(fontsize=8)
    return fig


def training_figure(result: TrainResult, step: int | None = None):
    """The lesson's four-panel view: G's output vs N(0,1), G(u) vs Phi^{-1}, D vs D*, losses."""
    fig, axes = plt.subplots(1, 4, figsize=(17, 3.6))
    samples = result.sample(5000, seed=0)
    ks = ks_statistic(samples)
    step = step if step is not None else (result.history.step[-1] if result.history.step else 0)
    plot_density(samples, axes[0], title=f"G's output at step {step} (KS D = {ks:.3f})")
    plot_quantile_map(result.generator, axes[1])
    plot_discriminator(result, axes[2])
    axes[2].set_title("discriminator vs the optimal one", fontsize=10)
    if result.history.step:
        plot_losses(result.history, axes[3])
    axes[3].set_title("losses", fontsize=10)
    fig.tight_layout()
    return fig


class LiveView:
    """``train_gan(callback=LiveView())`` redraws :func:`training_figure` in a notebook."""

    def __init__(self) -> None:
        self.handle = None

    def __call__(self, step: int, result: TrainResult) -> None:
        from IPython.display import display

        fig = training_figure(result, step)
        if self.handle is None:
            self.handle = display(fig, display_id=True)
        else:
            self.handle.update(fig)
        plt.close(fig)


class SnapshotRecorder:
    """Callback that keeps samples of G's output at each call, for :func:`plot_snapshots`."""

    def __init__(self, n: int = 2000) -> None:
        self.n = n
        self.snapshots: dict[int, np.ndarray] = {}

    def __call__(self, step: int, result: TrainResult) -> None:
        self.snapshots[step] = result.sample(self.n, seed=0)


def plot_snapshots(snapshots: dict[int, np.ndarray], max_panels: int = 6):
    """Histograms of G's output as training proceeds, one panel per recorded step."""
    steps = sorted(snapshots)
    if len(steps) > max_panels:
        idx = np.linspace(0, len(steps) - 1, max_panels).round().astype(int)
        steps = [steps[i] for i in idx]
    fig, axes = plt.subplots(1, len(steps), figsize=(3.2 * len(steps), 2.8), sharey=True)
    axes = np.atleast_1d(axes)
    for ax, step in zip(axes, steps, strict=True):
        plot_density(snapshots[step], ax, title=f"step {step}")
        ax.get_legend().remove()
        ax.set_ylim(0, 0.8)
    fig.tight_layout()
    return fig


def plot_ks(
    sample: np.ndarray,
    cdf=stats.norm.cdf,
    ax=None,
    title: str | None = None,
    cdf_label: str = "N(0,1) CDF",
):
    """The empirical CDF against the hypothesised CDF, with the KS statistic D marked."""
    fig, ax = _axes(ax)
    x = np.sort(np.asarray(sample).ravel())
    n = len(x)
    grid = np.linspace(min(-4.0, x[0]), max(4.0, x[-1]), 500)
    ax.step(
        np.concatenate([[grid[0]], x, [grid[-1]]]),
        np.concatenate([[0.0], np.arange(1, n + 1) / n, [1.0]]),
        where="post",
        color="tab:orange",
        label=f"empirical CDF (n={n})",
    )
    ax.plot(grid, cdf(grid), "k-", lw=1.2, label=cdf_label)
    f = cdf(x)
    above, below = np.arange(1, n + 1) / n - f, f - np.arange(n) / n
    if above.max() >= below.max():
        i = int(above.argmax())
        y0, y1 = f[i], (i + 1) / n
    else:
        i = int(below.argmax())
        y0, y1 = i / n, f[i]
    ax.vlines(x[i], y0, y1, color="tab:red", lw=2.5, label=f"D = {abs(y1 - y0):.3f}")
    ax.set_xlabel("x")
    ax.set_ylabel("P(X <= x)")
    ax.legend(fontsize=8, loc="upper left")
    if title:
        ax.set_title(title, fontsize=10)
    return fig


def anomaly_figure(report, path: str | Path | None = None):
    """One histogram of G(batch) per tested source (D and p in the title) and the p-values over
    all batches; written to ``path`` as PNG when given."""
    labels = [r.source for r in report.results]
    fig, axes = plt.subplots(1, len(labels) + 1, figsize=(4.3 * (len(labels) + 1), 3.4))
    for ax, r in zip(axes, report.results, strict=False):
        verdict = "ANOMALY" if r.anomaly else "normal"
        plot_density(
            report.samples[r.source],
            ax,
            bins=20,
            title=f"G({r.source}), n={r.n}\nD={r.ks_statistic:.3f}, p={r.p_value:.3g}: {verdict}",
        )
    ax = axes[-1]
    bins = np.linspace(0, 1, 21)
    for r in report.results:
        ax.hist(
            report.pvalues[r.source],
            bins=bins,
            alpha=0.55,
            label=f"{r.source}: {100 * r.flag_rate:.1f}% flagged",
        )
    ax.axvline(report.alpha, color="k", ls="--", lw=1)
    ax.set_xlabel("p-value")
    ax.set_ylabel("batches")
    ax.set_title(f"p-values over {report.batches} batches (alpha={report.alpha:g})", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    if path is not None:
        path = Path(path)
        if path.parent != Path():
            path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110)
    return fig


def plot_rejection_curves(sizes, rates: dict[str, np.ndarray], alpha: float, ax=None):
    """Flag rate against sample size, one line per source (false alarms and power)."""
    fig, ax = _axes(ax, figsize=(6, 3.8))
    for label, r in rates.items():
        ax.plot(sizes, r, "o-", label=label)
    ax.axhline(alpha, color="k", ls="--", lw=1, label=f"alpha = {alpha:g}")
    ax.set_xscale("log")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("sample size n")
    ax.set_ylabel("fraction of batches flagged")
    ax.legend(fontsize=8)
    return fig
