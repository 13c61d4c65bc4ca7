"""Tests for srgan_edu.train: exact resume, signals, divergence, refusals, data errors, DDP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import torch
from PIL import Image

from srgan_edu.checkpoint import CheckpointError, load_checkpoint, load_network
from srgan_edu.config import apply_overrides, get_preset
from srgan_edu.data import DatasetError
from srgan_edu.prepare import prepare
from srgan_edu.train import (
    StepBatchSampler,
    TrainingDiverged,
    TrainingError,
    main,
    phase_at,
    total_steps,
    train,
)

ROOT = Path(__file__).resolve().parents[1]
SHARED_CELEBA = ROOT.parent / "shared" / "data" / "celeba_89x109"


def smoke(**overrides):
    """The smoke preset with quiet logging; ``overrides`` as on the command line."""
    base = {"val_every": 0, "sample_every": 0, "ckpt_every": 0, "log_every": 2}
    return apply_overrides(get_preset("smoke"), {**base, **overrides})


def states(result) -> dict[str, torch.Tensor]:
    """Every tensor of the final training checkpoint: G, D, both optimisers."""
    payload = load_checkpoint(result.checkpoint)
    out = {}
    for net in ("generator", "discriminator"):
        for k, v in payload[net]["state_dict"].items():
            out[f"{net}.{k}"] = v
    for opt in ("opt_g", "opt_d"):
        for pid, st in payload[opt]["state"].items():
            for k, v in st.items():
                out[f"{opt}.{pid}.{k}"] = v
    return out


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "srgan_edu.train", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


# ----------------------------------------------------------------------------- schedule, sampler


def test_schedule_runs_phase_one_then_phase_two():
    c = smoke(srresnet_steps=3, srgan_steps=2)
    assert total_steps(c) == 5
    assert [phase_at(c, s) for s in range(5)] == [
        ("srresnet", 0), ("srresnet", 1), ("srresnet", 2), ("srgan", 0), ("srgan", 1),
    ]  # fmt: skip
    assert total_steps(smoke(phase="srgan", srgan_steps=7)) == 7
    assert total_steps(get_preset("paper")) == 1_000_000 + 200_000  # Sec. 3.2
    with pytest.raises(ValueError, match="past the end"):
        phase_at(c, 5)


def test_sampler_epochs_ranks_and_resume():
    n, b = 10, 2
    s0 = StepBatchSampler(n, b, seed=3, rank=0, world=2)
    s1 = StepBatchSampler(n, b, seed=3, rank=1, world=2)
    assert s0.steps_per_epoch == 2  # 10 // (2 * 2); the last two images wait for the next epoch
    it0, it1 = iter(s0), iter(s1)
    seen = []
    for _ in range(s0.steps_per_epoch):
        a, c = next(it0), next(it1)
        assert not {i for _, i in a} & {i for _, i in c}  # ranks never share an image in a step
        seen += [i for _, i in a + c]
    assert len(set(seen)) == 8 and all(e == 0 for e, _ in a + c)
    assert next(it0)[0][0] == 1  # then epoch 1, in a new order
    # a sampler started at step k yields what the uninterrupted one yields from step k on
    full = iter(StepBatchSampler(n, 3, seed=1))
    batches = [next(full) for _ in range(9)]
    resumed = iter(StepBatchSampler(n, 3, seed=1, start=5))
    assert [next(resumed) for _ in range(4)] == batches[5:]
    assert StepBatchSampler(n, 3, seed=1).batch(7) == batches[7]
    # fewer images than a batch: the epoch repeats them
    tiny = StepBatchSampler(3, 4, seed=0)
    assert tiny.steps_per_epoch == 1 and len(next(iter(tiny))) == 4


# ----------------------------------------------------------------------------- resume is exact


def test_resume_is_exact(tmp_path):
    """2N steps == N steps + resume (in phase 1, and again in phase 2, with DataLoader workers)."""
    config = smoke(srresnet_steps=4, srgan_steps=4, lr_decay_step=2)
    whole = train(config, tmp_path / "whole", progress=False)
    assert whole.status == "finished" and whole.step == 8
    reference = states(whole)

    first = train(config, tmp_path / "split", steps=3, progress=False)
    assert first.status == "paused" and first.step == 3
    second = train(config, tmp_path / "split", resume=True, steps=3, progress=False)
    assert second.status == "paused" and second.step == 6  # crosses into phase 2
    workers = apply_overrides(config, {"num_workers": 2})  # the data must not depend on workers
    third = train(workers, tmp_path / "split", resume=True, progress=False)
    assert third.status == "finished" and third.step == 8
    resumed = states(third)
    assert resumed.keys() == reference.keys()
    for k in reference:
        assert torch.equal(resumed[k], reference[k]), k
    # the split run's log has every step the whole run logged (plus the pause points), and
    # the same losses where the windows match (steps 7-8)
    log = [json.loads(line) for line in (tmp_path / "split" / "log.jsonl").read_text().splitlines()]
    ref = [json.loads(line) for line in (tmp_path / "whole" / "log.jsonl").read_text().splitlines()]
    assert {r["step"] for r in ref} <= {r["step"] for r in log}
    assert {r["step"] for r in log} - {r["step"] for r in ref} == {3}  # 6 is a log step
    for key in ("loss/g_total", "loss/d_loss", "val/psnr_y"):
        assert [r[key] for r in log if key in r][-1] == [r[key] for r in ref if key in r][-1]
    # end-of-phase generators for evaluate / upscale
    g = load_network(tmp_path / "split" / "srgan.pt")
    assert torch.equal(g.state_dict()["tail.weight"], whole.generator.state_dict()["tail.weight"])
    # a finished run resumed does nothing
    again = train(config, tmp_path / "split", resume=True, progress=False)
    assert again.status == "finished" and again.step == 8


def test_srgan_phase_alone_starts_from_phase_one(tmp_path):
    config = smoke(phase="srresnet", srresnet_steps=2)
    train(config, tmp_path / "p1", progress=False)
    with pytest.raises(TrainingError, match="--init"):
        train(smoke(phase="srgan", srgan_steps=2), tmp_path / "p2", progress=False)
    r = train(
        smoke(phase="srgan", srgan_steps=2),
        tmp_path / "p2",
        init=tmp_path / "p1" / "srresnet.pt",
        progress=False,
    )
    assert r.status == "finished" and (tmp_path / "p2" / "srgan.pt").is_file()
    with pytest.raises(CheckpointError, match="channels=16, this run has channels=8"):
        train(
            smoke(phase="srgan", channels=8),
            tmp_path / "p3",
            init=tmp_path / "p1" / "srresnet.pt",
            progress=False,
        )


# ----------------------------------------------------------------------------- refusals


def test_resume_refuses_other_architecture_and_existing_run(tmp_path, capsys):
    out = str(tmp_path / "run")
    assert main(["--preset", "smoke", "--out", out, "--no-progress", "--srgan-steps", "2"]) == 0
    capsys.readouterr()
    # the same folder without --resume: refused, nothing overwritten
    before = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    assert main(["--preset", "smoke", "--out", out, "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "--resume" in err
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir()) == before
    # another scale or width: refused with the mismatch named
    assert main(["--preset", "smoke", "--out", out, "--resume", "--scale", "2"]) == 2
    assert "scale=4, this run has scale=2" in capsys.readouterr().err
    assert main(["--preset", "smoke", "--out", out, "--resume", "--channels", "8"]) == 2
    assert "channels=16, this run has channels=8" in capsys.readouterr().err
    # mistyped options: argparse names the option and suggests
    assert main(["--preset", "smoke", "--out", out, "--steps", "0"]) == 2
    assert "--steps" in capsys.readouterr().err
    assert main(["--preset", "smok", "--out", out]) == 2
    assert "did you mean 'smoke'" in capsys.readouterr().err.lower()


def test_mistyped_option_and_help():
    r = run_cli("--hr-crp", "64", "--preset", "smoke")
    assert r.returncode == 2 and "--hr-crp" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("--help")
    assert r.returncode == 0
    for text in ("--preset", "--resume", "--steps", "--hr-crop", "torchrun", "examples"):
        assert text in r.stdout


# ----------------------------------------------------------------------------- divergence


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    """An absurd learning rate blows the weights up on the first update: step 2's loss is NaN."""
    config = smoke(phase="srresnet", srresnet_steps=20, lr=1e30, ckpt_every=1, log_every=1)
    with pytest.raises(TrainingDiverged, match=r"at step 2 .*step_00000001\.pt"):
        train(config, tmp_path / "nan", progress=False)
    ckpts = sorted(p.name for p in (tmp_path / "nan" / "checkpoints").glob("step_*.pt"))
    assert ckpts == ["step_00000001.pt"]
    g = load_checkpoint(tmp_path / "nan" / "checkpoints" / ckpts[0])["generator"]["state_dict"]
    assert all(torch.isfinite(v).all() for v in g.values() if v.is_floating_point())


