"""Tests for srgan_edu.teach.pieces: lesson 07's layer tables, parameter parts, update checks,
the training loop's batch, one SRGAN step by hand against the loop, and the widget callbacks."""

from __future__ import annotations

import dataclasses
import math

import matplotlib.figure
import matplotlib.pyplot as plt
import pytest
import torch
from torch import nn

import srgan_edu.train as T
from srgan_edu.checkpoint import load_network
from srgan_edu.config import get_preset
from srgan_edu.losses import PerceptualLoss, discriminator_loss
from srgan_edu.models import (
    Discriminator,
    ResidualBlock,
    SRResNet,
    build_discriminator,
    build_generator,
    count_parameters,
)
from srgan_edu.teach import pieces as P

pytestmark = pytest.mark.usefixtures("one_thread", "close_figures")


def _smoke(**changes):
    base = dict(device="cpu", val_every=0, ckpt_every=0, sample_every=0)
    return dataclasses.replace(get_preset("smoke"), **{**base, **changes})


# ---------------------------------------------------------------------------- layer tables


def test_layer_table_of_the_paper_generator():
    G = SRResNet(seed=0)
    bn = G.blocks[0].body[1]
    before = bn.running_mean.clone()
    rows = P.layer_table(G, torch.rand(1, 3, 24, 24))
    assert rows[0].name == "head.0" and rows[0].out_shape == (1, 64, 24, 24)
    assert rows[-1].name == "tail" and rows[-1].out_shape == (1, 3, 96, 96)
    blocks = [r for r in rows if r.kind == "ResidualBlock"]
    assert len(blocks) == 16 and all(r.parameters == 74_048 for r in blocks)
    assert sum(r.parameters for r in rows) == count_parameters(G) == 1_548_547
    shuffles = [r.out_shape for r in rows if r.kind == "PixelShuffle"]
    assert shuffles == [(1, 64, 48, 48), (1, 64, 96, 96)]
    assert G.training  # the mode is restored
    assert torch.equal(bn.running_mean, before)  # eval mode: running statistics untouched


def test_layer_table_of_one_residual_block_and_collapse_by_name():
    block = ResidualBlock(64)
    rows = P.layer_table(block, torch.rand(1, 64, 6, 6), collapse=())
    assert [r.kind for r in rows] == ["Conv2d", "BatchNorm2d", "PReLU", "Conv2d", "BatchNorm2d"]
    assert [r.parameters for r in rows] == [36_864, 128, 64, 36_864, 128]
    G = SRResNet(n_blocks=3, channels=8, seed=0)
    rows = P.layer_table(G, torch.rand(1, 3, 5, 5), collapse=("blocks",))
    (blocks,) = [r for r in rows if r.name == "blocks"]
    assert blocks.parameters == count_parameters(G.blocks)
    assert blocks.detail == "3 residual blocks"


def test_layer_table_of_the_paper_discriminator_and_its_text():
    D = Discriminator(seed=0)
    rows = P.layer_table(D, torch.rand(2, 3, 96, 96) * 2 - 1)
    dense = [r for r in rows if r.kind == "Linear"]
    assert [r.parameters for r in dense] == [18_875_392, 1_025]
    assert dense[0].detail == "18432->1024"
    strided = [r.out_shape[-1] for r in rows if r.kind == "Conv2d"]
    assert strided == [96, 48, 48, 24, 24, 12, 12, 6]
    text = P.format_layer_table(rows, (2, 3, 96, 96))
    assert "23,563,649" in text.splitlines()[-1]
    assert text.splitlines()[1].startswith("input")


def test_architecture_shapes_on_the_meta_device():
    g_rows, d_rows = P.architecture_shapes(24)
    assert g_rows[-1].out_shape == (1, 3, 96, 96)
    assert sum(r.parameters for r in g_rows) == 1_548_547
    assert sum(r.parameters for r in d_rows) == 23_563_649
    _, d_rows = P.architecture_shapes(32)  # 128x128 HR: 512 x 8 x 8 inputs to the dense layer
    dense = next(r for r in d_rows if r.kind == "Linear")
    assert dense.parameters == 512 * 8 * 8 * 1024 + 1024
    g_rows, d_rows = P.architecture_shapes(10, scale=2)  # odd sizes: ceil(20 / 16) = 2
    assert g_rows[-1].out_shape == (1, 3, 20, 20)
    assert d_rows[-1].out_shape == (1, 1)
    with pytest.raises(ValueError, match="below 16"):
        P.architecture_shapes(3)


