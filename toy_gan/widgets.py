"""Widgets and small experiments for lesson 01 (GANs from scratch in one dimension).

Everything a lesson-01 widget or experiment runs lives here, so that tests reach it:

- :func:`explore_training` trains with :func:`toy_gan.gan.train_gan` and returns the lesson's
  four-panel :func:`toy_gan.plots.training_figure`; :func:`training_widget` puts sliders for the
  learning rates, steps and the failure knobs around it.
- :func:`compare_recipes` measures the KS distance of several training recipes over seeds, and
  :func:`plot_recipe_comparison` draws it.
- :func:`dead_units` counts the generator's ReLU units that are off for every noise value (what a
  too-large generator learning rate leaves behind).
- :func:`saturation_experiment` shows the saturating generator loss at work when D is winning:
  G starts far from the data, and we watch whether it moves.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import matplotlib.pyplot as plt
import numpy as np
import torch

from toy_gan.gan import (
    LOSSES,
    Discriminator,
    GANConfig,
    Generator,
    discriminator_step,
    generator_loss,
    sample_data,
    train_gan,
)
from toy_gan.ks import ks_statistic
from toy_gan.plots import training_figure

EMA_CHOICES = (0.0, 0.9, 0.99, 0.999)


def explore_training(
    lr_g: float = 2e-3,
    lr_d: float = 2e-3,
    steps: int = 500,
    loss: str = "nonsaturating",
    d_steps: int = 1,
    ema: float = 0.99,
    seed: int = 0,
) -> plt.Figure:
    """Train the 1-D GAN with these settings and return :func:`training_figure` of the result.

    The callback behind lesson 01's widget. The other fields of :class:`GANConfig` keep their
    defaults. Returns the figure (not shown, not closed): the caller displays or closes it.
    """
    result = train_gan(
        GANConfig(
            lr_g=float(lr_g),
            lr_d=float(lr_d),
            steps=int(steps),
            loss=loss,
            d_steps=int(d_steps),
            ema=float(ema),
            seed=int(seed),
        )
    )
    return training_figure(result)


def _show_training(**kwargs) -> None:
    """Widget callback: draw :func:`explore_training` into the widget's output, then close it."""
    from IPython.display import display

    fig = explore_training(**kwargs)
    display(fig)
    plt.close(fig)


def training_widget(steps: int = 500, lr_g: float = 2e-3, lr_d: float = 2e-3):
    """An ipywidgets panel around :func:`explore_training` with a "Train" button.

    Sliders: both learning rates (log scale), steps, the generator loss, discriminator steps per
    generator step, the EMA decay of G's weights and the seed. Training starts only when the
    button is pressed (a run takes seconds).
    """
    import ipywidgets as W

    style = {"description_width": "90px"}
    layout = W.Layout(width="420px")
    controls = {
        "lr_g": W.FloatLogSlider(
            value=lr_g, base=10, min=-4, max=-0.5, step=0.1, description="lr_g",
            readout_format=".1e", continuous_update=False, style=style, layout=layout,
        ),
        "lr_d": W.FloatLogSlider(
            value=lr_d, base=10, min=-4, max=-0.5, step=0.1, description="lr_d",
            readout_format=".1e", continuous_update=False, style=style, layout=layout,
        ),
        "steps": W.IntSlider(
            value=steps, min=100, max=3000, step=100, description="steps",
            continuous_update=False, style=style, layout=layout,
        ),
        "loss": W.Dropdown(options=list(LOSSES), value="nonsaturating", description="G loss",
                           style=style, layout=layout),
        "d_steps": W.IntSlider(
            value=1, min=1, max=10, description="D steps / G step",
            continuous_update=False, style=style, layout=layout,
        ),
        "ema": W.Dropdown(options=list(EMA_CHOICES), value=0.99, description="EMA of G",
                          style=style, layout=layout),
        "seed": W.IntSlider(value=0, min=0, max=20, description="seed",
                            continuous_update=False, style=style, layout=layout),
    }  # fmt: skip
    return W.interactive(_show_training, {"manual": True, "manual_name": "Train"}, **controls)


def compare_recipes(
    recipes: Mapping[str, Mapping[str, object]],
    seeds: Sequence[int],
    n_samples: int = 1000,
    sample_seed: int = 12345,
    progress: bool = False,
    **common,
) -> dict[str, np.ndarray]:
    """KS statistic of each recipe over seeds: ``{name: array of D, one per seed}``.

    Each recipe is a dict of :class:`GANConfig` overrides (e.g. ``{"ema": 0.0}``); ``common``
    overrides apply to all (e.g. ``steps=1500``). For each run, ``n_samples`` fresh samples of
    the trained G (noise seeded by ``sample_seed``) are KS-tested against N(0, 1).
    """
    runs = [(name, seed) for name in recipes for seed in seeds]
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(runs), desc="training runs", leave=False)
    out: dict[str, list[float]] = {name: [] for name in recipes}
    for name, seed in runs:
        result = train_gan(**{**common, **dict(recipes[name]), "seed": int(seed)})
        out[name].append(ks_statistic(result.sample(n_samples, seed=sample_seed)))
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return {name: np.asarray(v) for name, v in out.items()}