# ----------------------------------------------------------------------------- signals


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_saves_and_resume_continues(tmp_path, sig):
    out = tmp_path / "run"
    args = [sys.executable, "-m", "srgan_edu.train", "--preset", "smoke", "--out", str(out),
            "--no-progress", "--srresnet-steps", "100000", "--log-every", "1", "--val-every",
            "0", "--ckpt-every", "0", "--sample-every", "0"]  # fmt: skip
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    log = out / "log.jsonl"
    deadline = time.time() + 90
    while time.time() < deadline and (not log.exists() or len(log.read_text().splitlines()) < 3):
        time.sleep(0.2)
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 128 + sig, stderr.decode()
    summary = json.loads(stdout.decode().strip().splitlines()[-1])
    assert summary["status"] == "interrupted"
    saved = load_checkpoint(out / "checkpoints" / f"step_{summary['step']:08d}.pt")
    assert saved["step"] == summary["step"] >= 3
    assert signal.Signals(sig).name in stderr.decode()
    # resume picks up at the saved step
    r = train(smoke(srresnet_steps=100000, log_every=1), out, resume=True, steps=2, progress=False)
    assert r.step == summary["step"] + 2


@pytest.mark.parametrize("prepared", [False, True])
def test_sigterm_to_the_process_group_with_workers_saves(tmp_path, prepared):
    """``kill -- -PGID`` (or a scheduler) also signals the DataLoader workers: they must not die
    first and turn a clean save into "DataLoader worker killed by signal"."""
    folder = celeba_copy(tmp_path / "celeba")
    out = tmp_path / "run"
    args = [sys.executable, "-m", "srgan_edu.train", "--preset", "smoke", "--out", str(out),
            "--data", str(folder), "--num-workers", "2", "--no-progress", "--srresnet-steps",
            "100000", "--log-every", "1", "--val-every", "0", "--ckpt-every", "0",
            "--sample-every", "0"]  # fmt: skip
    if prepared:
        prepare(folder, tmp_path / "prep", holdout=4, workers=0, progress=False)
        args += ["--prepared", str(tmp_path / "prep")]
    proc = subprocess.Popen(
        args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
    )
    log = out / "log.jsonl"
    deadline = time.time() + 90
    while time.time() < deadline and (not log.exists() or len(log.read_text().splitlines()) < 3):
        time.sleep(0.2)
    assert proc.poll() is None, proc.communicate()
    os.killpg(proc.pid, signal.SIGTERM)  # the main process and its workers, like kill -- -PGID
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, stderr.decode()
    assert "DataLoader worker" not in stderr.decode()
    summary = json.loads(stdout.decode().strip().splitlines()[-1])
    assert summary["status"] == "interrupted" and summary["step"] >= 3
    assert (out / "checkpoints" / f"step_{summary['step']:08d}.pt").is_file()


