"""Training throughput: the library's training path against a plain eager fp32 loop, one GPU.

    python bench/train_throughput.py                 # the paper's networks; CUDA if present
    python bench/train_throughput.py --quick --out /tmp/t.json   # tiny sizes (the test suite)

For each phase (SRResNet: pixel MSE; SRGAN: D update + G update with VGG54 content and the
adversarial term) and each batch size, it times

* ``reference``: ``bench/reference_loop.py`` - fp32, NCHW, default Adam, eager, float batches
  already on the device;
* ``library``: what ``srgan_edu.train`` runs - ``make_batch`` (crop, flip, bicubic degradation and
  8-bit rounding on the device from uint8 images held there), ``srgan_edu.steps``, bf16 autocast,
  channels_last and fused Adam on CUDA (the defaults there), and optionally ``torch.compile``.

and reports patches/s, time per step, peak device memory, the FLOPs of one step per patch (counted
by ``torch.utils.flop_counter``: convolutions and matrix products, forward and backward) and the
fraction of the GPU's dense bf16 peak reached. The batch sweep stops at the first size that runs
out of memory. Results: ``bench/results/train_throughput.json`` (or ``--out``), with the machine.
On a CPU the same code runs (smaller sizes are sensible), but there is no FLOP limit to compare to.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import write_result  # noqa: E402
from reference_loop import reference_srgan_step, reference_srresnet_step  # noqa: E402

from srgan_edu.config import TrainConfig  # noqa: E402
from srgan_edu.data import random_crop_flip  # noqa: E402
from srgan_edu.degrade import degrade  # noqa: E402
from srgan_edu.imaging import signed_to_unit, unit_to_signed  # noqa: E402
from srgan_edu.losses import PerceptualLoss  # noqa: E402
from srgan_edu.models import build_discriminator, build_generator  # noqa: E402
from srgan_edu.steps import srgan_step, srresnet_step  # noqa: E402
from srgan_edu.train import make_batch  # noqa: E402

DENSE_BF16_TFLOPS = {"H100 PCIe": 756.0, "H100": 989.4, "H200": 989.4, "A100": 312.0}
"""Dense (no sparsity) bf16 tensor-core peak by GPU name, from the vendors' data sheets (TFLOP/s).
The longest matching key wins (an "H100 PCIe" is not an SXM "H100")."""

ISSUE_LIMIT_TFLOPS = 800.0
"""The round figure the speed issue uses for H100/H200 dense bf16 (its goals refer to it)."""


def peak_tflops(device: torch.device) -> float | None:
    """The dense bf16 peak of ``device`` from :data:`DENSE_BF16_TFLOPS`, or None (CPU, unknown)."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    keys = [k for k in DENSE_BF16_TFLOPS if k in name]
    return DENSE_BF16_TFLOPS[max(keys, key=len)] if keys else None


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Setup:
    """Networks, optimisers, losses and data for one (path, phase, batch) measurement."""

    def __init__(
        self,
        path: str,
        phase: str,
        batch: int,
        config: TrainConfig,
        device: torch.device,
        compile_mode: str | None,
    ) -> None:
        self.path, self.phase, self.batch, self.device = path, phase, batch, device
        fast = path == "library"
        self.amp = fast and device.type == "cuda" or (fast and config.amp == "bf16")
        cl = fast and (device.type == "cuda" or config.channels_last == "on")
        self.channels_last = cl
        fmt = torch.channels_last if cl else torch.contiguous_format
        c = config
        self.config = c
        self.G = build_generator(c.scale, c.n_blocks, c.channels, seed=0).to(
            device, memory_format=fmt
        )
        extra = {"fused": True} if fast and device.type == "cuda" else {}
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=1e-4, betas=(0.9, 0.999), **extra)
        self.g_run, self.d_run = self.G, None
        if fast and compile_mode:
            self.g_run = torch.compile(self.G, mode=compile_mode)
        if phase == "srgan":
            self.D = build_discriminator(c.hr_crop, c.d_channels, c.d_dense, seed=1).to(
                device, memory_format=fmt
            )
            self.opt_d = torch.optim.Adam(self.D.parameters(), lr=1e-4, betas=(0.9, 0.999), **extra)
            self.perceptual = PerceptualLoss(config.content, weights=None, seed=0).to(
                device, memory_format=fmt
            )
            self.d_run = (
                torch.compile(self.D, mode=compile_mode) if fast and compile_mode else self.D
            )
        gen = torch.Generator().manual_seed(0)
        side = c.hr_crop + c.hr_crop // 2
        # uint8 face-sized images held on the device, as a device-resident data set would be
        self.images = torch.randint(0, 256, (max(batch, 64), 3, side, side), generator=gen).to(
            device, dtype=torch.uint8
        )
        # the reference's batches: made once, before timing (float, NCHW, on the device)
        hr = random_crop_flip(self.images[:batch].float() / 255, c.hr_crop, generator=gen)
        self.ref_lr = degrade(hr, c.scale, "bicubic", quantize=True)
        self.ref_hr = unit_to_signed(hr)

    def step_fn(self) -> Callable[[int], Any]:
        """One training step of this setup, as a function of the step number."""
        c, n = self.config, self.images.shape[0]
        if self.path == "reference":
            if self.phase == "srresnet":
                return lambda s: reference_srresnet_step(
                    self.G, self.opt_g, self.ref_lr, self.ref_hr
                )
            vgg = self.perceptual.content_loss.vgg

            def features(x: torch.Tensor) -> torch.Tensor:
                return vgg(signed_to_unit(x))

            return lambda s: reference_srgan_step(
                self.G, self.D, features, self.opt_g, self.opt_d, self.ref_lr, self.ref_hr
            )
        cl = self.channels_last

        def library(s: int) -> Any:
            idx = torch.arange(s * self.batch, (s + 1) * self.batch, device=self.device) % n
            lr, hr = make_batch(self.images[idx], c, s, self.device, channels_last=cl)
            if self.phase == "srresnet":
                return srresnet_step(self.g_run, self.opt_g, lr, hr, self.amp)
            return srgan_step(
                self.g_run,
                self.d_run,
                self.D,
                self.perceptual,
                self.opt_g,
                self.opt_d,
                lr,
                hr,
                self.amp,
            )

        return library


