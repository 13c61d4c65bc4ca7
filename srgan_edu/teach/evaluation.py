"""Lesson 09 (Evaluation): the data, the models, and pictures of where super-resolution fails.

What the lesson needs besides :mod:`srgan_edu.evaluate`, kept here so that tests reach it:

* Finding test data: :func:`find_celeba` (the learner's CelebA through ``SRGAN_EDU_CELEBA``, else
  the course's shared 10,000-face sample, else None) and :func:`find_benchmarks` (Set5 / Set14 /
  BSD100 under ``SRGAN_EDU_BENCHMARKS`` or ``~/data``; :data:`BENCHMARK_HELP` says where to get
  them).
* Finding or making the models: :func:`find_pretrained` (checkpoints shipped in
  ``assets/checkpoints/``), :func:`lesson_config` (a small run derived from the ``laptop`` preset)
  and :func:`get_models`, which loads the pretrained generators when they are there and otherwise
  trains SRResNet then SRGAN with :func:`srgan_edu.train.train` (a finished run of the same
  config is reused, not trained again).
* Looking closer: :func:`upscale_images` (every method on a few chosen images),
  :func:`kept_columns` (the images an evaluation kept), :func:`psnr_gain` / :func:`worst_images`
  (per-image PSNR differences), :data:`EYE_BOX` (the eye region of CelebA's aligned faces) and
  :func:`region_psnr` (PSNR inside it), :data:`GLASSES`, :func:`crops_figure` (zoomed
  side-by-side crops with labelled columns), and the widget :func:`face_browser` around
  :func:`show_face`.

Images are tensors in [0, 1]; upscalers follow :data:`srgan_edu.evaluate.Upscaler`.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch.utils.data import Dataset

import srgan_edu
from srgan_edu.checkpoint import CheckpointError, load_checkpoint, load_network
from srgan_edu.config import TrainConfig, apply_overrides, get_preset, to_dict
from srgan_edu.data import DatasetError, looks_like_celeba, sample_image, sample_image_path
from srgan_edu.evaluate import EvalData, EvalResult, Upscaler, eval_pairs, open_eval_data
from srgan_edu.metrics import psnr, rgb_to_y
from srgan_edu.viz import zoomed_crops

if TYPE_CHECKING:
    import ipywidgets
    from matplotlib.figure import Figure

__all__ = [
    "BENCHMARKS",
    "BENCHMARKS_ENV",
    "BENCHMARK_HELP",
    "CELEBA_ENV",
    "CHECKPOINTS_ENV",
    "EYE_BOX",
    "HOLDOUT",
    "FALLBACK_NOTE",
    "GLASSES",
    "LessonModels",
    "PhotoTiles",
    "checkpoint_dir",
    "crops_figure",
    "find_benchmarks",
    "find_celeba",
    "find_pretrained",
    "face_browser",
    "find_vgg22_weights",
    "get_models",
    "kept_columns",
    "lesson_config",
    "open_test_data",
    "psnr_gain",
    "region_psnr",
    "run_folder",
    "shared_data_dir",
    "show_face",
    "upscale_images",
    "worst_images",
]

CELEBA_ENV = "SRGAN_EDU_CELEBA"
"""Environment variable naming the learner's CelebA folder (any layout :class:`CelebA` reads)."""

CHECKPOINTS_ENV = "SRGAN_EDU_CHECKPOINTS"
"""Environment variable naming a folder with ``srresnet.pt`` and ``srgan.pt`` to evaluate instead
of the shipped checkpoints (e.g. the output folder of a longer training run)."""

BENCHMARKS_ENV = "SRGAN_EDU_BENCHMARKS"
"""Environment variable naming a folder that holds Set5/, Set14/, BSD100/ (any of them)."""

BENCHMARKS = {
    "Set5": ("Set5", "set5"),
    "Set14": ("Set14", "set14"),
    "BSD100": ("BSD100", "B100", "bsd100", "BSDS100"),
}
"""The paper's test sets (Table 2) and the folder names they come under."""

HOLDOUT = 1000
"""Faces held out of training: the last 1,000 of the CelebA copy by name (the ``laptop`` preset's
``val_holdout``), so that every course run and checkpoint is measured on faces it never saw."""

