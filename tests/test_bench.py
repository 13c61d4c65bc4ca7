"""The benchmark scripts run (quick sizes, into tmp_path) and the README's table is theirs."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))

import precision  # noqa: E402
import report  # noqa: E402
import suite_walltime  # noqa: E402
import train_throughput  # noqa: E402


def _positive(x: float) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


def test_train_throughput_quick_measures_both_paths_and_phases(tmp_path: Path) -> None:
    out = tmp_path / "t.json"
    argv = ["--quick", "--device", "cpu", "--profile", "--out", str(out)]
    assert train_throughput.main(argv) == 0
    r = json.loads(out.read_text())
    assert r["machine"]["cpu_count"] >= 1 and r["machine"]["torch"]
    assert {row["phase"] for row in r["rows"]} == {"srresnet", "srgan"}
    for row in r["rows"]:
        assert _positive(row["gflop_per_patch"])
        for path in ("reference", "library"):
            m = row[path]
            assert _positive(m["patches_per_s"]) and _positive(m["step_ms"])
            # patches/s and step time are two views of one measurement
            assert m["patches_per_s"] == pytest.approx(row["batch"] * 1e3 / m["step_ms"])
        assert row["speedup"] == pytest.approx(
            row["library"]["patches_per_s"] / row["reference"]["patches_per_s"]
        )
    srgan = next(row for row in r["rows"] if row["phase"] == "srgan")
    srresnet = next(row for row in r["rows"] if row["phase"] == "srresnet")
    # an SRGAN step runs G, D twice and VGG twice: many more FLOPs than an SRResNet step
    assert srgan["gflop_per_patch"] > 2 * srresnet["gflop_per_patch"]
    assert r["peak_dense_bf16_tflops"] is None  # a CPU has no tensor-core peak to compare to
    for phase in ("srresnet", "srgan"):
        top = r["profile"][phase]["top_ops"]
        assert top and all(0 <= op["share"] <= 1 for op in top)
        assert any("conv" in op["op"] for op in top)  # convolutions dominate training


def test_flop_count_matches_the_generator_arithmetic() -> None:
    """FlopCounterMode's count of an SRResNet step is 3x the forward's convolution arithmetic."""
    import torch

    from srgan_edu.config import TrainConfig

    c = TrainConfig(n_blocks=1, channels=8, hr_crop=16, device="cpu")
    setup = train_throughput.Setup("reference", "srresnet", 1, c, torch.device("cpu"), None)
    # forward FLOPs by hand (2 x multiply-adds), LR 4x4 -> HR 16x16, 3x3 and 9x9 convolutions
    ch, lr_px = 8, 4 * 4
    fwd = 2 * lr_px * (81 * 3 * ch)  # head 9x9
    fwd += 2 * 2 * lr_px * (9 * ch * ch)  # one residual block: two 3x3
    fwd += 2 * lr_px * (9 * ch * ch)  # the conv after the blocks
    fwd += 2 * lr_px * (9 * ch * 4 * ch)  # upsampling stage 1 at 4x4
    fwd += 2 * (4 * lr_px) * (9 * ch * 4 * ch)  # upsampling stage 2 at 8x8
    fwd += 2 * (16 * lr_px) * (81 * ch * 3)  # tail 9x9 at 16x16
    flops = train_throughput.count_flops(setup)
    # backward = grad wrt input + grad wrt weights (2x forward), except the head needs no
    # input gradient: 3x forward minus the head's forward
    assert flops == 3 * fwd - 2 * lr_px * (81 * 3 * ch)


def test_precision_quick_compares_fp32_and_bf16(tmp_path: Path) -> None:
    out = tmp_path / "p.json"
    assert precision.main(["--quick", "--device", "cpu", "--out", str(out)]) == 0
    r = json.loads(out.read_text())
    a, b = r["runs"]["off"]["psnr_y"], r["runs"]["bf16"]["psnr_y"]
    assert _positive(a) and _positive(b)
    assert r["psnr_bf16_minus_fp32_db"] == pytest.approx(b - a)


def test_suite_walltime_reads_pytest_summary() -> None:
    text = "....\n= 3 failed, 740 passed, 6 skipped, 2 errors in 393.64s (0:06:33) =\n"
    assert suite_walltime.parse_summary(text) == {
        "failed": 3,
        "passed": 740,
        "skipped": 6,
        "error": 2,
        "pytest_seconds": 393.64,
    }


def test_readme_performance_table_is_generated_from_the_results() -> None:
    assert report.main(["--check"]) == 0, "run: python bench/report.py"


def test_report_says_not_measured_without_results_and_quotes_files(tmp_path: Path) -> None:
    empty = report.render(tmp_path)
    assert "not measured" in empty
    result = {
        "machine": {"gpu": "NVIDIA H100 80GB HBM3", "torch": "2.9"},
        "device": "cuda",
        "summary": {
            "srgan": {
                "speedup_at_batch": {"batch": 16, "speedup": 2.5},
                "best_batch": 64,
                "best_patches_per_s": 1234.0,
                "best_fraction_of_peak": 0.41,
            }
        },
    }
    (tmp_path / "train_throughput_cuda.json").write_text(json.dumps(result))
    table = report.render(tmp_path)
    assert "2.50x" in table and "1,234 patches/s" in table and "41% of the bf16 peak" in table
    assert ">= 3x (not met)" in table and ">= 30% of peak (met)" in table
    assert "NVIDIA H100 80GB HBM3" in table
