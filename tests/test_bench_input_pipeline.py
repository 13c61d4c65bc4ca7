"""Tests for bench/input_pipeline.py: a quick run on a tiny CelebA copy, and one without data.

The quick runs write to tmp_path, never to bench/results/.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "bench" / "input_pipeline.py"
RESULT = ROOT / "bench" / "results" / "input_pipeline.json"


def tiny_celeba(root: Path, n: int = 10, size=(44, 36)) -> Path:
    """``n`` JPEG faces of ``size`` (HxW), the last two in the val split."""
    folder = root / "img_align_celeba"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(1, n + 1):
        arr = rng.integers(0, 256, size=(*size, 3), dtype=np.uint8)
        Image.fromarray(arr).save(folder / f"{i:06d}.jpg", quality=90)
    parts = "".join(f"{i:06d}.jpg {int(i > n - 2)}\n" for i in range(1, n + 1))
    (root / "list_eval_partition.txt").write_text(parts)
    return root


def load_bench():
    spec = importlib.util.spec_from_file_location("input_pipeline_bench", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def check_step_times(result: dict) -> None:
    steps = result["step_time"]
    assert steps["goal_ratio"] == 1.05 and isinstance(steps["goal_met"], bool)
    for row in steps["batches"]:
        ms = row["ms_per_step"]
        assert set(ms) == {"synthetic", "memmap", "device", "step_only"}
        assert all(v > 0 for v in ms.values())
        assert set(row["fetch_ms_alone"]) == {"memmap", "device"}
        assert all(0 < v < ms["synthetic"] for v in row["fetch_ms_alone"].values())
        rounds = row["ms_per_step_rounds"]
        for way in ("memmap", "device"):
            paired = np.median(np.array(rounds[way]) / np.array(rounds["synthetic"]))
            assert abs(row[f"ratio_{way}"] - paired) < 1e-3 * paired
            assert row[f"ratio_{way}_of_medians"] == pytest.approx(ms[way] / ms["synthetic"], 1e-3)
    assert steps["worst_ratio"] == max(
        max(r["ratio_memmap"], r["ratio_device"]) for r in steps["batches"]
    )


def test_quick_run_measures_preparation_and_step_time(tmp_path):
    data = tiny_celeba(tmp_path / "celeba")
    out = tmp_path / "result.json"
    before = RESULT.stat().st_mtime_ns if RESULT.exists() else None
    cmd = [sys.executable, str(SCRIPT), "--quick", "--data", str(data), "--holdout", "2",
           "--out", str(out)]  # fmt: skip
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["benchmark"] == "input_pipeline" and result["quick"] is True
    assert result["machine"]["torch"] and result["device"] == "cpu"
    sample = result["preparation"]["sample"]
    assert sample["measured"] and sample["images"] == 8 and sample["image_hw"] == [44, 36]
    assert 8 * 44 * 36 * 3 < sample["array_bytes"] <= 8 * 44 * 36 * 3 + 4096  # + .npy header
    assert (sample["rerun_status"], sample["rerun_written"]) == ("finished", 0)
    probe = result["preparation"]["full_size_probe"]
    assert probe["images"] == 8 and "sample faces resized" in probe["source"]
    assert probe["array_bytes"] > 8 * 218 * 178 * 3
    full = result["preparation"]["full_celeba"]
    assert full["extrapolated"] is True and "extrapolated" in full["time_method"]
    assert full["array_bytes"] == 162_770 * 218 * 178 * 3
    assert abs(full["seconds"] - 162_770 / probe["images_per_s"]) <= 1
    assert "cross_check_seconds" in full
    check_step_times(result)
    assert (RESULT.stat().st_mtime_ns if RESULT.exists() else None) == before


def test_missing_sample_is_recorded_as_not_measured(tmp_path, monkeypatch):
    bench = load_bench()
    out = tmp_path / "result.json"
    assert bench.main(["--quick", "--data", str(tmp_path / "nowhere"), "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    sample = result["preparation"]["sample"]
    assert sample["measured"] is False and "not found" in sample["reason"]
    probe = result["preparation"]["full_size_probe"]
    assert "synthetic" in probe["source"]  # the probe still runs, on synthetic faces
    full = result["preparation"]["full_celeba"]
    assert full["extrapolated"] and "cross_check_seconds" not in full
    check_step_times(result)
