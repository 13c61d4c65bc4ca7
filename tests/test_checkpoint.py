"""Tests for srgan_edu.checkpoint: atomic saves, disk full, SIGKILL mid-write, safe loads, RNG."""

from __future__ import annotations

import errno
import os
import random
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

import srgan_edu
from srgan_edu.checkpoint import (
    FORMAT,
    CheckpointError,
    CheckpointManager,
    check_arch,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)

ROOT = Path(__file__).resolve().parents[1]


def tiny_payload(seed: int = 0) -> dict:
    """Model + optimizer + scheduler state dicts, as a training run would save them."""
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.PReLU())
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, betas=(0.9, 0.999))
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[5], gamma=0.1)
    model(torch.randn(2, 3, 8, 8)).square().mean().backward()  # (B, C, H, W)
    opt.step()
    sched.step()
    return {
        "generator": model.state_dict(),
        "opt_g": opt.state_dict(),
        "sched_g": sched.state_dict(),
        "step": 7,
        "config": {"preset": "smoke", "lr": 1e-4, "crop": 24, "milestones": [5]},
        "arch": {"scale": 4, "n_blocks": 2, "channels": 4},
        "rng": rng_state(),
    }


def tmp_files(directory: Path) -> list[Path]:
    return [p for p in directory.iterdir() if p.name.endswith(".tmp")]


def assert_state_equal(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)


# ---------------------------------------------------------------- save / load


def test_round_trip_keeps_payload_and_adds_metadata(tmp_path):
    payload = tiny_payload()
    keys_before = set(payload)
    path = save_checkpoint(payload, tmp_path / "sub" / "ck.pt")
    assert set(payload) == keys_before  # caller's dict untouched
    assert tmp_files(path.parent) == []
    # loads with weights_only=True directly, too (no pickled classes)
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == FORMAT and isinstance(raw["format_version"], int)
    assert raw["library_version"] == srgan_edu.__version__
    got = load_checkpoint(path)
    assert_state_equal(got["generator"], payload["generator"])
    assert got["step"] == 7 and got["config"] == payload["config"]
    assert got["arch"] == payload["arch"]
    assert got["opt_g"]["param_groups"] == payload["opt_g"]["param_groups"]
    torch.testing.assert_close(
        got["opt_g"]["state"][0]["exp_avg"], payload["opt_g"]["state"][0]["exp_avg"]
    )
    assert got["sched_g"] == payload["sched_g"]


def test_save_replaces_atomically(tmp_path, monkeypatch):
    path = tmp_path / "ck.pt"
    save_checkpoint({"v": torch.zeros(3)}, path)
    calls = []
    real_replace = os.replace

    def spy(src, dst):
        # at the moment of the rename, the complete new file is a temp file next to the target
        src = Path(src)
        calls.append(src)
        assert src.parent == path.parent and src.name.endswith(".tmp")
        assert torch.load(src, weights_only=True)["v"].tolist() == [1.0, 1.0, 1.0]
        assert load_checkpoint(dst)["v"].tolist() == [0.0, 0.0, 0.0]  # old one still in place
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    save_checkpoint({"v": torch.ones(3)}, path)
    assert len(calls) == 1
    assert load_checkpoint(path)["v"].tolist() == [1.0, 1.0, 1.0]
    assert tmp_files(tmp_path) == []


