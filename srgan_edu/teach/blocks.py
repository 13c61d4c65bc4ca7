"""Lesson 04 (building blocks): batch norm, ReLU / LeakyReLU / PReLU, dead units, skip connections.

Everything lesson 04 derives by hand or measures is here, so that ``tests/test_teach_blocks.py``
reaches it:

* :func:`batch_norm2d` - batch normalisation written out (train and eval mode, running-statistics
  update included); equals ``nn.BatchNorm2d``.
* :func:`prelu` and :func:`prelu_slope_grad` - PReLU with one slope per channel, and the gradient
  of a loss with respect to those slopes by formula; equal ``nn.PReLU(channels)`` and autograd.
* :func:`bn_eval_gap` - how far a BatchNorm layer's eval-mode output is from its train-mode output
  after it has seen n batches (the running statistics catching up).
* :func:`plot_activations` - ReLU, LeakyReLU and PReLU and their derivatives.
* The dead-unit experiment: :func:`regression_data`, :class:`MLP`, :func:`unit_activity` (which
  units are dead / never positive on a held-out batch), :func:`train_mlp`, :func:`dead_unit_study`
  and :func:`plot_dead_study`.
* The gradient-flow experiment: :class:`Block` (the generator's residual block of Fig. 4 in
  Ledig et al. 2017, with the skip connection, BatchNorm and the activation switchable),
  :func:`build_stack`, :func:`image_batches`, :func:`layer_grad_norms`, :func:`gradient_flow` and
  :func:`plot_gradient_flow`.
* The widgets: :func:`explore_dead_units` / :func:`dead_units_widget` and
  :func:`explore_gradient_flow` / :func:`gradient_flow_widget` (callbacks are plain functions).

Everything runs on the CPU in seconds; sizes are arguments, so the lesson's fast mode only changes
numbers, never the code path.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import nn

from srgan_edu.data import sample_image
from srgan_edu.degrade import gaussian_blur

__all__ = [
    "ACTIVATIONS",
    "STACK_ACTIVATIONS",
    "Block",
    "DeadRun",
    "GradientFlow",
    "MLP",
    "UnitActivity",
    "batch_norm2d",
    "bn_eval_gap",
    "build_stack",
    "dead_unit_study",
    "dead_units_widget",
    "explore_dead_units",
    "explore_gradient_flow",
    "gradient_flow",
    "gradient_flow_widget",
    "image_batches",
    "layer_grad_norms",
    "make_activation",
    "plot_activations",
    "plot_dead_study",
    "plot_gradient_flow",
    "prelu",
    "prelu_slope_grad",
    "regression_data",
    "train_mlp",
    "unit_activity",
]

ACTIVATIONS = ("relu", "leaky_relu", "prelu")
"""The activations of the dead-unit experiment: ReLU, LeakyReLU (slope 0.01), PReLU (init 0.25)."""

STACK_ACTIVATIONS = ("prelu", "relu", "tanh", "sigmoid")
"""Activations the gradient-flow stack accepts (the generator's PReLU, and three classics)."""

LEAKY_SLOPE = 0.01
"""LeakyReLU slope in the dead-unit experiment (PyTorch's default; SRGAN's D uses 0.2)."""

PRELU_INIT = 0.25
"""PReLU's initial slope (He et al. 2015, and PyTorch's default)."""


def _check_choice(name: str, value, choices: Sequence) -> None:
    if value not in choices:
        options = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name} must be one of {options}; got {value!r}")


# ----------------------------------------------------------------------------------------------
# batch normalisation
# ----------------------------------------------------------------------------------------------


