"""Training SRGAN in two phases, resumable, on one device or several: ``python -m srgan_edu.train``.

The loop follows Ledig et al. 2017, Sec. 3.2, top to bottom:

1. **SRResNet** (``phase="srresnet"``): the generator alone, pixel MSE (eq. 4), Adam at 1e-4.
2. **SRGAN** (``phase="srgan"``): the generator starts from phase 1; each step makes one
   discriminator update (eq. 2) and one generator update with the perceptual loss, content
   (VGG54, VGG22 or MSE) + 1e-3 adversarial (eq. 3); the learning rate drops to 1e-5 after 1e5
   steps.

Every step: a batch of HR images (decoded by CPU workers, or read from the uint8 array that
``python -m srgan_edu.prepare`` decoded once, ``--prepared``, which may be held whole in GPU memory)
goes to the device, where it is cropped, flipped and degraded to LR in one batched operation
(:func:`make_batch`), so a GPU never waits on per-image CPU work. Then LR -> generator -> loss ->
update.

What a run leaves in its ``out`` folder::

    config.json                  the run's settings (srgan_edu.config)
    log.jsonl                    one JSON object per log step / validation
    checkpoints/step_XXXXXXXX.pt the last ``keep_last`` full training states, and best.pt
    srresnet.pt, srgan.pt        the generator at the end of each phase (for evaluate / upscale)
    samples/step_XXXXXXXX.png    LR | bicubic | SR | HR on validation images

Resuming is exact: the data order comes from ``(seed, epoch)``, each step's crops and flips from
``(seed, step, rank)``, and a checkpoint holds the models, optimisers, schedulers and RNG state,
so N steps + resume + N steps ends with the same weights as 2N steps (tested on CPU).

Multi-GPU: ``torchrun --nproc_per_node=N -m srgan_edu.train ...`` runs data-parallel (DDP); each
process takes its own slice of every step's data, ``batch_size`` is per process, and only rank 0
logs, validates and writes files. Introduced in lesson 08 (training SRGAN on CelebA).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler, Subset

from srgan_edu import __version__
from srgan_edu.checkpoint import (
    CheckpointError,
    CheckpointManager,
    atomic_write,
    check_arch,
    load_network,
    network_entry,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from srgan_edu.cli import DeviceError, one_line, resolve_device
from srgan_edu.config import (
    ConfigError,
    TrainConfig,
    add_config_arguments,
    config_from_args,
    diff,
    from_dict,
    get_preset,
    to_dict,
)
from srgan_edu.data import (
    CELEBA_LAYOUTS,
    IMG_DIR,
    DatasetError,
    ImageFolder,
    SyntheticImages,
    celeba_training_split,
    looks_like_celeba,
    random_crop_flip,
    sample_seed,
    uint8_to_unit,
    worker_init,
)
from srgan_edu.degrade import bicubic_up, degrade
from srgan_edu.evaluate import (
    EvalResult,
    bicubic_upscaler,
    eval_pairs,
    evaluate_upscalers,
    generator_upscaler,
)
from srgan_edu.imaging import save_image, unit_to_signed
from srgan_edu.losses import PerceptualLoss
from srgan_edu.models import Discriminator, SRResNet, build_discriminator, build_generator
from srgan_edu.prepare import PreparedImages
from srgan_edu.steps import srgan_step, srresnet_step
from srgan_edu.vgg import VGGWeightsError
from srgan_edu.viz import comparison_grid

__all__ = [
    "DEVICE_DATA_SHARE",
    "StepBatchSampler",
    "TrainResult",
    "TrainingError",
    "TrainingDiverged",
    "main",
    "make_batch",
    "open_training_data",
    "phase_at",
    "total_steps",
    "train",
    "training_batches",
]

SAMPLE_IMAGES = 4
"""Validation images shown in each sample grid."""


class TrainingError(RuntimeError):
    """A run that cannot start or go on as asked; the message says what to do (CLI: one line)."""


class TrainingDiverged(TrainingError):
    """A loss became NaN or infinite; the message names the step and the last good checkpoint."""


# ----------------------------------------------------------------------------- the schedule


def phase_plan(config: TrainConfig) -> list[tuple[str, int]]:
    """``[(phase, steps), ...]`` in the order they run: phase 1 then phase 2 for ``both``."""
    plan = []
    if config.phase in ("srresnet", "both"):
        plan.append(("srresnet", config.srresnet_steps))
    if config.phase in ("srgan", "both"):
        plan.append(("srgan", config.srgan_steps))
    return plan


def total_steps(config: TrainConfig) -> int:
    """Updates in the whole run (both phases for ``phase="both"``)."""
    return sum(n for _, n in phase_plan(config))


def phase_at(config: TrainConfig, step: int) -> tuple[str, int]:
    """(phase, step within the phase) of global step ``step`` (0-based)."""
    start = 0
    for phase, n in phase_plan(config):
        if step < start + n:
            return phase, step - start
        start += n
    raise ValueError(f"step {step} is past the end of the run ({total_steps(config)} steps)")


# ----------------------------------------------------------------------------- data


class StepBatchSampler(Sampler[list[tuple[int, int]]]):
    """The batches of global steps ``start, start+1, ...`` (endless), for one process of ``world``.

    Step ``s`` belongs to epoch ``s // steps_per_epoch``; each epoch is a permutation seeded by
    ``(seed, epoch)``, cut into ``world * batch_size`` slices per step, of which process ``rank``
    takes its own ``batch_size``. So the data a step sees depends only on ``(seed, step, rank)``:
    a resumed run starts mid-epoch exactly where it stopped, and no two processes share an image
    within a step (a distributed sampler). Items are ``(epoch, index)`` pairs; see
    :class:`EpochItems`. A dataset smaller than one step's batch is repeated within the epoch.
    """

    def __init__(
        self,
        n: int,
        batch_size: int,
        seed: int = 0,
        start: int = 0,
        rank: int = 0,
        world: int = 1,
    ) -> None:
        if n < 1:
            raise ValueError("StepBatchSampler needs at least one item")
        if not 0 <= rank < world:
            raise ValueError(f"rank must be in [0, {world}), got {rank}")
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.start, self.rank, self.world = start, rank, world
        self.per_step = batch_size * world
        self.repeats = math.ceil(self.per_step / n)  # whole permutations per epoch
        self.steps_per_epoch = (n * self.repeats) // self.per_step

    def epoch_order(self, epoch: int) -> torch.Tensor:
        """Every index of one epoch, in its shuffled order (``repeats`` permutations joined)."""
        g = torch.Generator().manual_seed(sample_seed(self.seed, epoch, -1))
        return torch.cat([torch.randperm(self.n, generator=g) for _ in range(self.repeats)])

    def _span(self, step: int) -> tuple[int, int, int]:
        """``(epoch, lo, hi)``: this process's slice of step ``step`` is ``order[lo:hi]``."""
        epoch, k = divmod(step, self.steps_per_epoch)
        lo = k * self.per_step + self.rank * self.batch_size
        return epoch, lo, lo + self.batch_size

    def batch(self, step: int) -> list[tuple[int, int]]:
        """The ``(epoch, index)`` items of this process at global step ``step``."""
        epoch, lo, hi = self._span(step)
        return [(epoch, int(i)) for i in self.epoch_order(epoch)[lo:hi]]

    def indices(self, device: torch.device | str = "cpu") -> Iterator[torch.Tensor]:
        """The same batches as iterating, as index tensors on ``device``: (batch_size,) int64.

        Each epoch's order is copied to the device once, so a batch gathered from images held
        in device memory needs no host-to-device copy per step.
        """
        step, cached = self.start, (None, None)
        while True:
            epoch, lo, hi = self._span(step)
            if cached[0] != epoch:  # one permutation per epoch, not per step
                cached = (epoch, self.epoch_order(epoch).to(device))
            yield cached[1][lo:hi]
            step += 1

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for step, batch in enumerate(self.indices(), self.start):
            epoch = step // self.steps_per_epoch
            yield [(epoch, int(i)) for i in batch]