def test_disk_full_keeps_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "ck.pt"
    save_checkpoint({"v": torch.arange(4.0)}, path)
    real_save = torch.save

    def full_disk(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 half a checkpoint")  # some bytes reach the disk first
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(CheckpointError) as info:
        save_checkpoint({"v": torch.ones(1000)}, path)
    msg = str(info.value)
    assert str(path) in msg and os.strerror(errno.ENOSPC) in msg
    assert isinstance(info.value.__cause__, OSError)
    assert info.value.__cause__.errno == errno.ENOSPC
    monkeypatch.setattr(torch, "save", real_save)
    assert load_checkpoint(path)["v"].tolist() == [0.0, 1.0, 2.0, 3.0]
    assert tmp_files(tmp_path) == []


def test_payload_that_weights_only_would_refuse_is_rejected_before_writing(tmp_path):
    path = tmp_path / "ck.pt"
    with pytest.raises(CheckpointError, match=r"payload\['config'\]\['mean'\].*numpy"):
        save_checkpoint({"config": {"mean": np.zeros(3)}}, path)
    with pytest.raises(CheckpointError, match="asdict"):
        save_checkpoint({"config": object()}, path)
    assert not path.exists() and tmp_files(tmp_path) == []


WRITER = textwrap.dedent(
    """
    import sys, time
    import torch
    from srgan_edu import checkpoint

    target, big = sys.argv[1], torch.arange(2_000_000, dtype=torch.float32)  # 8 MB
    real_save = torch.save

    def slow_save(obj, f):
        # a slow disk: the bytes go out in chunks; say so once the first chunk is on disk
        import io
        buf = io.BytesIO()
        real_save(obj, buf)
        data = buf.getvalue()
        chunk = len(data) // 16
        for i in range(0, len(data), chunk):
            f.write(data[i : i + chunk])
            f.flush()
            if i == 0:
                print("writing", obj["i"], flush=True)
            time.sleep(0.02)

    torch.save = slow_save
    i = 0
    while True:
        i += 1
        checkpoint.save_checkpoint({"i": i, "w": big + i}, target)
    """
)


def test_sigkill_during_write_leaves_a_loadable_checkpoint(tmp_path):
    target = tmp_path / "ck.pt"
    save_checkpoint({"i": 0, "w": torch.arange(2_000_000, dtype=torch.float32)}, target)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(target)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        for _ in range(2):  # let one full write replace the file, then kill the second mid-write
            line = proc.stdout.readline()
            assert line.startswith("writing"), f"writer failed: {line!r} {proc.stderr.read()}"
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=10) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    assert tmp_files(tmp_path), "the writer was not killed mid-write (no temp file left)"
    got = load_checkpoint(target)
    assert got["i"] == 1  # the last complete write; the killed one left only a temp file
    torch.testing.assert_close(
        got["w"], torch.arange(2_000_000, dtype=torch.float32) + got["i"], rtol=0, atol=0
    )
    # the leftover temp file is never taken for a checkpoint and is cleaned up by the manager
    CheckpointManager(tmp_path)
    assert tmp_files(tmp_path) == []


def test_load_errors_say_what_is_wrong(tmp_path):
    with pytest.raises(CheckpointError, match=r"not found"):
        load_checkpoint(tmp_path / "nope.pt")

    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"empty \(0 bytes\)") as info:
        load_checkpoint(empty)
    assert str(empty) in str(info.value)

    good = save_checkpoint({"w": torch.randn(64, 64)}, tmp_path / "good.pt")
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=r"truncated.*could not be read") as info:
        load_checkpoint(truncated)
    assert isinstance(info.value, ValueError)

    text = tmp_path / "notes.pt"
    text.write_text("these are not the weights you are looking for\n")
    with pytest.raises(CheckpointError, match=r"could not be read as a torch checkpoint"):
        load_checkpoint(text)

    bare = tmp_path / "bare_state_dict.pt"
    torch.save(torch.nn.Linear(2, 2).state_dict(), bare)
    with pytest.raises(
        CheckpointError, match=r"expected a dict with format='srgan_edu.checkpoint'"
    ):
        load_checkpoint(bare)

    foreign = tmp_path / "other_project.pt"
    torch.save({"format": "someone.else", "model": {}}, foreign)
    with pytest.raises(CheckpointError, match=r"found a dict with format='someone.else'"):
        load_checkpoint(foreign)

    newer = tmp_path / "newer.pt"
    torch.save({"format": FORMAT, "format_version": 999}, newer)
    with pytest.raises(CheckpointError, match=r"format_version=999.*upgrade"):
        load_checkpoint(newer)


def test_weights_only_refuses_pickled_objects(tmp_path):
    path = tmp_path / "obj.pt"
    torch.save({"format": FORMAT, "format_version": 1, "x": Path("a")}, path)
    with pytest.raises(CheckpointError, match="could not be read"):
        load_checkpoint(path)