def batch_norm2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    running_mean: torch.Tensor,
    running_var: torch.Tensor,
    training: bool = True,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> torch.Tensor:
    """Batch normalisation of a (B, C, H, W) batch, written out; equals ``nn.BatchNorm2d``.

    Ioffe & Szegedy (2015), Algorithm 1, per channel c over the B*H*W values of that channel:

        mu_c = mean(x[:, c]),  var_c = mean((x[:, c] - mu_c)^2)       (biased: divide by n)
        y[:, c] = weight_c * (x[:, c] - mu_c) / sqrt(var_c + eps) + bias_c

    In training mode (``training=True``) mu and var are the batch's, and the running statistics
    are updated in place, as PyTorch does (with the *unbiased* variance, n / (n - 1) * var_c)::

        running_mean <- (1 - momentum) * running_mean + momentum * mu
        running_var  <- (1 - momentum) * running_var  + momentum * var * n / (n - 1)

    In eval mode the running statistics replace mu and var and nothing is updated.
    """
    if x.dim() != 4:
        raise ValueError(f"batch_norm2d expects a (B, C, H, W) batch, got shape {tuple(x.shape)}")
    c = x.shape[1]
    if training:
        n = x.numel() // c  # B * H * W values per channel
        if n < 2:
            raise ValueError(
                f"batch norm in training mode needs more than one value per channel, got {n} "
                f"(input shape {tuple(x.shape)}); use a bigger batch or eval mode"
            )
        mu = x.mean(dim=(0, 2, 3))  # (C,)
        var = x.var(dim=(0, 2, 3), unbiased=False)  # (C,) biased: used to normalise
        with torch.no_grad():
            running_mean.mul_(1 - momentum).add_(momentum * mu.detach())
            running_var.mul_(1 - momentum).add_(momentum * var.detach() * n / (n - 1))
    else:
        mu, var = running_mean, running_var
    x_hat = (x - mu.view(1, c, 1, 1)) / torch.sqrt(var.view(1, c, 1, 1) + eps)  # (B, C, H, W)
    return weight.view(1, c, 1, 1) * x_hat + bias.view(1, c, 1, 1)


def bn_eval_gap(
    batches_seen: Iterable[int],
    channels: int = 8,
    batch_size: int = 16,
    size: int = 8,
    momentum: float = 0.1,
    seed: int = 0,
) -> dict[int, float]:
    """Mean |train-mode output - eval-mode output| of a fresh ``nn.BatchNorm2d`` after n batches.

    The data have per-channel means 2..5 and standard deviations 0.5..3 (far from the fresh
    layer's running statistics 0 and 1). The layer sees n training batches (updating its running
    statistics), then one new batch is normalised both ways. Returns ``{n: gap}``; the gap
    shrinks roughly like (1 - momentum)^n.
    """
    g = torch.Generator().manual_seed(seed)
    shift = torch.linspace(2.0, 5.0, channels).view(1, -1, 1, 1)
    scale = torch.linspace(0.5, 3.0, channels).view(1, -1, 1, 1)

    def batch() -> torch.Tensor:
        return torch.randn(batch_size, channels, size, size, generator=g) * scale + shift

    wanted = sorted(set(int(n) for n in batches_seen))
    test = batch()
    bn = nn.BatchNorm2d(channels, momentum=momentum)
    out: dict[int, float] = {}
    seen = 0
    with torch.no_grad():
        for n in wanted:
            while seen < n:
                bn.train()(batch())
                seen += 1
            bn.train()
            before = bn.running_mean.clone(), bn.running_var.clone()
            y_train = bn(test)
            bn.running_mean.copy_(before[0])  # measuring must not count as a training batch
            bn.running_var.copy_(before[1])
            y_eval = bn.eval()(test)
            out[n] = (y_train - y_eval).abs().mean().item()
    return out


# ----------------------------------------------------------------------------------------------
# activations
# ----------------------------------------------------------------------------------------------


