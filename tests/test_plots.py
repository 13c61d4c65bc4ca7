"""The lesson figures draw without error, including for a collapsed generator."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
from scipy import stats

from toy_gan import plots
from toy_gan.gan import train_gan


@pytest.fixture(scope="module")
def short_run():
    return train_gan(steps=40, seed=0)


def test_optimal_discriminator_is_one_half_when_g_equals_data():
    x = np.linspace(-2, 2, 9)
    d = plots.optimal_discriminator(x, np.random.default_rng(0).normal(size=200_000))
    np.testing.assert_allclose(d, 0.5, atol=0.02)


def test_optimal_discriminator_for_a_collapsed_generator():
    x = np.array([-1.0, 0.3, 2.0])
    np.testing.assert_array_equal(plots.optimal_discriminator(x, np.full(100, 0.3)), [1, 0, 1])


def test_training_figure_and_snapshots(short_run):
    fig = plots.training_figure(short_run)
    assert len(fig.axes) == 4
    rec = plots.SnapshotRecorder(n=500)
    train_gan(steps=20, seed=0, callback=rec, callback_every=10)
    assert sorted(rec.snapshots) == [10, 20]
    assert len(plots.plot_snapshots(rec.snapshots).axes) == 2
    plt.close("all")


def test_plot_ks_marks_the_statistic():
    sample = np.random.default_rng(1).normal(size=40)
    fig = plots.plot_ks(sample)
    label = [t.get_text() for t in fig.axes[0].get_legend().get_texts()][-1]
    assert label == f"D = {stats.kstest(sample, 'norm').statistic:.3f}"
    plt.close("all")
