"""The 1-D GAN: shapes, losses, determinism, convergence over seeds, checkpoints."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import stats

from toy_gan.gan import (
    CheckpointError,
    Discriminator,
    GANConfig,
    Generator,
    discriminator_loss,
    generator_loss,
    load_generator,
    sample_data,
    save_generator,
    train_gan,
    value_function,
)


def test_architecture_matches_the_seed_experiment():
    g, d = Generator(), Discriminator()
    assert [m.out_features for m in g.net if isinstance(m, torch.nn.Linear)] == [50, 1]
    assert [m.out_features for m in d.net if isinstance(m, torch.nn.Linear)] == [128, 128, 1]
    # 1*50+50 + 50*1+1 = 151 ; 1*128+128 + 128*128+128 + 128+1 = 16897
    assert sum(p.numel() for p in g.parameters()) == 151
    assert sum(p.numel() for p in d.parameters()) == 16897
    assert g(torch.rand(7, 1)).shape == (7, 1)
    assert d(torch.randn(7, 1)).shape == (7, 1)


def test_losses_equal_their_definitions():
    torch.manual_seed(0)
    real, fake = torch.randn(64, 1) * 3, torch.randn(64, 1) * 3
    d_real, d_fake = torch.sigmoid(real), torch.sigmoid(fake)
    expected_d = -(torch.log(d_real).mean() + torch.log(1 - d_fake).mean())
    torch.testing.assert_close(discriminator_loss(real, fake), expected_d)
    torch.testing.assert_close(value_function(real, fake), -expected_d)
    torch.testing.assert_close(generator_loss(fake), -torch.log(d_fake).mean())
    torch.testing.assert_close(generator_loss(fake, "saturating"), torch.log(1 - d_fake).mean())
    bce = F.binary_cross_entropy_with_logits(real, torch.ones_like(real))
    bce = bce + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake))
    torch.testing.assert_close(discriminator_loss(real, fake), bce)


def test_value_is_minus_log4_when_d_is_one_half():
    zero = torch.zeros(10, 1)
    assert value_function(zero, zero).item() == pytest.approx(-np.log(4.0))


def test_losses_are_stable_for_confident_discriminators():
    huge = torch.full((4, 1), 1e4, requires_grad=True)
    for loss in (
        generator_loss(-huge),
        generator_loss(-huge, "saturating"),
        discriminator_loss(huge, -huge),
    ):
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(huge.grad).all()
        huge.grad = None


def test_saturating_gradient_vanishes_where_nonsaturating_does_not():
    # D confidently rejects the fake (logit -8): the saturating loss gives almost no signal.
    logit = torch.tensor([[-8.0]], requires_grad=True)
    generator_loss(logit, "saturating").backward()
    g_sat = logit.grad.abs().item()
    logit.grad = None
    generator_loss(logit, "nonsaturating").backward()
    assert g_sat < 1e-3 and logit.grad.abs().item() > 0.99


def test_training_is_deterministic_on_cpu():
    a = train_gan(steps=60, seed=3)
    b = train_gan(steps=60, seed=3)
    for pa, pb in zip(a.generator.parameters(), b.generator.parameters(), strict=True):
        assert torch.equal(pa, pb)
    assert a.history.loss_d == b.history.loss_d
    c = train_gan(steps=60, seed=4)
    assert not torch.equal(a.generator.net[0].weight, c.generator.net[0].weight)


def test_history_and_callback():
    calls = []
    result = train_gan(steps=30, callback=lambda step, r: calls.append(step), callback_every=10)
    assert calls == [10, 20, 30]
    assert len(result.history.step) == 30 and result.history.step[-1] == 30
    assert all(0 < v < 1 for v in result.history.d_real)


def test_unknown_override_names_the_valid_fields():
    with pytest.raises(TypeError, match="lr_g"):
        train_gan(lr=1e-3)
    with pytest.raises(ValueError, match="loss"):
        GANConfig(loss="wasserstein")
    with pytest.raises(ValueError, match="steps"):
        GANConfig(steps=0)


def test_observed_data_is_the_seed_sample():
    x = sample_data(1000, seed=0)
    assert x.shape == (1000, 1)
    assert torch.equal(x, sample_data(1000, seed=0))
    assert stats.kstest(x.squeeze(1).numpy(), "norm").pvalue > 1e-3


@pytest.fixture(scope="module")
def trained():
    """The default recipe on three seeds (the convergence claim, kept small for CI)."""
    return [train_gan(seed=seed) for seed in range(3)]


def test_recipe_converges_on_every_seed(trained):
    # The KS statistic of G's whole output law (200k draws, so sampling noise is negligible)
    # against N(0, 1). Bootstrap copies of the 1000 observed points reach 0.03-0.06 themselves
    # (bench/toy_gan_convergence.py), so 0.06 asks G to be as good as the data allow, on every seed.
    population = [stats.kstest(r.sample(200_000, seed=1), "norm").statistic for r in trained]
    assert max(population) < 0.06, population
    # And 1000 fresh samples, as in the issue: the KS statistic, not a lucky p-value.
    d1000 = [
        stats.kstest(r.sample(1000, seed=100 + i), "norm").statistic for i, r in enumerate(trained)
    ]
    assert np.median(d1000) < 0.05 and max(d1000) < 0.07, d1000


def test_recipe_matches_moments_and_tails(trained):
    # Measured on seeds 0-2: std 0.91-0.99, 1%/99% quantiles -1.9..-2.2 / 1.8..2.1 (N(0,1): +-2.33).
    # The tails are where a GAN trained on 1000 points is weakest (only ~10 observed points lie
    # beyond +-2.33, and the KS statistic hardly sees them); lesson 01 shows it. The bounds below
    # still fail for a generator that collapses, shifts or ignores the tails altogether.
    for r in trained:
        x = r.sample(100_000, seed=2)
        assert abs(x.mean()) < 0.1 and abs(x.std() - 1) < 0.12
        q = np.quantile(x, [0.01, 0.99])
        np.testing.assert_allclose(q, [-2.326, 2.326], atol=0.6)
        assert x.max() - x.min() > 3.5


def test_checkpoint_round_trip(tmp_path, trained):
    g = trained[0].generator
    path = save_generator(g, tmp_path / "sub" / "g.pt", trained[0].config)
    assert path.stat().st_size < 10_000
    loaded = load_generator(path)
    u = torch.rand(100, 1)
    with torch.no_grad():
        torch.testing.assert_close(loaded(u), g(u))
    # weights_only loading: the file holds only tensors and plain values
    payload = torch.load(path, weights_only=True)
    assert payload["kind"] == "toy_gan.generator" and payload["config"]["seed"] == 0


@pytest.mark.parametrize(
    "content, message",
    [(b"", "cannot read"), (b"not a checkpoint", "cannot read"), (None, "not a toy-GAN")],
)
def test_bad_checkpoints_are_refused_clearly(tmp_path, content, message):
    path = tmp_path / "bad.pt"
    if content is None:
        torch.save({"something": torch.zeros(2)}, path)
    else:
        path.write_bytes(content)
    with pytest.raises(CheckpointError, match=message):
        load_generator(path)
    with pytest.raises(CheckpointError, match="not found"):
        load_generator(tmp_path / "missing.pt")


def test_failed_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch, trained):
    path = save_generator(trained[0].generator, tmp_path / "g.pt")
    before = path.read_bytes()

    def disk_full(obj, f):
        f.write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(OSError, match="No space"):
        save_generator(trained[1].generator, path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.pt"]  # no temp file left
