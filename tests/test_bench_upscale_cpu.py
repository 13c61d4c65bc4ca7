"""Tests for bench/upscale_cpu.py: its quick mode runs end to end and records what it measured.

The quick mode runs the same steps as the real benchmark (new processes running
``python -m srgan_edu.upscale`` with the paper's generator, the variant and tile sweeps) at toy
sizes, and writes only where ``--out`` says: never to bench/results/.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench" / "upscale_cpu.py"
RESULT = ROOT / "bench" / "results" / "upscale_cpu.json"


def positive(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x > 0


@pytest.fixture(scope="module")
def quick(tmp_path_factory) -> tuple[dict, Path]:
    tmp = tmp_path_factory.mktemp("upscale_cpu")
    before = RESULT.stat().st_mtime_ns if RESULT.exists() else None
    # one thread: two OpenMP threads on a 2-core machine that is busy with other work wait on
    # each other and run many times slower; this test checks what is recorded, not speed
    cmd = [sys.executable, str(BENCH), "--quick", "--threads", "1"]
    cmd += ["--out", str(tmp / "result.json")]
    cmd += ["--workdir", str(tmp / "work")]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    after = RESULT.stat().st_mtime_ns if RESULT.exists() else None
    assert after == before, "the quick run must not touch bench/results/upscale_cpu.json"
    return json.loads((tmp / "result.json").read_text()), tmp / "work"


def test_records_the_machine_and_the_goals(quick):
    result, _ = quick
    assert result["benchmark"] == "upscale_cpu" and result["quick"] is True
    assert result["threads"] == 1
    machine = result["machine"]
    assert machine["cpu"] and positive(machine["cpu_count"]) and machine["torch"]
    assert len(machine["load_average_1_5_15min"]) == 3
    assert result["goals"]["small_wall_seconds_max"] == 3.0
    assert result["goals"]["big_peak_rss_gb_max"] == 1.5
    assert "random weights" in result["model"] and "1,548,547" in result["model"]
    assert result["library_default"]["cpu_memory_format"] == "channels_last"


def test_measured_numbers_are_finite_and_positive(quick):
    result, _ = quick
    small, big = result["small"], result["big"]
    for key in ("wall_seconds_median", "peak_rss_gb", "startup_seconds_median", "conv_gflop"):
        assert positive(small[key]), (key, small[key])
    assert all(positive(w) for w in small["wall_seconds"])
    assert positive(big["wall_seconds"]) and positive(big["peak_rss_gb"])
    # a process that imported torch and ran the generator holds more than 50 MB
    assert small["peak_rss_gb"] > 0.05 and big["peak_rss_gb"] > 0.05
    # pass/fail follows from the numbers
    assert small["goal_met"] == (small["wall_seconds_median"] <= 3.0)
    assert big["goal_met"] == (big["peak_rss_gb"] <= 1.5)
    # quick sizes: 32 -> 128 in one piece, 48 -> 192 in 2 x 2 tiles of 24 (+ 40 margin)
    assert (big["tile"], big["overlap"], big["tiles"]) == (24, 40, 4)


def test_variants_are_timed_and_compared_with_float32(quick):
    result, _ = quick
    rows = {r["variant"]: r for r in result["variants"]}
    assert len(rows) == 8
    default = [r for r in rows.values() if "[library default]" in r["variant"]]
    assert len(default) == 1 and "channels_last" in default[0]["variant"]
    for row in rows.values():
        assert math.isfinite(row["max_abs_error"]) and row["max_abs_error"] >= 0
        assert row["seconds"] is None or positive(row["seconds"])
    float32 = [r for r in rows.values() if r["variant"].startswith("float32")]
    assert all(r["within_tolerance"] and r["max_abs_error"] < 1e-4 for r in float32)
    bf16 = rows["bfloat16 autocast, channels_last"]
    assert bf16["max_abs_error"] > 1e-5  # bf16 keeps 8 mantissa bits: it changes the output
    assert positive(bf16["slowdown_vs_float32"])
    [tile] = result["tile_sizes"]
    assert tile["tile"] == 8 and tile["tile_with_margins"] == 88
    assert positive(tile["seconds_per_tile"]) and positive(tile["estimated_big_seconds"])
    assert tile["one_tile_process_peak_rss_gb"] is None  # that child runs in the full mode only


def test_upscaled_images_have_the_right_size(quick):
    result, work = quick
    for name, lr_side in (("small", 32), ("big", 48)):
        with Image.open(work / f"{name}.png") as img:
            assert img.size == (lr_side, lr_side)
        with Image.open(work / f"{name}_x4.png") as img:
            assert (img.mode, img.size) == ("RGB", (4 * lr_side, 4 * lr_side))
        assert result[name]["sr_size"] == [4 * lr_side, 4 * lr_side]


def test_quick_refuses_to_write_into_bench_results(monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(BENCH.parent))  # the benchmark imports bench/machine.py
    import upscale_cpu

    monkeypatch.setattr(sys, "argv", [str(BENCH), "--quick", "--out", str(RESULT)])
    with pytest.raises(SystemExit) as exc:
        upscale_cpu.main()  # refused before anything runs
    assert exc.value.code == 2 and "not results" in capsys.readouterr().err


def test_conv_flops_match_the_issue_figure(monkeypatch):
    # issue 6: SRResNet-16 forward on one 24x24 -> 96x96 patch is 2.56 GFLOP; the count is
    # torch.utils.flop_counter's to the FLOP (2,555,338,752), which takes seconds to start
    monkeypatch.syspath_prepend(str(BENCH.parent))
    import upscale_cpu

    from srgan_edu.models import SRResNet

    g = SRResNet(seed=0).eval()
    assert upscale_cpu.conv_gflop(g, 24) * 1e9 == pytest.approx(2_555_338_752, rel=1e-12)
    assert upscale_cpu.conv_gflop(g, 256) == pytest.approx(2.555338752 * (256 / 24) ** 2)
