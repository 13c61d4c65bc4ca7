"""The SRGAN networks: the SRResNet generator and the discriminator (Ledig et al. 2017, Fig. 4).

Lesson 07 builds both networks layer by layer; lesson 05 compares the two ways to upsample
(sub-pixel convolution vs. nearest-neighbour + convolution) with :func:`upsampling_stages`.

Range convention (see :mod:`srgan_edu.imaging`): the generator takes LR images in [0, 1] and returns
images in [-1, 1]; the discriminator takes images in [-1, 1] and returns logits.

Decisions the paper leaves open, made here once:

* **Output activation.** Fig. 4 ends with the 9x9 convolution and no activation. By default we add
  ``tanh`` so that "generator output in [-1, 1]" holds by construction, not by clamps scattered over
  the discriminator input, the VGG loss and image saving. It also denies the discriminator a trivial
  cue (real images never leave [-1, 1]). The cost is small: an 8-bit extreme pixel (254/255) is
  reached at a pre-activation of atanh(0.992) ~ 2.8. ``output_activation="none"`` gives the
  paper's exact network; clamp its output to [-1, 1] before viewing or scoring it.
* **PReLU** learns one slope per channel (``nn.PReLU(channels)``): the channel-wise form of He et
  al. 2015, eq. (1). Many re-implementations share one slope per layer; that saves 1,197 of
  ~1.55 M parameters and changes nothing else.
* **No bias before BatchNorm.** A convolution followed by BN gets ``bias=False``: BN subtracts the
  per-channel batch mean, so such a bias would cancel out and never receive a gradient.
* **Initialisation** is PyTorch's default. The paper states none; every convolution inside the
  residual trunk is followed by BN, which normalises the weight scale away. (The 0.1-scaled Kaiming
  init of BN-free networks such as ESRGAN solves a problem this network does not have.) Pass
  ``seed`` for reproducible weights without touching the global random state.
* **Discriminator size.** Each stride-2 convolution maps n pixels to ceil(n / 2), so a square HR
  crop of side ``hr_size`` ends as a ``ceil(hr_size / 16)`` square of 512 channels, which is
  flattened into the 1024-unit dense layer: 512 * 6 * 6 = 18,432 inputs for the paper's 96x96
  crops. Other sizes work the same way (the dense layer grows with the crop); the discriminator
  checks at run time that its input has the size it was built for.

Parameter counts (pinned by ``tests/test_models.py``):

* ``SRResNet()`` (x4, 16 blocks, 64 channels, sub-pixel): 1,548,547.
* ``SRResNet(upsampler="nearest")``: 1,326,979.
* ``Discriminator()`` (96x96): 23,563,649, of which the first dense layer holds 18,875,392.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

SCALES = (2, 3, 4, 8)
"""Upscaling factors the generator supports (x2 stages, or a single x3 stage)."""

UPSAMPLERS = ("subpixel", "nearest")
"""``subpixel``: conv -> PixelShuffle (the paper). ``nearest``: Upsample -> conv (Keras-style)."""

OUTPUT_ACTIVATIONS = ("tanh", "none")
"""``tanh``: output squashed into [-1, 1] (default). ``none``: Fig. 4 exactly, unbounded."""


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of scalar parameters in ``module`` (BatchNorm running statistics are buffers, not
    parameters, and are not counted)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def _check_int(name: str, value: Any, minimum: int) -> int:
    """``value`` as an int >= ``minimum``, or a ValueError that says what was expected."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def _check_choice(name: str, value: Any, choices: tuple) -> Any:
    if value not in choices:
        options = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name} must be one of {options}; got {value!r}")
    return value


def _check_scale(scale: Any) -> int:
    if isinstance(scale, bool) or scale not in SCALES:
        raise ValueError(
            f"scale must be 2, 3, 4 or 8, got {scale!r}. The generator upsamples in x2 stages "
            "(2, 4, 8) or one x3 stage (3); for another factor, upscale by the next supported "
            "one and resize the result."
        )
    return int(scale)


