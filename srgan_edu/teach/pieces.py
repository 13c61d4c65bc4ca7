"""Lesson 07 (SRGAN, piece by piece): shapes, parameter counts, loss terms, one traced step.

The lesson takes the two networks of :mod:`srgan_edu.models` and the losses of
:mod:`srgan_edu.losses` apart and traces one training step of :mod:`srgan_edu.train` by hand.
What it needs beyond the core library is here, so that ``tests/test_teach_pieces.py`` reaches it:

* :class:`LayerRow`, :func:`layer_table`, :func:`format_layer_table` - every layer's output shape
  and parameter count, recorded with forward hooks during one forward pass.
* :func:`architecture_shapes` - the same for the paper-size generator and discriminator at any
  input size, on PyTorch's ``meta`` device (shapes without computing a single value).
* :func:`parameter_parts`, :func:`plot_parameter_parts` - where the parameters live.
* :func:`snapshot`, :func:`changed` - which parameters (or buffers) an update touched.
* :func:`loop_batch` - the very (LR, HR) batch the training loop draws at a given step.
* :func:`loss_terms`, :func:`explore_losses`, :func:`loss_widget` - the discriminator's and
  generator's loss terms as functions of the discriminator's logits (the widget's callback).
* :func:`explore_shapes`, :func:`shapes_widget` - "input size -> every layer's shape" (widget).

Images follow the library's ranges: LR in [0, 1], HR and generator outputs in [-1, 1].
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from srgan_edu.config import TrainConfig
from srgan_edu.losses import ADV_WEIGHT, adversarial_loss, discriminator_loss
from srgan_edu.models import Discriminator, ResidualBlock, SRResNet, count_parameters
from srgan_edu.train import EpochItems, StepBatchSampler, make_batch, open_training_data

__all__ = [
    "LayerRow",
    "architecture_shapes",
    "changed",
    "explore_losses",
    "explore_shapes",
    "format_layer_table",
    "layer_table",
    "loop_batch",
    "loss_terms",
    "loss_widget",
    "parameter_parts",
    "plot_parameter_parts",
    "shapes_widget",
    "snapshot",
]


# ----------------------------------------------------------------------------------------------
# shapes and parameters, layer by layer
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LayerRow:
    """One layer as it ran: name in the model, type, settings, output shape, parameters."""

    name: str
    kind: str
    detail: str
    out_shape: tuple[int, ...]
    parameters: int


def _detail(module: nn.Module) -> str:
    """A short description of a layer's settings, e.g. ``'3->64, 9x9, stride 1'``."""
    if isinstance(module, nn.Conv2d):
        k, s = module.kernel_size[0], module.stride[0]
        return f"{module.in_channels}->{module.out_channels}, {k}x{k}, stride {s}"
    if isinstance(module, nn.Linear):
        return f"{module.in_features}->{module.out_features}"
    if isinstance(module, nn.BatchNorm2d):
        return f"{module.num_features} channels"
    if isinstance(module, nn.PReLU):
        return f"{module.num_parameters} learned slopes"
    if isinstance(module, nn.LeakyReLU):
        return f"slope {module.negative_slope:g}"
    if isinstance(module, nn.PixelShuffle):
        return f"r = {module.upscale_factor}"
    if isinstance(module, ResidualBlock):
        c = module.body[0].in_channels
        return f"x + BN(conv(PReLU(BN(conv(x))))), {c} ch"
    if isinstance(module, nn.Sequential) and all(isinstance(m, ResidualBlock) for m in module):
        return f"{len(module)} residual blocks"
    if isinstance(module, nn.Upsample):
        return f"x{module.scale_factor:g}, {module.mode}"
    return ""


def _is_collapsed(name: str, module: nn.Module, collapse: Sequence[str | type]) -> bool:
    for c in collapse:
        if isinstance(c, str) and name == c:
            return True
        if isinstance(c, type) and isinstance(module, c):
            return True
    return False