class EpochItems(Dataset):
    """``dataset[(epoch, i)]`` = item ``i`` with epoch ``epoch``'s random crop (if it crops).

    Passing the epoch with every index reaches DataLoader workers, which ``set_epoch`` on the
    main process's copy would not.
    """

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset
        inner = dataset.dataset if isinstance(dataset, Subset) else dataset
        self._set_epoch = getattr(inner, "set_epoch", None)

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, item: tuple[int, int]) -> torch.Tensor:
        epoch, index = item
        if self._set_epoch is not None:
            self._set_epoch(epoch)
        return self.dataset[index]


@dataclass
class TrainData:
    """What :func:`open_training_data` found: training and validation images, and how to crop.

    ``device_crop``: the training items are whole images of one size, cropped on the device by
    :func:`make_batch`; otherwise (image folders of mixed sizes) workers cut the crops and the
    device only flips. ``val_batch``: validation batch size (1 for images of mixed sizes).
    """

    train: Dataset
    val: Dataset | None
    device_crop: bool
    val_batch: int
    description: str


def open_training_data(config: TrainConfig) -> TrainData:
    """The training and validation images ``config`` asks for.

    * ``data=None``: :class:`SyntheticImages` (CI, demos).
    * a CelebA folder (any layout): the ``train`` split; validation on the first ``val_holdout``
      images of the ``val`` split, or, for a copy without val images (like the 10,000-face
      sample), on the last ``val_holdout`` train images by name, which training then never sees
      (:func:`~srgan_edu.data.celeba_training_split`). With ``config.prepared``, the same train
      images come decoded from that folder's array (:mod:`srgan_edu.prepare`), after a check
      that it was made from them; validation still reads ``data``.
    * any other folder of images: the last ``val_holdout`` images by name are held out.
    """
    c, k = config, config.val_holdout
    if c.data is None:
        size = c.hr_crop + c.hr_crop // 2  # room for random crops
        train = SyntheticImages(256, size, seed=c.seed)
        val = SyntheticImages(k, c.hr_crop, seed=c.seed + 1) if k else None
        text = f"synthetic images ({len(train)} of {size}x{size}, {k} for validation)"
        return TrainData(train, val, True, c.batch_size, text)
    root = Path(c.data).expanduser()
    if not root.exists():
        raise DatasetError(
            f"training data not found: {root}. Pass --data with a CelebA folder (holding "
            f"{IMG_DIR}/ or {IMG_DIR}.zip) or a folder of images, or --data none for synthetic "
            "images."
        )
    if looks_like_celeba(root):
        train, val = celeba_training_split(root, k, seed=c.seed, multiple_of=c.scale)
        _check_size(train.image_size, c, train.describe())
        text = train.describe() + (f" Validation: {val.describe()}" if val is not None else "")
        if c.prepared is None:
            return TrainData(train, val, True, c.batch_size, text)
        prepared = PreparedImages(c.prepared, expect=train, val_holdout=k, data=c.data)
        text = f"{prepared.describe()} Validation: {val.describe() if val is not None else 'none'}"
        return TrainData(prepared, val, True, c.batch_size, text)
    if c.prepared is not None:
        raise DatasetError(
            f"--prepared works with CelebA, but --data {root} is a plain image folder (of mixed "
            "sizes, cropped by the workers): train without --prepared"
        )
    folder_train = ImageFolder(
        root,
        c.hr_crop,
        "train",
        flip=False,
        seed=c.seed,
        multiple_of=c.scale,
        uint8=True,
        on_error="skip",
    )
    n = len(folder_train)
    if k >= n:
        raise DatasetError(
            f"{root} holds {n} images but val_holdout={k} would hold out all of them: add "
            f"images or pass --val-holdout with fewer than {n} (0: no validation)."
        )
    train = Subset(folder_train, range(n - k))
    val = None
    if k:
        val = Subset(ImageFolder(root, mode="eval", multiple_of=c.scale), range(n - k, n))
    text = f"image folder {root}: {n - k} images for training, {k} held out for validation"
    return TrainData(train, val, False, 1, text)


