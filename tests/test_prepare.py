"""Tests for srgan_edu.prepare: the decoded array equals training's images, resume, refusals.

Each test writes its own tiny CelebA copies (24x20 JPEGs and a partition file) in tmp_path.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from srgan_edu import prepare as prep
from srgan_edu.data import celeba_training_split
from srgan_edu.prepare import PreparedImages, PrepareError, main, prepare, read_index

H, W = 24, 20


def write_celeba(root: Path, parts: list[int], seed: int = 0, bad: tuple[int, ...] = ()) -> Path:
    """Official layout: image i+1 in partition ``parts[i]``; the 1-based numbers in ``bad`` are
    written as corrupt JPEGs (a header and garbage)."""
    folder = root / "img_align_celeba"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(1, len(parts) + 1):
        arr = rng.integers(0, 256, size=(H, W, 3), dtype=np.uint8)
        Image.fromarray(arr).save(folder / f"{i:06d}.jpg", quality=95)
        if i in bad:
            (folder / f"{i:06d}.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    lines = "".join(f"{i:06d}.jpg {p}\n" for i, p in enumerate(parts, 1))
    (root / "list_eval_partition.txt").write_text(lines)
    return root


def expected(root: Path, holdout: int) -> torch.Tensor:
    """What training would see: every train image via the JPEG path, (N, H, W, 3) uint8."""
    train, _ = celeba_training_split(root, holdout)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "skipping image": the corrupt one
        return torch.stack([train[i].permute(1, 2, 0) for i in range(len(train))])


def array(out: Path) -> torch.Tensor:
    return torch.from_numpy(np.load(out / "images.npy"))


@pytest.fixture
def celeba(tmp_path: Path) -> Path:
    """12 images: 1-9 train (4 corrupt), 10-11 val, 12 test."""
    return write_celeba(tmp_path / "celeba", [0] * 9 + [1, 1, 2], bad=(4,))


def test_prepare_writes_exactly_the_training_images(celeba, tmp_path):
    out = tmp_path / "prep"
    r = prepare(celeba, out, holdout=2, workers=0, chunk=4, progress=False)
    assert (r.status, r.done, r.total, r.written) == ("finished", 9, 9, 9)
    assert r.shape == (9, H, W, 3) and r.nbytes == 9 * H * W * 3
    got, want = array(out), expected(celeba, 2)
    assert got.dtype == torch.uint8 and torch.equal(got, want)
    # the corrupt image's row holds the next readable one, as the JPEG loader gives for index 3
    assert torch.equal(got[3], got[4]) and not torch.equal(got[2], got[3])
    index = read_index(out)
    assert index["names"] == [f"{i:06d}.jpg" for i in range(1, 10)]  # train split only
    assert index["shape"] == [9, H, W, 3] and index["axes"] == "NHWC"
    assert (index["done"], index["total"], index["complete"]) == (9, 9, True)
    assert list(index["skipped"]) == ["000004.jpg"] and index["version"] == prep.__version__
    assert index["train_holdout"] == 0  # this copy has a val split: nothing taken from train
    # a finished folder is left alone
    before = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in out.iterdir()}
    again = prepare(celeba, out, holdout=2, workers=0, progress=False)
    assert (again.status, again.written) == ("finished", 0)
    assert {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in out.iterdir()} == before
    # reading it back
    images = PreparedImages(out)
    assert len(images) == 9 and images.nbytes == r.nbytes
    assert torch.equal(images[5], want[5].permute(2, 0, 1))
    assert torch.equal(images.batch([7, 0, 7]), want[[7, 0, 7]])
    assert torch.equal(images.to_tensor("cpu"), want)


def test_copy_without_val_split_holds_out_the_last_train_images(tmp_path):
    root = write_celeba(tmp_path / "sample", [0] * 10)  # like the 10,000-face sample
    out = tmp_path / "prep"
    r = prepare(root, out, holdout=3, workers=2, chunk=2, progress=False)  # a process pool
    assert r.status == "finished" and r.shape[0] == 7
    assert torch.equal(array(out), expected(root, 3))
    index = read_index(out)
    assert index["names"][-1] == "000007.jpg" and index["train_holdout"] == 3


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_preparation_continues_where_it_stopped(celeba, tmp_path, monkeypatch, sig):
    want = expected(celeba, 2)
    # stop_after: a pause after whole chunks, the rest of the file not yet written
    out = tmp_path / "paused"
    r = prepare(celeba, out, holdout=2, workers=0, chunk=3, stop_after=4, progress=False)
    assert (r.status, r.done, r.written) == ("paused", 4, 4)
    assert read_index(out)["done"] == 4 and not read_index(out)["complete"]
    assert torch.equal(array(out)[:4], want[:4]) and not array(out)[4:].any()
    with pytest.raises(PrepareError, match=r"prepared up to 4 of 9 images: run python -m"):
        PreparedImages(out)
    r = prepare(celeba, out, holdout=2, workers=0, chunk=3, progress=False)
    assert (r.status, r.done, r.written) == ("finished", 9, 5)
    assert torch.equal(array(out), want)

    # Ctrl-C (SIGINT) or kill (SIGTERM) in the third chunk: two chunks are recorded; what the
    # third wrote is redone
    out = tmp_path / "interrupted"
    real_call = prep._RowWriter.__call__

    def interrupted(self, span):
        if span[0] >= 6:
            os.kill(os.getpid(), sig)
        return real_call(self, span)

    monkeypatch.setattr(prep._RowWriter, "__call__", interrupted)
    r = prepare(celeba, out, holdout=2, workers=0, chunk=3, progress=False)
    assert (r.status, r.done) == ("interrupted", 6) and read_index(out)["done"] == 6
    monkeypatch.setattr(prep._RowWriter, "__call__", real_call)
    with open(out / "images.npy", "r+b") as f:  # a half-written chunk past ``done``
        f.seek(-100, 2)
        f.write(b"\x07" * 100)
    r = prepare(celeba, out, holdout=2, workers=0, chunk=3, progress=False)
    assert (r.status, r.written) == ("finished", 3)
    assert torch.equal(array(out), want)


def test_mismatching_folders_are_refused(tmp_path, capsys):
    root = write_celeba(tmp_path / "sample", [0] * 10)
    out = tmp_path / "prep"
    prepare(root, out, holdout=3, workers=0, stop_after=2, progress=False)
    with pytest.raises(PrepareError, match="prepared from other images .*-holdout 3.*-holdout 4"):
        prepare(root, out, holdout=4, workers=0, progress=False)
    other = write_celeba(tmp_path / "other", [0] * 10, seed=1)
    with pytest.raises(PrepareError, match=f"other images .* from {other}"):
        prepare(other, out, holdout=3, workers=0, progress=False)
    # the same names in the same place, but the files changed since
    shutil.copy(other / "img_align_celeba" / "000001.jpg", root / "img_align_celeba")
    with pytest.raises(PrepareError, match="first image .* differs"):
        prepare(root, out, holdout=3, workers=0, progress=False)
    # an unrelated non-empty folder is never written into
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("keep me")
    with pytest.raises(PrepareError, match="not empty .* todo.txt"):
        prepare(root, tmp_path / "notes", holdout=3, workers=0, progress=False)
    assert sorted(p.name for p in (tmp_path / "notes").iterdir()) == ["todo.txt"]
    with pytest.raises(PrepareError, match="not a folder made by"):
        PreparedImages(tmp_path / "notes")
    with pytest.raises(PrepareError, match="prepared folder not found"):
        PreparedImages(tmp_path / "nowhere")
    # the command line: one error line, exit status 2
    argv = [str(root), "--out", str(out), "--holdout", "5", "--workers", "0", "--no-progress"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1


def test_command_line_prepares_and_then_does_nothing(celeba, tmp_path, capsys):
    out = tmp_path / "prep"
    argv = [str(celeba), "--out", str(out), "--holdout", "2", "--workers", "0", "--no-progress"]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "finished: 9 of 9 images (24x20)" in err and "1 unreadable file(s) skipped" in err
    assert "000004.jpg" in err  # the skipped file is named
    assert main(argv) == 0
    assert "already prepared" in capsys.readouterr().err
    assert json.loads((out / "index.json").read_text())["complete"]


def test_odd_sized_image_and_full_disk_are_reported(tmp_path, monkeypatch):
    root = write_celeba(tmp_path / "celeba", [0] * 6)
    Image.new("RGB", (W, H + 4)).save(root / "img_align_celeba" / "000005.jpg")
    with pytest.raises(
        PrepareError, match=r"000005\.jpg is 28x20 \(HxW\) but the others are 24x20"
    ):
        prepare(root, tmp_path / "odd", holdout=0, workers=0, progress=False)
    Image.new("RGB", (W, H)).save(root / "img_align_celeba" / "000005.jpg")
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(prep.shutil, "disk_usage", lambda p: usage._replace(free=1000))
    with pytest.raises(
        PrepareError, match=r"needs 0\.01 MB more .* 0\.00 MB free: free some space"
    ):
        prepare(root, tmp_path / "full", holdout=0, workers=0, progress=False)
    assert not (tmp_path / "full" / "images.npy").exists()
