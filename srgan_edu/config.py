"""Training configuration: one dataclass, three presets, command-line overrides with type checks.

Presets are data, not code paths: ``smoke`` (CI, seconds on a CPU), ``laptop`` (minutes on a
CPU) and ``paper`` (the full GPU schedule of Ledig et al., Sec. 3.2) are three
:class:`TrainConfig` values fed to the same training loop. Any field can be overridden from the
command line (``--hr-crop 64``) or from a mapping of strings; unknown or mistyped names are
refused with a message that suggests the closest field. Introduced in lesson 08 (training SRGAN).
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import math
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Union

from .losses import ADV_WEIGHT, VGG_RESCALE
from .models import SCALES

__all__ = [
    "PRESETS",
    "ConfigError",
    "TrainConfig",
    "add_config_arguments",
    "apply_overrides",
    "config_from_args",
    "diff",
    "from_dict",
    "get_preset",
    "to_dict",
]

PHASES = ("srresnet", "srgan", "both")
CONTENT_LOSSES = ("vgg54", "vgg22", "mse")
AMP_MODES = ("auto", "bf16", "off")
SWITCHES = ("auto", "on", "off")
DEVICE_KINDS = ("cpu", "cuda", "mps")
_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")
_NONE = ("none", "null")


class ConfigError(ValueError):
    """A configuration value or name a user got wrong (the CLIs print it as one line)."""


def _f(default: Any, help: str, metavar: str | None = None) -> Any:
    """A dataclass field whose ``help`` feeds ``--help`` (see :func:`add_config_arguments`)."""
    return field(default=default, metadata={"help": help, "metavar": metavar})


@dataclass
class TrainConfig:
    """Everything a training run needs; the defaults are the paper's schedule (Sec. 3.2)."""

    # What to train
    phase: Literal["srresnet", "srgan", "both"] = _f(
        "both", "srresnet (MSE only), srgan (needs a phase-1 generator), or both in sequence"
    )
    scale: int = _f(4, "upscaling factor r (the paper: 4)")
    hr_crop: int = _f(96, "side of the random HR crops in pixels (divisible by scale)")
    batch_size: int = _f(16, "HR/LR pairs per update")
    # Generator (SRResNet, Fig. 4 top)
    n_blocks: int = _f(16, "residual blocks B in the generator")
    channels: int = _f(64, "feature channels in the generator")
    upsampler: Literal["subpixel", "nearest"] = _f(
        "subpixel", "subpixel (pixel shuffle, the paper) or nearest (resize + conv)"
    )
    # Discriminator (Fig. 4 bottom)
    d_channels: int = _f(64, "channels of the discriminator's first conv (doubling to 8x)")
    d_dense: int = _f(1024, "units of the discriminator's dense layer")
    # Optimiser and schedule
    lr: float = _f(1e-4, "Adam learning rate (both phases start here)")
    beta1: float = _f(0.9, "Adam beta1")
    beta2: float = _f(0.999, "Adam beta2")
    srresnet_steps: int = _f(1_000_000, "phase-1 updates (SRResNet, pixel MSE, constant lr)")
    srgan_steps: int = _f(200_000, "phase-2 updates (SRGAN, one D and one G update each)")
    lr_decay_step: int = _f(
        100_000, "SRGAN updates before lr is multiplied by lr_decay_factor (paper: 1e5)"
    )
    lr_decay_factor: float = _f(0.1, "SRGAN lr multiplier after lr_decay_step (1e-4 -> 1e-5)")
    # Perceptual loss, eq. 3: content + adv_weight * adversarial
    content: Literal["vgg54", "vgg22", "mse"] = _f(
        "vgg54", "content loss of SRGAN: vgg54, vgg22 (eq. 5) or mse (eq. 4)"
    )
    adv_weight: float = _f(ADV_WEIGHT, "weight of the adversarial loss in eq. 3 (paper: 1e-3)")
    vgg_rescale: float = _f(VGG_RESCALE, "factor on VGG feature maps (paper: 1/12.75)")
    vgg_weights: str = _f(
        "imagenet", "VGG19 weights: imagenet, random, or a .pth file path", "NAME|PATH"
    )
    # Data
    degradation: Literal["bicubic", "gaussian"] = _f(
        "bicubic", "HR -> LR: bicubic (the paper's training data) or gaussian blur + subsample"
    )
    data: str | None = _f(None, "image folder or CelebA root; none means synthetic images", "PATH")
    val_holdout: int = _f(500, "images held out for validation when the dataset has no val split")
    num_workers: int = _f(4, "data-loader worker processes decoding images (0: main process)")
    prepared: str | None = _f(
        None,
        "folder made by python -m srgan_edu.prepare from --data: training reads its decoded "
        "array instead of the JPEGs (validation still reads --data)",
        "DIR",
    )
    data_on_device: Literal["auto", "on", "off"] = _f(
        "auto",
        "with --prepared: hold the whole array in device memory and gather batches there "
        "(auto: on CUDA when it fits in half the free memory)",
    )
    # Machine
    seed: int = _f(0, "seed for weights, crops, flips and data order")
    device: str | None = _f(None, "cpu, cuda, cuda:N or mps; none or auto picks one", "DEVICE")
    amp: Literal["auto", "bf16", "off"] = _f(
        "auto", "mixed precision: auto (bf16 on CUDA), bf16, off"
    )
    channels_last: Literal["auto", "on", "off"] = _f(
        "auto", "channels_last memory format: auto (on for CUDA), on, off"
    )
    compile: bool = _f(False, "wrap the models in torch.compile (slow start, faster steps)")
    # Logging and checkpoints (0 turns val/ckpt/sample off; SIGINT still saves)
    log_every: int = _f(100, "updates between progress/JSON-lines log entries")
    val_every: int = _f(10_000, "updates between validations (PSNR/SSIM); 0: never")
    ckpt_every: int = _f(10_000, "updates between checkpoints; 0: only at the end")
    keep_last: int = _f(3, "periodic checkpoints kept (the best one is kept besides)")
    sample_every: int = _f(10_000, "updates between sample grids (LR|bicubic|SR|HR); 0: never")

    def __post_init__(self) -> None:
        hints = _hints()
        for f in dataclasses.fields(self):
            setattr(self, f.name, _check_type(f.name, getattr(self, f.name), hints[f.name]))
        if self.device is not None and self.device.lower() == "auto":
            self.device = None
        _validate(self)