# ----------------------------------------------------------------------------- data problems


def write_images(folder: Path, n: int, size=(40, 40), seed: int = 0) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(seed)
    for i in range(n):
        arr = (torch.rand(size[0], size[1], 3, generator=g) * 255).to(torch.uint8).numpy()
        Image.fromarray(arr).save(folder / f"img{i:03d}.png")


def test_data_errors_are_clear(tmp_path, capsys):
    out = str(tmp_path / "out")
    assert main(["--preset", "smoke", "--data", str(tmp_path / "nowhere"), "--out", out]) == 2
    assert "training data not found" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["--preset", "smoke", "--data", str(tmp_path / "empty"), "--out", out]) == 2
    assert "no images in" in capsys.readouterr().err
    write_images(tmp_path / "few", 3)
    assert main(["--preset", "smoke", "--data", str(tmp_path / "few"), "--out", out]) == 2
    assert "val_holdout=4 would hold out all of them" in capsys.readouterr().err


def test_image_folder_with_corrupt_and_small_files_trains(tmp_path):
    folder = tmp_path / "photos"
    write_images(folder, 10)
    (folder / "img000.png").write_bytes(b"")  # zero bytes
    (folder / "img001.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")  # corrupt
    Image.new("RGB", (12, 12)).save(folder / "img002.png")  # smaller than the 32x32 crop
    config = smoke(data=str(folder), val_holdout=2, srgan_steps=2, val_every=2)
    with pytest.warns(UserWarning, match="skipping image"):
        r = train(config, tmp_path / "out", progress=False)
    assert r.status == "finished" and r.val is not None and r.val["val/n"] == 2


