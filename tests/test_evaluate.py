"""Tests for srgan_edu.evaluate: metrics equal a direct computation, layouts, the CLI, errors."""

from __future__ import annotations

import csv
import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from srgan_edu.checkpoint import network_entry, save_checkpoint
from srgan_edu.data import DatasetError, synthetic_image
from srgan_edu.degrade import bicubic_up, degrade
from srgan_edu.evaluate import (
    EvalError,
    bicubic_upscaler,
    eval_pairs,
    evaluate,
    evaluate_upscaler,
    evaluate_upscalers,
    generator_upscaler,
    main,
    open_eval_data,
)
from srgan_edu.imaging import load_image, save_image, signed_to_unit
from srgan_edu.metrics import sr_metrics
from srgan_edu.models import SRResNet
from srgan_edu.viz import nearest_up, zoomed_crops

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def picture(h: int, w: int, seed: int) -> torch.Tensor:
    """A (3, h, w) image in [0, 1] with edges and texture."""
    return synthetic_image(h, w, torch.Generator().manual_seed(seed))


def write_folder(folder: Path, sizes: list[tuple[int, int]], suffix: str = ".png") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    return [
        save_image(picture(h, w, seed=i), folder / f"img{i:02d}{suffix}")
        for i, (h, w) in enumerate(sizes)
    ]


def direct(path: Path, scale: int = 4, lr_path: Path | None = None):
    """PSNR / SSIM of bicubic computed by hand: load, modcrop, degrade (or given LR), upscale."""
    hr = load_image(path)
    h, w = hr.shape[-2] // scale * scale, hr.shape[-1] // scale * scale
    hr = hr[None, :, :h, :w]  # (1, 3, H, W)
    if lr_path is None:
        lr = degrade(hr, scale, "bicubic", quantize=True)
    else:
        lr = load_image(lr_path)[None]
    m = sr_metrics(bicubic_up(lr, scale), hr, scale)
    return float(m.psnr[0]), float(m.ssim[0])


def one_error_line(capsys) -> str:
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    return lines[0]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny tensors: one thread is fastest, and much faster on cores shared with other jobs."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def run_cli(args: list[str]) -> subprocess.CompletedProcess:
    """``python -m srgan_edu.evaluate ARGS`` in a fresh process (single-threaded, as above)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "srgan_edu.evaluate", *args]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A tiny x4 generator saved as the training run saves one."""
    path = tmp_path_factory.mktemp("ckpt") / "srresnet.pt"
    g = SRResNet(scale=4, n_blocks=2, channels=8, seed=0)
    save_checkpoint({"kind": "generator", "generator": network_entry(g)}, path)
    return path


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """Five HR images of two sizes (one not a multiple of 4), sorted by name."""
    root = tmp_path_factory.mktemp("folder") / "faces"
    write_folder(root, [(40, 36), (40, 36), (33, 42), (40, 36), (40, 36)])
    return root


CELEBA_PARTS = {1: 0, 2: 0, 3: 1, 4: 1, 5: 2, 6: 2}


@pytest.fixture(scope="module")
def celeba(tmp_path_factory) -> Path:
    """Official CelebA layout in miniature: 6 JPEG faces of 42x36 (HxW), 2 per split."""
    root = tmp_path_factory.mktemp("celeba")
    images = root / "img_align_celeba"
    images.mkdir()
    for i in CELEBA_PARTS:
        arr = (picture(42, 36, seed=10 + i) * 255).round().byte().permute(1, 2, 0).numpy()
        Image.fromarray(arr).save(images / f"{i:06d}.jpg", quality=95)
    lines = [f"{i:06d}.jpg {p}" for i, p in CELEBA_PARTS.items()]
    (root / "list_eval_partition.txt").write_text("\n".join(lines) + "\n")
    return root


# ------------------------------------------------------------------------------------ library


