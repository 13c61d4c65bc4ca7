"""Input pipeline: preparation time and size, and training step time with real vs synthetic data.

    python bench/input_pipeline.py [--data PATH] [--quick] [--out FILE]

(a) Preparation (``srgan_edu.prepare``, the library call behind ``python -m srgan_edu.prepare``)
    of the shared CelebA sample (``--data``, default ../shared/data/celeba_89x109: 10,000 faces of
    89x109, 1,000 held out as the laptop preset does): time and size on disk. Then a probe of
    full-size faces (sample faces resized 2x to CelebA's 178x218, saved as JPEG) is prepared too,
    and its images/s is **extrapolated** to full CelebA's train split (162,770 images); the array
    size of full CelebA follows exactly from its shape. Without the sample, part (a) is recorded
    as not measured and the probe uses synthetic images.
(b) Step time of the library's SRResNet update (``srgan_edu.steps.srresnet_step`` after
    ``srgan_edu.train.make_batch``: crop, flip, bicubic degradation on the device) fed by the
    library's batch sources (``srgan_edu.train.training_batches``) from the prepared full-size
    array: read from disk (memory map) and held in device memory, against the same uint8 batch
    already on the device (synthetic). Ratio = real / synthetic; the goal is <= 1.05. The variants
    alternate within each round, so a busy spell slows a round's variants alike: the ratio is
    the median over rounds of each round's real / synthetic time (the ratio of the medians and of
    the best rounds are recorded too). CUDA: the paper's generator (16 blocks, 64
    channels), 96x96 crops, batch 16 and larger; CPU: a small generator and batch on one thread,
    about a minute.

Writes bench/results/input_pipeline.json; ``--quick`` (tiny sizes, for the tests) writes to
``--out`` (default: the system's temporary folder), never to bench/results.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import write_result  # noqa: E402

from srgan_edu.config import TrainConfig  # noqa: E402
from srgan_edu.data import SyntheticImages, celeba_training_split  # noqa: E402
from srgan_edu.models import build_generator  # noqa: E402
from srgan_edu.prepare import PreparedImages, prepare  # noqa: E402
from srgan_edu.steps import srresnet_step  # noqa: E402
from srgan_edu.train import StepBatchSampler, TrainData, make_batch, training_batches  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED_SAMPLE = ROOT.parent / "shared" / "data" / "celeba_89x109"
CELEBA_TRAIN = 162_770
"""Images in CelebA's train partition (list_eval_partition code 0; 202,599 in all)."""
CELEBA_HW = (218, 178)
"""(H, W) of CelebA's aligned faces."""
GOAL_RATIO = 1.05
CPU_THREADS = 1
"""Threads for the CPU step times. With torch's default (2 on the 2-core shared machine of the
committed result) single rounds ran up to 10x slower whenever another process took a core; one
thread is slowed at most by the share of the core it loses, alike in every variant."""


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _disk_bytes(path: Path) -> int:
    """Bytes the file takes on disk (allocated blocks where the OS reports them)."""
    st = path.stat()
    return st.st_blocks * 512 if hasattr(st, "st_blocks") else st.st_size


# ----------------------------------------------------------------------------- (a) preparation


def measure_sample(data: Path, holdout: int, work: Path, workers: int) -> dict[str, Any]:
    """Prepare the CelebA copy at ``data`` once (timed) and once more (a finished folder)."""
    if not data.exists():
        return {"measured": False, "reason": f"{data} not found", "data": str(data)}
    out = work / "sample"
    t0 = time.perf_counter()
    result = prepare(data, out, holdout=holdout, workers=workers, progress=False)
    seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    again = prepare(data, out, holdout=holdout, workers=workers, progress=False)
    rerun = time.perf_counter() - t0
    train, _ = celeba_training_split(data, holdout)
    jpeg = sum(os.path.getsize(train.layout.images / n) for n in train.names)
    n, h, w, _ = result.shape
    return {
        "measured": True,
        "data": str(data),
        "holdout": holdout,
        "images": n,
        "image_hw": [h, w],
        "workers": workers,
        "seconds": round(seconds, 2),
        "images_per_s": round(n / seconds, 1),
        "array_bytes": (out / "images.npy").stat().st_size,
        "array_bytes_on_disk": _disk_bytes(out / "images.npy"),
        "index_bytes": (out / "index.json").stat().st_size,
        "source_jpeg_bytes": jpeg,
        "skipped": len(result.skipped),
        "rerun_seconds": round(rerun, 2),
        "rerun_status": again.status,
        "rerun_written": again.written,
    }


