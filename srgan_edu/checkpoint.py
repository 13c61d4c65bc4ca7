"""Checkpoints that never lose work: atomic saves, safe loads, RNG state, keep-last-N and best.

A training run can be interrupted at any moment (Ctrl-C, a full disk, a killed job). The rules
here make sure the newest checkpoint on disk is always a complete one:

* :func:`save_checkpoint` writes to a temporary file in the target's directory, flushes and
  ``fsync``\\ s it, then ``os.replace``\\ s it onto the target (an atomic rename) and fsyncs the
  directory. A crash leaves either the old file or the new one, never half of one.
* :func:`load_checkpoint` uses ``torch.load(..., weights_only=True)`` (no arbitrary code runs) and
  turns every way a file can be wrong into a :class:`CheckpointError` that says what it expected.
* :class:`CheckpointManager` keeps the last N ``step_XXXXXXXX.pt`` files plus ``best.pt``, and
  :meth:`CheckpointManager.latest` falls back to the previous file if the newest is unreadable.

A payload is a dict of tensors and plain values (state dicts, step, config, architecture, and
:func:`rng_state`) so that it loads with ``weights_only=True``. Introduced in lesson 07
(training SRResNet), where ``--resume`` continues a run exactly where it stopped.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import tempfile
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch

FORMAT = "srgan_edu.checkpoint"
FORMAT_VERSION = 1
_STEP_RE = re.compile(r"^step_(\d+)\.pt$")
_TMP_SUFFIX = ".tmp"

# Types that torch.load(weights_only=True) accepts and that we allow in a payload.
_PLAIN = (
    torch.Tensor,
    str,
    bytes,
    int,
    float,
    bool,
    complex,
    type(None),
    torch.dtype,
    torch.device,
    torch.Size,
)


class CheckpointError(ValueError):
    """A checkpoint could not be saved or loaded; the message names the file and what is wrong."""


# --------------------------------------------------------------------------------------------
# RNG state (torch CPU, CUDA if already initialised, numpy global, Python random)
# --------------------------------------------------------------------------------------------


def rng_state() -> dict[str, Any]:
    """Every global random state a training step draws from, as tensors and plain values.

    CUDA states are included only if CUDA is already initialised: this never initialises CUDA.
    """
    version, mt, gauss_next = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)  # noqa: NPY002 (the global RNG is the point)
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),  # ByteTensor
        "numpy": {
            "bit_generator": str(name),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),  # (624,) MT19937 words
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "python": {"version": int(version), "state": list(mt), "gauss_next": gauss_next},
    }
    if torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore what :func:`rng_state` captured, so the next random numbers are the same."""
    torch.set_rng_state(state["torch"])
    npst = state["numpy"]
    keys = np.asarray(npst["keys"].numpy(), dtype=np.uint32)
    np.random.set_state(  # noqa: NPY002
        (npst["bit_generator"], keys, npst["pos"], npst["has_gauss"], npst["cached_gaussian"])
    )
    py = state["python"]
    random.setstate((py["version"], tuple(py["state"]), py["gauss_next"]))
    cuda = state.get("cuda")
    if cuda and torch.cuda.is_available():
        n = min(len(cuda), torch.cuda.device_count())
        if n < len(cuda):
            warnings.warn(
                f"checkpoint has CUDA RNG states for {len(cuda)} GPUs, this machine has {n}; "
                f"restoring the first {n}",
                stacklevel=2,
            )
        torch.cuda.set_rng_state_all(cuda[:n])


# --------------------------------------------------------------------------------------------
# Atomic save / safe load
# --------------------------------------------------------------------------------------------


def _check_plain(obj: Any, where: str) -> None:
    """Refuse values that ``torch.load(weights_only=True)`` would reject, naming where they are."""
    if isinstance(obj, _PLAIN):
        return
    if isinstance(obj, Mapping):
        for k, v in obj.items():
            _check_plain(k, f"{where} key {k!r}")
            _check_plain(v, f"{where}[{k!r}]")
        return
    if isinstance(obj, list | tuple):
        for i, v in enumerate(obj):
            _check_plain(v, f"{where}[{i}]")
        return
    kind = f"{type(obj).__module__}.{type(obj).__qualname__}"
    hint = (
        "convert it with torch.as_tensor(...) or .tolist()"
        if isinstance(obj, np.ndarray | np.generic)
        else "store tensors, numbers, strings, lists and dicts only (e.g. dataclasses.asdict)"
    )
    raise CheckpointError(
        f"cannot save {where}: it is a {kind}, which torch.load(weights_only=True) refuses; {hint}"
    )