GLASSES = ("009057.jpg", "009060.jpg", "009071.jpg")
"""Held-out faces of the course's 89x109 sample that wear glasses (checked by eye; CelebA's
attribute file is not part of the sample). Sunglasses: 009052.jpg, 009070.jpg."""

EYE_BOX = (36, 16, 20, 56)
"""(top, left, height, width) of both eyes in an 88x88 evaluation crop of CelebA's aligned faces
(89x109 sample, x4), checked on the held-out faces; multiples of 4 so that the LR crop is exact."""

BENCHMARK_HELP = f"""\
Set5, Set14 and BSD100 (the paper's Table 2) are not part of the course's data. To add them:
download the SR benchmark archive that BasicSR or EDSR-PyTorch link from their README (folders
Set5/, Set14/, B100/ or BSD100/, each with HR/ and LRbicx4/ or LR_bicubic/X4/, or plain image
files), unpack it so that e.g. ~/data/Set5/HR/baby.png exists, or point the environment variable
{BENCHMARKS_ENV} at the folder that holds Set5/ Set14/ BSD100/, and run this cell again. The
same folders work on the command line: python -m srgan_edu.evaluate --data ~/data/Set5 ..."""

LAPTOP_OVERRIDES: dict[str, Any] = {
    "hr_crop": 32,
    "lr": 5e-4,
    "srresnet_steps": 300,
    "srgan_steps": 40,
    "lr_decay_step": 1000,
    "channels_last": "on",
    "num_workers": 0,
    "log_every": 10,
    "val_every": 0,
    "ckpt_every": 0,
    "sample_every": 0,
    "val_holdout": HOLDOUT,
}
"""How :func:`lesson_config` shrinks the ``laptop`` preset to fit a lesson (see its docstring)."""


# ----------------------------------------------------------------------------------------------
# where things are
# ----------------------------------------------------------------------------------------------