def _hints() -> dict[str, Any]:
    """Field name -> annotated type (resolved: this module uses postponed annotations)."""
    return typing.get_type_hints(TrainConfig)


def _field_names() -> list[str]:
    return [f.name for f in dataclasses.fields(TrainConfig)]


def _type_name(tp: Any) -> str:
    """'an integer', 'one of ...', ... : how an error message names an expected type."""
    args = typing.get_args(tp)
    if _is_optional(tp):
        (inner,) = (a for a in args if a is not type(None))
        return f"{_type_name(inner)} or 'none'"
    if typing.get_origin(tp) is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}[tp]


def _is_optional(tp: Any) -> bool:
    return typing.get_origin(tp) in (Union, types.UnionType) and type(None) in typing.get_args(tp)


def _bad(name: str, tp: Any, value: Any, extra: str = "") -> ConfigError:
    return ConfigError(
        f"{name} (--{name.replace('_', '-')}) expects {_type_name(tp)}, got {value!r}{extra}"
    )


def _check_type(name: str, value: Any, tp: Any) -> Any:
    """``value`` if it already has type ``tp`` (an int counts as a float), else ConfigError."""
    if _is_optional(tp):
        if value is None:
            return None
        (inner,) = (a for a in typing.get_args(tp) if a is not type(None))
        try:
            return _check_type(name, value, inner)
        except ConfigError:
            raise _bad(name, tp, value) from None
    if typing.get_origin(tp) is Literal:
        if isinstance(value, str) and value in typing.get_args(tp):
            return value
        raise _bad(name, tp, value)
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    raise _bad(name, tp, value)


def _parse_number(name: str, tp: Any, text: str) -> float:
    """'1e-4', '1_000_000' or a fraction '1/12.75' -> float (the paper writes the rescale so)."""
    try:
        if "/" in text:
            num, den = text.split("/")
            return float(num) / float(den)
        return float(text)
    except (ValueError, ZeroDivisionError):
        raise _bad(name, tp, text) from None


def _convert(name: str, value: Any, tp: Any) -> Any:
    """A string from the command line (or an already typed value) -> the field's type.

    int accepts '100000', '1_000_000' and '1e5' (a whole number written in float notation) but not
    '1.5'; bool accepts true/false/1/0/yes/no/on/off; optional fields accept 'none'.
    """
    if not isinstance(value, str):
        return _check_type(name, value, tp)
    text = value.strip()
    if _is_optional(tp):
        if text.lower() in _NONE:
            return None
        (inner,) = (a for a in typing.get_args(tp) if a is not type(None))
        try:
            return _convert(name, text, inner)
        except ConfigError:
            raise _bad(name, tp, value) from None
    if typing.get_origin(tp) is Literal:
        choices = typing.get_args(tp)
        if text.lower() in choices:
            return text.lower()
        close = difflib.get_close_matches(text.lower(), choices, n=1)
        raise _bad(name, tp, value, f"; did you mean {close[0]!r}?" if close else "")
    if tp is bool:
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise _bad(name, tp, value)
    if tp is int:
        try:
            return int(text)
        except ValueError:
            number = _parse_number(name, tp, text)
            if math.isfinite(number) and number.is_integer():
                return int(number)
            raise _bad(name, tp, value, " (a whole number)") from None
    if tp is float:
        return _parse_number(name, tp, text)
    return text  # str