def prelu(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """PReLU with one slope per channel (dim 1): max(0, x) + a_c * min(0, x); equals ``F.prelu``.

    He et al. (2015), eq. (1). ``weight`` has C entries (or 1, shared by all channels).
    """
    shape = [1] * x.dim()
    if x.dim() > 1:
        shape[1] = -1
    a = weight.reshape(shape) if weight.numel() > 1 else weight.reshape([1] * x.dim())
    return torch.clamp(x, min=0) + a * torch.clamp(x, max=0)


def prelu_slope_grad(x: torch.Tensor, grad_out: torch.Tensor) -> torch.Tensor:
    """dL/da_c of a per-channel PReLU, given its input x and dL/dy: sum of min(0, x) * dL/dy.

    He et al. (2015), eq. (4): only the negative inputs of channel c contribute, each with its
    own value x (the derivative of a * x with respect to a). Summed over every dimension except
    the channels (dim 1). Returns a (C,) tensor.
    """
    dims = [d for d in range(x.dim()) if d != 1]
    return (torch.clamp(x, max=0) * grad_out).sum(dim=dims)


def make_activation(name: str, channels: int) -> nn.Module:
    """A fresh activation module: ``relu``, ``leaky_relu`` (slope 0.01), ``prelu`` (one slope per
    channel, init 0.25, as ``nn.PReLU(channels)`` in :mod:`srgan_edu.models`), ``tanh`` or
    ``sigmoid``."""
    _check_choice("activation", name, ACTIVATIONS + ("tanh", "sigmoid"))
    if name == "relu":
        return nn.ReLU()
    if name == "leaky_relu":
        return nn.LeakyReLU(LEAKY_SLOPE)
    if name == "prelu":
        return nn.PReLU(channels, init=PRELU_INIT)
    return nn.Tanh() if name == "tanh" else nn.Sigmoid()


def plot_activations(
    leaky_slope: float = 0.2, prelu_slopes: Sequence[float] = (0.25, -0.25)
) -> plt.Figure:
    """ReLU, LeakyReLU(``leaky_slope``) and PReLU at a few slopes (left) and their derivatives
    (right). The derivative of each at 0 is drawn as a jump (undefined there; PyTorch uses the
    left value, i.e. the negative slope)."""
    x = torch.linspace(-3, 3, 601)
    curves = [("ReLU", 0.0, "k", "-")]
    curves.append((f"LeakyReLU ({leaky_slope:g})", leaky_slope, "tab:blue", "-"))
    colours = ["tab:orange", "tab:green", "tab:purple", "tab:red"]
    for i, a in enumerate(prelu_slopes):
        curves.append((f"PReLU, a = {a:g}", float(a), colours[i % len(colours)], "--"))
    fig, axes = plt.subplots(1, 2, figsize=(9.5, 3.4))
    for label, a, colour, ls in curves:
        y = torch.clamp(x, min=0) + a * torch.clamp(x, max=0)
        axes[0].plot(x, y, color=colour, ls=ls, lw=1.8, label=label)
        neg, pos = x[x < 0], x[x > 0]
        axes[1].plot(neg, torch.full_like(neg, a), color=colour, ls=ls, lw=1.8, label=label)
        axes[1].plot(pos, torch.ones_like(pos), color=colour, ls=ls, lw=1.8)
    for ax in axes:
        ax.axhline(0, color="gray", lw=0.6)
        ax.axvline(0, color="gray", lw=0.6)
        ax.set_xlabel("x (pre-activation)")
    axes[0].set_ylim(-1.2, 3.1)
    axes[0].set_title("f(x)", fontsize=10)
    axes[0].legend(fontsize=8, loc="upper left")
    axes[1].set_ylim(-0.5, 1.3)
    axes[1].set_title("f'(x): what backpropagation multiplies by", fontsize=10)
    axes[1].text(-2.9, 0.06, "ReLU: 0 for every x < 0", fontsize=8)
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------------------------
# dead units
# ----------------------------------------------------------------------------------------------


def regression_data(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """n points of a smooth 2-D regression task: x uniform in [-2, 2]^2,
    y = sin(2 x1) cos(1.5 x2) + 0.5 x1. Returns ``(x, y)`` of shapes (n, 2) and (n, 1)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 2, generator=g) * 4 - 2  # (n, 2)
    y = torch.sin(2 * x[:, :1]) * torch.cos(1.5 * x[:, 1:]) + 0.5 * x[:, :1]  # (n, 1)
    return x, y


class MLP(nn.Module):
    """A small multilayer perceptron: 2 -> ``width`` x ``depth`` hidden layers -> 1.

    Each hidden layer is ``Linear`` then the activation (PReLU with one slope per unit, like the
    generator's one slope per channel). ``activations()`` lists the activation modules in order.
    """

    def __init__(
        self, activation: str = "relu", width: int = 64, depth: int = 3, seed: int | None = 0
    ) -> None:
        super().__init__()
        _check_choice("activation", activation, ACTIVATIONS)
        self.activation = activation
        with torch.random.fork_rng(devices=[]):
            if seed is not None:
                torch.manual_seed(seed)
            layers: list[nn.Module] = []
            d_in = 2
            for _ in range(depth):
                layers += [nn.Linear(d_in, width), make_activation(activation, width)]
                d_in = width
            layers.append(nn.Linear(d_in, 1))
            self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # (N, 2) -> (N, 1)

    def activations(self) -> list[nn.Module]:
        return [m for m in self.net if not isinstance(m, nn.Linear)]


_ACTIVATION_TYPES = (nn.ReLU, nn.LeakyReLU, nn.PReLU, nn.Tanh, nn.Sigmoid)


@dataclass
class UnitActivity:
    """Per activation layer of a network, measured on one batch of inputs.

    ``dead[l]``: fraction of layer l's units whose output is 0 for every input of the batch (no
    gradient flows through them: training cannot change their incoming weights).
    ``never_positive[l]``: fraction whose pre-activation is <= 0 for every input (for ReLU the
    same units as ``dead``; LeakyReLU and PReLU units there still pass a signal and a gradient,
    scaled by their negative slope).
    """

    dead: list[float]
    never_positive: list[float]

    @property
    def dead_total(self) -> float:
        """Fraction of dead units over all layers (layers of equal width weigh equally)."""
        return float(np.mean(self.dead)) if self.dead else 0.0

    @property
    def never_positive_total(self) -> float:
        return float(np.mean(self.never_positive)) if self.never_positive else 0.0


def unit_activity(model: nn.Module, x: torch.Tensor) -> UnitActivity:
    """Which units of ``model``'s activation layers are dead / never positive on the batch ``x``.

    A *unit* is one feature (dim 1: a neuron of an MLP, a channel of a CNN); "for every input"
    means over every other dimension (samples, and pixels for a CNN). Works for any model whose
    activations are modules (ReLU, LeakyReLU, PReLU, Tanh, Sigmoid), found by forward hooks.
    """
    records: list[tuple[torch.Tensor, torch.Tensor]] = []

    def hook(_module, inputs, output) -> None:
        records.append((inputs[0].detach(), output.detach()))

    handles = [
        m.register_forward_hook(hook) for m in model.modules() if isinstance(m, _ACTIVATION_TYPES)
    ]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    dead, never_positive = [], []
    for pre, out in records:
        pre_c = pre.transpose(0, 1).reshape(pre.shape[1], -1)  # (units, inputs x pixels)
        out_c = out.transpose(0, 1).reshape(out.shape[1], -1)
        dead.append((out_c == 0).all(dim=1).float().mean().item())
        never_positive.append((pre_c <= 0).all(dim=1).float().mean().item())
    return UnitActivity(dead, never_positive)


@dataclass
class DeadRun:
    """One run of :func:`train_mlp`: the network, its units before and after, the test loss."""

    activation: str
    lr: float
    seed: int
    model: MLP
    before: UnitActivity
    after: UnitActivity
    test_mse: float
    losses: list[float] = field(default_factory=list)  # training loss, one per step


def train_mlp(
    activation: str = "relu",
    lr: float = 1e-3,
    steps: int = 400,
    seed: int = 0,
    width: int = 64,
    depth: int = 3,
    batch_size: int = 64,
    n_train: int = 2048,
    n_test: int = 1024,
) -> DeadRun:
    """Train an :class:`MLP` on :func:`regression_data` with Adam and measure its units.

    Training set: ``n_train`` points (seed 0 data, batches drawn with ``seed``); held-out batch:
    ``n_test`` other points, on which :func:`unit_activity` is measured before and after
    training and the test MSE is computed. Deterministic for a given seed on a CPU.
    """
    x_train, y_train = regression_data(n_train, seed=0)
    x_test, y_test = regression_data(n_test, seed=1)
    model = MLP(activation, width, depth, seed=seed)
    before = unit_activity(model, x_test)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)
    losses = []
    for _ in range(int(steps)):
        idx = torch.randint(n_train, (batch_size,), generator=g)
        loss = ((model(x_train[idx]) - y_train[idx]) ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    with torch.no_grad():
        test = ((model(x_test) - y_test) ** 2).mean().item()
    return DeadRun(activation, lr, seed, model, before, unit_activity(model, x_test), test, losses)


def dead_unit_study(
    activations: Sequence[str] = ACTIVATIONS,
    lrs: Sequence[float] = (1e-3, 3e-2),
    seeds: Sequence[int] = (0, 1, 2),
    steps: int = 400,
    progress: bool = False,
    **kwargs,
) -> list[DeadRun]:
    """:func:`train_mlp` for every (activation, learning rate, seed); returns all runs in that
    order. ``kwargs`` go to :func:`train_mlp` (e.g. ``width``)."""
    jobs = [(a, lr, s) for a in activations for lr in lrs for s in seeds]
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(jobs), desc="training MLPs", leave=False)
    runs = []
    for a, lr, s in jobs:
        runs.append(train_mlp(a, lr=lr, steps=steps, seed=s, **kwargs))
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return runs


def _group(runs: Sequence[DeadRun]) -> dict[tuple[str, float], list[DeadRun]]:
    groups: dict[tuple[str, float], list[DeadRun]] = {}
    for r in runs:
        groups.setdefault((r.activation, r.lr), []).append(r)
    return groups


def plot_dead_study(runs: Sequence[DeadRun]) -> plt.Figure:
    """Bars of the dead fraction (solid) and never-positive fraction (hatched, light) after
    training, one group per learning rate, one bar per activation; dots are single seeds. A
    second panel shows the held-out MSE (log scale)."""
    groups = _group(runs)
    activations = list(dict.fromkeys(r.activation for r in runs))
    lrs = list(dict.fromkeys(r.lr for r in runs))
    colours = {"relu": "tab:red", "leaky_relu": "tab:blue", "prelu": "tab:green"}
    width = 0.8 / len(activations)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), gridspec_kw={"width_ratios": [3, 2]})
    for j, a in enumerate(activations):
        for i, lr in enumerate(lrs):
            rs = groups[(a, lr)]
            pos = i + (j - (len(activations) - 1) / 2) * width
            dead = [r.after.dead_total for r in rs]
            never = [r.after.never_positive_total for r in rs]
            c = colours.get(a, "gray")
            axes[0].bar(pos, np.mean(never), width * 0.9, color=c, alpha=0.25, hatch="//",
                        edgecolor=c)  # fmt: skip
            axes[0].bar(pos, np.mean(dead), width * 0.9, color=c, label=a if i == 0 else None)
            axes[0].plot([pos] * len(dead), dead, "k.", ms=4)
            mse = [r.test_mse for r in rs]
            axes[1].bar(pos, np.exp(np.mean(np.log(mse))), width * 0.9, color=c)
            axes[1].plot([pos] * len(mse), mse, "k.", ms=4)
    for ax in axes:
        ax.set_xticks(range(len(lrs)), [f"lr = {lr:g}" for lr in lrs])
    axes[0].set_ylabel("fraction of hidden units")
    axes[0].set_ylim(0, 1)
    axes[0].set_title("dead units (solid) and never-positive units (hatched)", fontsize=10)
    axes[0].bar(np.nan, 0, color="white", hatch="//", edgecolor="gray", label="never positive")
    axes[0].legend(fontsize=8, loc="upper left")
    axes[1].set_yscale("log")
    axes[1].set_ylabel("held-out MSE")
    axes[1].set_title("what the network still fits", fontsize=10)
    fig.tight_layout()
    return fig


def explore_dead_units(
    activation: str = "relu", lr: float = 3e-2, steps: int = 300, width: int = 64, seed: int = 0
) -> plt.Figure:
    """Widget callback: train one :class:`MLP` and draw, per hidden layer, the fraction of dead
    and never-positive units before and after training, next to the training loss."""
    run = train_mlp(activation, lr=lr, steps=steps, seed=seed, width=width)
    fig, axes = plt.subplots(1, 2, figsize=(9.5, 3.3))
    layers = np.arange(1, len(run.after.dead) + 1)
    axes[0].bar(layers - 0.2, run.before.dead, 0.38, color="gray", label="dead at init")
    axes[0].bar(layers + 0.2, run.after.never_positive, 0.38, color="tab:red", alpha=0.25,
                hatch="//", edgecolor="tab:red", label="never positive after")  # fmt: skip
    axes[0].bar(layers + 0.2, run.after.dead, 0.38, color="tab:red", label="dead after")
    axes[0].set_xticks(layers, [f"layer {i}" for i in layers])
    axes[0].set_ylim(0, 1)
    axes[0].set_ylabel("fraction of units")
    axes[0].legend(fontsize=8, loc="upper left")
    axes[0].set_title(
        f"{activation}, lr {lr:.1e}: {run.after.dead_total:.0%} dead after {steps} steps",
        fontsize=10,
    )
    axes[1].plot(run.losses, lw=0.8, color="tab:blue")
    axes[1].set_yscale("log")
    axes[1].set_xlabel("step")
    axes[1].set_ylabel("training MSE")
    axes[1].set_title(f"held-out MSE {run.test_mse:.2e}", fontsize=10)
    fig.tight_layout()
    return fig


def _show(fn, **kwargs) -> None:
    """Draw ``fn(**kwargs)`` into a widget's output, then close the figure."""
    from IPython.display import display

    fig = fn(**kwargs)
    display(fig)
    plt.close(fig)


def _show_dead_units(**kwargs) -> None:
    _show(explore_dead_units, **kwargs)


def dead_units_widget(activation: str = "relu", lr: float = 3e-2, steps: int = 300):
    """An ipywidgets panel around :func:`explore_dead_units`: activation, learning rate (log
    scale), steps, width and seed. Redraws when a slider is released (about a second)."""
    import ipywidgets as W

    style = {"description_width": "80px"}
    layout = W.Layout(width="400px")
    controls = {
        "activation": W.Dropdown(options=list(ACTIVATIONS), value=activation,
                                 description="activation", style=style, layout=layout),
        "lr": W.FloatLogSlider(value=lr, base=10, min=-4, max=-0.5, step=0.25, description="lr",
                               readout_format=".1e", continuous_update=False, style=style,
                               layout=layout),
        "steps": W.IntSlider(value=steps, min=50, max=1000, step=50, description="steps",
                             continuous_update=False, style=style, layout=layout),
        "width": W.IntSlider(value=64, min=8, max=128, step=8, description="width",
                             continuous_update=False, style=style, layout=layout),
        "seed": W.IntSlider(value=0, min=0, max=9, description="seed",
                            continuous_update=False, style=style, layout=layout),
    }  # fmt: skip
    return W.interactive(_show_dead_units, **controls)


# ----------------------------------------------------------------------------------------------
# gradient flow: plain vs residual stacks
# ----------------------------------------------------------------------------------------------


class Block(nn.Module):
    """The generator's residual block (Fig. 4) with its parts switchable.

    body = conv3x3 -> BN -> activation -> conv3x3 -> BN (as :class:`srgan_edu.models.
    ResidualBlock`, same parameter names); ``forward`` returns ``x + body(x)`` with ``skip=True``
    and ``body(x)`` (a *plain* block) without. ``bn=False`` replaces both BatchNorms by identities
    and gives the convolutions a bias. ``Block(c)`` with the defaults computes exactly what
    ``ResidualBlock(c)`` computes.
    """

    def __init__(
        self, channels: int = 64, skip: bool = True, bn: bool = True, activation: str = "prelu"
    ) -> None:
        super().__init__()
        _check_choice("activation", activation, STACK_ACTIVATIONS)
        self.skip = bool(skip)
        c = channels

        def norm() -> nn.Module:
            return nn.BatchNorm2d(c) if bn else nn.Identity()

        self.body = nn.Sequential(
            nn.Conv2d(c, c, 3, padding=1, bias=not bn),
            norm(),
            make_activation(activation, c),
            nn.Conv2d(c, c, 3, padding=1, bias=not bn),
            norm(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)  # (B, C, h, w)
        return x + y if self.skip else y


def build_stack(
    depth: int,
    channels: int = 16,
    skip: bool = True,
    bn: bool = True,
    activation: str = "prelu",
    seed: int = 0,
) -> nn.Sequential:
    """conv3x3 (3 -> C), ``depth`` :class:`Block` s, conv3x3 (C -> 3): an image-to-image network
    like the generator's trunk, without upsampling. Weights are PyTorch's default initialisation,
    drawn from ``seed`` (the global random state is left alone)."""
    if depth < 1:
        raise ValueError(f"depth must be at least 1, got {depth}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        blocks = [Block(channels, skip, bn, activation) for _ in range(depth)]
        return nn.Sequential(
            nn.Conv2d(3, channels, 3, padding=1),  # (B, C, h, w)
            *blocks,
            nn.Conv2d(channels, 3, 3, padding=1),  # (B, 3, h, w)
        )


_PHOTO: torch.Tensor | None = None


def image_batches(
    n_batches: int, batch_size: int = 8, size: int = 16, sigma: float = 1.5, seed: int = 0
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``n_batches`` (input, target) pairs of a small de-blurring task on the lesson photo.

    Targets: random ``size`` x ``size`` crops of :func:`srgan_edu.data.sample_image` in [-1, 1],
    shape (B, 3, size, size); inputs: the same crops blurred with a Gaussian of ``sigma``.
    """
    global _PHOTO
    if _PHOTO is None:
        _PHOTO = sample_image()  # (3, H, W) in [0, 1]
    img = _PHOTO
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n_batches):
        ys = torch.randint(0, img.shape[1] - size + 1, (batch_size,), generator=g).tolist()
        xs = torch.randint(0, img.shape[2] - size + 1, (batch_size,), generator=g).tolist()
        hr = torch.stack([img[:, y : y + size, x : x + size] for y, x in zip(ys, xs, strict=True)])
        hr = hr * 2 - 1  # (B, 3, size, size) in [-1, 1]
        out.append((gaussian_blur(hr, sigma), hr))
    return out


def _blocks(model: nn.Sequential) -> list[nn.Module]:
    return [m for m in model if isinstance(m, Block)]


def layer_grad_norms(
    model: nn.Sequential, x: torch.Tensor, y: torch.Tensor
) -> tuple[np.ndarray, float]:
    """Gradient norm of the MSE loss with respect to each block's convolution weights.

    Returns ``(norms, loss)``: ``norms[l]`` is the L2 norm of dL/dW over both 3x3 convolutions of
    block l (block 0 next to the input), shape (depth,). Gradients are left in ``model``.
    """
    model.zero_grad(set_to_none=True)
    loss = ((model(x) - y) ** 2).mean()
    loss.backward()
    norms = []
    for block in _blocks(model):
        sq = sum((m.weight.grad**2).sum() for m in block.body if isinstance(m, nn.Conv2d))
        norms.append(float(torch.sqrt(sq)))
    return np.asarray(norms), loss.item()


@dataclass
class GradientFlow:
    """What :func:`gradient_flow` measured for one stack."""

    name: str
    init: np.ndarray  # per-block gradient norms at initialisation, block 0 first
    trained: np.ndarray  # the same after ``steps`` Adam steps (equal to init when steps = 0)
    losses: list[float]  # loss on the probe batch at init, then on each training batch
    steps: int
    identity_mse: float  # MSE of simply returning the blurred input, over the same batches

    @property
    def ratio_init(self) -> float:
        """Gradient norm of the first block divided by the last block's, at initialisation."""
        return float(self.init[0] / self.init[-1])


def gradient_flow(
    depth: int = 24,
    channels: int = 16,
    skip: bool = True,
    bn: bool = True,
    activation: str = "prelu",
    steps: int = 20,
    lr: float = 1e-3,
    batch_size: int = 8,
    size: int = 16,
    seed: int = 0,
    name: str | None = None,
) -> GradientFlow:
    """Per-block gradient norms of a :func:`build_stack` network at initialisation and after
    ``steps`` Adam steps on the de-blurring task of :func:`image_batches`.

    Both measurements use the same probe batch (batch 0), in training mode (BatchNorm with batch
    statistics, as during training).
    """
    model = build_stack(depth, channels, skip, bn, activation, seed=seed)
    batches = image_batches(steps + 1, batch_size, size, seed=seed)
    identity = float(np.mean([((x - y) ** 2).mean().item() for x, y in batches]))
    probe_x, probe_y = batches[0]
    init, loss0 = layer_grad_norms(model, probe_x, probe_y)
    losses = [loss0]
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for x, y in batches[1:]:
        loss = ((model(x) - y) ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    trained = layer_grad_norms(model, probe_x, probe_y)[0] if steps else init.copy()
    if name is None:
        name = f"{'residual' if skip else 'plain'}{'' if bn else ', no BN'}"
    return GradientFlow(name, init, trained, losses, steps, identity)


def _smooth(values: Sequence[float], k: int) -> np.ndarray:
    v = np.asarray(values, dtype=float)
    if k <= 1 or len(v) < k:
        return v
    return np.convolve(v, np.ones(k) / k, mode="valid")


def plot_gradient_flow(flows: Sequence[GradientFlow], after: bool = True) -> plt.Figure:
    """Per-block gradient norms on a log scale at initialisation and, with ``after`` (and
    training steps), after training, plus the training loss of each stack. One line per stack:
    red plain, green residual, dashed without BatchNorm; block 1 is next to the input."""
    trained = after and any(f.steps for f in flows)
    panels = 3 if trained else 1
    fig, axes = plt.subplots(1, panels, figsize=(4.6 * panels, 3.6), squeeze=False)
    axes = axes[0]
    colours = {"plain": "tab:red", "residual": "tab:green"}

    def style(f: GradientFlow) -> dict:
        kind = "residual" if f.name.startswith("residual") else "plain"
        return {"color": colours[kind], "ls": "--" if "no BN" in f.name else "-"}

    grad_axes = axes[:2] if trained else axes[:1]
    for f in flows:
        for ax, values in zip(grad_axes, (f.init, f.trained), strict=False):
            ax.plot(np.arange(1, len(values) + 1), values, marker=".", label=f.name, **style(f))
    axes[0].set_title("at initialisation", fontsize=10)
    for ax in grad_axes:
        ax.set_yscale("log")
        ax.set_xlabel("block (1 = next to the input)")
        ax.set_ylabel("|dL/dW| of the block's convolutions")
        ax.grid(True, which="major", alpha=0.3)
    axes[0].legend(fontsize=8)
    if trained:
        steps = max(f.steps for f in flows)
        grad_axes[1].set_title(f"after {steps} training steps", fontsize=10)
        lo = min(a.get_ylim()[0] for a in grad_axes)  # one scale for both gradient panels
        hi = max(a.get_ylim()[1] for a in grad_axes)
        for ax in grad_axes:
            ax.set_ylim(lo, hi)
        k = max(1, steps // 10)
        for f in flows:
            smooth = _smooth(f.losses, k)
            x = np.arange(len(f.losses) - len(smooth), len(f.losses))  # step of each mean's end
            axes[2].plot(x, smooth, label=f.name, **style(f))
        axes[2].axhline(flows[0].identity_mse, color="gray", ls=":", label="output = blurred input")
        axes[2].set_yscale("log")
        axes[2].set_xlabel("training step")
        axes[2].set_ylabel(f"MSE (running mean of {k})" if k > 1 else "MSE")
        axes[2].set_title("training loss", fontsize=10)
        axes[2].legend(fontsize=7)
    fig.tight_layout()
    return fig


def explore_gradient_flow(
    depth: int = 24,
    activation: str = "prelu",
    bn: bool = True,
    steps: int = 0,
    seed: int = 0,
) -> plt.Figure:
    """Widget callback: per-block gradient norms of the plain and the residual stack with these
    settings (both drawn, so the skip connection's effect is always in view)."""
    flows = [
        gradient_flow(depth, skip=s, bn=bn, activation=activation, steps=steps, seed=seed)
        for s in (False, True)
    ]
    fig = plot_gradient_flow(flows, after=steps > 0)
    text = "   ".join(f"{f.name}: first/last block {f.ratio_init:.1e}" for f in flows)
    fig.suptitle(f"{activation}, depth {depth}.  At init, {text}", fontsize=9)
    fig.tight_layout()
    return fig


def _show_gradient_flow(**kwargs) -> None:
    _show(explore_gradient_flow, **kwargs)


def gradient_flow_widget(depth: int = 24, activation: str = "prelu"):
    """An ipywidgets panel around :func:`explore_gradient_flow`: depth, activation, BatchNorm on
    or off, training steps and seed. Redraws when a control is released (a second or two)."""
    import ipywidgets as W

    style = {"description_width": "80px"}
    layout = W.Layout(width="400px")
    controls = {
        "depth": W.IntSlider(value=depth, min=2, max=40, step=2, description="blocks",
                             continuous_update=False, style=style, layout=layout),
        "activation": W.Dropdown(options=list(STACK_ACTIVATIONS), value=activation,
                                 description="activation", style=style, layout=layout),
        "bn": W.Checkbox(value=True, description="BatchNorm", style=style, layout=layout),
        "steps": W.IntSlider(value=0, min=0, max=10, description="train steps",
                             continuous_update=False, style=style, layout=layout),
        "seed": W.IntSlider(value=0, min=0, max=9, description="seed",
                            continuous_update=False, style=style, layout=layout),
    }  # fmt: skip
    return W.interactive(_show_gradient_flow, **controls)