def _repo_root() -> Path:
    """The folder that holds the ``srgan_edu`` package (the repository in a development install)."""
    return Path(srgan_edu.__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    """The course's shared data folder (next to the repository): CelebA sample, VGG weights."""
    return _repo_root().parent / "shared" / "data"


def checkpoint_dir() -> Path:
    """Where the pretrained generators are shipped (:func:`srgan_edu.pretrained.pretrained_dir`:
    ``assets/checkpoints/`` of the repository)."""
    from srgan_edu.pretrained import pretrained_dir

    return pretrained_dir()


def find_celeba(env: Mapping[str, str] | None = None) -> Path | None:
    """The CelebA folder to use: ``$SRGAN_EDU_CELEBA``, else the shared sample, else None.

    A variable that points at something that is not CelebA is an error (the learner asked for
    it), not a silent fallback.
    """
    env = os.environ if env is None else env
    given = env.get(CELEBA_ENV, "").strip()
    if given:
        path = Path(given).expanduser()
        if not looks_like_celeba(path):
            raise DatasetError(
                f"{CELEBA_ENV}={given} is not a CelebA folder: expected img_align_celeba/ (or "
                "img_align_celeba.zip) with list_eval_partition.txt next to it. Fix the path or "
                f"unset {CELEBA_ENV} to use the course's sample."
            )
        return path
    sample = shared_data_dir() / "celeba_89x109"
    return sample if looks_like_celeba(sample) else None


def find_benchmarks(
    roots: Sequence[str | os.PathLike] | None = None, env: Mapping[str, str] | None = None
) -> dict[str, Path]:
    """``{"Set5": path, ...}`` for the benchmark folders found (possibly none).

    Searched in ``roots`` (default: ``$SRGAN_EDU_BENCHMARKS`` if set, then ``~/data`` and
    ``~/data/benchmark``), under the names of :data:`BENCHMARKS`.
    """
    if roots is None:
        env = os.environ if env is None else env
        roots = [p for p in [env.get(BENCHMARKS_ENV, "").strip()] if p]
        roots += ["~/data", "~/data/benchmark"]
    found: dict[str, Path] = {}
    for name, folders in BENCHMARKS.items():
        for root in roots:
            hits = [Path(root).expanduser() / f for f in folders]
            hit = next((h for h in hits if h.is_dir()), None)
            if hit is not None:
                found[name] = hit
                break
    return found


SHIPPED_MODELS = {
    "SRResNet": "srresnet_x4_celeba",
    "SRGAN": "srgan_vgg22_x4_celeba",
    "SRGAN-MSE": "srgan_mse_x4_celeba",
}
"""The lesson's names for the generators shipped with the course (:mod:`srgan_edu.pretrained`)."""


def find_pretrained(
    folder: str | os.PathLike | None = None, env: Mapping[str, str] | None = None
) -> dict[str, Path]:
    """``{"SRResNet": path, "SRGAN": path, ...}``: the trained generators the lesson compares.

    Default: the generators shipped with the course (:data:`SHIPPED_MODELS`, each checked by
    sha256; a missing or damaged file is left out with a warning), unless
    ``$SRGAN_EDU_CHECKPOINTS`` names a folder, e.g. the ``--out`` folder of your own longer
    ``python -m srgan_edu.train`` run. In a folder, models are found by file name
    (``srresnet*.pt``, ``srgan*.pt``; the exact name wins)."""
    if folder is None:
        env = os.environ if env is None else env
        given = env.get(CHECKPOINTS_ENV, "").strip()
        if not given:
            return _shipped()
        folder = Path(given).expanduser()
    folder = Path(folder)
    found: dict[str, Path] = {}
    if not folder.is_dir():
        return found
    files = sorted(p for p in folder.glob("*.pt") if p.is_file())
    for label, prefix in (("SRResNet", "srresnet"), ("SRGAN", "srgan")):
        hits = [p for p in files if p.stem.lower().startswith(prefix)]
        exact = [p for p in hits if p.stem.lower() == prefix]
        if exact or hits:
            found[label] = (exact or hits)[0]
    return found


def _shipped() -> dict[str, Path]:
    from srgan_edu.pretrained import pretrained_path

    found: dict[str, Path] = {}
    for label, name in SHIPPED_MODELS.items():
        try:
            found[label] = pretrained_path(name)
        except CheckpointError as err:
            warnings.warn(f"{label} left out: {err}", stacklevel=3)
    return found


def find_vgg22_weights() -> Path | None:
    """The shared partial ImageNet VGG19 file (conv1_1 .. conv3_4: enough for VGG22), if present."""
    path = shared_data_dir() / "vgg19" / "vgg19_caffe_rgb_conv1_1-conv3_4.pth"
    return path if path.is_file() else None


FALLBACK_NOTE = f"""\
NOTE: no CelebA found, so this run uses STAND-IN images: 88x88 tiles of the Grace Hopper photo
that ships with matplotlib (and the models train on synthetic images). The code is the same, the
numbers are not about faces. To evaluate on faces, download CelebA's aligned images
(img_align_celeba.zip and list_eval_partition.txt from the CelebA website or its Kaggle copy),
unpack them into one folder and set {CELEBA_ENV}=/path/to/that/folder before starting Jupyter."""


class PhotoTiles(Dataset):
    """Non-overlapping ``size`` x ``size`` HR tiles of the course's sample photo, row by row:
    stand-in test images (3, size, size) in [0, 1] for a machine without CelebA."""

    def __init__(self, size: int = 88, limit: int | None = None) -> None:
        photo = sample_image()  # (3, 600, 512)
        rows, cols = photo.shape[1] // size, photo.shape[2] // size
        boxes = [(r * size, c * size) for r in range(rows) for c in range(cols)]
        self.boxes = boxes[:limit] if limit is not None else boxes
        self.names = [f"photo_r{t // size}c{left // size}" for t, left in self.boxes]
        self.photo, self.size = photo, size

    def __len__(self) -> int:
        return len(self.boxes)

    def __getitem__(self, i: int) -> torch.Tensor:
        top, left = self.boxes[i]
        return self.photo[:, top : top + self.size, left : left + self.size].clone()


def open_test_data(celeba: str | os.PathLike | None, holdout: int = HOLDOUT) -> EvalData:
    """The held-out faces (the last ``holdout`` of the CelebA copy by name, never trained on), or,
    with ``celeba=None``, :class:`PhotoTiles` (print :data:`FALLBACK_NOTE` then)."""
    if celeba is not None:
        return open_eval_data(celeba, 4, "holdout", holdout=holdout)
    tiles = PhotoTiles(88)
    text = f"{len(tiles)} tiles of 88x88 from {sample_image_path().name} (stand-in for faces)"
    return EvalData(tiles, "folder", sample_image_path(), "photo tiles", text)


# ----------------------------------------------------------------------------------------------
# the models
# ----------------------------------------------------------------------------------------------


def lesson_config(
    data: str | os.PathLike | None,
    vgg_weights: str | os.PathLike | None,
    holdout: int = HOLDOUT,
    **overrides: Any,
) -> TrainConfig:
    """The ``laptop`` preset, shrunk to fit a lesson on a CPU (:data:`LAPTOP_OVERRIDES`).

    Same networks as ``laptop`` (8 residual blocks, 32 channels; its discriminator; VGG22 content
    loss), trained on 32x32 HR crops (4x cheaper per update than 64x64) with a 5x larger
    learning rate (5e-4: a short run needs big steps), a few hundred SRResNet updates, then a
    few dozen SRGAN updates; channels_last memory format, which PyTorch's CPU convolutions run
    faster. ``holdout``: the last N faces by name that training never sees (and validates on at
    the end of each phase). ``data=None`` trains on synthetic images (at most 32 of them for
    validation). ``vgg_weights=None`` uses random VGG weights (the content loss then measures
    little: say so). ``overrides`` (e.g. ``srresnet_steps=...``) are applied last, type-checked.
    """
    values = dict(LAPTOP_OVERRIDES)
    values["data"] = None if data is None else str(data)
    values["vgg_weights"] = "random" if vgg_weights is None else str(vgg_weights)
    values["val_holdout"] = int(holdout) if data is not None else min(int(holdout), 32)
    values.update(overrides)
    return apply_overrides(get_preset("laptop"), values)


def run_folder(config: TrainConfig, root: str | os.PathLike = "runs/lesson09") -> Path:
    """``root/<12 hex digits>``: one folder per config (and library version), so re-running the
    lesson with the same settings finds its finished run, and other settings never mix in."""
    text = json.dumps({"config": to_dict(config), "version": srgan_edu.__version__}, sort_keys=True)
    return Path(root) / hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass
class LessonModels:
    """The generators the lesson evaluates (``{"SRResNet": G, "SRGAN": G}``) and where they
    came from: ``"pretrained"``, ``"trained"`` (now) or ``"reused"`` (an earlier run)."""

    generators: dict[str, torch.nn.Module]
    source: str
    paths: dict[str, Path]
    config: TrainConfig | None = None
    seconds: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)

    def describe(self) -> str:
        """One line per model: name, where from, architecture, training updates."""
        lines = []
        for name, G in self.generators.items():
            arch = f"{G.n_blocks} blocks, {G.channels} channels, x{G.scale}"
            step = ""
            try:
                payload = load_checkpoint(self.paths[name])
                if "step" in payload:
                    step = f", {int(payload['step']):,} updates in all"
            except (CheckpointError, OSError):  # the description is informative only
                pass
            lines.append(f"{name}: {self.source} ({self.paths[name]}; {arch}{step})")
        return "\n".join(lines)