def test_bicubic_equals_direct_computation(folder):
    data = open_eval_data(folder, 4)
    assert data.kind == "folder" and not data.lr_given and len(data) == 5
    res = evaluate_upscaler(bicubic_upscaler(4), eval_pairs(data, 4, batch_size=3), 4)
    paths = sorted(folder.iterdir())
    assert res.names == [p.name for p in paths]
    want = torch.tensor([direct(p) for p in paths], dtype=torch.float64)  # (N, 2)
    torch.testing.assert_close(res.psnr.double(), want[:, 0], rtol=0, atol=1e-4)
    torch.testing.assert_close(res.ssim.double(), want[:, 1], rtol=0, atol=1e-5)
    summary = res.summary()
    assert summary["n"] == 5
    assert summary["psnr_y"] == pytest.approx(float(want[:, 0].mean()), abs=1e-4)
    assert summary["ssim_y"] == pytest.approx(float(want[:, 1].mean()), abs=1e-5)
    # batches never mix sizes: consecutive same-size images grouped, the 33x42 one alone
    shapes = [tuple(hr.shape) for _, _, hr in eval_pairs(data, 4, batch_size=3)]
    assert shapes == [(2, 3, 40, 36), (1, 3, 32, 40), (2, 3, 40, 36)]


def test_paired_folder_uses_the_given_lr(tmp_path):
    root = tmp_path / "Set3"
    hr_paths = write_folder(root / "HR", [(40, 36), (44, 40), (36, 36)])
    (root / "LRbicx4").mkdir()
    lr_paths = []
    for p in hr_paths:  # LR that is NOT the bicubic one: Gaussian blur + subsampling
        hr = load_image(p)[None]
        lr = degrade(hr, 4, "gaussian")[0]
        lr_paths.append(save_image(lr, root / "LRbicx4" / f"{p.stem}x4.png"))
    data = open_eval_data(root, 4)
    assert data.kind == "paired" and data.lr_given and data.label == "Set3"
    paired = evaluate_upscaler(bicubic_upscaler(4), eval_pairs(data, 4), 4)
    want = torch.tensor([direct(h, lr_path=lr) for h, lr in zip(hr_paths, lr_paths, strict=True)])
    torch.testing.assert_close(paired.psnr.double(), want[:, 0].double(), rtol=0, atol=1e-4)
    torch.testing.assert_close(paired.ssim.double(), want[:, 1].double(), rtol=0, atol=1e-5)
    # the same HR images with LR made by bicubic give other numbers
    made = evaluate_upscaler(bicubic_upscaler(4), eval_pairs(open_eval_data(root / "HR", 4), 4), 4)
    assert made.names == paired.names
    assert (made.psnr - paired.psnr).abs().min() > 0.1


def test_paired_layout_detection(tmp_path):
    root = tmp_path / "Set2"
    write_folder(root / "HR", [(40, 36), (40, 36)])
    data = open_eval_data(root, 4)  # HR/ and no LR folder: LR made from HR/
    assert data.kind == "folder" and len(data) == 2
    (root / "LRbicx2").mkdir()
    with pytest.raises(DatasetError, match=r"LRbicx2/.*none for scale 4"):
        open_eval_data(root, 4)


def test_celeba_split_selection(celeba):
    expect = {"train": [1, 2], "val": [3, 4], "test": [5, 6], "all": [1, 2, 3, 4, 5, 6]}
    for split, ids in expect.items():
        data = open_eval_data(celeba, 4, split)
        assert data.kind == "celeba" and data.split == split
        assert data.dataset.names == [f"{i:06d}.jpg" for i in ids]
    held = open_eval_data(celeba, 4, "holdout", holdout=1)
    assert held.dataset.names == ["000002.jpg"]  # the last train image by name
    # eval crop: the centred 36x36 square of each 42x36 face (rows 3..38)
    res = evaluate_upscaler(bicubic_upscaler(4), eval_pairs(open_eval_data(celeba, 4, "val"), 4), 4)
    for name, p, s in zip(res.names, res.psnr, res.ssim, strict=True):
        hr = load_image(celeba / "img_align_celeba" / name)[None, :, 3:39, :]  # (1, 3, 36, 36)
        m = sr_metrics(bicubic_up(degrade(hr, 4, quantize=True), 4), hr, 4)
        assert float(p) == pytest.approx(float(m.psnr[0]), abs=1e-4)
        assert float(s) == pytest.approx(float(m.ssim[0]), abs=1e-5)


def test_generator_upscaler_matches_the_model_and_keeps_its_mode():
    g = SRResNet(scale=4, n_blocks=1, channels=8, seed=1).train()
    lr = torch.rand(2, 3, 6, 5, generator=torch.Generator().manual_seed(0))  # (B, 3, h, w)
    sr = generator_upscaler(g)(lr)
    assert g.training  # restored
    with torch.no_grad():
        want = signed_to_unit(g.eval()(lr)).clamp(0, 1)
    assert sr.shape == (2, 3, 24, 20) and sr.dtype == torch.float32
    torch.testing.assert_close(sr, want)


