"""CPU inference as a user runs it: `python -m srgan_edu.upscale` in new processes (issue 6, 3).

    python bench/upscale_cpu.py [--quick] [--cores 2] [--threads 2] [--repeats 3] [--out PATH]

Goals, on 2 CPU cores: (a) 256x256 -> 1024x1024 in <= 3 s wall time, counting everything a user
waits for (interpreter start, imports, checkpoint load, the upscaling, the PNG write); (b) tiled
1024x1024 -> 4096x4096 with a peak resident memory (RSS) of <= 1.5 GB (decimal: 1.5e9 bytes).
Both run the command line in a child process on a PNG file written here, with a checkpoint of the
paper's x4 SRResNet-16 (Ledig et al. 2017, Fig. 4) saved here with random weights: time and memory
do not depend on the weight values. A child's peak RSS is the ``ru_maxrss`` that ``os.wait4``
returns for that one process, started from a bare interpreter (Linux/macOS; see ``LAUNCHER``).

Then it measures the variants issue 6 names, timing the generator in this process on the same
256x256 input (fastest of ``--repeats`` calls after a warm-up call): default (B, C, H, W) vs
channels-last memory, with and without converting the weights, with the odd strides of a
permuted (H, W, C) array, conv + BatchNorm folded, ``torch.no_grad`` vs
``torch.inference_mode``, 1 thread vs ``--threads``, bf16 autocast (at full size only where the
CPU has native bf16 instructions, otherwise timed on a small input and marked), and the tile size
(time per tile here, peak RSS of one tile in a child). Each variant's output is compared with the
float32 (B, C, H, W) one. The library default (``srgan_edu.upscale``) is the fastest variant whose
outputs stay within ``TOLERANCE``.

Writes bench/results/upscale_cpu.json. ``--quick`` runs the same steps at toy sizes (32 -> 128,
tiled 48 -> 192 with 24-pixel tiles) in seconds for the test suite; its result goes only to
``--out`` (nothing is written without it), never to bench/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import nullcontext
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from machine import RESULTS, machine_info, write_result
from PIL import Image
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from srgan_edu.checkpoint import network_entry, save_checkpoint
from srgan_edu.models import SRResNet, count_parameters
from srgan_edu.upscale import (
    CPU_MEMORY_FORMAT,
    DEFAULT_TILE,
    auto_tile,
    receptive_radius,
    tile_spans,
)

ROOT = Path(__file__).resolve().parents[1]
GOAL_SMALL_WALL_S = 3.0
GOAL_BIG_RSS_GB = 1.5
TOLERANCE = 1e-4
"""Largest generator output difference (in [-1, 1] units) a variant may make to count as the same
result: 1/78 of one 8-bit level (2/255 in [-1, 1]), so saved images are (almost) bit-identical."""

FULL = {"small": 256, "big": 1024, "big_tile": None, "tiles": (128, 192, 256)}
QUICK = {"small": 32, "big": 48, "big_tile": 24, "tiles": (8,)}  # big: 2 x 2 tiles
FULL["bf16_probe"], QUICK["bf16_probe"] = 64, 8  # bf16 input side where the CPU emulates it
FULL["tile_rss"], QUICK["tile_rss"] = True, False  # quick: no one-tile child (saves ~3 s)


START = time.perf_counter()


def log(text: str) -> None:
    print(f"[{time.perf_counter() - START:5.0f} s] {text}", flush=True)


# ----------------------------------------------------------------------------------------------
# child processes: wall time and peak RSS of one process at a time
# ----------------------------------------------------------------------------------------------


# Starts one command from a small interpreter and prints its wall time and rusage. Why not start
# it from here: Linux carries the peak RSS of the process that forks over into the child's
# ru_maxrss, and this process grows past 1 GB while it times the variants.
LAUNCHER = """
import json, os, subprocess, sys, time
start = time.perf_counter()
proc = subprocess.Popen(sys.argv[1:], stdout=sys.stderr)
_, status, usage = os.wait4(proc.pid, 0)
proc.returncode = os.waitstatus_to_exitcode(status)
wall = time.perf_counter() - start
print(json.dumps({"wall": wall, "returncode": proc.returncode, "maxrss": usage.ru_maxrss}))
"""


def run_child(cmd: list[str], env: dict[str, str]) -> tuple[float, int]:
    """Run ``cmd`` in a new process; return its wall time (s) and its own peak RSS (bytes)."""
    launch = [sys.executable, "-S", "-c", LAUNCHER, *cmd]  # -S: a bare, small interpreter
    done = subprocess.run(launch, cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0 or not done.stdout.strip():
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr[-2000:]}")
    report = json.loads(done.stdout.strip().splitlines()[-1])
    if report["returncode"] != 0:
        raise RuntimeError(
            f"{' '.join(cmd)} failed ({report['returncode']}):\n{done.stderr[-2000:]}"
        )
    unit = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
    return report["wall"], report["maxrss"] * unit


def upscale_cmd(src: Path, dst: Path, ckpt: Path, tile: int | None) -> list[str]:
    cmd = [sys.executable, "-m", "srgan_edu.upscale", str(src), "-o", str(dst)]
    cmd += ["--checkpoint", str(ckpt), "--device", "cpu"]
    return cmd + ([] if tile is None else ["--tile", str(tile)])


def photo(side: int, seed: int = 0) -> np.ndarray:
    """A smooth, photo-like RGB test image (side, side, 3) uint8: colour waves, a disc, noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:side, 0:side] / side  # (side, side) each
    img = np.stack(
        [
            0.5 + 0.4 * np.sin(6 * x + 2 * y),
            0.5 + 0.4 * np.cos(5 * y - 3 * x * y),
            0.5 + 0.3 * np.sin(9 * x * y),
        ],
        axis=-1,
    )  # (side, side, 3)
    img[(x - 0.6) ** 2 + (y - 0.4) ** 2 < 0.04] *= 0.4  # an edge for the generator to see
    img += rng.normal(0.0, 0.02, img.shape)
    return (np.clip(img, 0.0, 1.0) * 255).round().astype(np.uint8)