def layer_table(
    model: nn.Module,
    x: torch.Tensor,
    collapse: Sequence[str | type] = (ResidualBlock,),
) -> list[LayerRow]:
    """Run ``model(x)`` once and record every layer's output shape, in the order the layers ran.

    A "layer" is a module without children, or a module named in ``collapse`` (by its name in
    the model, e.g. ``"blocks"``, or by type, e.g. :class:`ResidualBlock`), which then counts as
    one row with all the parameters inside it. The forward pass runs without gradients and in
    eval mode (restored afterwards), so BatchNorm's running statistics do not move. Works on the
    ``meta`` device too (shapes only). Additions of skip connections are not modules and do not
    appear (they keep the shape).
    """
    rows: list[LayerRow] = []
    chosen: list[tuple[str, nn.Module]] = []
    inside: list[str] = []
    for name, module in model.named_modules():
        if not name or any(name.startswith(p + ".") for p in inside):
            continue
        if _is_collapsed(name, module, collapse):
            chosen.append((name, module))
            inside.append(name)
        elif not any(True for _ in module.children()):
            chosen.append((name, module))

    def hook_for(name: str):
        def hook(module: nn.Module, _inputs, output: torch.Tensor) -> None:
            rows.append(
                LayerRow(
                    name=name,
                    kind=type(module).__name__,
                    detail=_detail(module),
                    out_shape=tuple(output.shape),
                    parameters=count_parameters(module),
                )
            )

        return hook

    handles = [m.register_forward_hook(hook_for(n)) for n, m in chosen]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(x)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return rows


def format_layer_table(
    rows: Sequence[LayerRow], input_shape: Sequence[int] | None = None, total: bool = True
) -> str:
    """The rows of :func:`layer_table` as a fixed-width text table (one line per layer)."""
    lines = [f"{'layer':14s} {'type':14s} {'settings':40s} {'output shape':>18s} {'params':>11s}"]
    if input_shape is not None:
        lines.append(f"{'input':14s} {'':14s} {'':40s} {str(tuple(input_shape)):>18s} {'':>11s}")
    for r in rows:
        lines.append(
            f"{r.name:14s} {r.kind:14s} {r.detail:40s} {str(r.out_shape):>18s} {r.parameters:>11,d}"
        )
    if total:
        n = sum(r.parameters for r in rows)
        lines.append(f"{'total':14s} {'':14s} {'':40s} {'':>18s} {n:>11,d}")
    return "\n".join(lines)


def architecture_shapes(
    lr_size: int, scale: int = 4, n_blocks: int = 16, channels: int = 64
) -> tuple[list[LayerRow], list[LayerRow]]:
    """Layer tables of ``SRResNet`` for a ``lr_size`` square LR input and of the
    ``Discriminator`` built for its ``scale * lr_size`` output, both on the ``meta`` device.

    Nothing is allocated or computed (a 256x256 discriminator has 139 M parameters), only shapes.
    Raises ValueError when the HR side is below the discriminator's minimum of 16 pixels.
    """
    hr = scale * lr_size
    if hr < 16:
        raise ValueError(
            f"the HR side scale * lr_size = {hr} is below 16, the smallest image the "
            "discriminator takes (it halves the size four times): use a larger lr_size"
        )
    with torch.device("meta"):
        G = SRResNet(scale, n_blocks, channels)
        D = Discriminator(hr_size=hr)
        g_rows = layer_table(G, torch.zeros(1, 3, lr_size, lr_size), collapse=("blocks",))
        d_rows = layer_table(D, torch.zeros(1, 3, hr, hr))
    return g_rows, d_rows


def explore_shapes(lr_size: int = 24, scale: int = 4) -> str:
    """The shapes widget's callback: both networks' layer tables for one input size, as text.

    The generator is fully convolutional (the same 1,548,547 parameters at every size); the
    discriminator's first dense layer grows with the square of the HR side.
    """
    g_rows, d_rows = architecture_shapes(lr_size, scale)
    hr = scale * lr_size
    dense = next(r for r in d_rows if r.kind == "Linear")
    d_total = sum(r.parameters for r in d_rows)
    return "\n".join(
        [
            f"GENERATOR for a {lr_size}x{lr_size} LR input "
            f"(the 16 residual blocks shown as one row):",
            format_layer_table(g_rows, (1, 3, lr_size, lr_size)),
            "",
            f"DISCRIMINATOR built for {hr}x{hr} HR images:",
            format_layer_table(d_rows, (1, 3, hr, hr)),
            "",
            f"The dense layer {dense.name} ({dense.detail}) holds {dense.parameters:,} of "
            f"{d_total:,} parameters ({dense.parameters / d_total:.1%}).",
        ]
    )


def _print_shapes(**kwargs) -> None:
    """Widget body: print :func:`explore_shapes`, or what is wrong with the chosen size."""
    try:
        print(explore_shapes(**kwargs))
    except ValueError as err:
        print(f"Not possible: {err}")