def _check_images(x: torch.Tensor, who: str) -> None:
    """A (B, 3, H, W) floating-point batch, or a ValueError naming what was found instead."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{who} expects a torch.Tensor of shape (B, 3, H, W), got {type(x)}")
    if x.dim() != 4 or x.shape[1] != 3:
        hint = " (add a batch dimension with x.unsqueeze(0))" if x.dim() == 3 else ""
        raise ValueError(
            f"{who} expects RGB images of shape (B, 3, H, W), got shape {tuple(x.shape)}{hint}"
        )
    if not x.is_floating_point():
        raise ValueError(
            f"{who} expects floating-point images, got dtype {x.dtype}; convert 8-bit images "
            "with x.float() / 255 (and unit_to_signed for the discriminator)"
        )


def _build_seeded(seed: int | None, build) -> None:
    """Run ``build()`` (which creates layers) with the CPU generator seeded by ``seed``, leaving
    the global random state as it was; with ``seed=None`` use the global state as usual."""
    if seed is None:
        build()
        return
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        build()


def upsampling_stages(scale: int, channels: int = 64, upsampler: str = "subpixel") -> nn.Sequential:
    """The generator's upsampling part, ``(B, C, h, w) -> (B, C, scale*h, scale*w)``.

    ``subpixel`` (paper, Fig. 4; Shi et al. 2016): per x2 stage conv3x3 C -> 4C, PixelShuffle(2),
    PReLU; for x3 one stage with 9C and PixelShuffle(3). ``nearest`` (Keras tutorial): per stage
    nearest-neighbour Upsample, conv3x3 C -> C, PReLU. Lesson 05 compares the two.
    """
    scale = _check_scale(scale)
    channels = _check_int("channels", channels, 1)
    _check_choice("upsampler", upsampler, UPSAMPLERS)
    factors = [3] if scale == 3 else [2] * int(math.log2(scale))
    stages = []
    for r in factors:
        if upsampler == "subpixel":
            stage = nn.Sequential(
                nn.Conv2d(channels, channels * r * r, 3, padding=1),  # (B, r*r*C, h, w)
                nn.PixelShuffle(r),  # (B, C, r*h, r*w)
                nn.PReLU(channels),
            )
        else:
            stage = nn.Sequential(
                nn.Upsample(scale_factor=r, mode="nearest"),  # (B, C, r*h, r*w)
                nn.Conv2d(channels, channels, 3, padding=1),  # (B, C, r*h, r*w)
                nn.PReLU(channels),
            )
        stages.append(stage)
    return nn.Sequential(*stages)


class ResidualBlock(nn.Module):
    """One generator residual block (Fig. 4): x + BN(conv(PReLU(BN(conv(x))))), shape kept."""

    def __init__(self, channels: int = 64) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
            nn.PReLU(channels),
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)  # (B, C, h, w)


class SRResNet(nn.Module):
    """The SRGAN generator G (Ledig et al. 2017, Sec. 2.1, Fig. 4); introduced in lesson 07.

    Input: LR images in [0, 1], (B, 3, h, w), any h and w. Output: (B, 3, scale*h, scale*w) in
    [-1, 1] (``tanh``; see the module docstring for ``output_activation="none"``). The paper uses
    ``n_blocks=16``, ``channels=64``. Parameters: 1,548,547 for the defaults.
    """

    def __init__(
        self,
        scale: int = 4,
        n_blocks: int = 16,
        channels: int = 64,
        upsampler: str = "subpixel",
        output_activation: str = "tanh",
        seed: int | None = None,
    ) -> None:
        super().__init__()
        self.scale = _check_scale(scale)
        self.n_blocks = _check_int("n_blocks", n_blocks, 0)
        self.channels = _check_int("channels", channels, 1)
        self.upsampler = _check_choice("upsampler", upsampler, UPSAMPLERS)
        self.output_activation = _check_choice(
            "output_activation", output_activation, OUTPUT_ACTIVATIONS
        )

        def build() -> None:
            c = self.channels
            self.head = nn.Sequential(nn.Conv2d(3, c, 9, padding=4), nn.PReLU(c))
            self.blocks = nn.Sequential(*[ResidualBlock(c) for _ in range(self.n_blocks)])
            self.fuse = nn.Sequential(nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c))
            self.upsample = upsampling_stages(self.scale, c, self.upsampler)
            self.tail = nn.Conv2d(c, 3, 9, padding=4)

        _build_seeded(seed, build)

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        _check_images(lr, "SRResNet")
        h = self.head(lr)  # (B, C, h, w)
        y = self.fuse(self.blocks(h)) + h  # (B, C, h, w): the long skip connection of Fig. 4
        y = self.upsample(y)  # (B, C, s*h, s*w)
        y = self.tail(y)  # (B, 3, s*h, s*w)
        return torch.tanh(y) if self.output_activation == "tanh" else y

    def arch(self) -> dict[str, Any]:
        """The architecture as plain values; ``build_model(G.arch())`` builds the same network."""
        return {
            "name": "srresnet",
            "scale": self.scale,
            "n_blocks": self.n_blocks,
            "channels": self.channels,
            "upsampler": self.upsampler,
            "output_activation": self.output_activation,
        }


class Discriminator(nn.Module):
    """The SRGAN discriminator D (Ledig et al. 2017, Sec. 2.1, Fig. 4); introduced in lesson 07.

    conv3x3-C + LeakyReLU(0.2), seven conv3x3 + BN + LeakyReLU(0.2) blocks (C,s2) (2C,s1)
    (2C,s2) (4C,s1) (4C,s2) (8C,s1) (8C,s2), dense ``dense`` + LeakyReLU(0.2), dense 1.
    Input: (B, 3, hr_size, hr_size) in [-1, 1]. Output: logits (B, 1), no sigmoid (it lives in the
    loss, where ``logsigmoid`` is numerically stable). Parameters: 23,563,649 for the defaults.
    """

    def __init__(
        self,
        hr_size: int = 96,
        channels: int = 64,
        dense: int = 1024,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        self.hr_size = _check_int("hr_size", hr_size, 16)
        self.channels = _check_int("channels", channels, 1)
        self.dense = _check_int("dense", dense, 1)
        c = self.channels
        # (out_channels, stride) of the seven conv + BN + LeakyReLU blocks
        plan = [(c, 2), (2 * c, 1), (2 * c, 2), (4 * c, 1), (4 * c, 2), (8 * c, 1), (8 * c, 2)]
        self.feature_size = math.ceil(self.hr_size / 16)  # four stride-2 convs: n -> ceil(n/2)

        def build() -> None:
            layers: list[nn.Module] = [nn.Conv2d(3, c, 3, padding=1), nn.LeakyReLU(0.2)]
            in_ch = c
            for out_ch, stride in plan:
                layers += [
                    nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False),
                    nn.BatchNorm2d(out_ch),
                    nn.LeakyReLU(0.2),
                ]
                in_ch = out_ch
            self.features = nn.Sequential(*layers)
            self.classifier = nn.Sequential(
                nn.Flatten(),  # (B, 8C * f * f), f = ceil(hr_size / 16)
                nn.Linear(in_ch * self.feature_size**2, self.dense),
                nn.LeakyReLU(0.2),
                nn.Linear(self.dense, 1),  # (B, 1) logits
            )

        _build_seeded(seed, build)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_images(x, "Discriminator")
        size = self.hr_size
        if x.shape[-2:] != (size, size):
            raise ValueError(
                f"this Discriminator was built for {size}x{size} HR images, got "
                f"{x.shape[-2]}x{x.shape[-1]}. Its dense layer's size depends on the image size: "
                f"crop the images to {size}x{size}, or build Discriminator(hr_size=...) for your "
                "crop size (square crops only)."
            )
        return self.classifier(self.features(x))  # (B, 8C, f, f) -> (B, 1)

    def arch(self) -> dict[str, Any]:
        """The architecture as plain values; ``build_model(D.arch())`` builds the same network."""
        return {
            "name": "discriminator",
            "hr_size": self.hr_size,
            "channels": self.channels,
            "dense": self.dense,
        }


def build_generator(
    scale: int = 4,
    n_blocks: int = 16,
    channels: int = 64,
    upsampler: str = "subpixel",
    output_activation: str = "tanh",
    seed: int | None = None,
) -> SRResNet:
    """An :class:`SRResNet` from plain config values (what presets and checkpoints store)."""
    return SRResNet(scale, n_blocks, channels, upsampler, output_activation, seed)


def build_discriminator(
    hr_size: int = 96, channels: int = 64, dense: int = 1024, seed: int | None = None
) -> Discriminator:
    """A :class:`Discriminator` from plain config values."""
    return Discriminator(hr_size, channels, dense, seed)


_BUILDERS = {"srresnet": build_generator, "discriminator": build_discriminator}


def build_model(arch: Mapping[str, Any], seed: int | None = None) -> SRResNet | Discriminator:
    """Rebuild a network from the dict its ``arch()`` method returned (e.g. read from a checkpoint).

    Raises ValueError for an unknown ``name`` or keys the named network does not take.
    """
    arch = dict(arch)
    name = arch.pop("name", None)
    if name not in _BUILDERS:
        known = ", ".join(repr(n) for n in _BUILDERS)
        raise ValueError(f"unknown architecture name {name!r}; expected one of {known}")
    builder = _BUILDERS[name]
    allowed = set(inspect.signature(builder).parameters) - {"seed"}
    unknown = sorted(set(arch) - allowed)
    if unknown:
        raise ValueError(
            f"architecture {name!r} does not take {unknown}; it takes {sorted(allowed)}. "
            "Was this checkpoint written by a different version of srgan_edu?"
        )
    return builder(**arch, seed=seed)