def plot_recipe_comparison(
    ks: Mapping[str, np.ndarray], noise_floor: float | None = None, ax=None
) -> plt.Figure:
    """One column of dots per recipe (one dot per seed) with its median; optional noise floor.

    ``noise_floor`` is drawn as a dashed line, e.g. the median KS statistic of a perfect
    sampler at the same sample size (``scipy.stats.kstwo.median(n)``).
    """
    if ax is None:
        fig, ax = plt.subplots(figsize=(5, 3.5))
    else:
        fig = ax.figure
    for i, values in enumerate(ks.values()):
        values = np.asarray(values)
        jitter = np.linspace(-0.08, 0.08, len(values)) if len(values) > 1 else np.zeros(1)
        ax.plot(i + jitter, values, "o", alpha=0.7, label=None)
        ax.hlines(np.median(values), i - 0.25, i + 0.25, color="k", lw=2)
    if noise_floor is not None:
        ax.axhline(noise_floor, color="gray", ls="--", lw=1, label="perfect sampler (median)")
        ax.legend(fontsize=8, loc="upper right")
    ax.set_xticks(range(len(ks)), list(ks))
    ax.set_xlim(-0.6, len(ks) - 0.4)
    ax.set_ylim(0, None)
    ax.set_ylabel("KS statistic D")
    ax.set_title("KS distance of G's samples to N(0, 1), one dot per seed", fontsize=10)
    return fig


def dead_units(generator: Generator, n: int = 1001) -> int:
    """How many of G's hidden units output 0 for every noise value u in [0, 1].

    Only meaningful for ReLU generators: a dead ReLU unit passes no gradient, so no update can
    switch it back on. A generator whose units are all dead outputs one constant value.
    """
    u = torch.linspace(0.0, 1.0, n).unsqueeze(1)  # (n, 1)
    with torch.no_grad():
        hidden = generator.activations(u)  # (n, hidden)
    return int((hidden.abs().amax(dim=0) == 0).sum())


@dataclass
class SaturationResult:
    """What :func:`saturation_experiment` measured."""

    loss: str
    optimizer: str
    d_fake: float  # mean D(G(u)) after D's warm-up: how sure D is that G's samples are fake
    grad_norm: float  # norm of G's loss gradient over G's parameters at that moment
    steps: list[int] = field(default_factory=list)
    mean: list[float] = field(default_factory=list)  # mean of G's output as training goes on


def saturation_experiment(
    loss: str = "saturating",
    optimizer: str = "sgd",
    shift: float = 8.0,
    warmup: int = 200,
    steps: int = 300,
    lr_g: float | None = None,
    record_every: int = 10,
    seed: int = 0,
) -> SaturationResult:
    """Start G far from the data, let D win, then train both and follow G's mean.

    G is a fresh :class:`Generator` whose output is moved by ``shift`` (so G(u) ~ shift, far from
    N(0, 1)); D is trained alone for ``warmup`` steps until it rejects G's samples confidently.
    We record D(G(u)) and the norm of G's gradient under ``loss``, then run ``steps``
    alternating updates (D with Adam as in :func:`train_gan`; G with ``optimizer``: ``"sgd"``,
    learning rate 0.05, or ``"adam"``, 2e-3, unless ``lr_g`` is given) and record G's mean.
    """
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    if optimizer not in ("sgd", "adam"):
        raise ValueError(f"optimizer must be 'sgd' or 'adam', got {optimizer!r}")
    torch.manual_seed(seed)
    rng = torch.Generator().manual_seed(seed)
    config = GANConfig()
    data = sample_data(config.n_data, seed=seed)
    G, D = Generator(config.g_hidden, config.g_activation), Discriminator(config.d_hidden)
    with torch.no_grad():
        G.net[-1].bias += shift
    opt_d = torch.optim.Adam(D.parameters(), lr=config.lr_d, betas=(config.beta1, 0.999))
    if optimizer == "sgd":
        opt_g = torch.optim.SGD(G.parameters(), lr=0.05 if lr_g is None else lr_g)
    else:
        opt_g = torch.optim.Adam(
            G.parameters(), lr=config.lr_g if lr_g is None else lr_g, betas=(config.beta1, 0.999)
        )
    batch = config.batch_size

    def d_step() -> None:
        idx = torch.randint(config.n_data, (batch,), generator=rng)
        with torch.no_grad():
            fake = G(torch.rand(batch, 1, generator=rng))
        discriminator_step(D, opt_d, data[idx], fake)

    def g_loss() -> tuple[torch.Tensor, torch.Tensor]:
        fake_logits = D(G(torch.rand(batch, 1, generator=rng)))
        return generator_loss(fake_logits, loss), fake_logits

    def g_mean() -> float:
        with torch.no_grad():
            return G(torch.linspace(0.0, 1.0, 1001).unsqueeze(1)).mean().item()

    for _ in range(warmup):
        d_step()
    loss_g, fake_logits = g_loss()
    G.zero_grad(set_to_none=True)
    loss_g.backward()
    grad_norm = torch.sqrt(sum((p.grad**2).sum() for p in G.parameters())).item()
    d_fake = torch.sigmoid(fake_logits).mean().item()
    result = SaturationResult(loss, optimizer, d_fake, grad_norm, [0], [g_mean()])

    for step in range(1, steps + 1):
        d_step()
        loss_g, _ = g_loss()
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        if step % record_every == 0 or step == steps:
            result.steps.append(step)
            result.mean.append(g_mean())
    return result