DEVICE_DATA_SHARE = 0.5
"""``data_on_device="auto"`` holds a prepared array in CUDA memory when it takes at most this
share of the memory free at that point (the models are already there; the rest is for the
activations): full CelebA's 18.9 GB goes on an 80 GB H100, or any GPU with 38 GB free."""


def training_batches(
    data: TrainData,
    sampler: StepBatchSampler,
    config: TrainConfig,
    device: torch.device,
    say: Callable[[str], None] = print,
) -> Iterable[torch.Tensor]:
    """The loop's HR batches, one per step in ``sampler``'s order: (B, 3, H, W) uint8 tensors.

    * image files: a DataLoader whose workers decode JPEGs (and, for image folders, crop);
    * a prepared array (``config.prepared``) held in device memory (``data_on_device``): each
      batch is gathered on the device with an index tensor, no workers, no copy per step;
    * a prepared array on disk: a DataLoader that reads each batch from the memory map at once.

    Every path yields the same pixels for a step (tested), so exact resume holds whichever runs.
    Nothing is read until iteration starts.
    """
    workers, cuda = config.num_workers, device.type == "cuda"
    if not isinstance(data.train, PreparedImages):
        return DataLoader(
            EpochItems(data.train),
            batch_sampler=sampler,
            num_workers=workers,
            worker_init_fn=worker_init if workers else None,
            pin_memory=cuda,
            prefetch_factor=4 if workers else None,
        )
    if _data_on_device(config, data.train, device, say):
        return _ResidentBatches(data.train, sampler, device, say)
    return DataLoader(
        _StepReads(data.train),
        sampler=sampler,  # yields one step's items; batch_size=None: the dataset reads them at once
        batch_size=None,
        num_workers=workers,
        worker_init_fn=worker_init if workers else None,
        pin_memory=cuda,
        prefetch_factor=4 if workers else None,
    )


def _data_on_device(
    config: TrainConfig, images: PreparedImages, device: torch.device, say: Callable[[str], None]
) -> bool:
    """Whether to hold the prepared array on ``device`` (see ``data_on_device`` in the config)."""
    mode, need = config.data_on_device, images.nbytes
    if mode == "off":
        return False
    if device.type != "cuda":
        return mode == "on"  # auto: the memory map already is in this machine's page cache
    free, _ = torch.cuda.mem_get_info(device)
    if mode == "on" and need > free:
        raise TrainingError(
            f"--data-on-device on: the prepared array needs {need / 1e9:.1f} GB but {device} has "
            f"{free / 1e9:.1f} GB free; use --data-on-device auto or off (read from disk)"
        )
    if mode == "auto" and need > DEVICE_DATA_SHARE * free:
        say(
            f"data stays on disk: the prepared array ({need / 1e9:.1f} GB) is more than "
            f"{DEVICE_DATA_SHARE:.0%} of the {free / 1e9:.1f} GB free on {device}"
        )
        return False
    return True


class _StepReads(Dataset):
    """``dataset[[(epoch, i), ...]]`` = one step's images read from a prepared array in one call:
    (B, 3, H, W) uint8 (a view of the file's (B, H, W, 3) layout)."""

    def __init__(self, images: PreparedImages) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, items: list[tuple[int, int]]) -> torch.Tensor:
        return self.images.batch([i for _, i in items]).permute(0, 3, 1, 2)


class _ResidentBatches:
    """Batches gathered on the device from the whole prepared array held there."""

    def __init__(
        self,
        images: PreparedImages,
        sampler: StepBatchSampler,
        device: torch.device,
        say: Callable[[str], None],
    ) -> None:
        self.images, self.sampler, self.device, self.say = images, sampler, device, say

    def __iter__(self) -> Iterator[torch.Tensor]:
        self.say(f"data: holding {self.images.nbytes / 1e9:.2f} GB of images in {self.device}")
        array = self.images.to_tensor(self.device)  # (N, H, W, 3) uint8
        for index in self.sampler.indices(self.device):  # (B,) int64, on the device
            yield array[index].permute(0, 3, 1, 2)  # (B, 3, H, W) uint8


def _check_size(size: tuple[int, int] | None, c: TrainConfig, what: str) -> None:
    if size is not None and min(size) < c.hr_crop:
        raise DatasetError(
            f"{what}\nThe images are {size[0]}x{size[1]} (HxW), smaller than hr_crop={c.hr_crop}: "
            f"pass --hr-crop {min(size) // c.scale * c.scale} or less."
        )


