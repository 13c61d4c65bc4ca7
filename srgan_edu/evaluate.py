"""Evaluation: PSNR / SSIM of a generator (or of bicubic) on CelebA or any image folder.

This is how the paper's Table 2 is measured (Ledig et al. 2017, Sec. 3.1): HR test images, their
4x-downscaled LR versions, an upscaler, and PSNR / SSIM on the Y channel with a ``scale``-pixel
border removed (:func:`srgan_edu.metrics.sr_metrics`). The pieces, in the order data flows:

* :func:`open_eval_data` - find the test images at a path (CelebA, a Set5-style HR + LR folder,
  or a plain folder of HR images) and say which layout it found.
* :func:`eval_pairs` - batches of ``(names, lr, hr)``; when only HR images exist the LR input is
  made with MATLAB-style bicubic (:func:`srgan_edu.degrade.degrade`, rounded to 8-bit levels as an
  LR PNG would be); given LR images are used as they are.
* :func:`bicubic_upscaler`, :func:`generator_upscaler` - LR in [0, 1] -> SR in [0, 1].
* :func:`evaluate_upscaler` / :func:`evaluate_upscalers` - per-image PSNR / SSIM
  (:class:`EvalResult`); the training loop's validation calls these.
* :func:`evaluate` - everything above plus the CSV and the zoomed crops: what
  ``python -m srgan_edu.evaluate`` runs (see ``--help``).

Introduced in lesson 09 (evaluating SRResNet and SRGAN against bicubic).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Subset

from srgan_edu.checkpoint import CheckpointError, atomic_write, load_checkpoint, load_network
from srgan_edu.cli import DeviceError, one_line, resolve_checkpoint, resolve_device
from srgan_edu.data import (
    CelebA,
    DatasetError,
    ImageFolder,
    PairedImageFolder,
    _found,
    looks_like_celeba,
    uint8_to_unit,
    worker_init,
)
from srgan_edu.degrade import METHODS, bicubic_up, degrade
from srgan_edu.imaging import ImageReadError, list_images, save_image, signed_to_unit
from srgan_edu.metrics import paper_table, sr_metrics

__all__ = [
    "EvalData",
    "EvalError",
    "EvalPairs",
    "EvalReport",
    "EvalResult",
    "Example",
    "Upscaler",
    "bicubic_upscaler",
    "eval_pairs",
    "evaluate",
    "evaluate_upscaler",
    "evaluate_upscalers",
    "generator_upscaler",
    "main",
    "open_eval_data",
    "save_crops",
    "write_csv",
]

Upscaler = Callable[[torch.Tensor], torch.Tensor]
"""LR batch (B, 3, h, w) in [0, 1] -> SR batch (B, 3, scale*h, scale*w) in [0, 1]."""

SPLIT_CHOICES = ("train", "val", "test", "all", "holdout")


class EvalError(ValueError):
    """A setting a user got wrong for an evaluation (e.g. a scale that does not fit the model)."""


def _min_side(scale: int) -> int:
    """Smallest HR side that can be measured: a ``scale`` border on each side + SSIM's window."""
    return 2 * scale + 11


# ----------------------------------------------------------------------------------------------
# upscalers: LR in [0, 1] -> SR in [0, 1]
# ----------------------------------------------------------------------------------------------


def bicubic_upscaler(scale: int) -> Upscaler:
    """The bicubic baseline of Table 2: MATLAB-style ``imresize(lr, scale)``, clipped to [0, 1].

    Runs on the device of its input and returns there.
    """

    def bicubic(lr: torch.Tensor) -> torch.Tensor:
        return bicubic_up(lr, scale, clamp=True)  # (B, 3, s*h, s*w)

    return bicubic


def generator_upscaler(
    generator: torch.nn.Module, device: str | torch.device | None = None
) -> Upscaler:
    """Wrap a generator (LR in [0, 1] -> [-1, 1]) as an upscaler (LR in [0, 1] -> SR in [0, 1]).

    The input batch is moved to the model's device (``device`` moves the model there first); the
    result is float32 in [0, 1], clipped, and stays on the model's device (metrics move the HR
    batch to it, so a GPU evaluation never copies SR images back). Each call runs in eval mode
    (batch norm uses its running statistics) under ``torch.inference_mode()`` and then restores
    the model's previous train/eval mode, so the training loop can validate mid-run. A
    DistributedDataParallel wrapper is looked through (rank-0 validation must not sync).
    """
    model = generator
    if isinstance(model, torch.nn.parallel.DistributedDataParallel):
        model = model.module
    if device is not None:
        model.to(device)
        where = torch.device(device)
    else:
        first = next(model.parameters(), None)
        where = first.device if first is not None else torch.device("cpu")

    def upscale(lr: torch.Tensor) -> torch.Tensor:
        was_training = model.training
        model.eval()
        try:
            with torch.inference_mode():
                out = model(lr.to(where, torch.float32))  # (B, 3, s*h, s*w) in [-1, 1]
                return signed_to_unit(out.float()).clamp_(0.0, 1.0)
        finally:
            model.train(was_training)

    return upscale