def write_full_size_copy(root: Path, n: int, source: Path | None, quality: int) -> str:
    """A CelebA-layout folder of ``n`` 178x218 JPEGs (all train); returns what they are."""
    folder = root / "img_align_celeba"
    folder.mkdir(parents=True)
    h, w = CELEBA_HW
    if source is not None:
        names = sorted(p.name for p in (source / "img_align_celeba").glob("*.jpg"))[:n]
        for name in names:
            with Image.open(source / "img_align_celeba" / name) as img:
                big = img.convert("RGB").resize((w, h), Image.Resampling.BICUBIC)
            big.save(folder / name, quality=quality)
        what = f"the first {len(names)} sample faces resized to 178x218 (PIL bicubic)"
    else:
        names = [f"{i:06d}.jpg" for i in range(1, n + 1)]
        images = SyntheticImages(n, (h, w), seed=0)
        for i, name in enumerate(names):
            arr = (images[i] * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()  # (H, W, 3)
            Image.fromarray(arr).save(folder / name, quality=quality)
        what = f"{n} synthetic 178x218 images (srgan_edu.data.SyntheticImages)"
    (root / "list_eval_partition.txt").write_text("".join(f"{m} 0\n" for m in names))
    return f"{what}, JPEG quality {quality}"


def measure_full_size(work: Path, n: int, source: Path | None, workers: int) -> dict[str, Any]:
    """Prepare ``n`` full-size faces; returns the figures and the folder of the array."""
    root = work / "full_size_jpeg"
    what = write_full_size_copy(root, n, source, quality=90)
    jpeg = sum(p.stat().st_size for p in (root / "img_align_celeba").iterdir())
    out = work / "full_size"
    t0 = time.perf_counter()
    result = prepare(root, out, holdout=0, workers=workers, progress=False)
    seconds = time.perf_counter() - t0
    return {
        "images": result.total,
        "source": what,
        "mean_jpeg_bytes": round(jpeg / result.total),
        "workers": workers,
        "seconds": round(seconds, 2),
        "images_per_s": round(result.total / seconds, 1),
        "array_bytes": (out / "images.npy").stat().st_size,
        "folder": str(out),
    }


def extrapolate(probe: dict[str, Any], sample: dict[str, Any]) -> dict[str, Any]:
    """Full CelebA's train split from the measured rates (time) and its shape (size)."""
    h, w = CELEBA_HW
    shape = [CELEBA_TRAIN, h, w, 3]
    array = math.prod(shape)
    seconds = CELEBA_TRAIN / probe["images_per_s"]
    out = {
        "extrapolated": True,
        "images": CELEBA_TRAIN,
        "shape": shape,
        "array_bytes": array,
        "array_gb": round(array / 1e9, 2),
        "size_method": "exact: 162,770 x 218 x 178 x 3 bytes of uint8 (+ a 128-byte .npy header "
        "and an index.json of about 2.6 MB with the file names)",
        "workers": probe["workers"],
        "seconds": round(seconds),
        "minutes": round(seconds / 60, 1),
        "time_method": f"extrapolated, not measured: 162,770 images / the images/s measured "
        f"preparing {probe['images']} full-size probe faces ({probe['source']}) with "
        f"{probe['workers']} worker process(es) on this machine; decoding time scales about as "
        "1/workers on more cores, and real CelebA JPEGs carry more detail than upscaled ones",
    }
    if sample.get("measured"):
        pixels = (h * w) / math.prod(sample["image_hw"])
        cross = CELEBA_TRAIN * pixels / sample["images_per_s"]
        out["cross_check_seconds"] = round(cross)
        out["cross_check_method"] = (
            f"extrapolated: the sample's measured images/s scaled by the pixel ratio "
            f"({pixels:.2f}: decoding time taken as proportional to pixels)"
        )
    return out


# ----------------------------------------------------------------------------- (b) step time


def measure_batch(
    folder: Path, device: torch.device, c: TrainConfig, rounds: int, steps: int
) -> dict[str, Any]:
    """Median ms per SRResNet update at ``c.batch_size`` for each way of feeding it."""
    cuda = device.type == "cuda"
    amp = channels_last = cuda  # the library's defaults on CUDA (bf16 autocast, channels_last)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    b = c.batch_size
    G = build_generator(c.scale, c.n_blocks, c.channels, seed=0).to(device, memory_format=fmt)
    extra = {"fused": True} if cuda else {}
    opt = torch.optim.Adam(G.parameters(), lr=c.lr, betas=(c.beta1, c.beta2), **extra)
    images = PreparedImages(folder)
    h, w = images.shape[1:3]
    g = torch.Generator().manual_seed(0)
    fixed = torch.randint(0, 256, (b, 3, h, w), generator=g, dtype=torch.uint8).to(device)
    ready = make_batch(fixed, c, 0, device, channels_last=channels_last)

    def source(on_device: str) -> Any:
        cfg = dataclasses.replace(c, data_on_device=on_device)
        sampler = StepBatchSampler(len(images), b, c.seed)
        data = TrainData(images, None, True, b, "")
        return iter(training_batches(data, sampler, cfg, device, say=lambda _: None))

    feeds = {
        "synthetic": lambda: fixed,  # uint8 HR images already on the device
        "memmap": source("off").__next__,  # read from the array file (DataLoader)
        "device": source("on").__next__,  # gathered from the array held on the device
        "step_only": None,  # the update alone, on an (LR, HR) batch made before
    }
    step_no = 0
    timed: dict[str, list[float]] = {k: [] for k in feeds}
    for r in range(rounds + 1):  # round 0 warms up (workers start, the array loads)
        for name, feed in feeds.items():
            _sync(device)
            t0 = time.perf_counter()
            for _ in range(steps):
                if feed is None:
                    lr, hr = ready
                else:
                    lr, hr = make_batch(feed(), c, step_no, device, channels_last=channels_last)
                    step_no += 1
                srresnet_step(G, opt, lr, hr, amp)
            _sync(device)
            if r:
                timed[name].append((time.perf_counter() - t0) / steps * 1e3)
    fetch = {}  # ms to get one batch with nothing else running: the data path's own cost
    for name in ("memmap", "device"):
        n = max(20, 4 * steps)
        _sync(device)
        t0 = time.perf_counter()
        for _ in range(n):
            feeds[name]()
        _sync(device)
        fetch[name] = round((time.perf_counter() - t0) / n * 1e3, 3)
    med = {k: statistics.median(v) for k, v in timed.items()}
    best = {k: min(v) for k, v in timed.items()}

    def paired(name: str) -> float:
        """Median over rounds of this round's time / the synthetic time of the same round."""
        pairs = zip(timed[name], timed["synthetic"], strict=True)
        return round(statistics.median(a / s for a, s in pairs), 4)

    row = {
        "batch_size": b,
        "ms_per_step": {k: round(v, 3) for k, v in med.items()},
        "ms_per_step_best": {k: round(v, 3) for k, v in best.items()},
        "ms_per_step_rounds": {k: [round(x, 3) for x in v] for k, v in timed.items()},
        "patches_per_s": {k: round(b / v * 1e3, 1) for k, v in med.items()},
        "ratio_memmap": paired("memmap"),
        "ratio_device": paired("device"),
        "ratio_memmap_of_medians": round(med["memmap"] / med["synthetic"], 4),
        "ratio_device_of_medians": round(med["device"] / med["synthetic"], 4),
        "ratio_memmap_best": round(best["memmap"] / best["synthetic"], 4),
        "ratio_device_best": round(best["device"] / best["synthetic"], 4),
        "make_batch_share": round(1 - med["step_only"] / med["synthetic"], 4),
        "fetch_ms_alone": fetch,
    }
    print(
        f"batch {b}: synthetic {med['synthetic']:.1f} ms, memmap {med['memmap']:.1f} ms "
        f"(x{row['ratio_memmap']:.3f}), on device {med['device']:.1f} ms "
        f"(x{row['ratio_device']:.3f}), update alone {med['step_only']:.1f} ms; fetching a "
        f"batch alone: memmap {fetch['memmap']:.2f} ms, on device {fetch['device']:.2f} ms",
        flush=True,
    )
    return row


def step_times(
    folder: Path,
    device: torch.device,
    config: TrainConfig,
    batches: list[int],
    rounds: int,
    steps: int,
) -> list[dict[str, Any]]:
    """:func:`measure_batch` for each batch size (the device's cache emptied in between)."""
    rows = []
    for b in batches:
        c = dataclasses.replace(config, batch_size=b)
        rows.append(measure_batch(folder, device, c, rounds, steps))
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return rows


# ----------------------------------------------------------------------------- main


def run(args: argparse.Namespace) -> dict[str, Any]:
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    cuda = device.type == "cuda"
    workers = _cores() if args.workers is None else args.workers
    if args.quick:
        probe_n, batches, rounds, steps = 8, [2], 1, 2
        model = dict(n_blocks=2, channels=16, hr_crop=32, num_workers=0)
    elif cuda:
        probe_n, batches, rounds, steps = 2000, [16, 64, 128], 3, 100
        model = dict(n_blocks=16, channels=64, hr_crop=96, num_workers=4)
    else:
        probe_n, batches, rounds, steps = 2000, [8], 15, 3
        model = dict(n_blocks=4, channels=32, hr_crop=64, num_workers=0)
    load_before = [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None
    with tempfile.TemporaryDirectory(prefix="input_pipeline_") as tmp:
        work = Path(tmp)
        print(f"(a) preparing {args.data} ...", flush=True)
        sample = measure_sample(args.data, args.holdout, work, workers)
        print(f"    {sample}", flush=True)
        source = args.data if sample.get("measured") else None
        probe = measure_full_size(work, probe_n, source, workers)
        print(f"    full-size probe: {probe['images_per_s']} images/s", flush=True)
        full = extrapolate(probe, sample)
        print(f"    full CelebA (extrapolated): {full['minutes']} min, {full['array_gb']} GB")
        config = TrainConfig(**model)
        print(f"(b) step time on {device} ...", flush=True)
        threads = torch.get_num_threads()
        if not cuda:  # see CPU_THREADS
            torch.set_num_threads(CPU_THREADS)
        try:
            rows = step_times(Path(probe.pop("folder")), device, config, batches, rounds, steps)
        finally:
            torch.set_num_threads(threads)
        step_threads = torch.get_num_threads() if cuda else CPU_THREADS
    worst = max(max(r["ratio_memmap"], r["ratio_device"]) for r in rows)
    return {
        "device": str(device),
        "quick": args.quick,
        "load_average_before": load_before,
        "preparation": {"sample": sample, "full_size_probe": probe, "full_celeba": full},
        "step_time": {
            "what": "ms per SRResNet update (srgan_edu.steps.srresnet_step after "
            "srgan_edu.train.make_batch), medians over rounds; ratio_X = median over rounds of "
            "X / synthetic in the same round (the variants alternate within a round); synthetic "
            "= the same uint8 "
            "batch already on the device; memmap / device = srgan_edu.train.training_batches "
            "from the prepared full-size probe array with data_on_device off / on; step_only = "
            "the update without make_batch; fetch_ms_alone = getting one batch from each "
            "source with nothing else running",
            "model": {"n_blocks": config.n_blocks, "channels": config.channels},
            "hr_crop": config.hr_crop,
            "bf16_autocast": cuda,
            "channels_last": cuda,
            "memmap_num_workers": config.num_workers,
            "torch_threads": step_threads,
            "rounds": rounds,
            "steps_per_round": steps,
            "batches": rows,
            "goal_ratio": GOAL_RATIO,
            "worst_ratio": worst,
            "goal_met": worst <= GOAL_RATIO,
        },
    }


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=SHARED_SAMPLE, help="CelebA copy for part (a)")
    p.add_argument("--holdout", type=int, default=1000, help="val_holdout for part (a)")
    p.add_argument("--quick", action="store_true", help="tiny sizes (tests); writes to --out")
    p.add_argument("--out", type=Path, default=None, help="result file (default bench/results/)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda if present)")
    p.add_argument("--workers", type=int, default=None, help="preparation processes (cores)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.quick and args.out is None:
        args.out = Path(tempfile.gettempdir()) / "input_pipeline_quick.json"
    result = run(args)
    print(f"wrote {write_result('input_pipeline', result, args.out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