def count_flops(setup: Setup) -> int:
    """FLOPs of one training step (forward + backward), counted on the eager networks."""
    step = setup.step_fn()
    with FlopCounterMode(display=False) as counter:
        step(0)
    return int(counter.get_total_flops())


def measure(setup: Setup, warmup: int, steps: int) -> dict[str, Any]:
    """Time ``steps`` steps after ``warmup`` (compilation happens there); peak memory on CUDA."""
    device = setup.device
    step = setup.step_fn()
    t0 = time.perf_counter()
    for s in range(warmup):
        step(s)
    _sync(device)
    warm_s = time.perf_counter() - t0
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    for s in range(warmup, warmup + steps):
        step(s)
    _sync(device)
    elapsed = time.perf_counter() - t0
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    return {
        "step_ms": 1e3 * elapsed / steps,
        "patches_per_s": setup.batch * steps / elapsed,
        "peak_memory_gib": peak,
        "warmup_s": warm_s,
    }


def profile_steps(setup: Setup, warmup: int, steps: int, top: int = 12) -> list[dict[str, Any]]:
    """The operators that take the most time in ``steps`` steps: name, share, ms per step.

    Device (CUDA kernel) time on a GPU, CPU time otherwise; self time, so shares add up to 1.
    """
    from torch.profiler import ProfilerActivity, profile

    step = setup.step_fn()
    for s in range(warmup):
        step(s)
    _sync(setup.device)
    cuda = setup.device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as prof:
        for s in range(warmup, warmup + steps):
            step(s)
        _sync(setup.device)
    events = prof.key_averages()
    key = "self_device_time_total" if cuda else "self_cpu_time_total"
    total = sum(getattr(e, key) for e in events) or 1.0
    ranked = sorted(events, key=lambda e: getattr(e, key), reverse=True)[:top]
    return [
        {
            "op": e.key,
            "share": getattr(e, key) / total,
            "ms_per_step": getattr(e, key) / 1e3 / steps,
        }
        for e in ranked
    ]


def _oom(err: BaseException) -> bool:
    return isinstance(err, torch.OutOfMemoryError) or "out of memory" in str(err).lower()


