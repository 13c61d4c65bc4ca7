"""Lesson 08 (training SRGAN on CelebA): find the data, plan a short run, watch it, read its files.

The lesson trains with :func:`srgan_edu.train.train`, the function behind
``python -m srgan_edu.train``; nothing here changes how training works. These helpers only
prepare the call and show what it did, so that ``tests/test_teach_training.py`` can check them:

* :func:`find_celeba_data` - the learner's CelebA: ``$SRGAN_EDU_CELEBA``, then ``~/data/celeba``,
  then the course's shared sample; ``None`` (and what to download, and where) when none is there.
* :func:`choose_vgg_weights` - the best VGG19 weights this machine has for the content loss
  (full ImageNet, the course's partial ImageNet copy, else random), said plainly (:class:`VGGPick`).
* :data:`LESSON_SIZES` and :func:`lesson_overrides` - the lesson's short schedule for each
  preset (``smoke`` in fast mode, ``laptop`` on a CPU, ``paper`` on a GPU), as overrides for
  :func:`srgan_edu.config.apply_overrides`; :func:`fit_crop` shrinks the HR crop to fit the faces.
* :class:`LivePlot` - an ``on_log`` callback that redraws the loss curves and the validation PSNR
  against bicubic in a notebook while the run goes on (throttled); :func:`interrupt_at` - an
  ``on_log`` callback that presses Ctrl-C at a chosen step, as "interrupt kernel" would.
* reading a run folder: :func:`read_log`, :func:`plot_log` (and :func:`draw_run`),
  :func:`validation_table`, :func:`speed_table`, :func:`list_run`, :func:`checkpoint_overview`,
  :func:`plot_samples` (the ``samples/*.png`` grids, LR | bicubic | SR | HR).
* :func:`cli_command` - the command line that runs the same training as a config.
"""

from __future__ import annotations

import io
import json
import math
import os
import signal
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from PIL import Image

import srgan_edu
from srgan_edu.config import TrainConfig, diff, get_preset, to_dict
from srgan_edu.data import CELEBA_LAYOUTS, CELEBA_SOURCE, CelebA, DatasetError, find_celeba
from srgan_edu.vgg import VGG19_URL, WEIGHTS_ENV, imagenet_weights_path

__all__ = [
    "CELEBA_ENV",
    "LESSON_SIZES",
    "LessonSizes",
    "LivePlot",
    "VGGPick",
    "celeba_image_size",
    "checkpoint_overview",
    "choose_vgg_weights",
    "cli_command",
    "config_table",
    "draw_run",
    "find_celeba_data",
    "fit_crop",
    "home_celeba_dir",
    "interrupt_at",
    "lesson_overrides",
    "list_run",
    "loss_balance",
    "plot_batch",
    "plot_log",
    "plot_samples",
    "preset_table",
    "read_log",
    "shared_celeba_dir",
    "shared_vgg_file",
    "speed_table",
    "validation_table",
]

CELEBA_ENV = "SRGAN_EDU_CELEBA"
"""Environment variable with the path of the learner's CelebA (``none`` switches CelebA off)."""

_OFF = ("none", "off", "no", "false", "0")


# ----------------------------------------------------------------------------- where things are


def _shared_data() -> Path:
    """The course's shared data folder next to the repository (absent on a learner's machine)."""
    return Path(srgan_edu.__file__).resolve().parents[1].parent / "shared" / "data"


def shared_celeba_dir() -> Path:
    """The course's CelebA sample: 10,000 aligned faces at half resolution (89x109)."""
    return _shared_data() / "celeba_89x109"


def shared_vgg_file() -> Path:
    """The course's partial ImageNet VGG19 (conv1_1 .. conv3_4, Caffe convention): enough for
    the VGG22 content loss, not for VGG54."""
    return _shared_data() / "vgg19" / "vgg19_caffe_rgb_conv1_1-conv3_4.pth"


def home_celeba_dir() -> Path:
    """``~/data/celeba``: where the lesson suggests putting CelebA."""
    return Path("~/data/celeba").expanduser()