def image_size(path: Path) -> list[int]:
    with Image.open(path) as img:
        return [img.width, img.height]


# ----------------------------------------------------------------------------------------------
# in-process variants of the generator's forward pass
# ----------------------------------------------------------------------------------------------


def time_call(fn: Callable[[], torch.Tensor], repeats: int) -> tuple[float, torch.Tensor]:
    """Fastest wall time of ``fn()`` over ``repeats`` calls after one untimed warm-up call (the
    fastest, not the median: other work on a shared machine only ever adds time)."""
    out = fn()  # the first call for a shape also builds oneDNN kernels: not counted
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return min(times), out


def fold_batchnorm(generator: SRResNet) -> SRResNet:
    """A copy of ``generator`` with every eval-mode BatchNorm folded into the conv before it."""
    folded = SRResNet(**{k: v for k, v in generator.arch().items() if k != "name"}).eval()
    folded.load_state_dict(generator.state_dict())
    for seq in [block.body for block in folded.blocks] + [folded.fuse]:
        for i in range(len(seq) - 1):
            if isinstance(seq[i], nn.Conv2d) and isinstance(seq[i + 1], nn.BatchNorm2d):
                seq[i] = fuse_conv_bn_eval(seq[i], seq[i + 1])
                seq[i + 1] = nn.Identity()
    return folded