def test_generator_and_bicubic_in_one_pass(folder, checkpoint):
    from srgan_edu.checkpoint import load_network

    g = load_network(checkpoint)
    pairs = eval_pairs(open_eval_data(folder, 4), 4, limit=3)
    both = evaluate_upscalers(
        {"bicubic": bicubic_upscaler(4), "SRResNet": generator_upscaler(g)},
        pairs,
        4,
        keep_examples=2,
    )
    assert list(both) == ["bicubic", "SRResNet"] and both["SRResNet"].n == 3
    alone = evaluate_upscaler(bicubic_upscaler(4), pairs, 4)
    torch.testing.assert_close(both["bicubic"].psnr, alone.psnr)
    hr = load_image(folder / "img00.png")[None, :, :40, :36]
    lr = degrade(hr, 4, quantize=True)
    want = sr_metrics(signed_to_unit(g(lr)).detach(), hr, 4)
    assert float(both["SRResNet"].psnr[0]) == pytest.approx(float(want.psnr[0]), abs=1e-3)
    ex = both["SRResNet"].examples
    assert len(ex) == 2 and ex[0].lr.shape == (3, 10, 9) and ex[0].sr.shape == (3, 40, 36)


def test_workers_give_the_same_results_and_errors(folder, tmp_path):
    data = open_eval_data(folder, 4)
    a = evaluate_upscaler(bicubic_upscaler(4), eval_pairs(data, 4, batch_size=2), 4)
    b = evaluate_upscaler(bicubic_upscaler(4), eval_pairs(data, 4, num_workers=1), 4)
    assert a.names == b.names
    torch.testing.assert_close(a.psnr, b.psnr)
    bad = tmp_path / "bad"
    write_folder(bad, [(40, 36)])
    (bad / "zz.png").write_bytes(b"not a png at all")
    pairs = eval_pairs(open_eval_data(bad, 4), 4, num_workers=1)
    with pytest.raises(DatasetError, match=r"cannot read image .*zz\.png.*corrupt"):
        evaluate_upscaler(bicubic_upscaler(4), pairs, 4)


def test_tensor_source_and_scale_check():
    hr = torch.stack([picture(32, 32, seed=s) for s in range(2)])  # (2, 3, 32, 32)
    res = evaluate_upscaler(bicubic_upscaler(4), eval_pairs(hr, 4), 4)
    want = sr_metrics(bicubic_up(degrade(hr, 4, quantize=True), 4), hr, 4)
    torch.testing.assert_close(res.psnr, want.psnr)
    with pytest.raises(EvalError, match="does not upscale by the evaluation's scale 4"):
        evaluate_upscaler(bicubic_upscaler(2), eval_pairs(hr, 4), 4)


def test_zoomed_crops_geometry():
    lr = torch.rand(3, 8, 10, generator=torch.Generator().manual_seed(0))
    hr = torch.rand(3, 32, 40, generator=torch.Generator().manual_seed(1))
    row = zoomed_crops([lr, hr], box=(8, 4, 16, 20), zoom=2, gap=2)  # (3, 32, 40 + 2 + 40)
    assert row.shape == (3, 32, 82)
    torch.testing.assert_close(row[:, :, 42:], nearest_up(hr[None, :, 8:24, 4:24], (32, 40))[0])
    torch.testing.assert_close(row[:, :, :40], nearest_up(lr[None, :, 2:6, 1:6], (32, 40))[0])
    assert zoomed_crops([lr, hr]).shape == (3, 64, 130)  # default: centred 32x32 square, 2x
    with pytest.raises(ValueError, match="aligned"):
        zoomed_crops([lr, hr], box=(1, 0, 16, 16))


# ------------------------------------------------------------------------------------ CLI