def celeba_copy(root: Path, n: int = 12, size=(40, 36)) -> Path:
    """A tiny official-layout CelebA: JPEG faces and a partition file (10 train, 2 val)."""
    img = root / "img_align_celeba"
    img.mkdir(parents=True)
    g = torch.Generator().manual_seed(0)
    lines = []
    for i in range(1, n + 1):
        arr = (torch.rand(size[0], size[1], 3, generator=g) * 255).to(torch.uint8).numpy()
        Image.fromarray(arr).save(img / f"{i:06d}.jpg", quality=90)
        lines.append(f"{i:06d}.jpg {0 if i <= n - 2 else 1}")
    (root / "list_eval_partition.txt").write_text("\n".join(lines) + "\n")
    return root


def test_celeba_layout_trains_and_validates_on_val_split(tmp_path):
    root = celeba_copy(tmp_path / "celeba")
    config = smoke(data=str(root), val_holdout=2, srgan_steps=2, val_every=2, sample_every=2)
    r = train(config, tmp_path / "out", progress=False)
    assert r.status == "finished" and r.val["val/n"] == 2
    assert any((tmp_path / "out" / "samples").glob("*.png"))
    small = smoke(data=str(root), hr_crop=48)  # the 40x36 faces cannot give 48x48 crops
    with pytest.raises(DatasetError, match="crop"):
        train(small, tmp_path / "out2", progress=False)


@pytest.mark.skipif(not SHARED_CELEBA.is_dir(), reason="../shared/data/celeba_89x109 not present")
def test_real_celeba_sample_holds_out_validation_faces(tmp_path):
    config = smoke(data=str(SHARED_CELEBA), hr_crop=64, val_holdout=8, srresnet_steps=2,
                   srgan_steps=1, val_every=2)  # fmt: skip
    r = train(config, tmp_path / "out", progress=False)
    assert r.status == "finished" and r.val["val/n"] == 8
    assert r.val["val/bicubic_psnr_y"] > 20  # real faces: bicubic is a sensible baseline


# ----------------------------------------------------------------------------- torchrun (DDP)


def test_torchrun_two_processes_gloo(tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
           "--standalone", "-m", "srgan_edu.train", "--preset", "smoke", "--out", str(out),
           "--no-progress", "--srgan-steps", "2"]  # fmt: skip
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=240, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    summaries = [line for line in r.stdout.splitlines() if line.startswith("{")]
    assert len(summaries) == 1  # rank 0 reports
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    steps = [rec["step"] for rec in log if "loss/mse" in rec or "loss/g_total" in rec]
    assert steps == sorted(set(steps))  # one writer: no step logged twice
    assert log[-1]["step"] == 6
    assert json.loads(summaries[0])["status"] == "finished"
    payload = load_checkpoint(out / "checkpoints" / "step_00000006.pt")
    assert payload["world_size"] == 2
    assert all(
        torch.isfinite(v).all()
        for v in payload["generator"]["state_dict"].values()
        if v.is_floating_point()
    )


def test_bf16_autocast_and_channels_last_path_runs_on_cpu(tmp_path):
    """The CUDA defaults (bf16 autocast, channels_last), forced on a CPU: same code, finite."""
    config = smoke(amp="bf16", channels_last="on", srgan_steps=2, log_every=1)
    r = train(config, tmp_path / "bf16", progress=False)
    assert r.status == "finished"
    losses = [v for rec in r.history for k, v in rec.items() if k.startswith("loss/")]
    assert losses and all(v == v and abs(v) < float("inf") for v in losses)
    assert r.generator.head[0].weight.is_contiguous(memory_format=torch.channels_last)