# ----------------------------------------------------------------------------------------------
# finding the data
# ----------------------------------------------------------------------------------------------

LAYOUTS_HELP = """\
Data layouts --data accepts, tried in this order:
  1. CelebA: a folder holding img_align_celeba/ (official or Kaggle layout) or
     img_align_celeba.zip, with list_eval_partition.txt/.csv; the img_align_celeba folder or the
     zip file itself works too. --split picks train/val/test (default test), 'all' every image,
     'holdout' the last --holdout N train images by name (for partial copies). Each face is
     evaluated on its largest centred square with a side divisible by --scale (176x176
     for the 178x218 faces at x4).
  2. An SR benchmark folder (Set5, Set14 ... as BasicSR or EDSR ship them): ROOT/HR/ (or
     GTmod12/, GT/) with ROOT/LRbicx4/ (or LR_bicubic/X4/) for --scale 4. The given LR images
     are used as they are. With HR/ and no LR folder at all, LR is made from HR/ as in 3.
  3. Any folder of images (.png, .jpg, ...): HR only; each LR input is made with MATLAB-style
     bicubic downscaling, rounded to 8 bits like an LR PNG. Images are cut at the bottom/right
     to a multiple of --scale."""


@dataclass
class EvalData:
    """Test images found at ``path``: the dataset, its layout ``kind`` and how to name it.

    ``kind`` is ``"celeba"`` (HR only), ``"paired"`` (HR + given LR) or ``"folder"`` (HR only).
    """

    dataset: Dataset
    kind: str
    path: Path
    label: str  # the dataset's name in a results table, e.g. "CelebA test" or "Set5"
    description: str  # one line for a log
    split: str | None = None

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    @property
    def lr_given(self) -> bool:
        """True when the LR inputs come from disk, False when they are made from HR."""
        return self.kind == "paired"


def open_eval_data(
    path: str | os.PathLike,
    scale: int = 4,
    split: str = "test",
    *,
    holdout: int = 0,
    crop: int | None = None,
    partition: str | os.PathLike | None = None,
) -> EvalData:
    """Find the test images at ``path`` and open them for evaluation at ``scale``.

    Detection order (see :data:`LAYOUTS_HELP`): (1) CelebA - ``path`` is or holds
    ``img_align_celeba`` (folder or zip), ``split`` and ``holdout`` as in :class:`CelebA`, eval
    mode: largest centred square with a side divisible by ``scale`` (or ``crop``); (2) an SR
    benchmark folder - ``HR/`` (``GTmod12/``, ``GT/``) with ``LRbicx{scale}/`` or
    ``LR_bicubic/X{scale}/``, given LR used as is (``HR/`` alone: its images as in 3); (3) a
    folder of HR images, cut to a multiple of ``scale``. ``split``, ``holdout`` and
    ``partition`` (a partition file elsewhere) only apply to CelebA.
    Raises :class:`DatasetError` saying what was expected and what was found.
    """
    root = Path(path).expanduser()
    if not root.exists():
        raise DatasetError(
            f"data folder not found: {root}. Pass a folder of test images, a Set5-style folder "
            "with HR/ and LRbicx4/, or a CelebA folder holding img_align_celeba."
        )
    if root.is_file() and root.suffix.lower() != ".zip":
        raise DatasetError(
            f"{root} is a file; pass the folder that holds the test images (for one image, use "
            "python -m srgan_edu.upscale instead)."
        )
    if looks_like_celeba(root):
        ds = CelebA(
            root,
            split=split,
            mode="eval",
            crop=crop,
            multiple_of=scale,
            holdout=holdout,
            partition=partition,
        )
        label = f"CelebA {split}" if split != "holdout" else f"CelebA holdout {holdout}"
        return EvalData(ds, "celeba", root, label, ds.describe(), split)
    for hr_name in PairedImageFolder.HR_DIRS:
        hr_dir = root / hr_name
        if not hr_dir.is_dir():
            continue
        lr_dirs = [root / f"LRbicx{scale}", root / "LR_bicubic" / f"X{scale}"]
        if any(d.is_dir() for d in lr_dirs):
            ds = PairedImageFolder(root, scale)
            where = ds.lr_dir.relative_to(root)
            text = f"{root.name}: {len(ds)} HR images in {hr_name}/ with given x{scale} LR {where}/"
            return EvalData(ds, "paired", root, root.name, text)
        other = sorted(
            [p.name + "/" for p in root.glob("LRbicx*") if p.is_dir()]
            + [f"LR_bicubic/{p.name}/" for p in root.glob("LR_bicubic/X*") if p.is_dir()]
        )
        if other:
            raise DatasetError(
                f"{root} has {hr_name}/ and LR folders {', '.join(other)} but none for scale "
                f"{scale} (LRbicx{scale}/ or LR_bicubic/X{scale}/): pass the scale those LR "
                f"images were made for, or pass {hr_dir} to make x{scale} LR from the HR images."
            )
        ds = ImageFolder(hr_dir, mode="eval", crop=crop, multiple_of=scale)
        text = f"{root.name}: {len(ds)} HR images in {hr_name}/, LR made with bicubic x{scale}"
        return EvalData(ds, "folder", root, root.name, text)
    if root.is_dir() and not list_images(root):
        raise DatasetError(
            f"no images in {root}: expected image files (.png, .jpg, ...), a Set5-style HR/ + "
            f"LRbicx{scale}/ folder, or CelebA's img_align_celeba. {_found(root)}"
        )
    ds = ImageFolder(root, mode="eval", crop=crop, multiple_of=scale)
    text = f"{root.name}: {len(ds)} HR images, LR made with bicubic x{scale}"
    return EvalData(ds, "folder", root, root.name, text)