def shapes_widget(lr_size: int = 24, scale: int = 4):
    """An ipywidgets panel around :func:`explore_shapes`: LR side and upscaling factor."""
    import ipywidgets as W

    style = {"description_width": "90px"}
    return W.interactive(
        _print_shapes,
        lr_size=W.IntSlider(
            value=lr_size, min=4, max=64, step=1, description="LR side [px]",
            continuous_update=False, style=style,
        ),
        scale=W.Dropdown(options=[2, 4, 8], value=scale, description="scale", style=style),
    )  # fmt: skip


def parameter_parts(model: nn.Module) -> dict[str, int]:
    """Parameters per part, in forward order, with readable labels.

    * :class:`SRResNet`: head, each residual block, fuse (conv + BN), each upsampling stage, tail.
    * :class:`Discriminator`: each convolution together with its BatchNorm, the two dense layers.
    * anything else: its direct children.
    Parts without parameters are left out; the values sum to ``count_parameters(model)``.
    """
    parts: dict[str, int] = {}
    if isinstance(model, SRResNet):
        conv = model.head[0]
        parts[f"head: conv {conv.kernel_size[0]}x{conv.kernel_size[0]} + PReLU"] = count_parameters(
            model.head
        )
        for i, block in enumerate(model.blocks):
            parts[f"residual block {i + 1}"] = count_parameters(block)
        parts["fuse: conv 3x3 + BN"] = count_parameters(model.fuse)
        for i, stage in enumerate(model.upsample):
            parts[f"upsampling stage {i + 1}"] = count_parameters(stage)
        parts["tail: conv 9x9"] = count_parameters(model.tail)
    elif isinstance(model, Discriminator):
        k = 0
        layers = list(model.features)
        for i, layer in enumerate(layers):
            if isinstance(layer, nn.Conv2d):
                k += 1
                n = count_parameters(layer)
                bn = layers[i + 1] if i + 1 < len(layers) else None
                label = f"conv {k}: {layer.in_channels}->{layer.out_channels}"
                if isinstance(bn, nn.BatchNorm2d):
                    n += count_parameters(bn)
                    label += " + BN"
                parts[label] = n
        for layer in model.classifier:
            if isinstance(layer, nn.Linear):
                parts[f"dense {layer.in_features:,}->{layer.out_features:,}"] = count_parameters(
                    layer
                )
    else:
        for name, child in model.named_children():
            parts[name] = count_parameters(child)
    return {k: v for k, v in parts.items() if v}


def plot_parameter_parts(models: Mapping[str, nn.Module]) -> plt.Figure:
    """One horizontal bar chart per model: parameters per part (:func:`parameter_parts`), in
    millions, each bar labelled with its share of the model's total."""
    fig, axes = plt.subplots(1, len(models), figsize=(6.2 * len(models), 5.2), squeeze=False)
    for ax, (title, model) in zip(axes[0], models.items(), strict=True):
        parts = parameter_parts(model)
        total = sum(parts.values())
        labels, values = list(parts), np.array(list(parts.values()), dtype=float)
        y = np.arange(len(labels))[::-1]
        ax.barh(y, values / 1e6, color="tab:blue")
        ax.set_yticks(y, labels, fontsize=8)
        ax.set_xlabel("parameters [millions]")
        ax.set_title(f"{title}: {total:,} parameters", fontsize=10)
        right = values.max() / 1e6
        for yy, v in zip(y, values, strict=True):
            ax.text(v / 1e6 + 0.01 * right, yy, f"{v / total:.1%}", va="center", fontsize=7)
        ax.set_xlim(0, right * 1.18)
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------------------------
# what an update touched
# ----------------------------------------------------------------------------------------------


def snapshot(module: nn.Module, what: str = "parameters") -> dict[str, torch.Tensor]:
    """Copies of ``module``'s parameters (``what="parameters"``) or buffers (``"buffers"``:
    BatchNorm's running statistics), by name, to compare with later (:func:`changed`)."""
    if what == "parameters":
        items = module.named_parameters()
    elif what == "buffers":
        items = module.named_buffers()
    else:
        raise ValueError(f"what must be 'parameters' or 'buffers', got {what!r}")
    return {n: t.detach().clone() for n, t in items}


def changed(
    before: Mapping[str, torch.Tensor], module: nn.Module, what: str = "parameters"
) -> list[str]:
    """Names of the tensors of ``module`` whose values differ from the :func:`snapshot`
    ``before`` (exact comparison: any change at all counts)."""
    now = snapshot(module, what)
    missing = sorted(set(before) ^ set(now))
    if missing:
        raise ValueError(
            f"the snapshot does not belong to this module: names {missing[:3]} are in only one "
            "of them; take the snapshot of the same module with the same `what`"
        )
    return [n for n, t in now.items() if not torch.equal(t, before[n])]