def _load_pair(paths: Mapping[str, Path], device: torch.device) -> dict[str, torch.nn.Module]:
    return {name: load_network(p, "generator", map_location=device) for name, p in paths.items()}


def get_models(
    config: TrainConfig,
    runs: str | os.PathLike = "runs/lesson09",
    pretrained: str | os.PathLike | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
    train_fn: Callable[..., Any] | None = None,
) -> LessonModels:
    """SRResNet and SRGAN generators for the lesson: pretrained if both are shipped in
    ``pretrained`` (default ``assets/checkpoints/``), else the run of ``config`` in
    :func:`run_folder` if it finished earlier, else trained now with
    :func:`srgan_edu.train.train` (SRResNet phase, then SRGAN phase; a run that was interrupted
    is resumed). ``train_fn`` replaces ``train`` (tests)."""
    from srgan_edu.course import pick_device

    dev = pick_device(None if device is None else str(device))
    found = find_pretrained(pretrained)
    if {"SRResNet", "SRGAN"} <= set(found):
        return LessonModels(_load_pair(found, dev), "pretrained", found)
    if config.phase != "both":
        raise ValueError(f"get_models trains both phases: pass phase='both', got {config.phase!r}")
    out = run_folder(config, runs)
    paths = {"SRResNet": out / "srresnet.pt", "SRGAN": out / "srgan.pt"}
    if all(p.is_file() for p in paths.values()):
        return LessonModels(_load_pair(paths, dev), "reused", paths, config)
    if train_fn is None:
        from srgan_edu.train import train as train_fn
    if device is not None:
        config = apply_overrides(config, {"device": str(dev)})
    start = time.perf_counter()
    result = train_fn(config, out, resume=out.exists(), progress=progress)
    seconds = time.perf_counter() - start
    missing = [str(p) for p in paths.values() if not p.is_file()]
    if missing:
        raise RuntimeError(
            f"training stopped ({getattr(result, 'status', '?')}) before writing {missing}; run "
            "the cell again to resume it"
        )
    return LessonModels(
        _load_pair(paths, dev), "trained", paths, config, seconds, list(result.history)
    )