# ----------------------------------------------------------------------------------------------
# (names, lr, hr) batches
# ----------------------------------------------------------------------------------------------


@dataclass
class _Failed:
    """An item that could not be read (sent back from a DataLoader worker instead of raising)."""

    message: str


class _Items(Dataset):
    """Item ``i`` as ``(name, lr or None, hr)``; a read error is returned as :class:`_Failed`."""

    def __init__(self, dataset: Dataset, names: Sequence[str]) -> None:
        self.dataset, self.names = dataset, names

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, i: int):
        try:
            item = self.dataset[i]
        except DatasetError as err:
            if isinstance(err.__cause__, ImageReadError):  # say it for evaluation, not training
                return _Failed(
                    f"{err.__cause__}. The file is corrupt or incomplete: replace it or remove it "
                    "from the folder (every image is evaluated)"
                )
            return _Failed(str(err))
        except (ImageReadError, OSError) as err:
            return _Failed(str(err))
        if isinstance(item, (tuple, list)):
            lr, hr = item
        else:
            lr, hr = None, item
        return self.names[i], lr, hr


class EvalPairs:
    """Re-iterable batches ``(names, lr, hr)`` over a dataset; ``len()`` counts images.

    Built by :func:`eval_pairs`; each ``for`` loop reads the images again.
    """

    def __init__(
        self,
        dataset: Dataset,
        names: Sequence[str],
        scale: int,
        batch_size: int,
        device: torch.device,
        num_workers: int,
        degradation: str = "bicubic",
    ) -> None:
        self.dataset, self.names, self.scale = dataset, list(names), scale
        self.batch_size, self.device, self.num_workers = batch_size, device, num_workers
        self.degradation = degradation

    def __len__(self) -> int:
        return len(self.names)

    def _items(self) -> Iterator[Any]:
        items = _Items(self.dataset, self.names)
        if self.num_workers <= 0:
            return (items[i] for i in range(len(items)))
        return iter(
            DataLoader(
                items,
                batch_size=None,
                shuffle=False,
                num_workers=self.num_workers,
                worker_init_fn=worker_init,
            )
        )

    def _check_size(self, name: str, hr: torch.Tensor) -> None:
        h, w = hr.shape[-2:]
        need = _min_side(self.scale)
        if h < need or w < need:
            raise DatasetError(
                f"image {name} is {h}x{w} (HxW) after cutting it to a multiple of {self.scale}, "
                f"too small to measure at x{self.scale}: PSNR/SSIM need at least {need}x{need} "
                f"({self.scale} border pixels on each side + SSIM's 11x11 window). Remove it or "
                "use larger test images."
            )

    def _batch(self, group: list[tuple[str, torch.Tensor | None, torch.Tensor]]):
        names = [name for name, _, _ in group]
        hr = uint8_to_unit(torch.stack([h for _, _, h in group]).to(self.device))  # (B, 3, H, W)
        if group[0][1] is not None:  # given LR images (paired folder)
            lr = uint8_to_unit(torch.stack([g[1] for g in group]).to(self.device))  # (B, 3, h, w)
        else:  # like an 8-bit LR PNG made with MATLAB's imresize(hr, 1/scale) (by default)
            lr = degrade(hr, self.scale, self.degradation, quantize=True)  # (B, 3, H/s, W/s)
        return names, lr, hr

    def __iter__(self) -> Iterator[tuple[list[str], torch.Tensor, torch.Tensor]]:
        group: list[tuple[str, torch.Tensor | None, torch.Tensor]] = []
        group_shape = None  # (HR shape, LR shape or None) shared by the images of ``group``
        s = self.scale
        for item in self._items():
            if isinstance(item, _Failed):
                raise DatasetError(item.message)
            name, lr, hr = item
            hr = hr[:, : hr.shape[-2] // s * s, : hr.shape[-1] // s * s]  # modcrop: HR/s exact
            self._check_size(name, hr)
            shape = (tuple(hr.shape), None if lr is None else tuple(lr.shape))
            if group and (len(group) == self.batch_size or shape != group_shape):
                yield self._batch(group)
                group = []
            group.append((name, lr, hr))
            group_shape = shape
        if group:
            yield self._batch(group)


def eval_pairs(
    source: EvalData | Dataset | torch.Tensor,
    scale: int,
    *,
    batch_size: int = 16,
    limit: int | None = None,
    device: str | torch.device | None = None,
    num_workers: int = 0,
    degradation: str = "bicubic",
) -> EvalPairs:
    """Batches ``(names, lr, hr)`` for evaluation: LR in [0, 1], HR in [0, 1], on ``device``.

    ``source``: what :func:`open_eval_data` returns, any dataset of HR images ``(3, H, W)`` (e.g.
    :class:`CelebA`, :class:`ImageFolder`) or of ``(lr, hr)`` pairs (:class:`PairedImageFolder`),
    or a tensor of HR images ``(B, 3, H, W)``. HR is cut at the bottom/right to a multiple of
    ``scale``; without a given LR image the LR is ``degrade(hr, scale, "bicubic",
    quantize=True)``, MATLAB's ``imresize(hr, 1/scale)`` as an 8-bit PNG would hold it. Images of
    different sizes go into different batches (consecutive images of one size share one, up to
    ``batch_size``). ``limit`` keeps the first N images; ``num_workers`` decodes in
    DataLoader worker processes; ``degradation="gaussian"`` makes LR as the paper's Sec. 2
    describes (for a model trained that way). Raises :class:`DatasetError` for an unreadable or
    too small image.
    """
    if isinstance(batch_size, bool) or int(batch_size) < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    dataset = source.dataset if isinstance(source, EvalData) else source
    if isinstance(dataset, torch.Tensor):
        images = dataset if dataset.dim() == 4 else dataset.unsqueeze(0)  # (B, 3, H, W)
        dataset = list(images.unbind(0))
    n = len(dataset)  # type: ignore[arg-type]
    names = getattr(dataset, "names", None)
    if names is None or len(names) != n:
        names = [f"{i:06d}" for i in range(n)]
    if limit is not None:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        n = min(n, int(limit))
        dataset, names = Subset(dataset, range(n)), names[:n]  # type: ignore[arg-type]
    if n == 0:
        raise DatasetError("no images to evaluate: the dataset is empty")
    dev = torch.device(device) if device is not None else torch.device("cpu")
    if degradation not in METHODS:
        raise ValueError(f"degradation must be one of {METHODS}, got {degradation!r}")
    return EvalPairs(
        dataset, names, int(scale), int(batch_size), dev, int(num_workers), degradation
    )


# ----------------------------------------------------------------------------------------------
# measuring
# ----------------------------------------------------------------------------------------------


@dataclass
class Example:
    """One evaluated image kept for pictures: name and (3, h, w) tensors in [0, 1], on the CPU."""

    name: str
    lr: torch.Tensor
    sr: torch.Tensor
    hr: torch.Tensor


@dataclass
class EvalResult:
    """Per-image Y-channel PSNR [dB] and SSIM of one method (the numbers behind a Table 2 cell)."""

    method: str
    scale: int
    names: list[str]
    psnr: torch.Tensor  # (N,)
    ssim: torch.Tensor  # (N,)
    seconds: float = 0.0  # time spent upscaling and measuring
    examples: list[Example] = field(default_factory=list, repr=False)

    def __len__(self) -> int:
        return len(self.names)

    @property
    def n(self) -> int:
        return len(self.names)

    def mean(self) -> tuple[float, float]:
        """(mean PSNR, mean SSIM): the mean of per-image values, as the paper's tables report."""
        return float(self.psnr.double().mean()), float(self.ssim.double().mean())

    def summary(self) -> dict[str, Any]:
        """``{"method", "scale", "n", "psnr_y", "ssim_y", "seconds"}`` (means over the images)."""
        p, s = self.mean()
        return {
            "method": self.method,
            "scale": self.scale,
            "n": self.n,
            "psnr_y": p,
            "ssim_y": s,
            "seconds": self.seconds,
        }

    def rows(self) -> list[dict[str, Any]]:
        """One ``{"image", "psnr_y", "ssim_y"}`` dict per image, in evaluation order."""
        return [
            {"image": name, "psnr_y": float(p), "ssim_y": float(s)}
            for name, p, s in zip(self.names, self.psnr.tolist(), self.ssim.tolist(), strict=True)
        ]


def evaluate_upscalers(
    upscalers: Mapping[str, Upscaler],
    pairs: Iterable[tuple[Sequence[str], torch.Tensor, torch.Tensor]],
    scale: int,
    *,
    progress: bool = False,
    keep_examples: int = 0,
) -> dict[str, EvalResult]:
    """Measure several upscalers on the same images in one pass over ``pairs``.

    ``pairs`` yields ``(names, lr, hr)`` as :func:`eval_pairs` makes them. Each method's output
    is compared with HR by :func:`sr_metrics` (Y channel, ``scale`` border pixels removed, 8-bit
    levels: Sec. 3.1 of the paper). ``keep_examples`` keeps the first N images of each method
    as :class:`Example` for pictures. Returns ``{method: EvalResult}`` in the order given.
    """
    if not upscalers:
        raise ValueError("evaluate_upscalers needs at least one upscaler, e.g. {'bicubic': ...}")
    from tqdm.auto import tqdm

    names: list[str] = []
    parts: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = {m: [] for m in upscalers}
    seconds = dict.fromkeys(upscalers, 0.0)
    examples: dict[str, list[Example]] = {m: [] for m in upscalers}
    total = len(pairs) if hasattr(pairs, "__len__") else None  # type: ignore[arg-type]
    with tqdm(
        total=total, unit="img", desc="evaluating", disable=not progress, file=sys.stderr
    ) as bar:
        for batch_names, lr, hr in pairs:
            for method, upscale in upscalers.items():
                start = time.perf_counter()
                sr = upscale(lr)  # (B, 3, s*h, s*w) in [0, 1]
                if tuple(sr.shape) != tuple(hr.shape):
                    raise EvalError(
                        f"{method} turned LR images of {tuple(lr.shape[-2:])} into "
                        f"{tuple(sr.shape[-2:])}, but the HR images are {tuple(hr.shape[-2:])}: "
                        f"the upscaler does not upscale by the evaluation's scale {scale}"
                    )
                m = sr_metrics(sr, hr.to(sr.device), scale)
                parts[method].append((m.psnr, m.ssim))
                seconds[method] += time.perf_counter() - start
                keep = keep_examples - len(examples[method])
                for i in range(min(keep, len(batch_names))):
                    examples[method].append(
                        Example(
                            batch_names[i],
                            lr[i].detach().float().cpu(),
                            sr[i].detach().float().cpu(),
                            hr[i].detach().float().cpu(),
                        )
                    )
            names += list(batch_names)
            bar.update(len(batch_names))
    if not names:
        raise DatasetError("no images to evaluate: the data source yielded nothing")
    return {
        method: EvalResult(
            method,
            int(scale),
            list(names),
            torch.cat([p for p, _ in parts[method]]),
            torch.cat([s for _, s in parts[method]]),
            seconds[method],
            examples[method],
        )
        for method in upscalers
    }


def evaluate_upscaler(
    upscale: Upscaler,
    pairs: Iterable[tuple[Sequence[str], torch.Tensor, torch.Tensor]],
    scale: int,
    *,
    method: str = "model",
    progress: bool = False,
    keep_examples: int = 0,
) -> EvalResult:
    """Per-image PSNR / SSIM of one upscaler over ``pairs`` (see :func:`evaluate_upscalers`)."""
    return evaluate_upscalers(
        {method: upscale}, pairs, scale, progress=progress, keep_examples=keep_examples
    )[method]


# ----------------------------------------------------------------------------------------------
# outputs: table, CSV, crops
# ----------------------------------------------------------------------------------------------


def write_csv(results: Mapping[str, EvalResult], path: str | os.PathLike, main: str) -> Path:
    """One row per image: ``image, psnr_y, ssim_y`` of method ``main``, then the other methods'
    columns prefixed with their names (e.g. ``bicubic_psnr_y``). Written atomically."""
    first = results[main]
    columns = ["image", "psnr_y", "ssim_y"]
    others = [m for m in results if m != main]
    for m in others:
        columns += [f"{m}_psnr_y", f"{m}_ssim_y"]
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(columns)
    per_method = {
        m: list(zip(r.psnr.tolist(), r.ssim.tolist(), strict=True)) for m, r in results.items()
    }
    for i, name in enumerate(first.names):
        row: list[Any] = [name, *(f"{v:.4f}" for v in per_method[main][i])]
        for m in others:
            row += [f"{v:.4f}" for v in per_method[m][i]]
        writer.writerow(row)
    data = text.getvalue().encode("utf-8")
    try:
        return atomic_write(path, lambda f: f.write(data))
    except OSError as err:
        raise EvalError(
            f"could not write the CSV {path}: {err.strerror or err}; a previous file there is "
            "unchanged. Free some disk space or choose another --csv path"
        ) from err


def save_crops(
    results: Mapping[str, EvalResult],
    directory: str | os.PathLike,
    main: str,
    zoom: int = 2,
) -> list[Path]:
    """Save ``LR | bicubic | SR | HR`` zoomed crops (:func:`srgan_edu.viz.zoomed_crops`), one PNG
    per kept example, named ``NN_<image>.png``. Bicubic is computed when it was not evaluated."""
    from srgan_edu.viz import zoomed_crops

    directory = Path(directory)
    saved: list[Path] = []
    bicubic = results.get("bicubic")
    for i, ex in enumerate(results[main].examples):
        scale = ex.hr.shape[-1] // ex.lr.shape[-1]
        if bicubic is not None and i < len(bicubic.examples):
            bic = bicubic.examples[i].sr
        else:
            bic = bicubic_up(ex.lr, scale)
        columns = [ex.lr, bic, ex.hr] if main == "bicubic" else [ex.lr, bic, ex.sr, ex.hr]
        picture = zoomed_crops(columns, zoom=zoom)  # (3, H, W)
        target = directory / f"{i:02d}_{Path(ex.name).stem}.png"
        try:
            saved.append(save_image(picture, target))
        except OSError as err:
            raise EvalError(
                f"could not save the crop {target}: {err.strerror or err}. Free some disk space "
                "or choose another --crops folder"
            ) from err
    return saved


# ----------------------------------------------------------------------------------------------
# the whole evaluation, as the CLI runs it
# ----------------------------------------------------------------------------------------------


_NICE_NAMES = {"srresnet": "SRResNet", "srgan": "SRGAN"}


def _method_label(payload: Mapping[str, Any], path: Path) -> str:
    """The shipped model's label (SRGAN-VGG22, ...), else SRResNet / SRGAN from the checkpoint's
    phase or file name, else the file name."""
    if isinstance(payload.get("label"), str) and payload["label"]:
        return payload["label"]
    phase = payload.get("phase")
    if isinstance(phase, str) and phase.lower() in _NICE_NAMES:
        return _NICE_NAMES[phase.lower()]
    return _NICE_NAMES.get(path.stem.lower(), path.stem)


@dataclass
class EvalReport:
    """An evaluation's results (``{method: EvalResult}``, bicubic first) and what it wrote."""

    data: EvalData
    scale: int
    results: dict[str, EvalResult]
    method: str  # the evaluated method: "bicubic" or the checkpoint's label
    checkpoint: Path | None = None
    device: str = "cpu"
    csv: Path | None = None
    crops: list[Path] = field(default_factory=list)

    @property
    def result(self) -> EvalResult:
        """The evaluated method's result."""
        return self.results[self.method]

    def table(self) -> str:
        """Mean PSNR / SSIM of every method laid out like Table 2 (``*``: best per row)."""
        cells = {m: {self.data.label: r.mean()} for m, r in self.results.items()}
        caption = f"x{self.scale} upscaling, Y channel, {self.scale}-pixel border removed"
        return paper_table(cells, caption=caption)

    def to_dict(self) -> dict[str, Any]:
        """The JSON of ``--json``: ``n``, ``psnr_y``, ``ssim_y`` of the evaluated method, the
        settings, bicubic's numbers next to a checkpoint's, and the files written."""
        out = self.result.summary()
        out.update(
            data=str(self.data.path),
            layout=self.data.kind,
            split=self.data.split,
            lr="given" if self.data.lr_given else "bicubic",
            checkpoint=None if self.checkpoint is None else str(self.checkpoint),
            device=self.device,
        )
        for m, r in self.results.items():
            if m != self.method:
                p, s = r.mean()
                out[m] = {"psnr_y": p, "ssim_y": s, "seconds": r.seconds}
        out.update(
            csv=None if self.csv is None else str(self.csv), crops=[str(p) for p in self.crops]
        )
        return _finite(out)


def _finite(obj: Any) -> Any:
    """Infinite / NaN floats (PSNR of identical images) -> None, so the JSON stays standard."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    return obj


def evaluate(
    data: str | os.PathLike,
    checkpoint: str | os.PathLike | None = None,
    *,
    scale: int | None = None,
    split: str = "test",
    holdout: int = 0,
    partition: str | os.PathLike | None = None,
    limit: int | None = None,
    batch_size: int = 16,
    device: str | torch.device | None = None,
    num_workers: int = 0,
    csv_path: str | os.PathLike | None = None,
    crops: str | os.PathLike | None = None,
    n_crops: int = 4,
    progress: bool = False,
) -> EvalReport:
    """Evaluate a checkpoint's generator (and bicubic beside it), or bicubic alone, on ``data``.

    ``scale`` defaults to the checkpoint's (4 for bicubic); a different one is refused by
    :class:`EvalError`. ``device`` defaults to :func:`srgan_edu.course.pick_device`. Writes the
    per-image CSV to ``csv_path`` and ``n_crops`` zoomed crops to ``crops`` if given.
    """
    from srgan_edu.course import pick_device

    dev = pick_device(None if device is None else str(device))
    model, label, ckpt_path = None, "bicubic", None
    if checkpoint is not None:
        ckpt_path = resolve_checkpoint(checkpoint)
        payload = load_checkpoint(ckpt_path, map_location="cpu")
        model = load_network(payload, key="generator", map_location=dev)
        label = _method_label(payload, ckpt_path)
        model_scale = int(getattr(model, "scale", 0))
        if scale is not None and int(scale) != model_scale:
            raise EvalError(
                f"--scale {scale} does not match the checkpoint: {ckpt_path} holds an x"
                f"{model_scale} generator. Leave --scale out (it follows the checkpoint) or "
                f"pass --scale {model_scale}"
            )
        scale = model_scale
    scale = 4 if scale is None else int(scale)
    eval_data = open_eval_data(data, scale, split, holdout=holdout, partition=partition)
    pairs = eval_pairs(
        eval_data, scale, batch_size=batch_size, limit=limit, device=dev, num_workers=num_workers
    )
    upscalers: dict[str, Upscaler] = {"bicubic": bicubic_upscaler(scale)}
    if model is not None:
        upscalers[label] = generator_upscaler(model)
    keep = max(0, n_crops) if crops is not None else 0
    results = evaluate_upscalers(upscalers, pairs, scale, progress=progress, keep_examples=keep)
    report = EvalReport(eval_data, scale, results, label, ckpt_path, str(dev))
    if csv_path is not None:
        report.csv = write_csv(results, csv_path, label)
    if crops is not None:
        report.crops = save_crops(results, crops, label)
    return report


# ----------------------------------------------------------------------------------------------
# command line
# ----------------------------------------------------------------------------------------------

EXAMPLES = """\
examples:
  # the bicubic baseline on the CelebA test split
  python -m srgan_edu.evaluate --data ~/data/celeba --bicubic
  # a trained generator (bicubic is measured beside it), per-image CSV and zoomed crops
  python -m srgan_edu.evaluate --data ~/data/celeba --checkpoint runs/laptop/srresnet.pt \\
      --csv results.csv --crops crops/
  # a partial CelebA copy with no test images: the last 200 train images by name
  python -m srgan_edu.evaluate --data ../shared/data/celeba_89x109 --bicubic \\
      --split holdout --holdout 200
  # Set5 in BasicSR's layout (Set5/HR + Set5/LRbicx4), numbers for a script
  python -m srgan_edu.evaluate --data Set5 --checkpoint srgan.pt --json

Metrics: PSNR [dB] and SSIM on the Y channel with --scale pixels cut from each border, as in
Table 2 of Ledig et al. (2017); higher is better; '*' marks the best method of each row.
Crops (--crops): one PNG per image, columns LR | bicubic | SR | HR (LR | bicubic | HR with
--bicubic), the centre of each image enlarged 2x.

"""


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m srgan_edu.evaluate`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="python -m srgan_edu.evaluate",
        description=(
            "Measure how well a trained generator (or plain bicubic upscaling) recovers\n"
            "high-resolution images from low-resolution ones: PSNR and SSIM over a test set,\n"
            "printed like the SRGAN paper's Table 2. With a checkpoint, bicubic is measured on\n"
            "the same images beside it, as the baseline to beat."
        ),
        epilog=EXAMPLES + LAYOUTS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--data", required=True, metavar="PATH", help="test images (see below)")
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument(
        "--checkpoint",
        metavar="FILE",
        help="a .pt file written by python -m srgan_edu.train, or a pretrained model's name "
        "(srresnet_x4_celeba, srgan_vgg22_x4_celeba, srgan_mse_x4_celeba)",
    )
    what.add_argument("--bicubic", action="store_true", help="evaluate the bicubic baseline only")
    parser.add_argument(
        "--split",
        choices=SPLIT_CHOICES,
        default=None,
        help="CelebA only: which images (default: test)",
    )
    parser.add_argument(
        "--holdout",
        type=int,
        default=0,
        metavar="N",
        help="with --split holdout: evaluate the last N train images by name",
    )
    parser.add_argument(
        "--partition",
        metavar="FILE",
        help="CelebA only: list_eval_partition.txt/.csv if it is not next to the images",
    )
    parser.add_argument(
        "--scale",
        type=int,
        default=None,
        metavar="R",
        help="upscaling factor (default: the checkpoint's, 4 with --bicubic)",
    )
    parser.add_argument("--limit", type=int, default=None, metavar="N", help="first N images only")
    parser.add_argument("--csv", metavar="FILE", help="write one row per image to FILE")
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object instead of the table"
    )
    parser.add_argument("--crops", metavar="DIR", help="save zoomed side-by-side crops in DIR")
    parser.add_argument(
        "--n-crops", type=int, default=4, metavar="N", help="how many images --crops saves (4)"
    )
    parser.add_argument(
        "--batch-size", type=int, default=16, metavar="B", help="images per batch (16)"
    )
    parser.add_argument(
        "--device", default=None, help="cpu, cuda, cuda:N or mps (default: the best available)"
    )
    parser.add_argument(
        "--workers", type=int, default=0, metavar="N", help="image-decoding processes (0)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m srgan_edu.evaluate``; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    for name in ("limit", "batch_size", "n_crops"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1, got {value}")
    if args.workers < 0:
        parser.error(f"--workers must be 0 or more, got {args.workers}")
    if (args.split == "holdout") != (args.holdout > 0):
        parser.error("--split holdout and --holdout N (N >= 1) go together")
    split = args.split or "test"
    try:
        device = resolve_device(args.device)
        given = [f for f, v in (("--split", args.split), ("--partition", args.partition)) if v]
        if given and not looks_like_celeba(args.data):
            print(
                f"note: {' and '.join(given)} {'is' if len(given) == 1 else 'are'} for CelebA "
                f"only; evaluating every image in {args.data}",
                file=sys.stderr,
            )
        report = evaluate(
            args.data,
            None if args.bicubic else args.checkpoint,
            scale=args.scale,
            split=split,
            holdout=args.holdout,
            partition=args.partition,
            limit=args.limit,
            batch_size=args.batch_size,
            device=device,
            num_workers=args.workers,
            csv_path=args.csv,
            crops=args.crops,
            n_crops=args.n_crops,
            progress=not args.quiet and sys.stderr.isatty(),
        )
    except (DatasetError, CheckpointError, EvalError, DeviceError, ImageReadError) as err:
        print(f"error: {one_line(err)}", file=sys.stderr)
        return 1
    except OSError as err:  # e.g. the CSV or crops folder cannot be written
        print(f"error: {err}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(report.to_dict()))
        return 0
    r = report.result
    print(f"{report.data.description}")
    print(f"{r.n} images, x{report.scale}, device {report.device}")
    print()
    print(report.table())
    print()
    for m, res in report.results.items():
        print(f"{m}: {res.seconds:.1f} s")
    if report.csv is not None:
        print(f"per-image results: {report.csv}")
    if report.crops:
        order = "LR | bicubic | HR" if report.method == "bicubic" else "LR | bicubic | SR | HR"
        print(f"crops ({order}): {len(report.crops)} PNG files in {report.crops[0].parent}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
