"""Course-wide helpers shared by both packages and all lessons: fast mode and device choice.

Introduced in lesson 01 (fast mode) and lesson 08 (device choice).
"""

from __future__ import annotations

import os

import torch

FAST_ENV = "SRGAN_EDU_FAST"
"""Environment variable that switches every lesson to its fast mode (set by the test suite)."""


def fast_mode() -> bool:
    """True when the lessons should run their short version (tests, CI).

    Fast mode changes sizes (steps, sample counts), never the code path: a lesson runs the same
    library calls in both modes.
    """
    return os.environ.get(FAST_ENV, "").strip().lower() not in ("", "0", "false", "no", "off")


def pick(full, fast):
    """Return ``fast`` in fast mode and ``full`` otherwise (e.g. ``steps = pick(3000, 300)``)."""
    return fast if fast_mode() else full


def pick_device(preferred: str | None = None) -> torch.device:
    """The device to train on: ``preferred`` if given, else CUDA, then Apple MPS, then CPU.

    Only queried when called (never at import time), so importing the library never
    initialises CUDA.
    """
    if preferred:
        return torch.device(preferred)
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")