def _suggest(name: str) -> str:
    close = difflib.get_close_matches(name.replace("-", "_"), _field_names(), n=3, cutoff=0.5)
    if close:
        return "did you mean " + " or ".join(repr(c) for c in close) + "?"
    return "valid fields: " + ", ".join(_field_names())


def _check_known(keys: Any, where: str) -> None:
    unknown = [k for k in keys if k not in _field_names()]
    if unknown:
        raise ConfigError("; ".join(f"unknown {where} {k!r}: {_suggest(str(k))}" for k in unknown))


def _validate(c: TrainConfig) -> None:
    """Range and consistency checks, each naming the field and what would be valid."""
    problems = []
    for name in ("hr_crop", "batch_size", "n_blocks", "channels", "d_channels", "d_dense"):
        if getattr(c, name) < 1:
            problems.append(f"{name} must be a positive integer, got {getattr(c, name)}")
    for name in ("lr_decay_step", "log_every", "keep_last"):
        if getattr(c, name) < 1:
            problems.append(f"{name} must be a positive integer, got {getattr(c, name)}")
    for name in ("srresnet_steps", "srgan_steps", "val_holdout", "num_workers", "seed"):
        if getattr(c, name) < 0:
            problems.append(f"{name} must be 0 or more, got {getattr(c, name)}")
    for name in ("val_every", "ckpt_every", "sample_every"):
        if getattr(c, name) < 0:
            problems.append(
                f"{name} must be 0 (never) or a positive interval, got {getattr(c, name)}"
            )
    if c.phase in ("srresnet", "both") and c.srresnet_steps < 1:
        problems.append(f"phase={c.phase!r} needs srresnet_steps >= 1, got {c.srresnet_steps}")
    if c.phase in ("srgan", "both") and c.srgan_steps < 1:
        problems.append(f"phase={c.phase!r} needs srgan_steps >= 1, got {c.srgan_steps}")
    if c.scale not in SCALES:
        problems.append(f"scale must be one of {SCALES}, got {c.scale}")
    elif c.hr_crop % c.scale:
        lower = max(c.hr_crop // c.scale, 1) * c.scale
        problems.append(
            f"hr_crop must be divisible by scale={c.scale} (LR crop = hr_crop / scale), got "
            f"{c.hr_crop}; try {lower}"
        )
    if c.hr_crop < 16:
        problems.append(
            f"hr_crop must be at least 16 (the discriminator halves it 4 times), got {c.hr_crop}"
        )
    for name in ("lr", "vgg_rescale"):
        value = getattr(c, name)
        if not (math.isfinite(value) and value > 0):
            problems.append(f"{name} must be a positive number, got {value}")
    for name in ("beta1", "beta2"):
        value = getattr(c, name)
        if not 0.0 <= value < 1.0:
            problems.append(f"{name} must be in [0, 1), got {value}")
    if not 0.0 < c.lr_decay_factor <= 1.0:
        problems.append(f"lr_decay_factor must be in (0, 1] (1: no decay), got {c.lr_decay_factor}")
    if not (math.isfinite(c.adv_weight) and c.adv_weight >= 0):
        problems.append(f"adv_weight must be 0 or a positive number, got {c.adv_weight}")
    if not c.vgg_weights:
        problems.append("vgg_weights must be 'imagenet', 'random' or a file path, got ''")
    if c.data is not None and not c.data.strip():
        problems.append("data must be a folder path or 'none' (synthetic images), got ''")
    if c.prepared is not None and not c.prepared.strip():
        problems.append("prepared must be a folder path or 'none', got ''")
    if c.prepared is not None and c.data is None:
        problems.append(
            "prepared needs data: pass --data with the CelebA folder the array was prepared "
            "from (validation images come from there)"
        )
    if c.device is not None:
        kind, _, index = c.device.partition(":")
        if kind not in DEVICE_KINDS or (index and not index.isdigit()):
            problems.append(
                f"device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got {c.device!r}"
            )
    if problems:
        raise ConfigError("invalid training config: " + "; ".join(problems))


# smoke: seconds on a CPU in CI, synthetic images, a tiny model; it still runs both phases, the
# lr decay, validation, samples and checkpoints, and the VGG content loss (VGG22 with random
# weights: the same code path as the paper's, no weight download, cheap at 32x32).
# laptop: a CPU, the 89x109 CelebA faces (64x64 crops fit them) or any image folder: an 8-block,
# 32-channel generator, then a short SRGAN phase with VGG22 (VGG54 is too slow on a CPU; ImageNet
# weights needed, see srgan_edu.vgg). Measured on 2 CPU cores with the 10,000-face sample (1,000
# held out): 2.6 updates/s; validation Y-PSNR vs bicubic 25.11 dB was 25.00 after 1,000 updates,
# 25.30 after 1,500 (~10 min: past bicubic) and 25.51 after 2,000; all 3,000 phase-1 updates take
# ~19 min at that rate (a CPU with more cores is faster).
# paper: Ledig et al. Sec. 3.2 exactly (the dataclass defaults).
PRESETS: dict[str, TrainConfig] = {
    "smoke": TrainConfig(
        hr_crop=32,
        batch_size=4,
        n_blocks=2,
        channels=16,
        d_channels=16,
        d_dense=64,
        srresnet_steps=4,
        srgan_steps=4,
        lr_decay_step=2,
        content="vgg22",
        vgg_weights="random",
        val_holdout=4,
        num_workers=0,
        log_every=1,
        val_every=2,
        ckpt_every=2,
        keep_last=2,
        sample_every=4,
    ),
    "laptop": TrainConfig(
        hr_crop=64,
        batch_size=16,
        n_blocks=8,
        channels=32,
        d_channels=32,
        d_dense=256,
        srresnet_steps=3_000,
        srgan_steps=500,
        lr_decay_step=250,
        content="vgg22",
        val_holdout=1000,
        num_workers=2,
        log_every=20,
        val_every=500,
        ckpt_every=500,
        sample_every=500,
    ),
    "paper": TrainConfig(),
}


def get_preset(name: str) -> TrainConfig:
    """A fresh copy of the named preset (editing it does not change :data:`PRESETS`)."""
    if name not in PRESETS:
        close = difflib.get_close_matches(str(name), PRESETS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}.{hint}")
    return dataclasses.replace(PRESETS[name])


def apply_overrides(config: TrainConfig, overrides: Mapping[str, Any]) -> TrainConfig:
    """A new config with ``overrides`` (strings are converted by each field's type) applied.

    Names may use dashes or underscores. Unknown names, unconvertible values and invalid results
    raise :class:`ConfigError`; ``config`` itself is left unchanged.
    """
    renamed = {str(k).replace("-", "_"): v for k, v in overrides.items()}
    _check_known(renamed, "option")
    hints = _hints()
    values = {k: _convert(k, v, hints[k]) for k, v in renamed.items()}
    return dataclasses.replace(config, **values)


def to_dict(config: TrainConfig) -> dict[str, Any]:
    """Plain values (str, int, float, bool, None) for checkpoints and JSON logs."""
    return dataclasses.asdict(config)


def from_dict(d: Mapping[str, Any]) -> TrainConfig:
    """Inverse of :func:`to_dict`; missing fields take the defaults, unknown ones are refused."""
    _check_known(d, "config field")
    hints = _hints()
    return TrainConfig(**{k: _convert(k, v, hints[k]) for k, v in d.items()})


def diff(a: TrainConfig, b: TrainConfig) -> dict[str, tuple[Any, Any]]:
    """``{field: (value in a, value in b)}`` for the fields that differ (for resume messages)."""
    da, db = to_dict(a), to_dict(b)
    return {k: (da[k], db[k]) for k in da if da[k] != db[k]}


def add_config_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``--field-name VALUE`` for every field (default None: only given options override).

    Bool fields also work as flags (``--compile`` = ``--compile true``). Values stay strings here
    and are converted by :func:`config_from_args`, so all type errors read the same.
    """
    group = parser.add_argument_group(
        "training config (each overrides the preset's value; see srgan_edu.config)"
    )
    hints = _hints()
    for f in dataclasses.fields(TrainConfig):
        tp = hints[f.name]
        kwargs: dict[str, Any] = {"dest": f.name, "default": None, "help": f.metadata["help"]}
        if typing.get_origin(tp) is Literal:
            kwargs["metavar"] = "{" + ",".join(typing.get_args(tp)) + "}"
        elif tp is bool:
            kwargs.update(nargs="?", const="true", metavar="BOOL")
        else:
            inner = tp if not _is_optional(tp) else str
            kwargs["metavar"] = f.metadata["metavar"] or {int: "N", float: "X", str: "TEXT"}[inner]
        group.add_argument("--" + f.name.replace("_", "-"), **kwargs)
    return parser


def config_from_args(args: argparse.Namespace, preset_name: str) -> TrainConfig:
    """The preset ``preset_name`` with every config option given on the command line applied."""
    given = {
        name: getattr(args, name)
        for name in _field_names()
        if getattr(args, name, None) is not None
    }
    return apply_overrides(get_preset(preset_name), given)