# ----------------------------------------------------------------------------- the data


def celeba_image_size(path: str | os.PathLike) -> tuple[int, int] | None:
    """(H, W) of the faces in the CelebA copy at ``path`` (any layout), or None if unreadable."""
    return CelebA(path, "all", mode="full", limit=1).image_size


def _describe_celeba(path: Path) -> str:
    layout = find_celeba(path)
    size = celeba_image_size(path)
    shape = f" of {size[1]}x{size[0]} pixels (W x H)" if size else ""
    if layout.partition is not None:
        split = f"partition file {layout.partition}"
    elif layout.partition_member is not None:
        split = f"partition file {layout.partition_member} inside the zip"
    else:
        split = "no partition file (training then needs one: see the layouts)"
    return f"{layout.kind} layout, {len(layout.names):,} images{shape}, {split}"


def find_celeba_data(
    *,
    env: str = CELEBA_ENV,
    home: str | os.PathLike | None = None,
    shared: str | os.PathLike | None = None,
    verbose: bool = True,
) -> Path | None:
    """The learner's CelebA folder, or None, with a printed account of where it looked.

    Looked for, in order: the path in the environment variable ``env`` (``$SRGAN_EDU_CELEBA``;
    the value ``none`` switches CelebA off), ``home`` (default ``~/data/celeba``), ``shared``
    (default the course's 10,000-face sample, :func:`shared_celeba_dir`). A candidate counts when
    :func:`srgan_edu.data.find_celeba` recognises one of its layouts (official, Kaggle, zip).
    A path set in ``env`` that is not CelebA is reported and nothing else is tried (a learner who
    names a folder means that folder). When nothing is found the printout says what to download
    and where to put it (:data:`srgan_edu.data.CELEBA_SOURCE` and ``CELEBA_LAYOUTS``).
    """
    say = print if verbose else (lambda *a, **k: None)
    home = Path(home).expanduser() if home is not None else home_celeba_dir()
    shared = Path(shared) if shared is not None else shared_celeba_dir()
    value = os.environ.get(env, "").strip()
    if value.lower() in _OFF:
        say(f"${env}={value}: CelebA switched off; the lesson carries on without it.")
        return None
    tried: list[str] = []
    broken: list[str] = []  # copies that exist but are not usable: worth saying even if one is
    candidates = [(Path(value).expanduser(), f"${env}")] if value else []
    if not value:
        tried.append(f"${env}: not set")
    candidates += [(home, str(home)), (shared, "the course's shared sample")]
    for path, label in candidates:
        if not path.exists():
            tried.append(f"{label}: {path} does not exist")
            if label == f"${env}":
                break
            continue
        try:
            text = _describe_celeba(path)
        except DatasetError as err:
            first = str(err).split("\n\n")[0]  # the problem and what was found, not the layouts
            broken.append(
                f"{label}: {path} is not a usable CelebA copy:\n    "
                + first.replace("\n", "\n    ")
            )
            tried.append(broken[-1])
            if label == f"${env}":
                break
            continue
        for line in broken:
            say(f"Skipped {line}")
        say(f"CelebA found ({label}): {path}")
        say(f"  {text}")
        if label == "the course's shared sample":
            say(
                "  This is the course's sample of CelebA's train split, at half resolution. "
                "Training holds out the last val_holdout faces (by name) for validation and "
                "never trains on them."
            )
        return path
    say("No CelebA found. Looked at:")
    for line in tried:
        say(f"  - {line}")
    say(
        f"\nTo train on faces, download CelebA's aligned faces and put them in {home} (or "
        f"anywhere, and set the environment variable {env} to that folder before starting "
        f"Jupyter).\n\n{CELEBA_SOURCE}\n\n{CELEBA_LAYOUTS}\n\n"
        "Without CelebA this lesson carries on with data=None: synthetic images "
        "(srgan_edu.data.SyntheticImages: gradients, stripes, discs and boxes). Every step is "
        "the same; only the pictures are not faces."
    )
    return None