def test_check_arch_names_every_mismatch():
    same = {"scale": 4, "n_blocks": 16, "channels": 64}
    check_arch(same, dict(same))
    with pytest.raises(CheckpointError) as info:
        check_arch({"scale": 2, "n_blocks": 16, "channels": 64}, {**same, "n_blocks": 8})
    msg = str(info.value)
    assert "checkpoint generator has scale=2, this run has scale=4" in msg
    assert "checkpoint generator has n_blocks=16, this run has n_blocks=8" in msg
    assert "channels" not in msg
    with pytest.raises(CheckpointError, match="checkpoint discriminator has no width"):
        check_arch({}, {"width": 96}, what="discriminator")


# ---------------------------------------------------------------- RNG


def draw() -> tuple:
    return (
        torch.rand(5).tolist(),
        np.random.rand(3).tolist(),  # noqa: NPY002 (the global RNG is what is tested)
        np.random.randn(1).tolist(),  # noqa: NPY002 (exercises the cached Gaussian)
        random.random(),
        random.gauss(0, 1),
    )


def test_rng_round_trip_under_weights_only(tmp_path):
    torch.manual_seed(1)
    np.random.seed(2)  # noqa: NPY002
    random.seed(3)
    np.random.randn(1)  # noqa: NPY002 (leave a cached Gaussian in the state)
    random.gauss(0, 1)  # Python's gauss keeps a cached value too
    state = rng_state()
    assert not torch.cuda.is_initialized()  # capturing the state never initialises CUDA
    expected = draw()
    save_checkpoint({"rng": state}, tmp_path / "rng.pt")
    raw = torch.load(tmp_path / "rng.pt", weights_only=True)  # plain weights_only load works
    draw(), draw()  # move every generator on
    set_rng_state(raw["rng"])
    assert draw() == expected
    assert draw() != expected


# ---------------------------------------------------------------- manager


def test_manager_keeps_last_n_and_best(tmp_path):
    mgr = CheckpointManager(tmp_path, keep_last=2)
    metrics = {1: 20.0, 2: 25.0, 3: 24.0, 4: 26.0, 5: 21.0}
    for step, psnr in metrics.items():
        mgr.save({"w": torch.full((2,), float(step))}, step, metric=psnr)
    assert [s for s, _ in mgr.steps()] == [4, 5]
    best = load_checkpoint(tmp_path / "best.pt")
    assert best["step"] == 4 and best["best_metric"] == 26.0 and best["metric"] == 26.0
    assert best["w"].tolist() == [4.0, 4.0]
    assert load_checkpoint(mgr.latest())["best_metric"] == 26.0
    assert tmp_files(tmp_path) == []

    # a new manager (a resumed run) remembers the best value; lower is better for a loss
    again = CheckpointManager(tmp_path, keep_last=2)
    assert again.best_metric() == 26.0
    again.save({"w": torch.zeros(2)}, 6, metric=25.9)
    assert load_checkpoint(tmp_path / "best.pt")["step"] == 4
    loss = CheckpointManager(tmp_path / "loss")
    for step, value in [(1, 0.5), (2, 0.3), (3, 0.4)]:
        loss.save({}, step, metric=value, higher_is_better=False)
    assert load_checkpoint(loss.best_path)["step"] == 2
    nometric = CheckpointManager(tmp_path / "none")
    nometric.save({}, 1)
    assert not nometric.best_path.exists()


def test_latest_skips_corrupt_newest(tmp_path):
    mgr = CheckpointManager(tmp_path, keep_last=3)
    assert mgr.latest() is None and mgr.load_latest() is None
    for step in (10, 20, 30):
        mgr.save({"w": torch.full((3,), float(step))}, step)
    # newest cut off half-way, the one before it empty: fall back to step 10, with warnings
    newest = mgr.step_path(30)
    newest.write_bytes(newest.read_bytes()[:100])
    mgr.step_path(20).write_bytes(b"")
    with pytest.warns(UserWarning, match="skipping unreadable checkpoint") as record:
        assert mgr.latest() == mgr.step_path(10)
    assert len(record) == 2 and "step_00000030.pt" in str(record[0].message)
    with pytest.warns(UserWarning):
        got = mgr.load_latest()
    assert got["step"] == 10 and got["w"].tolist() == [10.0] * 3