def run(args: argparse.Namespace) -> dict[str, Any]:
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if args.quick:
        config = TrainConfig(
            n_blocks=2,
            channels=16,
            hr_crop=32,
            d_channels=8,
            d_dense=32,
            content="vgg22",
            device=str(device),
        )
    else:
        config = TrainConfig(device=str(device))
    peak = peak_tflops(device)
    compile_mode = None if args.compile == "off" else args.compile
    results: list[dict[str, Any]] = []
    for phase in args.phases:
        for batch in args.batches:
            row: dict[str, Any] = {"phase": phase, "batch": batch}
            try:
                for path in ("reference", "library"):
                    setup = Setup(path, phase, batch, config, device, compile_mode)
                    if path == "reference":  # the same networks and batch: the same FLOPs
                        flops = count_flops(setup)
                        row["gflop_per_patch"] = flops / batch / 1e9
                    m = measure(setup, args.warmup, args.steps)
                    m["tflops_per_s"] = flops * m["patches_per_s"] / batch / 1e12
                    if peak:
                        m["fraction_of_peak"] = m["tflops_per_s"] / peak
                        m["fraction_of_800_tflops"] = m["tflops_per_s"] / ISSUE_LIMIT_TFLOPS
                    row[path] = m
                    del setup
                    if device.type == "cuda":
                        torch.cuda.empty_cache()
            except RuntimeError as err:
                if not _oom(err):
                    raise
                row["out_of_memory"] = True
                results.append(row)
                if device.type == "cuda":
                    torch.cuda.empty_cache()
                break
            row["speedup"] = row["library"]["patches_per_s"] / row["reference"]["patches_per_s"]
            results.append(row)
            print(
                f"{phase:8s} batch {batch:4d}: reference {row['reference']['patches_per_s']:9.1f}"
                f" patches/s, library {row['library']['patches_per_s']:9.1f} patches/s"
                f" ({row['speedup']:.2f}x)",
                flush=True,
            )
    summary = {}
    for phase in args.phases:
        rows = [r for r in results if r["phase"] == phase and "speedup" in r]
        if not rows:
            continue
        at16 = next((r for r in rows if r["batch"] == 16), rows[0])
        best = max(rows, key=lambda r: r["library"]["patches_per_s"])
        summary[phase] = {
            "speedup_at_batch": {"batch": at16["batch"], "speedup": at16["speedup"]},
            "best_batch": best["batch"],
            "best_patches_per_s": best["library"]["patches_per_s"],
            "best_fraction_of_peak": best["library"].get("fraction_of_peak"),
        }
    profiles = {}
    if args.profile:
        for phase, sm in summary.items():
            setup = Setup("library", phase, sm["best_batch"], config, device, compile_mode)
            profiles[phase] = {
                "batch": sm["best_batch"],
                "top_ops": profile_steps(setup, args.warmup, max(2, min(args.steps, 10))),
            }
            del setup
    goals = {
        "srgan_speedup_at_least_3x": summary.get("srgan", {})
        .get("speedup_at_batch", {})
        .get("speedup"),
        "fraction_of_peak_at_least_0.3": {
            p: s["best_fraction_of_peak"] for p, s in summary.items()
        },
    }
    return {
        "device": str(device),
        "quick": args.quick,
        "compile": compile_mode,
        "peak_dense_bf16_tflops": peak,
        "config": {
            k: getattr(config, k)
            for k in ("scale", "hr_crop", "n_blocks", "channels", "d_channels", "d_dense")
        },
        "content_loss": f"{config.content}, random VGG19 weights (same FLOPs and speed as real)",
        "steps": args.steps,
        "warmup": args.warmup,
        "rows": results,
        "summary": summary,
        "profile": profiles,
        "goals": goals,
    }


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: cuda if present)")
    p.add_argument("--quick", action="store_true", help="tiny networks (for the test suite)")
    p.add_argument("--phases", nargs="+", default=["srresnet", "srgan"])
    p.add_argument("--batches", type=int, nargs="+", default=None)
    p.add_argument("--steps", type=int, default=None, help="timed steps per measurement")
    p.add_argument("--warmup", type=int, default=None, help="untimed steps first")
    p.add_argument(
        "--compile",
        default="off",
        help="torch.compile mode for the library path: off, default, max-autotune, "
        "reduce-overhead (CUDA graphs), max-autotune-no-cudagraphs",
    )
    p.add_argument(
        "--profile", action="store_true", help="also record the top operators of each phase"
    )
    p.add_argument("--out", type=Path, default=None, help="result file (default bench/results/)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    cuda = (args.device or ("cuda" if torch.cuda.is_available() else "cpu")).startswith("cuda")
    if args.batches is None:
        args.batches = [2] if args.quick else ([16, 32, 64, 128, 256] if cuda else [16])
    if args.steps is None:
        args.steps = 2 if args.quick else (50 if cuda else 5)
    if args.warmup is None:
        args.warmup = 1 if args.quick else (10 if cuda else 2)
    if args.compile != "off":
        args.warmup = max(args.warmup, 20)
    result = run(args)
    name = "train_throughput" + ("_cuda" if cuda else "_cpu")
    print(f"wrote {write_result(name, result, args.out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