def native_bf16() -> bool:
    """Whether the CPU has bf16 arithmetic (AVX512-BF16 or AMX); without it bf16 is emulated."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    flags = set(next((ln for ln in text.splitlines() if ln.startswith("flags")), "").split())
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def forward(
    generator: nn.Module,
    x: torch.Tensor,
    fmt: torch.memory_format,
    grad_mode: Callable = torch.inference_mode,
    bf16: bool = False,
    fresh: bool = True,
) -> torch.Tensor:
    cast = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else nullcontext()
    if fresh:  # a new tensor in that layout, as upscale_tensor makes one
        x = torch.empty_like(x, memory_format=fmt).copy_(x)
    else:  # keeps a permuted (H, W, C) array's strides, which already count as channels-last
        x = x.contiguous(memory_format=fmt)
    with grad_mode(), cast:
        return generator(x).float()  # (B, 3, 4h, 4w)


def sweep_variants(lr: torch.Tensor, threads: int, repeats: int, bf16_side: int) -> list[dict]:
    """Time each variant on ``lr`` (1, 3, h, w); error = max |output - float32 NCHW output|.

    ``lr`` is a permuted (H, W, C) image, as ``torch.from_numpy(array).permute(2, 0, 1)[None]``
    gives: its batch stride is 3, and ``.contiguous(memory_format=torch.channels_last)`` keeps
    that (a size-1 dimension's stride does not count), which oneDNN runs about 2x slower.
    """
    nchw, nhwc = torch.contiguous_format, torch.channels_last
    g = SRResNet(seed=0).eval()
    g_cl = SRResNet(seed=0).eval().to(memory_format=nhwc)
    g_folded = fold_batchnorm(g)
    cl = " [library default]" if CPU_MEMORY_FORMAT == nhwc else ""
    nc = " [library default]" if not cl else " [before]"
    variants: list[tuple[str, Callable[[torch.Tensor], torch.Tensor], int]] = [
        ("float32, (B, C, H, W)" + nc, lambda x: forward(g, x, nchw), threads),
        ("float32, channels_last input" + cl, lambda x: forward(g, x, nhwc), threads),
        ("float32, channels_last input + weights", lambda x: forward(g_cl, x, nhwc), threads),
        (
            "float32, channels_last input, strides of a permuted (H, W, C) array",
            lambda x: forward(g, x, nhwc, fresh=False),
            threads,
        ),
        ("float32, channels_last, conv+BN folded", lambda x: forward(g_folded, x, nhwc), threads),
        (
            "float32, channels_last, torch.no_grad",
            lambda x: forward(g, x, nhwc, torch.no_grad),
            threads,
        ),
        ("float32, channels_last, 1 thread", lambda x: forward(g, x, nhwc), 1),
    ]
    rows = []
    ref = None
    for name, fn, n_threads in variants:
        torch.set_num_threads(n_threads)
        seconds, out = time_call(lambda fn=fn: fn(lr), repeats)
        ref = out if ref is None else ref
        rows.append(
            {
                "variant": name,
                "threads": n_threads,
                "seconds": round(seconds, 3),
                "max_abs_error": float((out - ref).abs().max()),
            }
        )
        log(f"  {name}, {n_threads} thread(s): {seconds:.2f} s")
    torch.set_num_threads(threads)

    # bf16: at full size only with native bf16 (emulated bf16 takes minutes); else on a probe
    # input, timed against float32 on that same input, and marked as such.
    native = native_bf16()
    probe = lr if native else lr[:, :, :bf16_side, :bf16_side]
    f32_s, f32_out = time_call(lambda: forward(g, probe, nhwc), repeats)
    bf_s, bf_out = time_call(lambda: forward(g, probe, nhwc, bf16=True), repeats)
    row = {
        "variant": "bfloat16 autocast, channels_last",
        "threads": threads,
        "native_bf16": native,
        "max_abs_error": float((bf_out - f32_out).abs().max()),
        "slowdown_vs_float32": round(bf_s / f32_s, 2),
    }
    if native:
        row["seconds"] = round(bf_s, 3)
    else:
        row["seconds"] = None
        row["measured_on"] = list(probe.shape[-2:])
        row["note"] = "no native bf16 on this CPU (emulated): timed on the small input only"
    rows.append(row)
    log(f"  bf16: {row['slowdown_vs_float32']}x the float32 time")

    base = rows[0]["seconds"]
    for r in rows:
        r["within_tolerance"] = r["max_abs_error"] <= TOLERANCE
        if r["seconds"]:
            r["speedup_vs_before"] = round(base / r["seconds"], 2)
    return rows


def fastest_within_tolerance(rows: list[dict]) -> str:
    ok = [r for r in rows if r["within_tolerance"] and r["seconds"]]
    return min(ok, key=lambda r: r["seconds"])["variant"]


def sweep_tiles(
    generator: nn.Module,
    tiles: tuple[int, ...],
    big: int,
    repeats: int,
    workdir: Path,
    ckpt: Path,
    env: dict[str, str],
    rss: bool = True,
) -> list[dict]:
    """Per tile size: time of one interior tile here, peak RSS of a child upscaling one tile.

    An interior tile is ``tile + 2 * overlap`` LR pixels square; the estimate for the big image
    scales that time by the LR pixels all its tiles (with their margins) hold.
    """
    radius = receptive_radius(generator)
    rows = []
    for tile in tiles:
        side = tile + 2 * radius
        x = torch.rand(1, 3, side, side, generator=torch.Generator().manual_seed(tile))
        seconds, _ = time_call(lambda x=x: forward(generator, x, CPU_MEMORY_FORMAT), repeats)
        spans = tile_spans(big, tile, radius)
        work = sum(i1 - i0 for _, _, i0, i1 in spans) ** 2  # LR pixels through the generator
        wall = peak = None
        if rss:
            src = workdir / f"tile{tile}.png"
            Image.fromarray(photo(side, seed=tile)).save(src)
            dst = workdir / f"tile{tile}_x4.png"
            wall, peak = run_child(upscale_cmd(src, dst, ckpt, 0), env)
        rows.append(
            {
                "tile": tile,
                "tile_with_margins": side,
                "tiles_for_big_image": len(spans) ** 2,
                "work_vs_untiled": round(work / big**2, 2),
                "seconds_per_tile": round(seconds, 3),
                "estimated_big_seconds": round(seconds * work / side**2, 1),
                "one_tile_process_peak_rss_gb": None if peak is None else round(peak / 1e9, 3),
                "one_tile_process_wall_seconds": None if wall is None else round(wall, 2),
            }
        )
        log(f"  tile {tile}: {seconds:.2f} s per tile; one-tile process peak RSS {peak} bytes")
    return rows


# ----------------------------------------------------------------------------------------------
# the benchmark
# ----------------------------------------------------------------------------------------------


def pin_cores(n: int) -> list[int] | None:
    """Keep this process and its children on ``n`` cores (if it has more), as on a laptop."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) > n:
        cores = cores[:n]
        os.sched_setaffinity(0, cores)
    return cores


def conv_gflop(generator: nn.Module, side: int) -> float:
    """Convolution GFLOP (2 x multiply-adds, as torch.utils.flop_counter counts them) of one
    forward pass on a side x side LR image: 2 * C_in/groups * k_h * k_w per output value."""
    flops = []

    def count(conv: nn.Conv2d, args: tuple, out: torch.Tensor) -> None:
        per_value = 2 * conv.in_channels // conv.groups * conv.kernel_size[0] * conv.kernel_size[1]
        flops.append(per_value * out.numel())  # out: (B, C_out, H, W)

    probe = 16  # every layer keeps the LR grid or scales it: FLOPs grow with the pixel count
    convs = [m for m in generator.modules() if isinstance(m, nn.Conv2d)]
    hooks = [m.register_forward_hook(count) for m in convs]
    try:
        with torch.inference_mode():
            generator(torch.zeros(1, 3, probe, probe))
    finally:
        for hook in hooks:
            hook.remove()
    return sum(flops) * (side / probe) ** 2 / 1e9


def run(args: argparse.Namespace, workdir: Path) -> dict:
    sizes = QUICK if args.quick else FULL
    cores = pin_cores(args.cores)
    load_at_start = [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None
    torch.set_num_threads(args.threads)
    env = {
        **os.environ,
        "OMP_NUM_THREADS": str(args.threads),
        "MKL_NUM_THREADS": str(args.threads),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    generator = SRResNet(seed=0).eval()  # the paper's x4 SRResNet-16, random weights
    ckpt = save_checkpoint({"generator": network_entry(generator)}, workdir / "srresnet_x4.pt")
    small_src, big_src = workdir / "small.png", workdir / "big.png"
    Image.fromarray(photo(sizes["small"], seed=1)).save(small_src)
    Image.fromarray(photo(sizes["big"], seed=2)).save(big_src)

    log("startup: python -c 'import srgan_edu.upscale'")
    starts = [
        run_child([sys.executable, "-c", "import srgan_edu.upscale"], env)[0]
        for _ in range(args.repeats)
    ]

    log(f"(a) {sizes['small']}x{sizes['small']} -> x4, {args.repeats} new processes")
    small_dst = workdir / "small_x4.png"
    small_runs = [
        run_child(upscale_cmd(small_src, small_dst, ckpt, None), env) for _ in range(args.repeats)
    ]
    small_walls = [w for w, _ in small_runs]
    small_median = round(statistics.median(small_walls), 3)
    log(f"  median {small_median:.2f} s")

    log(f"(b) {sizes['big']}x{sizes['big']} -> x4, tiled")
    big_dst = workdir / "big_x4.png"
    big_wall, big_rss = run_child(upscale_cmd(big_src, big_dst, ckpt, sizes["big_tile"]), env)
    big_gb = round(big_rss / 1e9, 3)
    big_tile = sizes["big_tile"] or auto_tile(generator, sizes["big"], sizes["big"])
    log(f"  {big_wall:.1f} s, peak RSS {big_rss / 1e9:.2f} GB")

    log("variants (in this process, same input as (a)):")
    lr = torch.from_numpy(photo(sizes["small"], seed=1)).permute(2, 0, 1)[None].float() / 255
    variants = sweep_variants(lr, args.threads, args.repeats, sizes["bf16_probe"])
    log("tile sizes:")
    tiles = sweep_tiles(
        generator, sizes["tiles"], sizes["big"], args.repeats, workdir, ckpt, env, sizes["tile_rss"]
    )

    radius = receptive_radius(generator)
    spans = tile_spans(sizes["big"], big_tile, radius)
    small_gflop = conv_gflop(generator, sizes["small"])
    default_row = next(r for r in variants if "[library default]" in r["variant"])
    startup = statistics.median(starts)
    return {
        "quick": args.quick,
        "command": "python -m srgan_edu.upscale IN.png -o OUT.png --checkpoint CKPT --device cpu",
        "model": (
            f"paper x4 SRResNet-16 ({count_parameters(generator):,} parameters), random weights "
            "(seed 0): time and memory do not depend on the weight values"
        ),
        "threads": args.threads,
        "cores": cores,
        "load_average_at_start_1_5_15min": load_at_start,
        "peak_rss_method": (
            "ru_maxrss from os.wait4() of the one child process, started by a bare python -S "
            "launcher (a big parent's peak RSS would carry over into the child's)"
        ),
        "wall_time_method": "time.perf_counter() from process start to exit, median of runs",
        "in_process_time_method": f"fastest of {args.repeats} calls after one warm-up call",
        "library_default": {
            "tile": DEFAULT_TILE,
            "cpu_memory_format": str(CPU_MEMORY_FORMAT).removeprefix("torch."),
            "dtype": "float32",
            "grad_mode": "torch.inference_mode",
            "threads": "torch default (one per physical core)",
        },
        "goals": {
            "small_wall_seconds_max": GOAL_SMALL_WALL_S,
            "big_peak_rss_gb_max": GOAL_BIG_RSS_GB,
            "variant_tolerance_max_abs_error": TOLERANCE,
        },
        "small": {
            "lr_size": [sizes["small"]] * 2,
            "sr_size": image_size(small_dst),
            "wall_seconds": [round(w, 3) for w in small_walls],
            "wall_seconds_median": small_median,
            "peak_rss_gb": round(max(r for _, r in small_runs) / 1e9, 3),
            "startup_seconds_median": round(startup, 3),
            "startup_note": "python -c 'import srgan_edu.upscale': interpreter + torch import",
            "generator_seconds_in_process": default_row["seconds"],
            "other_seconds": round(small_median - startup - default_row["seconds"], 3),
            "other_note": "the rest: checkpoint load, PNG read and write, first-call setup",
            "conv_gflop": round(small_gflop, 1),
            "conv_gflop_per_second": round(small_gflop / default_row["seconds"], 1),
            "goal_met": small_median <= GOAL_SMALL_WALL_S,
            "over_goal_seconds": round(max(0.0, small_median - GOAL_SMALL_WALL_S), 3),
        },
        "big": {
            "lr_size": [sizes["big"]] * 2,
            "sr_size": image_size(big_dst),
            "tile": big_tile,
            "overlap": radius,
            "tiles": len(spans) ** 2,
            "wall_seconds": round(big_wall, 2),
            "peak_rss_gb": big_gb,
            "goal_met": big_gb <= GOAL_BIG_RSS_GB,
            "over_goal_gb": round(max(0.0, big_gb - GOAL_BIG_RSS_GB), 3),
        },
        "variants": variants,
        "fastest_variant_within_tolerance": fastest_within_tolerance(variants),
        "tile_sizes": tiles,
        "tile_sizes_note": (
            "seconds_per_tile: one interior tile (tile + 2 x overlap LR pixels square) in this "
            "process; one_tile_process: python -m srgan_edu.upscale on an image of that size in "
            "one piece (the activation memory of one tile; the big image adds its buffers)"
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="toy sizes, for the test suite")
    parser.add_argument("--cores", type=int, default=2, help="CPU cores to run on (the goal's 2)")
    parser.add_argument("--threads", type=int, default=2, help="threads (OMP_NUM_THREADS)")
    parser.add_argument("--repeats", type=int, default=None, help="runs per timing (3; quick 1)")
    parser.add_argument("--out", type=Path, default=None, help="write the JSON here instead")
    parser.add_argument("--workdir", type=Path, default=None, help="keep the images here")
    args = parser.parse_args()
    if args.threads < 1 or args.cores < 1:
        parser.error(f"--threads and --cores must be >= 1, got {args.threads}, {args.cores}")
    args.repeats = args.repeats or (1 if args.quick else 3)
    if args.quick and args.out is not None and args.out.resolve().parent == RESULTS:
        parser.error("--quick figures are not results: pass an --out outside bench/results/")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        result = run(args, workdir)
    if args.out is not None:
        payload = {
            "benchmark": "upscale_cpu",
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "machine": machine_info(),
            **result,
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(payload, indent=2) + "\n")
        path = args.out
    elif args.quick:
        print("--quick without --out: nothing written (quick figures are not results)")
        return
    else:
        path = write_result("upscale_cpu", result)
    small, big = result["small"], result["big"]
    print(
        f"(a) {small['wall_seconds_median']} s (goal {GOAL_SMALL_WALL_S} s, "
        f"{'met' if small['goal_met'] else 'not met'}); (b) peak RSS {big['peak_rss_gb']} GB "
        f"(goal {GOAL_BIG_RSS_GB} GB, {'met' if big['goal_met'] else 'not met'}) -> {path}"
    )


if __name__ == "__main__":
    main()