def _fsync_dir(directory: Path) -> None:
    """Make a rename durable by fsyncing the directory (skipped where that is impossible)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return  # e.g. Windows
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> Path:
    """Call ``write(file)`` on a temp file next to ``path``, fsync, rename onto ``path``.

    The rename is atomic, so ``path`` always holds either the old or the new complete file. On
    any failure the temp file is removed, the old file is untouched and the error propagates.
    Also used by ``toy_gan.gan.save_generator``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=_TMP_SUFFIX, dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as f:
            _permissions_of_new_file(f)
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def _permissions_of_new_file(f: BinaryIO) -> None:
    """Give a temp file the permissions ``open()`` would (0666 minus the umask) instead of
    mkstemp's 0600, so results are readable like any other file the user saves."""
    if not hasattr(os, "fchmod"):
        return  # Windows: permissions work differently
    mask = os.umask(0)
    os.umask(mask)
    os.fchmod(f.fileno(), 0o666 & ~mask)


def _atomic_write(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """:func:`atomic_write`, with failures reported as :class:`CheckpointError`."""
    try:
        atomic_write(path, write)
    except OSError as err:
        raise CheckpointError(
            f"could not save checkpoint {path}: {err}; the previous checkpoint (if any) is "
            "unchanged. Free some disk space or choose another --out folder and try again"
        ) from err
    except Exception as err:
        raise CheckpointError(f"could not save checkpoint {path}: {err}") from err


def save_checkpoint(payload: dict[str, Any], path: str | os.PathLike) -> Path:
    """Save ``payload`` atomically to ``path`` with format and library-version metadata added.

    The caller's dict is not modified. Raises :class:`CheckpointError` (naming the path and the OS
    error) if writing fails; the file that was at ``path`` before is then left untouched.
    """
    from srgan_edu import __version__

    path = Path(path)
    if not isinstance(payload, Mapping):
        raise CheckpointError(
            f"cannot save {path}: expected a dict payload, got {type(payload).__name__}"
        )
    full = dict(payload)
    full.update(format=FORMAT, format_version=FORMAT_VERSION, library_version=__version__)
    _check_plain(full, "payload")
    _atomic_write(path, lambda f: torch.save(full, f))
    return path


def load_checkpoint(
    path: str | os.PathLike, map_location: str | torch.device | None = "cpu"
) -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` with ``weights_only=True``.

    Raises :class:`CheckpointError` for a missing, empty, truncated, non-torch or foreign file.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"checkpoint {path} not found: expected a .pt file written by srgan_edu; "
            "check the path (or train first to create one)"
        )
    size = path.stat().st_size
    if size == 0:
        raise CheckpointError(
            f"checkpoint {path} is empty (0 bytes): it was probably cut off while being written; "
            "use an earlier checkpoint"
        )
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # zip / unpickling errors vary by torch version
        raise CheckpointError(
            f"checkpoint {path} ({size} bytes) could not be read as a torch checkpoint "
            f"(it may be truncated, corrupt, or not a checkpoint at all): "
            f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
        ) from err
    found = obj.get("format") if isinstance(obj, dict) else None
    if found != FORMAT:
        what = (
            f"a {type(obj).__name__}"
            if not isinstance(obj, dict)
            else f"a dict with format={found!r} and keys {sorted(map(str, obj))[:8]}"
        )
        raise CheckpointError(
            f"checkpoint {path} is not an srgan_edu checkpoint: expected a dict with "
            f"format={FORMAT!r}, found {what}. Bare state dicts and other projects' files "
            "are not accepted here"
        )
    version = obj.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {path} has format_version={version!r}, this srgan_edu reads versions "
            f"up to {FORMAT_VERSION}; upgrade srgan_edu to load it"
        )
    return obj


def check_arch(
    saved: Mapping[str, Any], current: Mapping[str, Any], what: str = "generator"
) -> None:
    """Refuse a checkpoint whose architecture differs, naming every mismatching field."""
    problems = []
    for key in sorted(set(saved) | set(current), key=str):
        if key not in saved:
            problems.append(f"checkpoint {what} has no {key}, this run has {key}={current[key]!r}")
        elif key not in current:
            problems.append(f"checkpoint {what} has {key}={saved[key]!r}, this run has no {key}")
        elif saved[key] != current[key]:
            problems.append(
                f"checkpoint {what} has {key}={saved[key]!r}, this run has {key}={current[key]!r}"
            )
    if problems:
        raise CheckpointError(
            f"checkpoint {what} architecture does not match this run: "
            + "; ".join(problems)
            + ". Use the same settings as the run that saved it, or start a new --out folder"
        )


# --------------------------------------------------------------------------------------------
# Keep last N + best
# --------------------------------------------------------------------------------------------


class CheckpointManager:
    """``step_XXXXXXXX.pt`` files in one folder: keep the last ``keep_last``, plus ``best.pt``."""

    def __init__(self, directory: str | os.PathLike, keep_last: int = 3) -> None:
        if keep_last < 1:
            raise ValueError(f"keep_last must be at least 1, got {keep_last}")
        self.directory = Path(directory)
        self.keep_last = keep_last
        self.directory.mkdir(parents=True, exist_ok=True)
        self._best: float | None = None
        self._best_loaded = False
        # Temp files left by a process killed mid-write are never valid checkpoints.
        for stale in self.directory.glob(f".*{_TMP_SUFFIX}"):
            stale.unlink(missing_ok=True)

    @property
    def best_path(self) -> Path:
        return self.directory / "best.pt"

    def step_path(self, step: int) -> Path:
        return self.directory / f"step_{step:08d}.pt"

    def steps(self) -> list[tuple[int, Path]]:
        """(step, path) of every step file, oldest first."""
        found = []
        for p in self.directory.iterdir():
            m = _STEP_RE.match(p.name)
            if m and p.is_file():
                found.append((int(m.group(1)), p))
        return sorted(found)

    def best_metric(self) -> float | None:
        """The best metric saved so far (read from ``best.pt`` once), or None."""
        if not self._best_loaded:
            self._best_loaded = True
            if self.best_path.is_file():
                try:
                    self._best = load_checkpoint(self.best_path).get("best_metric")
                except CheckpointError as err:
                    warnings.warn(f"ignoring unreadable best checkpoint: {err}", stacklevel=2)
        return self._best

    def save(
        self,
        payload: dict[str, Any],
        step: int,
        metric: float | None = None,
        higher_is_better: bool = True,
    ) -> Path:
        """Write ``step_{step:08d}.pt``, update ``best.pt`` if ``metric`` improved, prune."""
        best = self.best_metric()
        improved = metric is not None and (
            best is None or (metric > best if higher_is_better else metric < best)
        )
        if improved:
            best = float(metric)
        full = dict(payload)
        full.update(
            step=int(step),
            metric=None if metric is None else float(metric),
            best_metric=best,
            higher_is_better=bool(higher_is_better),
        )
        path = save_checkpoint(full, self.step_path(step))
        if improved:

            def copy(f) -> None:
                with open(path, "rb") as src:
                    shutil.copyfileobj(src, f)

            _atomic_write(self.best_path, copy)
            self._best = best
        for _, old in self.steps()[: -self.keep_last]:
            old.unlink(missing_ok=True)
        return path

    def _newest_loadable(self, map_location: Any = "cpu") -> tuple[Path, dict[str, Any]] | None:
        for _, path in reversed(self.steps()):
            try:
                return path, load_checkpoint(path, map_location=map_location)
            except CheckpointError as err:
                warnings.warn(
                    f"skipping unreadable checkpoint, trying an older one: {err}", stacklevel=3
                )
        return None

    def latest(self) -> Path | None:
        """Path of the newest step file that loads (unreadable ones skipped with a warning)."""
        found = self._newest_loadable()
        return None if found is None else found[0]

    def load_latest(self, map_location: str | torch.device | None = "cpu") -> dict[str, Any] | None:
        """The newest step checkpoint that loads, or None if there is none."""
        found = self._newest_loadable(map_location)
        return None if found is None else found[1]


# --------------------------------------------------------------------------------------------
# Networks in checkpoints
# --------------------------------------------------------------------------------------------


def network_entry(model: torch.nn.Module) -> dict[str, Any]:
    """``{"arch": model.arch(), "state_dict": ...}``: how a network is stored in a checkpoint.

    The architecture travels with the weights, so a checkpoint rebuilds its own network
    (:func:`load_network`) and a mismatching run is refused by name (:func:`check_arch`).
    """
    model = getattr(model, "module", model)  # DistributedDataParallel
    model = getattr(model, "_orig_mod", model)  # torch.compile
    return {"arch": dict(model.arch()), "state_dict": model.state_dict()}


def load_network(
    source: str | os.PathLike | Mapping[str, Any],
    key: str = "generator",
    map_location: str | torch.device | None = "cpu",
) -> torch.nn.Module:
    """Rebuild the network stored under ``key`` of a checkpoint (a path or a loaded payload).

    Works for every srgan_edu checkpoint that holds the network: training steps, ``best.pt``,
    and the ``srresnet.pt`` / ``srgan.pt`` files a training run leaves in its output folder.
    The network is returned in eval mode. Raises :class:`CheckpointError` naming what is wrong.
    """
    from srgan_edu.models import build_model

    where = "the checkpoint"
    if not isinstance(source, Mapping):
        where = str(source)
        source = load_checkpoint(source, map_location=map_location)
    entry = source.get(key)
    if not isinstance(entry, Mapping) or "arch" not in entry or "state_dict" not in entry:
        held = [k for k, v in source.items() if isinstance(v, Mapping) and "arch" in v]
        raise CheckpointError(
            f"{where} holds no {key} (networks in it: {held or 'none'}); pass a checkpoint "
            f"written by srgan_edu.train that contains the {key}"
        )
    try:
        model = build_model(entry["arch"])
    except (ValueError, TypeError) as err:
        raise CheckpointError(f"{where}: cannot rebuild the {key}: {err}") from err
    try:
        model.load_state_dict(entry["state_dict"])
    except RuntimeError as err:
        first = str(err).splitlines()[1:2] or [str(err)]
        raise CheckpointError(
            f"{where}: the {key} weights do not fit its architecture {dict(entry['arch'])}: "
            f"{first[0].strip()}"
        ) from err
    if map_location is not None:
        model.to(map_location)
    return model.eval()