def test_missing_vgg_weights_fail_before_phase_one(tmp_path, capsys, monkeypatch):
    """VGG weights are read at the start, not after phase 1: a missing file costs seconds."""
    monkeypatch.setenv("SRGAN_EDU_VGG19_WEIGHTS", str(tmp_path / "missing.pth"))
    out = tmp_path / "run"
    argv = ["--preset", "smoke", "--out", str(out), "--no-progress", "--vgg-weights", "imagenet"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: VGG19 weight file not found") and len(err.splitlines()) == 1
    assert not (out / "checkpoints").exists() or not any((out / "checkpoints").iterdir())


# ----------------------------------------------------------------------------- prepared arrays


def phase1_states(result) -> dict[str, torch.Tensor]:
    """The generator and its Adam state in the final checkpoint of a phase-1 run."""
    payload = load_checkpoint(result.checkpoint)
    out = {f"G.{k}": v for k, v in payload["generator"]["state_dict"].items()}
    for pid, st in payload["opt_g"]["state"].items():
        out.update({f"opt_g.{pid}.{k}": v for k, v in st.items()})
    return out


def test_prepared_array_trains_bit_identically_and_resumes(tmp_path):
    """Training from the array prepared from a CelebA copy (read from disk, or held whole in
    memory and indexed there) ends with the same weights as training from its JPEGs, also with
    a corrupt JPEG in the train split; a run switching between the three sources resumes
    exactly."""
    root = celeba_copy(tmp_path / "celeba", n=14)
    (root / "img_align_celeba" / "000003.jpg").write_bytes(b"\xff\xd8\xff\xe0 broken")
    prepared = tmp_path / "prepared"
    assert prepare(root, prepared, holdout=2, workers=0, progress=False).status == "finished"
    base = smoke(data=str(root), val_holdout=2, phase="srresnet", srresnet_steps=5, batch_size=3)
    with pytest.warns(UserWarning, match="skipping image"):
        jpeg = phase1_states(train(base, tmp_path / "jpeg", progress=False))
    for mode in ("off", "on"):  # memory map, then the whole array in (CPU) device memory
        config = apply_overrides(base, {"prepared": str(prepared), "data_on_device": mode})
        got = phase1_states(train(config, tmp_path / f"prepared_{mode}", progress=False))
        assert got.keys() == jpeg.keys()
        assert all(torch.equal(got[k], jpeg[k]) for k in jpeg), mode
    # 2 steps held in memory, 2 from the memory map with workers, the last from the JPEGs
    out = tmp_path / "mixed"
    on = apply_overrides(base, {"prepared": str(prepared), "data_on_device": "on"})
    train(on, out, steps=2, progress=False)
    disk = apply_overrides(on, {"data_on_device": "off", "num_workers": 2})
    train(disk, out, resume=True, steps=2, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the corrupt JPEG, if step 5 draws it
        last = train(base, out, resume=True, progress=False)
    assert last.status == "finished" and last.step == 5
    resumed = phase1_states(last)
    assert all(torch.equal(resumed[k], jpeg[k]) for k in jpeg)


def test_prepared_array_from_other_images_is_refused(tmp_path, capsys):
    root = celeba_copy(tmp_path / "celeba")
    prepared = tmp_path / "prepared"
    prepare(root, prepared, holdout=2, workers=0, progress=False)
    other = tmp_path / "other"
    celeba_copy(other)
    Image.new("RGB", (36, 40), "red").save(other / "img_align_celeba" / "000001.jpg")
    argv = ["--preset", "smoke", "--out", str(tmp_path / "run"), "--no-progress",
            "--data", str(other), "--prepared", str(prepared), "--val-holdout", "2"]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "(other files or pixels)" in err
    assert f"--data {root.resolve()}" in err and "python -m srgan_edu.prepare" in err
    common = argv[:-6]
    assert main([*common, "--prepared", str(prepared)]) == 2  # no --data: synthetic images
    assert "prepared needs data" in capsys.readouterr().err
    assert main([*common, "--data", str(root), "--prepared", str(tmp_path / "nowhere")]) == 2
    assert "prepared folder not found" in capsys.readouterr().err


def test_resume_with_a_changed_schedule_follows_the_new_one(tmp_path):
    """A resume reports changed settings and must then use them: a run paused and resumed with a
    new lr_decay_step / lr logs the same learning rates as a fresh run with those settings."""

    def lrs(out):
        records = map(json.loads, (out / "log.jsonl").read_text().splitlines())
        return [(r["step"], r["lr"]) for r in records if "lr" in r]

    old = smoke(phase="both", srresnet_steps=2, srgan_steps=6, lr_decay_step=5, log_every=1)
    new = apply_overrides(old, {"lr_decay_step": 2, "lr": 2e-4})
    train(old, tmp_path / "paused", steps=3, progress=False)  # 2 SRResNet + 1 SRGAN updates
    train(new, tmp_path / "paused", resume=True, progress=False)
    train(new, tmp_path / "fresh", progress=False)
    resumed, fresh = lrs(tmp_path / "paused"), lrs(tmp_path / "fresh")
    assert resumed[3:] == fresh[3:]  # after the resume: the new schedule
    # logged after each update: the lr of the next one (decayed once 2 SRGAN updates are made)
    assert [lr for _, lr in fresh[2:]] == pytest.approx([2e-4, 2e-5, 2e-5, 2e-5, 2e-5, 2e-5])