# ----------------------------------------------------------------------------------------------
# looking closer
# ----------------------------------------------------------------------------------------------


def upscale_images(
    dataset: Dataset,
    indices: Sequence[int],
    upscalers: Mapping[str, Upscaler],
    scale: int = 4,
) -> dict[str, torch.Tensor]:
    """``{"LR": lr, method: sr, ..., "HR": hr}`` for the images ``indices`` of ``dataset``.

    LR is made exactly as :func:`srgan_edu.evaluate.eval_pairs` makes it for the table (8-bit
    MATLAB-style bicubic), so these pictures are the ones the numbers were measured on. Each
    value is a (N, 3, h, w) CPU tensor in [0, 1].
    """
    from torch.utils.data import Subset

    pairs = eval_pairs(Subset(dataset, list(indices)), scale, batch_size=max(1, len(indices)))
    parts: dict[str, list[torch.Tensor]] = {"LR": [], **{m: [] for m in upscalers}, "HR": []}
    for _, lr, hr in pairs:
        parts["LR"].append(lr.cpu())
        for m, up in upscalers.items():
            parts[m].append(up(lr).float().cpu())
        parts["HR"].append(hr.cpu())
    return {k: torch.cat(v) for k, v in parts.items()}


def psnr_gain(
    results: Mapping[str, EvalResult], method: str, baseline: str = "bicubic"
) -> torch.Tensor:
    """Per-image PSNR of ``method`` minus that of ``baseline`` [dB], a (N,) tensor."""
    a, b = results[method], results[baseline]
    if a.names != b.names:
        raise ValueError(f"{method} and {baseline} were measured on different images")
    return a.psnr.double() - b.psnr.double()


def worst_images(
    results: Mapping[str, EvalResult], method: str, baseline: str = "bicubic", n: int = 4
) -> list[tuple[int, str, float]]:
    """The ``n`` images where ``method`` loses most PSNR against ``baseline``:
    ``[(index, name, gain in dB), ...]``, most negative gain first."""
    gain = psnr_gain(results, method, baseline)
    order = torch.argsort(gain)[:n].tolist()
    names = results[method].names
    return [(i, names[i], float(gain[i])) for i in order]


def region_psnr(sr: torch.Tensor, hr: torch.Tensor, box: tuple[int, int, int, int]) -> torch.Tensor:
    """Y-channel PSNR [dB] inside ``box`` = (top, left, height, width) only: (N,) for (N, 3, H, W)
    in [0, 1], both rounded to 8-bit levels first as :func:`srgan_edu.metrics.sr_metrics` does."""
    top, left, h, w = box
    if top < 0 or left < 0 or top + h > hr.shape[-2] or left + w > hr.shape[-1]:
        raise ValueError(f"box {box} does not fit in images of {tuple(hr.shape[-2:])}")

    def part(x: torch.Tensor) -> torch.Tensor:
        x = torch.round(x.float().clamp(0, 1) * 255.0) / 255.0
        return rgb_to_y(x[..., top : top + h, left : left + w])

    return psnr(part(sr), part(hr.to(sr.device)), 1.0)


