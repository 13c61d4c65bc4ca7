"""What the three commands (train, evaluate, upscale) share: devices, checkpoints, error lines.

A CLI here is thin: argparse, then one library call. Errors a user can cause become one line
``error: ...`` on stderr and a non-zero exit status; these helpers make those lines read the same
in every command. Introduced in lesson 08 (the command line).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import torch

from srgan_edu.checkpoint import CheckpointError
from srgan_edu.course import pick_device
from srgan_edu.data import CELEBA_LAYOUTS

__all__ = ["DeviceError", "one_line", "resolve_checkpoint", "resolve_device"]


class DeviceError(ValueError):
    """A device name that is wrong or not available on this machine."""


def resolve_device(text: str | None) -> torch.device:
    """``--device`` -> a device this machine has: None or ``auto`` picks (cuda, mps, cpu).

    Raises :class:`DeviceError` for a malformed name or a device that is not there.
    """
    if text is None or text.strip().lower() in ("", "auto"):
        return pick_device(None)
    try:
        device = torch.device(text)
    except RuntimeError:
        raise DeviceError(
            f"--device {text!r} is not a device name; use cpu, cuda, cuda:N or mps"
        ) from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"--device {text}: CUDA is not available here; use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise DeviceError(
                f"--device {text}: this machine has {torch.cuda.device_count()} GPU(s), "
                f"numbered 0 to {torch.cuda.device_count() - 1}"
            )
    mps = getattr(torch.backends, "mps", None)
    if device.type == "mps" and not (mps is not None and mps.is_available()):
        raise DeviceError(f"--device {text}: Apple MPS is not available here; use --device cpu")
    if device.type not in ("cpu", "cuda", "mps"):
        raise DeviceError(f"--device {text}: use cpu, cuda, cuda:N or mps")
    return device


def resolve_checkpoint(text: str | os.PathLike) -> Path:
    """Where a ``--checkpoint`` argument points: an existing ``.pt`` file, or the name of a
    shipped pretrained model (``srresnet_x4_celeba``; its sha256 is checked here).

    Raises :class:`CheckpointError` for a missing file, a folder (naming the ``.pt`` files in
    it), or a damaged shipped file.
    """
    from srgan_edu.pretrained import PRETRAINED, is_name, pretrained_path

    path = Path(text).expanduser()
    if path.is_file():
        return path
    if is_name(str(text)):
        return pretrained_path(str(text))
    if path.is_dir():
        found = sorted(p.name for p in path.glob("*.pt"))
        hint = f" It holds {', '.join(found[:6])}." if found else " It holds no .pt files."
        raise CheckpointError(
            f"checkpoint {path} is a folder; pass one .pt file in it (e.g. "
            f"{path / (found[0] if found else 'srgan.pt')}).{hint}"
        )
    raise CheckpointError(
        f"checkpoint not found: {path}. Pass the path of a .pt file written by "
        "python -m srgan_edu.train (e.g. runs/laptop/srresnet.pt) or the name of a pretrained "
        f"model: {', '.join(PRETRAINED)}"
    )


def one_line(err: BaseException) -> str:
    """An error message's first paragraph on one line, library hints said as command flags.

    Long explanations (e.g. the CelebA layouts) stay in ``--help``; a pointer to it is added.
    """
    text = str(err).split("\n\n", 1)[0]
    text = " ".join(part.strip() for part in text.splitlines() if part.strip())
    if "split='holdout'" in text:  # data.CelebA's hint for a partial copy
        flags = (
            ": --split holdout --holdout N evaluates the last N train images by name (the "
            "images training validates on when a copy has no val split)."
        )
        text, found = re.subn(r",? e\.g\. CelebA\(.*?for training\.", flags, text)
        if not found:
            text += " On the command line" + flags
    text = text.replace("pass partition=PATH", "pass --partition FILE")
    text = text.replace("use split='all'", "use --split all")
    if CELEBA_LAYOUTS.splitlines()[0] in str(err):
        text += " (--help shows the accepted layouts)"
    return text