def make_batch(
    hr: torch.Tensor,
    config: TrainConfig,
    step: int,
    device: torch.device,
    *,
    device_crop: bool = True,
    rank: int = 0,
    channels_last: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """A loader batch -> ``(lr in [0, 1], hr in [-1, 1])`` on ``device``, batched on the device.

    Crop (when ``device_crop``) and flip from a generator seeded with ``(seed, step, rank)``, then
    HR -> LR by ``config.degradation`` rounded to 8-bit levels like an LR image file.
    """
    hr = uint8_to_unit(hr.to(device, non_blocking=True))  # (B, 3, H, W) in [0, 1]
    g = torch.Generator().manual_seed(sample_seed(config.seed, step, rank))
    crop = config.hr_crop if device_crop else tuple(hr.shape[-2:])
    hr = random_crop_flip(hr, crop, generator=g)  # (B, 3, hr_crop, hr_crop)
    lr = degrade(hr, config.scale, config.degradation, quantize=True, check=False)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    return lr.contiguous(memory_format=fmt), unit_to_signed(hr).contiguous(memory_format=fmt)


# ----------------------------------------------------------------------------- machine


@dataclass
class Machine:
    """The device and the process group: ``world == 1`` for an ordinary single-process run."""

    device: torch.device
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    owns_group: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def any(self, flag: bool) -> bool:
        """True on every process if ``flag`` is true on any (to stop all ranks at one step)."""
        if self.world == 1:
            return flag
        t = torch.tensor([float(flag)], device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item() > 0)


def setup_machine(config: TrainConfig) -> Machine:
    """Pick the device; under ``torchrun`` (``WORLD_SIZE`` > 1) join the process group.

    NCCL on CUDA (one GPU per process: ``cuda:LOCAL_RANK``), gloo on CPU.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Machine(resolve_device(config.device))
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(config.device)
    if device.type == "cuda":
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    owns = not dist.is_initialized()
    if owns:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Machine(device, rank, world, local, owns)


def _amp(config: TrainConfig, device: torch.device) -> bool:
    """bf16 autocast: on for CUDA under ``auto``; ``bf16`` forces it."""
    return config.amp == "bf16" or (config.amp == "auto" and device.type == "cuda")


def _channels_last(config: TrainConfig, device: torch.device) -> bool:
    return config.channels_last == "on" or (
        config.channels_last == "auto" and device.type == "cuda"
    )


def _adam(params: Any, config: TrainConfig, device: torch.device) -> torch.optim.Adam:
    """Adam (paper: lr 1e-4, beta1 0.9); the fused kernel on CUDA."""
    extra = {"fused": True} if device.type == "cuda" else {}
    return torch.optim.Adam(params, lr=config.lr, betas=(config.beta1, config.beta2), **extra)


# ----------------------------------------------------------------------------- the run folder


class RunFolder:
    """The files of one run under ``out`` (see the module docstring); only rank 0 writes."""

    def __init__(self, out: str | os.PathLike, keep_last: int, write: bool = True) -> None:
        self.out = Path(out).expanduser()
        self.write = write
        self.log_path = self.out / "log.jsonl"
        self.samples = self.out / "samples"
        self.ckpt_dir = self.out / "checkpoints"
        self.checkpoints = CheckpointManager(self.ckpt_dir, keep_last) if write else None

    def has_run(self) -> bool:
        return self.ckpt_dir.is_dir() and any(self.ckpt_dir.glob("step_*.pt"))

    def log(self, record: dict[str, Any]) -> None:
        if self.write:
            with open(self.log_path, "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")

    def truncate_log(self, step: int) -> None:
        """Drop log lines past ``step`` (written after the checkpoint a resume starts from)."""
        if not (self.write and self.log_path.is_file()):
            return
        keep = []
        for line in self.log_path.read_text(encoding="utf-8").splitlines():
            try:
                if json.loads(line).get("step", 0) <= step:
                    keep.append(line)
            except json.JSONDecodeError:
                continue  # a line cut off by a crash
        text = "".join(line + "\n" for line in keep)
        atomic_write(self.log_path, lambda f: f.write(text.encode()))

    def write_config(self, config: TrainConfig) -> None:
        if self.write:
            text = json.dumps({"version": __version__, **to_dict(config)}, indent=2) + "\n"
            atomic_write(self.out / "config.json", lambda f: f.write(text.encode()))


# ----------------------------------------------------------------------------- validation


def validate(
    generator: nn.Module,
    data: Dataset,
    config: TrainConfig,
    device: torch.device,
    batch_size: int,
    bicubic: EvalResult | None = None,
) -> tuple[dict[str, float], EvalResult]:
    """Y-channel PSNR/SSIM of the generator and of bicubic on the validation images, measured
    by :mod:`srgan_edu.evaluate` exactly as ``python -m srgan_edu.evaluate`` measures them.

    Returns the log record and the bicubic result (pass it back in: it never changes).
    """
    pairs = eval_pairs(data, config.scale, batch_size=batch_size, device=device,
                       degradation=config.degradation)  # fmt: skip
    methods = {"sr": generator_upscaler(generator)}
    if bicubic is None:
        methods["bicubic"] = bicubic_upscaler(config.scale)
    results = evaluate_upscalers(methods, pairs, config.scale)
    bicubic = results.get("bicubic", bicubic)
    (psnr, ssim), (b_psnr, b_ssim) = results["sr"].mean(), bicubic.mean()
    record = {
        "val/psnr_y": psnr,
        "val/ssim_y": ssim,
        "val/bicubic_psnr_y": b_psnr,
        "val/bicubic_ssim_y": b_ssim,
        "val/n": results["sr"].n,
    }
    return record, bicubic


def sample_images(val: Dataset, scale: int, n: int = SAMPLE_IMAGES) -> torch.Tensor:
    """The first ``n`` validation images, centre-cropped to one square size (at most 256 px, a
    multiple of ``scale``) so that they share a sample grid: (n, 3, S, S) in [0, 1]."""
    images = [uint8_to_unit(val[i]) for i in range(min(n, len(val)))]  # type: ignore[arg-type]
    side = min(256, *(min(im.shape[-2:]) for im in images)) // scale * scale
    return torch.stack([_centre(im, side) for im in images])


def _centre(image: torch.Tensor, side: int) -> torch.Tensor:
    top, left = (image.shape[-2] - side) // 2, (image.shape[-1] - side) // 2
    return image[:, top : top + side, left : left + side]


@torch.no_grad()
def sample_grid(generator: nn.Module, hr: torch.Tensor, config: TrainConfig) -> torch.Tensor:
    """LR | bicubic | SR | HR rows for a few validation images, as one (3, H, W) image."""
    was_training = generator.training
    generator.eval()
    device = next(generator.parameters()).device
    hr = uint8_to_unit(hr.to(device))
    lr = degrade(hr, config.scale, config.degradation, quantize=True)
    sr = (generator(lr).float() + 1.0) * 0.5
    generator.train(was_training)
    return comparison_grid([lr, bicubic_up(lr, config.scale), sr, hr])


# ----------------------------------------------------------------------------- the loop


@dataclass
class TrainResult:
    """How a call to :func:`train` ended.

    ``status``: ``"finished"`` (the schedule is done), ``"paused"`` (``steps`` updates made; resume
    to go on) or ``"interrupted"`` (SIGINT/SIGTERM; saved). ``history``: the log records of this
    call, for plots.
    """

    out: Path
    status: str
    step: int
    total_steps: int
    generator: SRResNet
    checkpoint: Path | None
    val: dict[str, float] | None
    history: list[dict[str, Any]] = field(default_factory=list)
    signal: int | None = None


class _StopSignals:
    """SIGINT/SIGTERM set a flag that the loop checks after each step (then saves and returns).

    Installed only in the main thread (Python's rule); the previous handlers come back on exit.
    A second Ctrl-C while saving is ignored so the checkpoint finishes.
    """

    def __init__(self) -> None:
        self.received: int | None = None
        self._old: dict[int, Any] = {}

    def _handler(self, signum: int, frame: Any) -> None:
        self.received = signum

    def __enter__(self) -> _StopSignals:
        import threading

        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


class _Window:
    """Loss sums since the last log step, kept on the device (no sync per step)."""

    def __init__(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.steps = 0
        self.start = time.perf_counter()

    def add(self, **losses: torch.Tensor) -> None:
        for k, v in losses.items():
            v = v.detach().float()
            self.sums[k] = self.sums[k] + v if k in self.sums else v.clone()
        self.steps += 1

    def record(self, step: int, phase: str, patches_per_step: int) -> dict[str, Any]:
        """The log record of the window: mean losses and throughput (this reads the device)."""
        elapsed = max(time.perf_counter() - self.start, 1e-9)
        n = max(self.steps, 1)
        self.last = {f"loss/{k}": float(v) / n for k, v in self.sums.items()}
        self.rate = self.steps * patches_per_step / elapsed
        return {"step": step, "phase": phase, **self.last, "patches_per_s": self.rate}

    def postfix(self) -> dict[str, str]:
        """Short progress-bar text: the losses and patches/s of :meth:`record`."""
        shown = {k.split("/")[-1]: f"{v:.4g}" for k, v in self.last.items()}
        return {**shown, "patch/s": f"{self.rate:.0f}"}


def _resolve_init(init: str | os.PathLike | None, out: Path) -> Path:
    if init is not None:
        return Path(init).expanduser()
    if (out / "srresnet.pt").is_file():
        return out / "srresnet.pt"
    raise TrainingError(
        "phase 'srgan' starts from a trained SRResNet: pass --init path/to/srresnet.pt "
        "(written by a --phase srresnet run), or use --phase both to train it first"
    )


def train(
    config: TrainConfig,
    out: str | os.PathLike,
    *,
    resume: bool = False,
    steps: int | None = None,
    init: str | os.PathLike | None = None,
    progress: bool = True,
    on_log: Callable[[dict[str, Any]], None] | None = None,
) -> TrainResult:
    """Train SRResNet and/or SRGAN as ``config`` says, writing everything under ``out``.

    ``resume``: continue from the newest readable checkpoint in ``out`` (settings that change the
    networks are refused; others may change and are reported). A folder that already holds a run
    is never overwritten silently: pass ``resume=True`` or use a new ``out``. ``steps``: make at
    most this many updates in this call, then save and return (``status="paused"``). ``init``:
    the phase-1 checkpoint that ``phase="srgan"`` starts from (default ``out/srresnet.pt``).
    ``on_log``: called with every log record (lessons draw live curves with it).
    """
    machine = setup_machine(config)
    try:
        return _train(config, out, machine, resume, steps, init, progress, on_log)
    finally:
        if machine.owns_group and dist.is_initialized():
            dist.destroy_process_group()


def _train(
    config: TrainConfig,
    out: str | os.PathLike,
    machine: Machine,
    resume: bool,
    steps: int | None,
    init: str | os.PathLike | None,
    progress: bool,
    on_log: Callable[[dict[str, Any]], None] | None,
) -> TrainResult:
    device, main = machine.device, machine.is_main
    run = RunFolder(out, config.keep_last, write=main)
    end = total_steps(config)
    amp, cl = _amp(config, device), _channels_last(config, device)
    fmt = torch.channels_last if cl else torch.contiguous_format
    say = _printer(main)

    # --- the generator (and, in phase 2, the discriminator) ------------------------------------
    G = build_generator(
        config.scale, config.n_blocks, config.channels, config.upsampler, seed=config.seed
    ).to(device, memory_format=fmt)
    D: Discriminator | None = None
    opt_g = _adam(G.parameters(), config, device)
    opt_d: torch.optim.Adam | None = None
    sched_g = sched_d = None
    perceptual: PerceptualLoss | None = None
    phase_now: str | None = None

    def enter_phase(phase: str) -> None:
        """Set up the optimisers (and D, the loss) of ``phase``; phase 2 starts a fresh Adam."""
        nonlocal D, opt_g, opt_d, sched_g, sched_d, perceptual, phase_now
        phase_now = phase
        if phase == "srresnet":
            return
        D = build_discriminator(
            config.hr_crop, config.d_channels, config.d_dense, seed=config.seed + 1
        ).to(device, memory_format=fmt)
        opt_g, opt_d = _adam(G.parameters(), config, device), _adam(D.parameters(), config, device)
        sched_g, sched_d = (
            torch.optim.lr_scheduler.MultiStepLR(o, [config.lr_decay_step], config.lr_decay_factor)
            for o in (opt_g, opt_d)
        )
        if perceptual is None:
            perceptual = _perceptual_loss(config, device, fmt)

    # --- where to start: fresh, resumed, or phase 2 from a phase-1 generator ------------------
    start = 0
    if run.has_run() and not resume:
        raise TrainingError(
            f"{run.out} already holds a training run (checkpoints in {run.ckpt_dir}); pass "
            "--resume to continue it, or choose a new --out folder"
        )
    state = None
    if resume:
        state = CheckpointManager(run.ckpt_dir, config.keep_last).load_latest(device)
        if state is None:
            say(f"no checkpoint in {run.ckpt_dir} to resume from: starting a new run")
    if state is not None:
        start = _restore(
            state, config, G, enter_phase, lambda: (D, opt_g, opt_d, sched_g, sched_d), say
        )
        if start >= end:
            say(f"the run in {run.out} is already complete ({start} of {end} steps)")
    elif config.phase == "srgan":
        path = _resolve_init(init, run.out)
        source = load_network(path, "generator")
        check_arch(source.arch(), G.arch(), "generator")
        G.load_state_dict(source.state_dict())
        say(f"phase 2 starts from the generator in {path}")
    if main:
        run.out.mkdir(parents=True, exist_ok=True)
        run.truncate_log(start)
        run.write_config(config)
    machine.barrier()

    if start < end and phase_at(config, end - 1)[0] == "srgan" and perceptual is None:
        # the VGG weights are read now, not after hours of phase 1: a missing file fails fast
        perceptual = _perceptual_loss(config, device, fmt)

    # --- data -----------------------------------------------------------------------------------
    data = open_training_data(config)
    say(f"data: {data.description}")
    say(
        f"device: {device}{f' x {machine.world} processes' if machine.world > 1 else ''}, "
        f"bf16 autocast {'on' if amp else 'off'}, channels_last {'on' if cl else 'off'}"
    )
    sampler = StepBatchSampler(
        len(data.train), config.batch_size, config.seed, start, machine.rank, machine.world
    )
    source = training_batches(data, sampler, config, device, say)
    val_data = data.val if main else None
    sample_hr = sample_images(val_data, config.scale) if val_data is not None else None

    # --- the models as the loop runs them (DDP, compile) --------------------------------------
    def wrap(model: nn.Module) -> nn.Module:
        if machine.world > 1:
            ids = [device.index] if device.type == "cuda" else None
            model = nn.parallel.DistributedDataParallel(model, device_ids=ids)
        return torch.compile(model) if config.compile else model

    g_run = wrap(G)
    d_run = None

    # --- the loop -------------------------------------------------------------------------------
    history: list[dict[str, Any]] = []
    bicubic_val: EvalResult | None = None
    last_val: dict[str, float] | None = None
    last_saved: Path | None = None
    bad_step = torch.full((), -1, dtype=torch.long, device=device)  # first non-finite step
    window = _Window()
    t0 = time.perf_counter()
    step = start
    stop = end if steps is None else min(end, start + steps)
    status = "finished" if stop == end else "paused"  # unless a signal stops it first
    stop_signal: int | None = None
    bar = _progress(progress and main, start, end)
    batches = iter(source) if start < stop else iter(())

    def emit(record: dict[str, Any]) -> None:
        history.append(record)
        run.log(record)
        if on_log is not None:
            on_log(record)

    def check_finite() -> None:
        """Stop every process if any loss so far was NaN/inf; nothing bad gets saved."""
        first = int(bad_step)
        if machine.any(first >= 0):
            where = f"at step {first + 1}" if first >= 0 else "on another process"
            kept = last_saved or (run.checkpoints.latest() if run.checkpoints else None)
            raise TrainingDiverged(
                f"a loss became NaN or infinite {where} (phase {phase_now}); training stopped "
                f"without saving. Last good checkpoint: {kept or 'none yet'}. Try a lower --lr, "
                "--amp off, or resume from that checkpoint"
            )

    def save(phase_step_done: int, metric: float | None) -> Path | None:
        nonlocal last_saved
        check_finite()
        if not main:
            return None
        payload = _payload(
            config,
            phase_now,
            G,
            D,
            opt_g,
            opt_d,
            sched_g,
            sched_d,
            machine,
            last_val,
            phase_step_done,
        )
        last_saved = run.checkpoints.save(payload, step, metric=metric)
        return last_saved

    with _StopSignals() as signals:
        while step < stop:
            phase, pstep = phase_at(config, step)
            if phase != phase_now:
                enter_phase(phase)
            if phase == "srgan" and d_run is None:
                d_run = wrap(D)
            lr, hr = make_batch(
                next(batches),
                config,
                step,
                device,
                device_crop=data.device_crop,
                rank=machine.rank,
                channels_last=cl,
            )
            if phase == "srresnet":
                losses = srresnet_step(g_run, opt_g, lr, hr, amp)
                watched = losses["mse"]
            else:
                losses = srgan_step(g_run, d_run, D, perceptual, opt_g, opt_d, lr, hr, amp)
                sched_g.step()
                sched_d.step()
                watched = losses["g_total"] + losses["d_loss"]
            window.add(**losses)
            finite = torch.isfinite(watched.detach())
            bad_step = torch.where((bad_step < 0) & ~finite, step, bad_step)
            step += 1
            pstep += 1
            bar.update(1)
            phase_done = pstep == dict(phase_plan(config))[phase]
            at_log = step % config.log_every == 0 or phase_done or step == stop

            # --- logging, validation, samples (rank 0 writes) -------------------------------------
            if at_log:
                check_finite()
                record = window.record(step, phase, config.batch_size * machine.world)
                record.update(
                    epoch=step // sampler.steps_per_epoch,
                    lr=opt_g.param_groups[0]["lr"],
                    time=time.perf_counter() - t0,
                )
                emit(record)
                bar.set_postfix(window.postfix(), refresh=False)
                window = _Window()
            t_side = time.perf_counter()  # validation, samples, saving: not in patches/s
            validate_now = val_data is not None and (
                (config.val_every and step % config.val_every == 0) or phase_done
            )
            if validate_now:
                last_val, bicubic_val = validate(
                    G, val_data, config, device, data.val_batch, bicubic_val
                )
                emit({"step": step, "phase": phase, **last_val})
                bar.write(
                    f"step {step}: val PSNR-Y {last_val['val/psnr_y']:.2f} dB (bicubic "
                    f"{last_val['val/bicubic_psnr_y']:.2f}), SSIM-Y {last_val['val/ssim_y']:.4f}"
                )
            if sample_hr is not None and (
                (config.sample_every and step % config.sample_every == 0) or phase_done
            ):
                save_image(sample_grid(G, sample_hr, config), run.samples / f"step_{step:08d}.png")

            # --- checkpoints: every ckpt_every steps, at each phase's end, when stopping ---------
            got = signals.received is not None
            if machine.world > 1:  # all processes stop together, at a log step
                got = machine.any(got) if at_log else False
            if (
                got
                or step == stop
                or phase_done
                or (config.ckpt_every and step % config.ckpt_every == 0)
            ):
                metric = last_val["val/psnr_y"] if validate_now and phase == "srresnet" else None
                save(pstep, metric)
            window.start += time.perf_counter() - t_side
            if phase_done and main:
                _save_generator(run.out / f"{phase}.pt", G, config, step, last_val)
                bar.write(
                    f"phase {phase} done at step {step}: generator saved to "
                    f"{run.out / f'{phase}.pt'}"
                )
            if got and step < stop:
                status, stop_signal = "interrupted", signals.received or signal.SIGTERM
                bar.write(
                    f"{signal.Signals(stop_signal).name} received: saved step {step} to "
                    f"{last_saved}; continue with --resume"
                )
                break
    bar.close()
    del batches
    if last_saved is None and main:
        last_saved = run.checkpoints.latest()
    return TrainResult(run.out, status, step, end, G, last_saved, last_val, history, stop_signal)


def _perceptual_loss(
    config: TrainConfig, device: torch.device, fmt: torch.memory_format
) -> PerceptualLoss:
    """Eq. 3 as ``config`` asks: content (VGG54 / VGG22 / MSE) + ``adv_weight`` adversarial."""
    weights = None if config.vgg_weights == "random" else config.vgg_weights
    return PerceptualLoss(
        config.content,
        config.adv_weight,
        weights=weights,
        rescale=config.vgg_rescale,
        seed=config.seed,
    ).to(device, memory_format=fmt)


def _payload(
    config: TrainConfig,
    phase: str | None,
    G: SRResNet,
    D: Discriminator | None,
    opt_g: torch.optim.Optimizer,
    opt_d: torch.optim.Optimizer | None,
    sched_g: Any,
    sched_d: Any,
    machine: Machine,
    val: dict[str, float] | None,
    phase_step: int,
) -> dict[str, Any]:
    """The full training state: enough to continue exactly (see :func:`_restore`)."""
    return {
        "kind": "train",
        "config": to_dict(config),
        "phase": phase,
        "phase_step": phase_step,
        "generator": network_entry(G),
        "discriminator": network_entry(D) if D is not None else None,
        "opt_g": opt_g.state_dict(),
        "opt_d": opt_d.state_dict() if opt_d is not None else None,
        "sched_g": sched_g.state_dict() if sched_g is not None else None,
        "sched_d": sched_d.state_dict() if sched_d is not None else None,
        "rng": rng_state(),
        "world_size": machine.world,
        "val": val,
    }


def _follow_config(
    opt: torch.optim.Optimizer,
    config: TrainConfig,
    sched: torch.optim.lr_scheduler.MultiStepLR | None = None,
) -> None:
    """After loading saved optimiser/scheduler states, apply this run's ``lr``, ``lr_decay_step``
    and ``lr_decay_factor``: a resume with changed settings (reported) must use them, not the
    saved ones. Unchanged settings give exactly the saved learning rate back."""
    if sched is None:
        for group in opt.param_groups:
            group["lr"] = config.lr
        return
    sched.base_lrs = [config.lr] * len(opt.param_groups)
    sched.milestones = Counter([config.lr_decay_step])
    sched.gamma = config.lr_decay_factor
    decayed = sched.last_epoch >= config.lr_decay_step  # SRGAN updates made in this phase
    for group in opt.param_groups:
        group["lr"] = config.lr * (config.lr_decay_factor if decayed else 1.0)


def _restore(
    state: dict[str, Any],
    config: TrainConfig,
    G: SRResNet,
    enter_phase: Callable[[str], None],
    parts: Callable[[], tuple],
    say: Callable[[str], None],
) -> int:
    """Load a training checkpoint into this run; returns the global step to continue from."""
    if state.get("kind") != "train":
        raise CheckpointError(
            "the newest checkpoint is not a training state (it holds no optimiser); cannot "
            "resume from it"
        )
    saved = from_dict(state["config"])
    changed = diff(saved, config)
    if changed:
        say(
            "resuming with changed settings: "
            + ", ".join(f"{k} {a!r} -> {b!r}" for k, a, b in ((k, *v) for k, v in changed.items()))
        )
    check_arch(state["generator"]["arch"], G.arch(), "generator")
    G.load_state_dict(state["generator"]["state_dict"])
    step = int(state["step"])
    phase = state["phase"]
    if phase == "srgan":
        enter_phase("srgan")
        D, opt_g, opt_d, sched_g, sched_d = parts()
        check_arch(state["discriminator"]["arch"], D.arch(), "discriminator")
        D.load_state_dict(state["discriminator"]["state_dict"])
        opt_g.load_state_dict(state["opt_g"])
        opt_d.load_state_dict(state["opt_d"])
        sched_g.load_state_dict(state["sched_g"])
        sched_d.load_state_dict(state["sched_d"])
        for sched in (sched_g, sched_d):
            _follow_config(sched.optimizer, config, sched)
    else:
        enter_phase("srresnet")
        _, opt_g, *_ = parts()
        opt_g.load_state_dict(state["opt_g"])
        _follow_config(opt_g, config)
    set_rng_state(state["rng"])
    say(f"resumed from step {step} (phase {phase})")
    return step


def _save_generator(
    path: Path, G: SRResNet, config: TrainConfig, step: int, val: dict[str, float] | None
) -> None:
    """The generator alone, for ``evaluate`` / ``upscale`` / ``load_network``."""
    payload = {
        "kind": "generator",
        "generator": network_entry(G),
        "config": to_dict(config),
        "step": step,
        "val": val,
    }
    save_checkpoint(payload, path)


def _printer(main: bool) -> Callable[[str], None]:
    def say(text: str) -> None:
        if main:
            print(text, file=sys.stderr, flush=True)

    return say


class _NoBar:
    def update(self, n: int = 1) -> None: ...
    def set_postfix(self, *a: Any, **k: Any) -> None: ...
    def write(self, text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    def close(self) -> None: ...


def _progress(enabled: bool, start: int, end: int) -> Any:
    if not enabled:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=end, initial=start, unit="step", dynamic_ncols=True, smoothing=0.1)


# ----------------------------------------------------------------------------- command line

EXAMPLES = (
    """\
examples:
  python -m srgan_edu.train --preset smoke --out runs/smoke            # seconds, synthetic images
  python -m srgan_edu.train --data ~/data/celeba --preset laptop --out runs/laptop
  python -m srgan_edu.train --data ~/data/celeba --preset laptop --out runs/laptop --resume
  python -m srgan_edu.train --data ~/data/celeba --preset paper --out runs/paper --steps 5000
  python -m srgan_edu.prepare ~/data/celeba --out ~/data/prep          # decode once, then:
  python -m srgan_edu.train --data ~/data/celeba --prepared ~/data/prep --preset paper --out runs/p
  python -m srgan_edu.train --data ~/photos --preset laptop --hr-crop 96 --content mse --out r1
  torchrun --nproc_per_node=4 -m srgan_edu.train --data ~/data/celeba --preset paper --out runs/p

Presets: smoke (CI: seconds on a CPU, synthetic images), laptop (minutes on a CPU: a small
generator, 64x64 crops), paper (Ledig et al. 2017: 96x96 crops, batch 16, 1e6 SRResNet + 2e5 SRGAN
updates; for a GPU). Every setting below overrides the preset's value.

Ctrl-C (or SIGTERM) saves a checkpoint and exits; --resume continues exactly where it stopped.
Results: OUT/srresnet.pt and OUT/srgan.pt (for srgan_edu.evaluate and srgan_edu.upscale),
OUT/log.jsonl, OUT/samples/*.png, OUT/checkpoints/.

--data takes CelebA or any folder of images (the last --val-holdout images by name are held out
for validation). """
    + CELEBA_LAYOUTS
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m srgan_edu.train",
        description="Train SRResNet (pixel MSE) and then SRGAN (perceptual loss) for x4 "
        "super-resolution on CelebA, any folder of images, or synthetic images.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    parser.add_argument(
        "--preset", default="laptop", help="smoke, laptop or paper (default laptop)"
    )
    parser.add_argument("--out", default="runs/srgan", help="output folder (default runs/srgan)")
    parser.add_argument(
        "--resume", action="store_true", help="continue the run in --out from its newest checkpoint"
    )
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        metavar="N",
        help="make at most N updates now, save, and stop (resume later)",
    )
    parser.add_argument(
        "--init",
        default=None,
        metavar="CHECKPOINT",
        help="phase-1 generator for --phase srgan (default OUT/srresnet.pt)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return add_config_arguments(parser)


def main(argv: list[str] | None = None) -> int:
    """The CLI: exit 0 when finished or paused, 128+signal when interrupted, 2 on a user error."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.steps is not None and args.steps < 1:
            raise ConfigError(f"--steps must be a positive number of updates, got {args.steps}")
        get_preset(args.preset)
        config = config_from_args(args, args.preset)
        result = train(
            config,
            args.out,
            resume=args.resume,
            steps=args.steps,
            init=args.init,
            progress=not args.no_progress,
        )
    except (
        ConfigError,
        DatasetError,
        CheckpointError,
        TrainingError,
        DeviceError,
        VGGWeightsError,
    ) as err:
        print(f"error: {one_line(err)}", file=sys.stderr)
        return 2
    except OSError as err:  # e.g. --out cannot be created or the disk is full
        print(f"error: {err}", file=sys.stderr)
        return 2
    if int(os.environ.get("RANK", "0")) == 0:
        summary = {
            "status": result.status,
            "step": result.step,
            "total_steps": result.total_steps,
            "checkpoint": str(result.checkpoint) if result.checkpoint else None,
            **(result.val or {}),
        }
        print(json.dumps(summary))
    if result.status == "interrupted":
        return 128 + int(result.signal or signal.SIGINT)
    return 0


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())