def test_explore_shapes_reports_both_networks_and_the_dense_share():
    text = P.explore_shapes(24, 4)
    assert "GENERATOR for a 24x24 LR input" in text
    assert "DISCRIMINATOR built for 96x96 HR images" in text
    assert "18,875,392 of 23,563,649 parameters (80.1%)" in text
    assert "1,548,547" in P.explore_shapes(40, 4)  # the generator's count does not change


# ---------------------------------------------------------------------------- parameters


@pytest.mark.parametrize(
    "make",
    [
        lambda: SRResNet(seed=0),
        lambda: SRResNet(scale=3, n_blocks=2, channels=8, upsampler="nearest", seed=0),
        lambda: Discriminator(seed=0),
        lambda: Discriminator(hr_size=32, channels=16, dense=64, seed=0),
        lambda: nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Linear(4, 2)),
    ],
    ids=["srresnet", "srresnet-x3-nearest", "discriminator", "small-discriminator", "other"],
)
def test_parameter_parts_add_up(make):
    model = make()
    parts = P.parameter_parts(model)
    assert sum(parts.values()) == count_parameters(model)
    assert all(v > 0 for v in parts.values())


def test_parameter_parts_labels_and_the_dense_layer():
    g = P.parameter_parts(SRResNet(seed=0))
    assert g["residual block 1"] == 74_048
    assert g["upsampling stage 2"] == 147_776
    assert list(g)[0].startswith("head") and list(g)[-1].startswith("tail")
    d = P.parameter_parts(Discriminator(seed=0))
    assert d["dense 18,432->1,024"] == 18_875_392
    assert d["conv 1: 3->64"] == 1_792  # the first conv has no BatchNorm
    assert d["conv 8: 512->512 + BN"] == 2_359_296 + 1_024


def test_plot_parameter_parts_draws_one_panel_per_model():
    fig = P.plot_parameter_parts({"G": SRResNet(n_blocks=2, seed=0), "D": Discriminator(seed=0)})
    assert isinstance(fig, matplotlib.figure.Figure)
    assert len(fig.axes) == 2
    assert "23,563,649" in fig.axes[1].get_title()


# ---------------------------------------------------------------------------- updates


def test_snapshot_and_changed_see_exactly_the_touched_tensors():
    model = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    before = P.snapshot(model)
    assert P.changed(before, model) == []
    with torch.no_grad():
        model[0].bias[1] += 1e-7
    assert P.changed(before, model) == ["0.bias"]
    buffers = P.snapshot(model, "buffers")
    model(torch.randn(4, 3))  # training mode: running statistics move
    assert set(P.changed(buffers, model, "buffers")) >= {"1.running_mean", "1.running_var"}
    with pytest.raises(ValueError, match="does not belong"):
        P.changed(before, nn.Linear(3, 2))
    with pytest.raises(ValueError, match="parameters' or 'buffers"):
        P.snapshot(model, "grads")


# ---------------------------------------------------------------------------- the loop's batch


def test_loop_batch_is_the_batch_the_training_loop_draws(monkeypatch, tmp_path):
    config = _smoke(phase="srresnet", srresnet_steps=2)
    seen = []
    original = T.make_batch

    def spy(*args, **kwargs):
        out = original(*args, **kwargs)
        seen.append(out)
        return out

    monkeypatch.setattr(T, "make_batch", spy)
    T.train(config, tmp_path / "run", progress=False)
    assert len(seen) == 2
    for step, (lr_loop, hr_loop) in enumerate(seen):
        lr, hr = P.loop_batch(config, step)
        assert lr.shape == (4, 3, 8, 8) and hr.shape == (4, 3, 32, 32)
        assert torch.equal(lr, lr_loop) and torch.equal(hr, hr_loop)
    assert not torch.equal(P.loop_batch(config, 0)[1], P.loop_batch(config, 1)[1])