def crops_figure(
    columns: Mapping[str, torch.Tensor],
    box: tuple[int, int, int, int] | None = None,
    zoom: int = 2,
    row_labels: Sequence[str] | None = None,
    title: str | None = None,
    dpi: int = 80,
) -> Figure:
    """One row per image, one column per entry of ``columns`` (each (N, 3, h, w) in [0, 1], the
    LR one smaller): the region ``box`` (HR pixels, see :func:`srgan_edu.viz.zoomed_crops`)
    enlarged ``zoom`` x, with the column names above and ``row_labels`` at the left."""
    import matplotlib.pyplot as plt

    names = list(columns)
    n = next(iter(columns.values())).shape[0]
    rows = [
        zoomed_crops([columns[c][i] for c in names], box=box, zoom=zoom, gap=4) for i in range(n)
    ]
    height, width = rows[0].shape[-2:]
    fig, axes = plt.subplots(
        n, 1, figsize=(width / dpi + 0.8, n * (height / dpi + 0.25) + 0.3), dpi=dpi, squeeze=False
    )
    col_width = (width + 4) / len(names)
    for i, (ax, row) in enumerate(zip(axes[:, 0], rows, strict=True)):
        ax.imshow(row.permute(1, 2, 0).numpy(), interpolation="nearest")
        ax.set_xticks(
            [col_width * (k + 0.5) - 2 for k in range(len(names))], names if i == 0 else []
        )
        ax.xaxis.set_ticks_position("top")
        ax.tick_params(length=0)
        ax.set_yticks([])
        if row_labels is not None:
            ax.set_ylabel(row_labels[i], fontsize=8, rotation=0, ha="right", va="center")
        for side in ax.spines.values():
            side.set_visible(False)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def kept_columns(
    results: Mapping[str, EvalResult], indices: Sequence[int]
) -> dict[str, torch.Tensor]:
    """``{"LR": ..., method: ..., "HR": ...}``, each (N, 3, h, w), from the images each result
    kept (``keep_examples`` of :func:`srgan_edu.evaluate.evaluate_upscalers`): for
    :func:`crops_figure`."""
    first = next(iter(results.values()))
    if not first.examples:
        raise ValueError("the results kept no images: evaluate with keep_examples=N")
    bad = [i for i in indices if not 0 <= i < len(first.examples)]
    if bad:
        raise IndexError(f"images {bad} were not kept; {len(first.examples)} were (0..N-1)")
    cols = {"LR": torch.stack([first.examples[i].lr for i in indices])}
    for m, r in results.items():
        cols[m] = torch.stack([r.examples[i].sr for i in indices])
    cols["HR"] = torch.stack([first.examples[i].hr for i in indices])
    return cols


REGIONS = {"whole face": None, "eyes": EYE_BOX}
"""What :func:`show_face` can show: the whole image or the eye region."""


def show_face(
    results: Mapping[str, EvalResult], index: int = 0, region: str = "whole face"
) -> Figure:
    """The callback of :func:`face_browser`: kept image ``index`` as LR | methods | HR, whole or
    its eye region, with each method's PSNR on that image (whole image, as in the table)."""
    if region not in REGIONS:
        raise ValueError(f"region must be one of {list(REGIONS)}, got {region!r}")
    first = next(iter(results.values()))
    cols = kept_columns(results, [index])
    scores = ", ".join(f"{m} {float(r.psnr[index]):.2f} dB" for m, r in results.items())
    box, zoom = REGIONS[region], 3 if region == "eyes" else 2
    title = f"{first.examples[index].name} (image {index}): PSNR-Y {scores}"
    return crops_figure(cols, box=box, zoom=zoom, title=title)


def face_browser(results: Mapping[str, EvalResult]) -> ipywidgets.interactive:
    """ipywidgets panel around :func:`show_face`: pick a kept image and the region to look at."""
    import ipywidgets as W
    import matplotlib.pyplot as plt

    n = len(next(iter(results.values())).examples)

    def show(index: int, region: str) -> None:
        show_face(results, index, region)
        plt.show()

    return W.interactive(
        show,
        index=W.IntSlider(
            value=0, min=0, max=max(n - 1, 0), description="image", continuous_update=False
        ),
        region=W.ToggleButtons(options=list(REGIONS), value="whole face", description="region"),
    )
