"""Does bf16 autocast train as well as fp32? The same short SRResNet run twice, PSNR compared.

    python bench/precision.py [--data PATH] [--steps 600] [--device cuda]
    python bench/precision.py --quick --out /tmp/p.json     # seconds (the test suite)

Both runs use one preset (``laptop`` by default; ``paper`` on CUDA), the same seed and so the
same data order, crops and initial weights; they differ only in ``amp`` (``off`` vs ``bf16``).
Validation is the library's (Y-PSNR/SSIM on held-out images, as ``evaluate`` measures). The
result is the PSNR difference; within a few hundredths of a dB the two precisions train alike.
Results: ``bench/results/precision_<device>.json`` (or ``--out``).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import write_result  # noqa: E402

from srgan_edu.config import PRESETS  # noqa: E402
from srgan_edu.train import train  # noqa: E402

SHARED_CELEBA = Path(__file__).resolve().parents[2] / "shared" / "data" / "celeba_89x109"


def run(args: argparse.Namespace) -> dict[str, Any]:
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    preset = "smoke" if args.quick else args.preset or ("paper" if device == "cuda" else "laptop")
    data = args.data
    if data is None and not args.quick and SHARED_CELEBA.exists():
        data = str(SHARED_CELEBA)
    elif data == "none":  # synthetic images
        data = None
    base = dataclasses.replace(
        PRESETS[preset],
        phase="srresnet",
        srresnet_steps=args.steps,
        data=data,
        device=device,
        val_every=0,
        ckpt_every=0,
        sample_every=0,
        log_every=max(1, args.steps // 4),
        num_workers=0 if args.quick else PRESETS[preset].num_workers,
    )
    if data is not None and args.val_holdout is not None:
        base = dataclasses.replace(base, val_holdout=args.val_holdout)
    runs: dict[str, Any] = {}
    for amp in ("off", "bf16"):
        config = dataclasses.replace(base, amp=amp)
        with tempfile.TemporaryDirectory() as out:
            t0 = time.perf_counter()
            result = train(config, out, progress=not args.quick)
            wall = time.perf_counter() - t0
        val = result.val or {}
        runs[amp] = {
            "psnr_y": val.get("val/psnr_y"),
            "ssim_y": val.get("val/ssim_y"),
            "bicubic_psnr_y": val.get("val/bicubic_psnr_y"),
            "final_mse": next(
                (r["loss/mse"] for r in reversed(result.history) if "loss/mse" in r), None
            ),
            "wall_s": wall,
        }
        print(f"amp={amp}: {runs[amp]}", flush=True)
    a, b = runs["off"]["psnr_y"], runs["bf16"]["psnr_y"]
    return {
        "device": device,
        "preset": preset,
        "data": data or "synthetic images",
        "steps": args.steps,
        "val_images": base.val_holdout,
        "runs": runs,
        "psnr_bf16_minus_fp32_db": None if a is None or b is None else b - a,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--data",
        default=None,
        help="CelebA root, image folder, or none (synthetic); default: the shared CelebA sample",
    )
    p.add_argument("--preset", default=None, help="smoke, laptop or paper")
    p.add_argument("--steps", type=int, default=None, help="SRResNet updates per run")
    p.add_argument("--val-holdout", type=int, default=None, help="held-out validation images")
    p.add_argument("--device", default=None)
    p.add_argument("--quick", action="store_true", help="the smoke preset, a few steps")
    p.add_argument("--out", type=Path, default=None, help="result file (default bench/results/)")
    args = p.parse_args(argv)
    if args.steps is None:
        args.steps = 4 if args.quick else 600
    result = run(args)
    print(f"wrote {write_result('precision_' + result['device'].split(':')[0], result, args.out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