# ----------------------------------------------------------------------------------------------
# the training loop's batch
# ----------------------------------------------------------------------------------------------


def loop_batch(
    config: TrainConfig, step: int = 0, device: torch.device | str = "cpu"
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``(lr, hr)`` batch that ``srgan_edu.train.train(config, ...)`` trains on at global
    step ``step`` of a fresh single-process run: LR (B, 3, h, w) in [0, 1], HR (B, 3, H, W)
    in [-1, 1].

    The same pieces the loop uses, in its order: :func:`open_training_data` (the images),
    :class:`StepBatchSampler` (which images at this step, from ``(seed, step)``) and
    :func:`make_batch` (crop, flip and degrade on the device, from ``(seed, step)``).
    """
    data = open_training_data(config)
    sampler = StepBatchSampler(len(data.train), config.batch_size, config.seed)
    items = EpochItems(data.train)
    hr = torch.stack([items[item] for item in sampler.batch(step)])  # (B, 3, H, W) uint8
    return make_batch(hr, config, step, torch.device(device), device_crop=data.device_crop)


# ----------------------------------------------------------------------------------------------
# the loss terms as functions of the discriminator's logits (the loss widget)
# ----------------------------------------------------------------------------------------------


def loss_terms(
    real_logit: float,
    fake_logit: float,
    adv_weight: float = ADV_WEIGHT,
    content: float = 0.01,
) -> dict[str, float]:
    """Every loss term of one SRGAN step for one real and one generated image, from D's logits.

    ``real_logit`` = D's logit for an HR image, ``fake_logit`` for a generated one, ``content``
    the content loss of the generated image (any value: it does not depend on D). Returns
    D(real), D(fake), the discriminator loss (library :func:`discriminator_loss`), the
    adversarial loss (library :func:`adversarial_loss`, eq. 6, non-saturating) and the
    saturating log(1 - D(fake)) of the min-max game, the perceptual loss (eq. 3) and the share
    of its adversarial part, and the slopes of both adversarial forms with respect to the fake
    logit (autograd): what the generator's gradient is scaled by.
    """
    if not (content >= 0 and math.isfinite(content)):
        raise ValueError(f"content must be a finite number >= 0, got {content}")
    if not (adv_weight >= 0 and math.isfinite(adv_weight)):
        raise ValueError(f"adv_weight must be a finite number >= 0, got {adv_weight}")
    real = torch.tensor([[float(real_logit)]], dtype=torch.float64)
    fake = torch.tensor([[float(fake_logit)]], dtype=torch.float64, requires_grad=True)
    l_d = discriminator_loss(real, fake.detach())
    l_gen = adversarial_loss(fake)  # -log D(G(x)) = softplus(-z)
    saturating = -F.softplus(fake).mean()  # log(1 - D(G(x))), what G minimises in eq. 2
    (slope_ns,) = torch.autograd.grad(l_gen, fake)
    (slope_sat,) = torch.autograd.grad(saturating, fake)
    l_gen_value = float(l_gen.detach())
    total = content + adv_weight * l_gen_value
    return {
        "d_real": float(torch.sigmoid(real)),
        "d_fake": float(torch.sigmoid(fake.detach())),
        "d_loss": float(l_d),
        "adversarial": l_gen_value,
        "saturating": float(saturating.detach()),
        "weighted_adversarial": adv_weight * l_gen_value,
        "content": float(content),
        "perceptual": total,
        "adversarial_share": adv_weight * l_gen_value / total if total > 0 else float("nan"),
        "slope_non_saturating": float(slope_ns),
        "slope_saturating": float(slope_sat),
    }


def explore_losses(
    real_logit: float = 2.0,
    fake_logit: float = -3.0,
    adv_weight: float = ADV_WEIGHT,
    content: float = 0.01,
) -> tuple[plt.Figure, dict[str, float]]:
    """The loss widget's callback: :func:`loss_terms` for these logits, and a figure.

    Left: the discriminator's loss on a real image (softplus(-z)) and on a generated one
    (softplus(z)) against the logit z, with the chosen logits marked. Middle: the generator's
    two possible adversarial losses against the fake logit: the saturating log(1 - D) of the
    min-max game and the non-saturating -log D that SRGAN uses (eq. 6). Right: how steep each
    is (|d loss / d z|, log scale): the size of the push the generator gets. The figure is left
    open.
    """
    t = loss_terms(real_logit, fake_logit, adv_weight, content)
    z = torch.linspace(-8, 8, 401, dtype=torch.float64)
    zn = z.numpy()
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))

    ax = axes[0]
    ax.plot(
        zn, F.softplus(-z).numpy(), color="tab:green", label="real image: -log D = softplus(-z)"
    )
    ax.plot(zn, F.softplus(z).numpy(), color="tab:red", label="generated: -log(1-D) = softplus(z)")
    ax.plot([real_logit], [float(F.softplus(torch.tensor(-real_logit)))], "o", color="tab:green")
    ax.plot([fake_logit], [float(F.softplus(torch.tensor(fake_logit)))], "o", color="tab:red")
    ax.set_xlabel("discriminator logit z   (D = sigmoid(z))")
    ax.set_ylabel("loss")
    ax.set_title(
        f"D's loss: {t['d_loss']:.3f}  (D(real) {t['d_real']:.3f}, D(fake) {t['d_fake']:.3f})",
        fontsize=9,
    )
    ax.legend(fontsize=7, loc="upper center")

    ax = axes[1]
    ax.plot(zn, F.softplus(-z).numpy(), color="tab:blue", label="non-saturating: -log D (eq. 6)")
    ax.plot(zn, (-F.softplus(z)).numpy(), color="tab:orange", label="saturating: log(1 - D)")
    ax.plot([fake_logit], [t["adversarial"]], "o", color="tab:blue")
    ax.plot([fake_logit], [t["saturating"]], "o", color="tab:orange")
    ax.set_xlabel("logit of the generated image")
    ax.set_title(f"G's adversarial loss: -log D = {t['adversarial']:.3f}", fontsize=9)
    ax.legend(fontsize=7)

    ax = axes[2]
    ax.semilogy(zn, torch.sigmoid(-z).numpy(), color="tab:blue", label="|slope| of -log D = 1 - D")
    ax.semilogy(zn, torch.sigmoid(z).numpy(), color="tab:orange", label="|slope| of log(1-D) = D")
    ax.plot([fake_logit], [abs(t["slope_non_saturating"])], "o", color="tab:blue")
    ax.plot([fake_logit], [abs(t["slope_saturating"])], "o", color="tab:orange")
    ax.set_xlabel("logit of the generated image")
    ax.set_ylim(1e-4, 2)
    ax.set_title("how hard each form pushes G", fontsize=9)
    ax.legend(fontsize=7, loc="lower center")
    for a in axes:
        a.grid(alpha=0.3)

    fig.suptitle(
        f"perceptual loss = content {t['content']:.4g} + {adv_weight:g} x adversarial "
        f"{t['adversarial']:.3f} = {t['perceptual']:.4g}   "
        f"(adversarial part: {t['adversarial_share']:.1%})",
        fontsize=10,
    )
    fig.tight_layout()
    return fig, t


def _show_losses(**kwargs) -> None:
    """Widget body: draw :func:`explore_losses` into the widget's output, then close it."""
    from IPython.display import display

    fig, _ = explore_losses(**kwargs)
    display(fig)
    plt.close(fig)


def loss_widget(
    real_logit: float = 2.0,
    fake_logit: float = -3.0,
    adv_weight: float = ADV_WEIGHT,
    content: float = 0.01,
):
    """An ipywidgets panel around :func:`explore_losses`: D's two logits, the adversarial
    weight and the content loss's value."""
    import ipywidgets as W

    style = {"description_width": "150px"}
    layout = W.Layout(width="460px")
    return W.interactive(
        _show_losses,
        real_logit=W.FloatSlider(
            value=real_logit, min=-8, max=8, step=0.25, description="logit of a real image",
            continuous_update=False, style=style, layout=layout,
        ),
        fake_logit=W.FloatSlider(
            value=fake_logit, min=-8, max=8, step=0.25, description="logit of a generated one",
            continuous_update=False, style=style, layout=layout,
        ),
        adv_weight=W.FloatLogSlider(
            value=adv_weight, base=10, min=-5, max=0, step=0.25,
            description="adversarial weight", continuous_update=False, style=style,
            layout=layout, readout_format=".1e",
        ),
        content=W.FloatLogSlider(
            value=content, base=10, min=-5, max=0, step=0.25, description="content loss",
            continuous_update=False, style=style, layout=layout, readout_format=".1e",
        ),
    )  # fmt: skip