def test_one_srgan_step_by_hand_equals_the_training_loop(tmp_path):
    """The lesson's central claim: D step then G step, done by hand, gives the loop's weights."""
    T.train(_smoke(phase="srresnet", srresnet_steps=2), tmp_path / "p1", progress=False)
    init = tmp_path / "p1" / "srresnet.pt"
    config = _smoke(phase="srgan", srgan_steps=1)

    G = build_generator(config.scale, config.n_blocks, config.channels, seed=config.seed)
    G.load_state_dict(load_network(init).state_dict())
    D = build_discriminator(config.hr_crop, config.d_channels, config.d_dense, seed=config.seed + 1)
    betas = (config.beta1, config.beta2)
    opt_g = torch.optim.Adam(G.parameters(), lr=config.lr, betas=betas)
    opt_d = torch.optim.Adam(D.parameters(), lr=config.lr, betas=betas)
    loss = PerceptualLoss(config.content, config.adv_weight, weights=None, seed=config.seed)
    lr, hr = P.loop_batch(config, 0)

    g0, d0 = P.snapshot(G), P.snapshot(D)
    sr = G(lr)
    loss_d = discriminator_loss(D(hr), D(sr.detach()))
    opt_d.zero_grad()
    loss_d.backward()
    opt_d.step()
    assert P.changed(g0, G) == [] and len(P.changed(d0, D)) == len(d0)
    g1, d1 = P.snapshot(G), P.snapshot(D)
    D.requires_grad_(False)
    parts = loss(sr, hr, D(sr))
    opt_g.zero_grad()
    parts.total.backward()
    opt_g.step()
    D.requires_grad_(True)
    assert P.changed(d1, D) == [] and len(P.changed(g1, G)) == len(g1)

    result = T.train(config, tmp_path / "p2", init=init, progress=False)
    loop_d = load_network(result.checkpoint, "discriminator")
    for mine, theirs in ((G, result.generator), (D, loop_d)):
        ours, loops = mine.state_dict(), theirs.state_dict()
        assert ours.keys() == loops.keys()
        assert all(torch.equal(ours[k], loops[k]) for k in ours)
    logged = result.history[0]
    assert logged["loss/d_loss"] == float(loss_d.detach())
    assert logged["loss/g_total"] == float(parts.total.detach())


# ---------------------------------------------------------------------------- loss widget


def test_loss_terms_at_an_undecided_discriminator():
    t = P.loss_terms(0.0, 0.0, adv_weight=1e-3, content=0.02)
    assert t["d_real"] == t["d_fake"] == 0.5
    assert math.isclose(t["d_loss"], 2 * math.log(2))
    assert math.isclose(t["adversarial"], math.log(2))
    assert math.isclose(t["saturating"], -math.log(2))
    assert math.isclose(t["perceptual"], 0.02 + 1e-3 * math.log(2))
    assert math.isclose(t["slope_non_saturating"], -0.5)
    assert math.isclose(t["slope_saturating"], -0.5)


@pytest.mark.parametrize(("real", "fake"), [(3.0, -5.0), (-2.0, 4.0), (8.0, -8.0)])
def test_loss_terms_follow_the_formulas(real, fake):
    sig = 1 / (1 + math.exp(-fake))
    t = P.loss_terms(real, fake, adv_weight=0.1, content=0.5)
    expected_d = -math.log(1 / (1 + math.exp(-real))) - math.log(1 - sig)
    assert math.isclose(t["d_loss"], expected_d, rel_tol=1e-9)
    assert math.isclose(t["adversarial"], -math.log(sig), rel_tol=1e-9)
    assert math.isclose(t["slope_non_saturating"], -(1 - sig), rel_tol=1e-9)
    assert math.isclose(t["slope_saturating"], -sig, rel_tol=1e-9)
    share = 0.1 * t["adversarial"] / (0.5 + 0.1 * t["adversarial"])
    assert math.isclose(t["adversarial_share"], share)


def test_loss_terms_rejects_bad_values():
    with pytest.raises(ValueError, match="content"):
        P.loss_terms(0, 0, content=-1)
    with pytest.raises(ValueError, match="adv_weight"):
        P.loss_terms(0, 0, adv_weight=float("nan"))
    assert math.isnan(P.loss_terms(0, 0, adv_weight=0, content=0)["adversarial_share"])


def test_explore_losses_figure_and_numbers():
    fig, numbers = P.explore_losses(2.0, -6.0, 1e-3, 1e-2)
    assert isinstance(fig, matplotlib.figure.Figure)
    assert len(fig.axes) == 3
    assert numbers == P.loss_terms(2.0, -6.0, 1e-3, 1e-2)
    assert abs(numbers["slope_non_saturating"]) > 100 * abs(numbers["slope_saturating"])
    assert plt.get_fignums() == [fig.number]


def test_widgets_build_with_their_controls():
    pytest.importorskip("ipywidgets")
    w = P.loss_widget()
    names = {c.description for c in w.children[:-1]}
    assert {"logit of a real image", "adversarial weight", "content loss"} <= names
    w = P.shapes_widget(lr_size=12)
    assert w.children[0].value == 12


def test_shapes_widget_body_explains_a_size_that_is_too_small(capsys):
    P._print_shapes(lr_size=4, scale=2)
    assert "Not possible" in capsys.readouterr().out