def fit_crop(data: str | os.PathLike | None, crop: int, scale: int = 4) -> int:
    """``crop``, or the largest multiple of ``scale`` that fits the CelebA faces at ``data``.

    The paper's 96x96 crops fit the 178x218 faces but not the course's 89x109 sample (88 fits).
    ``data=None`` (synthetic images, made to fit) or an unreadable copy keep ``crop``.
    """
    if data is None:
        return crop
    try:
        size = celeba_image_size(data)
    except DatasetError:
        return crop
    if size is None:
        return crop
    return min(crop, min(size) // scale * scale)


# ----------------------------------------------------------------------------- VGG weights


@dataclass(frozen=True)
class VGGPick:
    """Which VGG19 weights the content loss gets: ``weights`` and ``content`` are the values for
    the config fields ``vgg_weights`` and ``content``; ``real`` is True for ImageNet weights;
    ``note`` says it in words (and, for random weights, how to get the real ones)."""

    weights: str
    content: str
    real: bool
    note: str


def _full_imagenet_file() -> Path | None:
    env = os.environ.get(WEIGHTS_ENV, "").strip()
    if env:
        return Path(env).expanduser()
    cache = imagenet_weights_path()
    return cache if cache.is_file() else None


def choose_vgg_weights(
    content: str = "vgg22", *, shared_file: str | os.PathLike | None = None
) -> VGGPick:
    """The best VGG19 weights at hand for the content loss ``content`` (vgg22, vgg54 or mse).

    1. the full ImageNet VGG19 (``$SRGAN_EDU_VGG19_WEIGHTS`` or torch.hub's cache): ``"imagenet"``,
       ``content`` unchanged;
    2. the course's partial ImageNet copy (``shared_file``, default :func:`shared_vgg_file`): its
       path; it covers conv1_1 .. conv3_4, so ``vgg54`` becomes ``vgg22``;
    3. ``"random"``: seeded random VGG features stand in (the run works the same way, but the
       content loss then does not measure what the paper's does).

    Nothing is downloaded. ``content="mse"`` needs no VGG at all.
    """
    if content == "mse":
        return VGGPick("random", "mse", False, "content=mse: pixel MSE, no VGG network needed.")
    full = _full_imagenet_file()
    if full is not None:
        return VGGPick(
            "imagenet", content, True, f"ImageNet VGG19 ({full}): content loss {content}."
        )
    part = Path(shared_file) if shared_file is not None else shared_vgg_file()
    if part.is_file():
        note = f"ImageNet VGG19, the course's partial copy {part} (conv1_1 .. conv3_4)"
        if content != "vgg22":
            note += f": enough for vgg22, not for {content}, so the content loss is vgg22"
        return VGGPick(str(part), "vgg22", True, note + ".")
    return VGGPick(
        "random",
        content,
        False,
        "WARNING: no ImageNet VGG19 weights on this machine, so RANDOM VGG features stand in "
        f"for the content loss ({content}). The run works the same way, but its perceptual "
        "loss is not the paper's. To use the real ones, download "
        f"{VGG19_URL} (548 MB) to {imagenet_weights_path()} (torch.hub's cache) or set "
        f"{WEIGHTS_ENV} to a local copy, then run this cell again.",
    )


# ----------------------------------------------------------------------------- the lesson's run


@dataclass(frozen=True)
class LessonSizes:
    """The lesson's short schedule for one preset.

    ``pause_at``: the first call stops here (``steps=pause_at``), inside phase 1;
    ``interrupt_at``: a simulated Ctrl-C in phase 2 (global step); ``every``: updates between
    validations, checkpoints and sample grids; ``val_holdout``: faces held out for validation.
    """

    srresnet_steps: int
    srgan_steps: int
    pause_at: int
    interrupt_at: int
    every: int
    log_every: int
    val_holdout: int

    def overrides(self) -> dict[str, Any]:
        """The config fields these sizes set (the SRGAN lr drops halfway, as in the paper)."""
        return {
            "srresnet_steps": self.srresnet_steps,
            "srgan_steps": self.srgan_steps,
            "lr_decay_step": max(1, self.srgan_steps // 2),
            "val_holdout": self.val_holdout,
            "val_every": self.every,
            "ckpt_every": self.every,
            "sample_every": self.every,
            "log_every": self.log_every,
        }


LESSON_SIZES: dict[str, LessonSizes] = {
    # fast mode (tests, CI): seconds
    "smoke": LessonSizes(6, 4, 4, 8, 2, 1, 4),
    # a 2-core CPU: 200 SRResNet updates at ~2.6/s, 30 SRGAN updates at ~0.7/s: ~2.5 minutes
    "laptop": LessonSizes(200, 30, 120, 215, 40, 10, 64),
    # a GPU: a few thousand updates; the paper's schedule is 1.2 million
    "paper": LessonSizes(3000, 600, 1800, 3300, 600, 50, 500),
}
"""The lesson's schedule per preset (the presets' own schedules are far longer)."""


def lesson_overrides(preset: str, data: str | os.PathLike | None, vgg: VGGPick) -> dict[str, Any]:
    """Overrides that turn the preset ``preset`` into this lesson's run.

    :data:`LESSON_SIZES` (step counts and intervals), the data (``"none"``: synthetic images),
    the VGG weights and content loss of ``vgg``, and an HR crop that fits the faces
    (:func:`fit_crop`) when the preset's does not.
    """
    base = get_preset(preset)
    overrides: dict[str, Any] = LESSON_SIZES[preset].overrides()
    overrides["data"] = "none" if data is None else str(data)
    overrides["vgg_weights"] = vgg.weights
    overrides["content"] = vgg.content
    crop = fit_crop(data, base.hr_crop, base.scale)
    if crop != base.hr_crop:
        overrides["hr_crop"] = crop
    return overrides


def interrupt_at(
    step: int, then: Callable[[dict[str, Any]], None] | None = None
) -> Callable[[dict[str, Any]], None]:
    """An ``on_log`` callback that sends this process SIGINT once a record reaches ``step``.

    That is what Jupyter's "interrupt kernel" (or Ctrl-C in a terminal) does: the training loop
    saves a checkpoint at the current step and returns with ``status="interrupted"``. ``then``
    (e.g. a :class:`LivePlot`) gets every record first.
    """
    fired = False

    def callback(record: dict[str, Any]) -> None:
        nonlocal fired
        if then is not None:
            then(record)
        if not fired and record.get("step", 0) >= step:
            fired = True
            os.kill(os.getpid(), signal.SIGINT)

    return callback


# ----------------------------------------------------------------------------- the log


def read_log(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The records of a run's ``log.jsonl`` (a file or the run folder), in order.

    A line cut off by a crash is skipped.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "log.jsonl"
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def _series(
    records: Iterable[Mapping[str, Any]], key: str, phase: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of the records that hold ``key`` (and belong to ``phase``, if given)."""
    pts = [
        (r["step"], r[key])
        for r in records
        if key in r and r[key] is not None and (phase is None or r.get("phase") == phase)
    ]
    if not pts:
        return np.zeros(0), np.zeros(0)
    steps, values = zip(*pts, strict=True)
    return np.asarray(steps, dtype=float), np.asarray(values, dtype=float)


def _empty(ax: Any, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.4")
    ax.set_xticks([])
    ax.set_yticks([])


def draw_run(fig: Figure, records: Sequence[Mapping[str, Any]], title: str | None = None) -> Figure:
    """Draw a run's log records onto ``fig`` (cleared first): four panels.

    Phase 1 pixel MSE (eq. 4); phase 2 content, adversarial and discriminator losses; the
    discriminator's mean outputs D(HR) and D(G(LR)); validation Y-PSNR with bicubic as a dashed
    line. A panel waits with a note until its phase has records.
    """
    fig.clear()
    axes = fig.subplots(2, 2)
    (ax_mse, ax_gan), (ax_d, ax_val) = axes
    for ax in axes.flat:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    steps, mse = _series(records, "loss/mse", "srresnet")
    if len(steps):
        ax_mse.plot(steps, mse, color="C0", lw=1.2)
        ax_mse.set_yscale("log")
        ax_mse.set_title("phase 1 (SRResNet): pixel MSE", fontsize=10)
        ax_mse.set_xlabel("update")
    else:
        _empty(ax_mse, "phase 1 (SRResNet): no records yet")
    gan = [
        ("loss/content", "content", "C1"),
        ("loss/adversarial", "adversarial  -log D(G(LR))", "C3"),
        ("loss/d_loss", "discriminator", "C2"),
    ]
    drawn = False
    for key, label, colour in gan:
        s, v = _series(records, key, "srgan")
        if len(s):
            ax_gan.plot(s, v, color=colour, lw=1.2, label=label)
            drawn = True
    if drawn:
        ax_gan.set_yscale("log")
        ax_gan.set_title("phase 2 (SRGAN): losses", fontsize=10)
        ax_gan.set_xlabel("update")
        ax_gan.legend(fontsize=8)
    else:
        _empty(ax_gan, "phase 2 (SRGAN) has not started")
    s_real, real = _series(records, "loss/d_real", "srgan")
    s_fake, fake = _series(records, "loss/d_fake", "srgan")
    if len(s_real):
        ax_d.plot(s_real, real, color="C2", lw=1.2, label="D(HR): real faces")
        ax_d.plot(s_fake, fake, color="C3", lw=1.2, label="D(G(LR)): generated")
        ax_d.set_ylim(-0.03, 1.03)
        ax_d.axhline(0.5, color="0.6", lw=0.8, ls=":")
        ax_d.set_title("phase 2: the discriminator's mean output", fontsize=10)
        ax_d.set_xlabel("update")
        ax_d.legend(fontsize=8)
    else:
        _empty(ax_d, "discriminator: phase 2 has not started")
    s_val, psnr = _series(records, "val/psnr_y")
    _, bic = _series(records, "val/bicubic_psnr_y")
    if len(s_val):
        ax_val.plot(s_val, psnr, "o-", color="C0", lw=1.2, ms=4, label="generator")
        s_gan, p_gan = _series(records, "val/psnr_y", "srgan")
        if len(s_gan):
            ax_val.plot(s_gan, p_gan, "o", color="C3", ms=5, label="after SRGAN updates")
        ax_val.axhline(bic[-1], color="0.3", ls="--", lw=1.0, label=f"bicubic {bic[-1]:.2f} dB")
        if len(steps) and len(s_real):  # where phase 2 starts
            ax_val.axvline(steps.max(), color="0.7", lw=0.8, label="phase 2 starts")
        ax_val.set_title("validation: Y-PSNR on held-out images", fontsize=10)
        ax_val.set_xlabel("update")
        ax_val.set_ylabel("dB")
        ax_val.legend(fontsize=8)
    else:
        _empty(ax_val, "validation: no results yet")
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


def plot_log(
    source: str | os.PathLike | Sequence[Mapping[str, Any]],
    title: str | None = None,
    figsize: tuple[float, float] = (11.0, 6.4),
) -> Figure:
    """:func:`draw_run` on a new pyplot figure; ``source`` is a run folder, a ``log.jsonl`` or
    a list of records (e.g. ``TrainResult.history``)."""
    records = source if isinstance(source, Sequence) and not isinstance(source, str) else None
    if records is None:
        records = read_log(source)  # type: ignore[arg-type]
    fig = plt.figure(figsize=figsize)
    return draw_run(fig, records, title)


def validation_table(records: Iterable[Mapping[str, Any]]) -> str:
    """Every validation of a run: step, phase, Y-PSNR and SSIM of the generator and of bicubic,
    and the generator's lead over bicubic in dB (negative: still behind)."""
    rows = [r for r in records if "val/psnr_y" in r]
    if not rows:
        return "no validation results in this log"
    lines = [
        f"{'step':>7}  {'phase':<8}  {'PSNR-Y':>7}  {'bicubic':>7}  {'lead':>6}  "
        f"{'SSIM-Y':>6}  {'bicubic':>7}  images"
    ]
    for r in rows:
        lead = r["val/psnr_y"] - r["val/bicubic_psnr_y"]
        lines.append(
            f"{r['step']:>7}  {r.get('phase', ''):<8}  {r['val/psnr_y']:>7.2f}  "
            f"{r['val/bicubic_psnr_y']:>7.2f}  {lead:>+6.2f}  {r['val/ssim_y']:>6.4f}  "
            f"{r['val/bicubic_ssim_y']:>7.4f}  {int(r.get('val/n', 0)):>6}"
        )
    lines.append(
        "(PSNR in dB on the Y channel, border of `scale` pixels removed; lead = PSNR - bicubic)"
    )
    return "\n".join(lines)


def loss_balance(records: Sequence[Mapping[str, Any]], adv_weight: float) -> str:
    """How big the generator's loss terms were at the end of each phase, side by side.

    The last phase-1 pixel MSE, the last phase-2 content loss and ``adv_weight`` x adversarial
    loss, and their ratios: whether the content loss is on the pixel MSE's scale (what the paper
    aimed its 1/12.75 VGG rescaling at) and how much say the discriminator has in G's updates.
    """
    mse = [r for r in records if "loss/mse" in r]
    gan = [r for r in records if "loss/content" in r]
    if not (mse and gan):
        return "needs training records of both phases"
    pixel, content = mse[-1]["loss/mse"], gan[-1]["loss/content"]
    weighted = adv_weight * gan[-1]["loss/adversarial"]
    return "\n".join(
        [
            f"end of phase 1 (update {mse[-1]['step']}): pixel MSE {pixel:.4g}",
            f"end of phase 2 (update {gan[-1]['step']}): content {content:.4g}, "
            f"{adv_weight:g} x adversarial {weighted:.4g}",
            f"content / pixel MSE: {content / pixel:,.0f}",
            f"content / weighted adversarial: {content / weighted:,.0f} (the adversarial term "
            f"is {100 * weighted / (content + weighted):.2g} % of G's loss)",
        ]
    )


def speed_table(records: Iterable[Mapping[str, Any]]) -> str:
    """Median training throughput per phase, in patches/s, from the log records.

    Validation, sample grids and checkpoints are not in the rate (the loop leaves them out).
    """
    by_phase: dict[str, list[float]] = {}
    for r in records:
        if "patches_per_s" in r:
            by_phase.setdefault(r["phase"], []).append(float(r["patches_per_s"]))
    if not by_phase:
        return "no training records in this log"
    return "\n".join(
        f"{phase:<8}  median {np.median(rates):7.1f} patches/s over {len(rates)} log records"
        for phase, rates in by_phase.items()
    )


class LivePlot:
    """An ``on_log`` callback for :func:`srgan_edu.train.train` that redraws :func:`draw_run`
    in a notebook cell while training runs.

    Each record is kept; the figure is redrawn at most every ``every`` seconds (drawing costs
    time that training would otherwise get), and always by :meth:`finish` (or on leaving a
    ``with`` block). In IPython the picture is a PNG shown once and then updated in place
    (``display(..., display_id=True)``); elsewhere (tests, scripts) it is only drawn, on the Agg
    canvas. Start from the records of an earlier call (``records=read_log(out)``) to continue
    the curves after a resume.
    """

    def __init__(
        self,
        records: Iterable[Mapping[str, Any]] = (),
        *,
        every: float = 10.0,
        title: str | None = None,
        figsize: tuple[float, float] = (11.0, 6.4),
        dpi: int = 80,
        display: bool | None = None,
    ) -> None:
        self.records: list[dict[str, Any]] = [dict(r) for r in records]
        self.every, self.title, self.dpi = float(every), title, dpi
        self.figure = Figure(figsize=figsize)
        self.draws = 0
        self._last = -math.inf
        self._handle: Any = None
        self._display = _in_ipython() if display is None else display

    def __call__(self, record: Mapping[str, Any]) -> None:
        self.records.append(dict(record))
        if time.monotonic() - self._last >= self.every:
            self.draw()

    def draw(self) -> None:
        """Redraw now and show (or update) the picture."""
        draw_run(self.figure, self.records, self.title)
        self._last = time.monotonic()
        self.draws += 1
        buffer = io.BytesIO()
        self.figure.savefig(buffer, format="png", dpi=self.dpi)
        if not self._display:
            return
        from IPython.display import Image as PNG
        from IPython.display import display

        picture = PNG(data=buffer.getvalue(), format="png")
        if self._handle is None:
            self._handle = display(picture, display_id=True)
        else:
            self._handle.update(picture)

    def finish(self) -> None:
        """The final picture, with every record."""
        self.draw()

    def __enter__(self) -> LivePlot:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.finish()


def _in_ipython() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    return get_ipython() is not None


# ----------------------------------------------------------------------------- the run folder


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def list_run(out: str | os.PathLike) -> str:
    """The files of a run folder as an indented tree with sizes (folders first, then by name)."""
    out = Path(out)
    lines = [f"{out}/"]

    def walk(folder: Path, depth: int) -> None:
        entries = sorted(folder.iterdir(), key=lambda p: (not p.is_dir(), p.name))
        for p in entries:
            pad = "    " * depth
            if p.is_dir():
                lines.append(f"{pad}{p.name}/")
                walk(p, depth + 1)
            else:
                lines.append(f"{pad}{p.name:<24} {_size(p.stat().st_size):>9}")

    walk(out, 1)
    return "\n".join(lines)


def checkpoint_overview(path: str | os.PathLike) -> str:
    """What one training checkpoint holds: step, phase, and each entry in words.

    Loaded with :func:`srgan_edu.checkpoint.load_checkpoint` (``weights_only=True``).
    """
    from srgan_edu.checkpoint import load_checkpoint

    state = load_checkpoint(path)
    lines = [f"{Path(path).name}: step {state.get('step')}, phase {state.get('phase')}"]
    for key in sorted(state):
        value = state[key]
        if isinstance(value, Mapping) and "state_dict" in value:
            n = sum(t.numel() for t in value["state_dict"].values() if torch.is_tensor(t))
            what = f"{value.get('arch', {}).get('name', 'network')}: {n:,} numbers + architecture"
        elif isinstance(value, Mapping) and "state" in value and "param_groups" in value:
            lr = value["param_groups"][0].get("lr") if value["param_groups"] else None
            what = f"optimiser state (Adam moments of {len(value['state'])} tensors, lr {lr:g})"
        elif key.startswith("sched") and isinstance(value, Mapping):
            what = (
                f"lr schedule: x{value.get('gamma')} after {value.get('last_epoch')} of "
                f"{sorted(value.get('milestones', {}))} steps (MultiStepLR)"
            )
        elif key == "rng":
            what = "random number generator states: " + ", ".join(sorted(value))
        elif key == "config":
            what = f"the run's settings ({len(value)} fields)"
        elif isinstance(value, Mapping):
            what = "{" + ", ".join(sorted(map(str, value))) + "}"
        elif torch.is_tensor(value):
            what = f"tensor {tuple(value.shape)}"
        else:
            what = repr(value)
        if len(what) > 88:
            what = what[:85] + "..."
        lines.append(f"  {key:<16} {what}")
    return "\n".join(lines)


def plot_batch(lr: torch.Tensor, hr: torch.Tensor, n: int = 8, width: float = 1.4) -> Figure:
    """The first ``n`` training pairs of a batch from :func:`srgan_edu.train.make_batch`: HR crops
    (in [-1, 1], the generator's target) on top, their LR inputs (in [0, 1]) below."""
    n = min(n, lr.shape[0])
    fig, axes = plt.subplots(2, n, figsize=(width * n, 2 * width + 0.5), squeeze=False)
    for i in range(n):
        hr_i = ((hr[i].detach().float().cpu() + 1) / 2).clamp(0, 1).permute(1, 2, 0).numpy()
        lr_i = lr[i].detach().float().cpu().clamp(0, 1).permute(1, 2, 0).numpy()
        axes[0, i].imshow(hr_i, interpolation="nearest")
        axes[1, i].imshow(lr_i, interpolation="nearest")
        for ax in axes[:, i]:
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0, 0].set_ylabel(f"HR {hr.shape[-2]}x{hr.shape[-1]}", fontsize=9)
    axes[1, 0].set_ylabel(f"LR {lr.shape[-2]}x{lr.shape[-1]}", fontsize=9)
    fig.tight_layout()
    return fig


SAMPLE_COLUMNS = ("LR (pixels enlarged)", "bicubic", "SR (generator)", "HR (original)")


def plot_samples(
    paths: Sequence[str | os.PathLike],
    titles: Sequence[str] | None = None,
    width: float = 5.2,
    gap: int = 2,
) -> Figure:
    """The sample grids a run saved (``samples/step_*.png``) side by side, columns labelled.

    Each grid has one row per validation image and four columns, LR | bicubic | SR | HR
    (:func:`srgan_edu.viz.comparison_grid`, ``gap`` pixels between them).
    """
    if not paths:
        raise ValueError("plot_samples needs at least one sample grid (OUT/samples/*.png)")
    images = [np.asarray(Image.open(p).convert("RGB")) for p in paths]
    titles = list(titles) if titles is not None else [Path(p).stem for p in paths]
    h, w = images[0].shape[:2]
    fig, axes = plt.subplots(
        1, len(images), figsize=(width * len(images), width * h / w + 0.6), squeeze=False
    )
    for ax, im, title in zip(axes[0], images, titles, strict=True):
        ax.imshow(im, interpolation="nearest")
        col = (im.shape[1] - 3 * gap) / 4
        ax.set_xticks([(col + gap) * k + col / 2 for k in range(4)], SAMPLE_COLUMNS, fontsize=8)
        ax.set_yticks([])
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def cli_command(
    config: TrainConfig,
    preset: str,
    out: str | os.PathLike,
    *,
    resume: bool = False,
    steps: int | None = None,
    torchrun: int | None = None,
) -> str:
    """The shell command that trains exactly ``config``: the preset plus every changed field.

    ``torchrun=N`` gives the multi-GPU form (``torchrun --nproc_per_node=N -m srgan_edu.train``).
    """
    launcher = (
        f"torchrun --nproc_per_node={torchrun} -m srgan_edu.train"
        if torchrun
        else "python -m srgan_edu.train"
    )
    parts = [launcher, f"--preset {preset}"]
    for name, (_, value) in diff(get_preset(preset), config).items():
        text = (
            "none"
            if value is None
            else str(value).lower()
            if isinstance(value, bool)
            else str(value)
        )
        parts.append(f"--{name.replace('_', '-')} {_quote(text)}")
    parts.append(f"--out {_quote(str(out))}")
    if steps is not None:
        parts.append(f"--steps {steps}")
    if resume:
        parts.append("--resume")
    return " \\\n    ".join(parts)


def _quote(text: str) -> str:
    import shlex

    return shlex.quote(text)


def config_table(config: TrainConfig, preset: str) -> str:
    """``field  preset value -> lesson value`` for the fields ``config`` changes in ``preset``."""
    changed = diff(get_preset(preset), config)
    if not changed:
        return f"(the {preset} preset unchanged)"
    width = max(len(k) for k in changed)
    return "\n".join(f"{k:<{width}}  {a!s:>12} -> {b}" for k, (a, b) in changed.items())


def preset_table(names: Sequence[str] = ("smoke", "laptop", "paper")) -> str:
    """The presets side by side on the fields that tell them apart."""
    fields = (
        "hr_crop", "batch_size", "n_blocks", "channels", "d_channels", "d_dense",
        "srresnet_steps", "srgan_steps", "lr_decay_step", "content", "vgg_weights",
        "num_workers",
    )  # fmt: skip
    presets = {n: to_dict(get_preset(n)) for n in names}
    lines = [f"{'field':<15}" + "".join(f"{n:>12}" for n in names)]
    for f in fields:
        lines.append(f"{f:<15}" + "".join(f"{_fmt(presets[n][f]):>12}" for n in names))
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 10_000:
        return f"{value:,}"
    return str(value)