def test_cli_json_csv_crops_in_a_real_process(folder, checkpoint, tmp_path):
    out_csv, crops = tmp_path / "per_image.csv", tmp_path / "crops"
    args = ["--data", str(folder), "--checkpoint", str(checkpoint), "--json", "--csv", str(out_csv)]
    proc = run_cli([*args, "--crops", str(crops), "--n-crops", "2", "--device", "cpu"])
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)  # the whole stdout is one JSON object
    assert isinstance(result, dict)
    assert result["n"] == 5 and result["method"] == "SRResNet" and result["scale"] == 4
    assert result["layout"] == "folder" and result["data"] == str(folder)
    assert set(result["bicubic"]) >= {"psnr_y", "ssim_y"}
    report = evaluate(folder, checkpoint, device="cpu")
    assert result["psnr_y"] == pytest.approx(report.result.mean()[0], abs=1e-6)
    assert result["bicubic"]["ssim_y"] == pytest.approx(report.results["bicubic"].mean()[1])
    with open(out_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == result["n"]
    assert list(rows[0]) == [
        "image",
        "psnr_y",
        "ssim_y",
        "bicubic_psnr_y",
        "bicubic_ssim_y",
    ]
    assert [r["image"] for r in rows] == report.result.names
    assert float(rows[2]["psnr_y"]) == pytest.approx(float(report.result.psnr[2]), abs=1e-4)
    pngs = sorted(crops.glob("*.png"))
    assert [p.name for p in pngs] == ["00_img00.png", "01_img01.png"]
    with Image.open(pngs[0]) as im:  # 4 columns of the centred 36x36 square, 2x, 2-pixel gaps
        assert im.size == (4 * 72 + 3 * 2, 72)


def test_cli_table_with_bicubic(folder, capsys):
    assert main(["--data", str(folder), "--bicubic", "--device", "cpu", "--split", "val"]) == 0
    out, err = capsys.readouterr()
    assert "bicubic" in out and "PSNR" in out and "SSIM" in out and "5 images, x4" in out
    assert err.startswith("note: --split is for CelebA only")


def test_cli_disk_full_while_writing_the_csv(folder, tmp_path, monkeypatch, capsys):
    out_csv = tmp_path / "results.csv"
    out_csv.write_text("earlier results\n")

    def no_space(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", no_space)  # the write fails as on a full disk
    assert main(["--data", str(folder), "--bicubic", "--csv", str(out_csv)]) == 1
    line = one_error_line(capsys)
    assert str(out_csv) in line and "No space left on device" in line
    assert out_csv.read_text() == "earlier results\n"  # the old file is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.csv"]  # no temp file left


def test_cli_celeba_split_and_csv(celeba, tmp_path, capsys):
    out_csv = tmp_path / "val.csv"
    argv = ["--data", str(celeba), "--bicubic", "--split", "val", "--json", "--csv", str(out_csv)]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["n"] == 2 and result["split"] == "val" and result["layout"] == "celeba"
    with open(out_csv, newline="") as f:
        assert [r["image"] for r in csv.DictReader(f)] == ["000003.jpg", "000004.jpg"]


def test_cli_celeba_without_partition_file(tmp_path, capsys):
    images = tmp_path / "celeba" / "img_align_celeba"
    images.mkdir(parents=True)
    for i in (1, 2, 3):
        save_image(picture(42, 36, seed=i), images / f"{i:06d}.jpg")
    rc = main(["--data", str(images), "--bicubic"])  # the folder itself; no partition file
    line = one_error_line(capsys)
    assert rc == 1 and "no list_eval_partition" in line
    assert "pass --partition FILE" in line and "use --split all" in line
    assert main(["--data", str(images), "--bicubic", "--split", "all", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n"] == 3
    part = tmp_path / "elsewhere.txt"
    part.write_text("000001.jpg 0\n000002.jpg 2\n000003.jpg 2\n")
    assert main(["--data", str(images), "--bicubic", "--partition", str(part), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n"] == 2  # the test split


def test_cli_json_is_standard_for_a_perfect_score(tmp_path, capsys):
    flat = tmp_path / "flat"
    flat.mkdir()
    save_image(torch.full((3, 32, 32), 0.5), flat / "grey.png")  # bicubic is exact: PSNR = inf
    assert main(["--data", str(flat), "--bicubic", "--json"]) == 0

    def refuse(name):
        raise AssertionError(f"non-standard JSON constant {name}")

    result = json.loads(capsys.readouterr().out, parse_constant=refuse)
    assert result["psnr_y"] is None and result["ssim_y"] == pytest.approx(1.0)


def test_cli_scale_follows_the_checkpoint_and_a_mismatch_is_refused(folder, checkpoint, capsys):
    assert main(["--data", str(folder), "--checkpoint", str(checkpoint), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["scale"] == 4
    rc = main(["--data", str(folder), "--checkpoint", str(checkpoint), "--scale", "2"])
    line = one_error_line(capsys)
    assert rc == 1 and "--scale 2" in line and "x4 generator" in line


def _corrupt(root: Path) -> Path:
    write_folder(root, [(40, 36)])
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    return root


def _zero_byte(root: Path) -> Path:
    write_folder(root, [(40, 36)])
    (root / "empty.jpg").touch()
    return root


def _too_small(root: Path) -> Path:
    write_folder(root, [(40, 36), (16, 40)])
    return root


def _partial_celeba(root: Path) -> Path:
    (root / "img_align_celeba").mkdir(parents=True)
    save_image(picture(42, 36, 0), root / "img_align_celeba" / "000001.jpg")
    (root / "list_eval_partition.txt").write_text("000001.jpg 0\n000002.jpg 2\n")
    return root


def _foreign_checkpoint(root: Path) -> Path:
    root.mkdir()
    torch.save({"state_dict": {"w": torch.zeros(2)}}, root / "other.pt")
    return root / "other.pt"


@pytest.mark.parametrize(
    ("case", "expect"),
    [
        ("missing folder", "data folder not found"),
        ("empty folder", "no images in"),
        ("corrupt image", "broken.png"),
        ("zero-byte image", "empty.jpg"),
        ("image too small", "too small to measure at x4"),
        ("test split absent", "--split holdout --holdout N"),
        ("missing checkpoint", "checkpoint not found"),
        ("foreign checkpoint", "not an srgan_edu checkpoint"),
        ("no such device", "is not a device name"),
    ],
)
def test_cli_errors_are_one_line(case, expect, tmp_path, folder, capsys):
    data, extra = str(folder), ["--bicubic"]
    if case == "missing folder":
        data = str(tmp_path / "nowhere")
    elif case == "empty folder":
        (tmp_path / "empty").mkdir()
        data = str(tmp_path / "empty")
    elif case == "corrupt image":
        data = str(_corrupt(tmp_path / "c"))
    elif case == "zero-byte image":
        data = str(_zero_byte(tmp_path / "z"))
    elif case == "image too small":
        data = str(_too_small(tmp_path / "s"))
    elif case == "test split absent":
        data = str(_partial_celeba(tmp_path / "celeba"))
    elif case == "missing checkpoint":
        extra = ["--checkpoint", str(tmp_path / "missing.pt")]
    elif case == "foreign checkpoint":
        extra = ["--checkpoint", str(_foreign_checkpoint(tmp_path / "f"))]
    elif case == "no such device":
        extra += ["--device", "gpu0"]
    rc = main(["--data", data, *extra])
    assert rc == 1
    assert expect in one_error_line(capsys)


def test_cli_error_exit_status_in_a_real_process(tmp_path):
    proc = run_cli(["--data", str(tmp_path / "missing"), "--bicubic", "--json"])
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [
        f"error: data folder not found: {tmp_path / 'missing'}. Pass a folder of test images, "
        "a Set5-style folder with HR/ and LRbicx4/, or a CelebA folder holding img_align_celeba."
    ]


def test_cli_help_and_usage_errors(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    for needle in ("examples:", "--bicubic", "LRbicx4", "img_align_celeba", "tried in this order"):
        assert needle in text
    with pytest.raises(SystemExit) as done:
        main(["--data", "x", "--bicubic", "--split", "holdout"])  # no --holdout N
    assert done.value.code == 2
    assert "--holdout" in capsys.readouterr().err


# ------------------------------------------------------------------------------------ real data


def test_real_celeba_sample():
    root = SHARED / "celeba_89x109"
    if not (root / "img_align_celeba").is_dir():
        pytest.skip("shared CelebA sample not present")
    report = evaluate(root, split="holdout", holdout=8, device="cpu")
    assert report.result.n == 8 and report.data.label == "CelebA holdout 8"
    psnr, ssim = report.result.mean()
    assert 20.0 < psnr < 35.0 and 0.5 < ssim < 0.95  # bicubic x4 on 88x88 faces
    with pytest.raises(DatasetError, match=r"19,962 'test' images but none"):
        open_eval_data(root, 4, "test")
