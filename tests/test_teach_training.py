"""Tests for srgan_edu.teach.training: lesson 08's data finder, run plan, live plot, log readers."""

from __future__ import annotations

import json
import shlex

import pytest
import torch
from PIL import Image

from srgan_edu.config import apply_overrides, config_from_args, get_preset
from srgan_edu.teach import training as T
from srgan_edu.train import build_parser, train
from srgan_edu.vgg import WEIGHTS_ENV

pytestmark = pytest.mark.usefixtures("close_figures")


@pytest.fixture
def no_env(monkeypatch):
    monkeypatch.delenv(T.CELEBA_ENV, raising=False)
    return monkeypatch


def make_celeba(root, n=6, size=(36, 28), partition=True):
    """A tiny CelebA in the official layout: ROOT/img_align_celeba/00000k.jpg (+ partition)."""
    folder = root / "img_align_celeba"
    folder.mkdir(parents=True)
    g = torch.Generator().manual_seed(0)
    names = []
    for k in range(1, n + 1):
        name = f"{k:06d}.jpg"
        arr = (torch.rand(size[0], size[1], 3, generator=g) * 255).to(torch.uint8).numpy()
        Image.fromarray(arr).save(folder / name)
        names.append(name)
    if partition:
        lines = [f"{name} {0 if i < n - 2 else 1}" for i, name in enumerate(names)]
        (root / "list_eval_partition.txt").write_text("\n".join(lines) + "\n")
    return root


# ---------------------------------------------------------------------------- finding CelebA


def test_finder_prefers_the_environment_variable(tmp_path, no_env, capsys):
    mine = make_celeba(tmp_path / "mine")
    home = make_celeba(tmp_path / "home")
    no_env.setenv(T.CELEBA_ENV, str(mine))
    found = T.find_celeba_data(home=home, shared=tmp_path / "absent")
    assert found == mine
    out = capsys.readouterr().out
    assert f"${T.CELEBA_ENV}" in out and "official layout, 6 images of 28x36" in out


def test_finder_falls_back_to_home_then_shared(tmp_path, no_env, capsys):
    shared = make_celeba(tmp_path / "shared")
    assert T.find_celeba_data(home=tmp_path / "nope", shared=shared) == shared
    assert "shared sample" in capsys.readouterr().out
    home = make_celeba(tmp_path / "home")
    assert T.find_celeba_data(home=home, shared=shared) == home


def test_finder_accepts_the_image_folder_itself(tmp_path, no_env):
    root = make_celeba(tmp_path / "c")
    no_env.setenv(T.CELEBA_ENV, str(root / "img_align_celeba"))
    assert T.find_celeba_data(home=tmp_path / "x", shared=tmp_path / "y") == root / (
        "img_align_celeba"
    )


def test_finder_explains_what_to_download_when_nothing_is_there(tmp_path, no_env, capsys):
    home = tmp_path / "home"
    assert T.find_celeba_data(home=home, shared=tmp_path / "shared") is None
    out = capsys.readouterr().out
    assert "No CelebA found" in out
    assert f"${T.CELEBA_ENV}: not set" in out
    assert f"{home} does not exist" in out
    assert "img_align_celeba.zip" in out  # CELEBA_SOURCE
    assert "list_eval_partition.txt" in out  # CELEBA_LAYOUTS
    assert "data=None" in out  # what the lesson does instead


def test_finder_reports_a_wrong_env_path_and_tries_nothing_else(tmp_path, no_env, capsys):
    shared = make_celeba(tmp_path / "shared")
    empty = tmp_path / "empty"
    empty.mkdir()
    no_env.setenv(T.CELEBA_ENV, str(empty))
    assert T.find_celeba_data(home=tmp_path / "h", shared=shared) is None
    out = capsys.readouterr().out
    assert "not a usable CelebA copy" in out and "CelebA not found" in out
    no_env.setenv(T.CELEBA_ENV, str(tmp_path / "missing"))
    assert T.find_celeba_data(home=tmp_path / "h", shared=shared) is None
    assert "does not exist" in capsys.readouterr().out


def test_finder_skips_a_broken_home_copy(tmp_path, no_env, capsys):
    home = tmp_path / "home"
    (home / "img_align_celeba").mkdir(parents=True)  # extraction unfinished: no images
    shared = make_celeba(tmp_path / "shared")
    assert T.find_celeba_data(home=home, shared=shared) == shared
    assert T.find_celeba_data(home=home, shared=tmp_path / "none", verbose=False) is None
    assert capsys.readouterr().out.count("holds no .jpg images") == 1


def test_finder_can_be_switched_off(tmp_path, no_env, capsys):
    shared = make_celeba(tmp_path / "shared")
    no_env.setenv(T.CELEBA_ENV, "none")
    assert T.find_celeba_data(home=tmp_path, shared=shared) is None
    assert "switched off" in capsys.readouterr().out


def test_default_locations_are_named_for_the_course():
    assert T.shared_celeba_dir().parts[-3:] == ("shared", "data", "celeba_89x109")
    assert T.shared_vgg_file().name == "vgg19_caffe_rgb_conv1_1-conv3_4.pth"
    assert T.home_celeba_dir().parts[-2:] == ("data", "celeba")


def test_fit_crop_shrinks_to_the_faces(tmp_path):
    root = make_celeba(tmp_path / "c", size=(45, 37))
    assert T.celeba_image_size(root) == (45, 37)
    assert T.fit_crop(root, 96, 4) == 36
    assert T.fit_crop(root, 32, 4) == 32
    assert T.fit_crop(None, 96, 4) == 96
    assert T.fit_crop(tmp_path / "missing", 96, 4) == 96


# ---------------------------------------------------------------------------- VGG weights


def test_vgg_choice_prefers_full_weights_then_the_partial_copy_then_random(tmp_path, monkeypatch):
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    monkeypatch.setattr(T, "imagenet_weights_path", lambda: tmp_path / "no-cache.pth")
    partial = tmp_path / "vgg19_caffe_rgb_conv1_1-conv3_4.pth"
    partial.write_bytes(b"x")
    pick = T.choose_vgg_weights("vgg54", shared_file=partial)
    assert (pick.weights, pick.content, pick.real) == (str(partial), "vgg22", True)
    assert "not for vgg54" in pick.note
    pick = T.choose_vgg_weights("vgg22", shared_file=tmp_path / "absent.pth")
    assert (pick.weights, pick.content, pick.real) == ("random", "vgg22", False)
    assert "RANDOM" in pick.note and WEIGHTS_ENV in pick.note and "download" in pick.note
    monkeypatch.setenv(WEIGHTS_ENV, str(tmp_path / "full.pth"))
    pick = T.choose_vgg_weights("vgg54", shared_file=partial)
    assert (pick.weights, pick.content, pick.real) == ("imagenet", "vgg54", True)
    assert T.choose_vgg_weights("mse").content == "mse"


# ---------------------------------------------------------------------------- the lesson's run


@pytest.mark.parametrize("preset", sorted(T.LESSON_SIZES))
def test_lesson_overrides_give_valid_configs_for_every_preset(preset, tmp_path):
    sizes = T.LESSON_SIZES[preset]
    assert 0 < sizes.pause_at < sizes.srresnet_steps < sizes.interrupt_at
    assert sizes.interrupt_at < sizes.srresnet_steps + sizes.srgan_steps
    vgg = T.VGGPick("random", "vgg22", False, "")
    root = make_celeba(tmp_path / "c", size=(109, 89))
    for data in (None, root):
        config = apply_overrides(get_preset(preset), T.lesson_overrides(preset, data, vgg))
        assert config.srresnet_steps == sizes.srresnet_steps
        assert config.hr_crop <= (88 if data else get_preset(preset).hr_crop)
        assert config.data == (None if data is None else str(root))
        assert config.vgg_weights == "random"


def test_cli_command_parses_back_to_the_same_config(tmp_path):
    config = apply_overrides(
        get_preset("laptop"),
        {"srresnet_steps": 200, "data": str(tmp_path / "my faces"), "compile": True},
    )
    cmd = T.cli_command(config, "laptop", tmp_path / "out dir", resume=True, steps=5)
    words = shlex.split(cmd.replace("\\\n", " "))
    assert words[:3] == ["python", "-m", "srgan_edu.train"]
    args = build_parser().parse_args(words[3:])
    assert config_from_args(args, args.preset) == config
    assert args.resume and args.steps == 5 and args.out == str(tmp_path / "out dir")
    multi = T.cli_command(config, "laptop", "runs/x", torchrun=4)
    assert multi.startswith("torchrun --nproc_per_node=4 -m srgan_edu.train")


def test_config_and_preset_tables():
    config = apply_overrides(get_preset("smoke"), {"srresnet_steps": 6})
    assert T.config_table(config, "smoke").split() == ["srresnet_steps", "4", "->", "6"]
    assert "unchanged" in T.config_table(get_preset("smoke"), "smoke")
    table = T.preset_table()
    assert "1,000,000" in table and table.splitlines()[0].split() == [
        "field", "smoke", "laptop", "paper",
    ]  # fmt: skip


# ---------------------------------------------------------------------------- logs and plots


def write_log(path, srgan=True):
    """A log.jsonl as the training loop writes it: train records, validations, both phases."""
    records = []
    for step in range(10, 101, 10):
        records.append(
            {
                "step": step,
                "phase": "srresnet",
                "loss/mse": 1.0 / step,
                "patches_per_s": 40.0 + step / 10,
                "lr": 1e-4,
                "time": step / 2.6,
            }
        )
        if step % 50 == 0:
            records.append(
                {
                    "step": step,
                    "phase": "srresnet",
                    "val/psnr_y": 20.0 + step / 50,
                    "val/ssim_y": 0.6,
                    "val/bicubic_psnr_y": 25.11,
                    "val/bicubic_ssim_y": 0.73,
                    "val/n": 64,
                }
            )
    if srgan:
        for step in (110, 120):
            records.append(
                {
                    "step": step,
                    "phase": "srgan",
                    "loss/g_total": 0.5,
                    "loss/content": 0.4,
                    "loss/adversarial": 2.0,
                    "loss/d_loss": 0.9,
                    "loss/d_real": 0.8,
                    "loss/d_fake": 0.2,
                    "patches_per_s": 15.0,
                }
            )
        records.append(
            {
                "step": 120,
                "phase": "srgan",
                "val/psnr_y": 21.5,
                "val/ssim_y": 0.6,
                "val/bicubic_psnr_y": 25.11,
                "val/bicubic_ssim_y": 0.73,
                "val/n": 64,
            }
        )
    text = "".join(json.dumps(r) + "\n" for r in records)
    path.write_text(text + '{"step": 130, "phase": "srg')  # a line cut off by a crash
    return records  # fmt: skip


def test_read_log_skips_a_cut_off_line_and_accepts_the_folder(tmp_path):
    records = write_log(tmp_path / "log.jsonl")
    assert T.read_log(tmp_path / "log.jsonl") == records
    assert T.read_log(tmp_path) == records


def test_plot_log_draws_four_panels_from_a_file(tmp_path):
    write_log(tmp_path / "log.jsonl")
    fig = T.plot_log(tmp_path / "log.jsonl", title="run")
    axes = fig.axes
    assert len(axes) == 4
    mse, gan, d, val = axes
    assert mse.get_yscale() == "log" and len(mse.lines[0].get_xdata()) == 10
    assert {line.get_label() for line in gan.lines} == {
        "content", "adversarial  -log D(G(LR))", "discriminator",
    }  # fmt: skip
    assert list(d.lines[0].get_ydata()) == [0.8, 0.8]
    assert list(val.lines[0].get_ydata()) == [21.0, 22.0, 21.5]
    fig.canvas.draw()


def test_plot_log_waits_for_phase_two(tmp_path):
    records = write_log(tmp_path / "log.jsonl", srgan=False)
    fig = T.plot_log(records)
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert "phase 2 (SRGAN) has not started" in texts
    fig = T.plot_log([])
    assert len([t for ax in fig.axes for t in ax.texts]) == 4


def test_validation_and_speed_tables(tmp_path):
    records = write_log(tmp_path / "log.jsonl")
    table = T.validation_table(records).splitlines()
    assert len(table) == 1 + 3 + 1
    assert table[2].split()[:5] == ["100", "srresnet", "22.00", "25.11", "-3.11"]
    speed = T.speed_table(records).splitlines()
    assert speed[0].split()[:3] == ["srresnet", "median", "45.5"]
    assert speed[1].split()[:3] == ["srgan", "median", "15.0"]
    assert "no validation" in T.validation_table([])


def test_live_plot_runs_headless_and_throttles(tmp_path):
    records = write_log(tmp_path / "log.jsonl")
    live = T.LivePlot(every=3600.0, display=False)
    for r in records:
        live(r)
    assert live.draws == 1  # the first record draws, the rest wait for the throttle
    live.finish()
    assert live.draws == 2 and len(live.records) == len(records)
    assert len(live.figure.axes) == 4
    with T.LivePlot(records[:3], every=0.0, display=False) as eager:
        eager(records[3])
        eager(records[4])
    assert eager.draws == 3 and len(eager.records) == 5


def test_interrupt_at_sends_sigint_once_and_chains(monkeypatch):
    sent, seen = [], []
    monkeypatch.setattr(T.os, "kill", lambda pid, sig: sent.append((pid, sig)))
    callback = T.interrupt_at(3, then=seen.append)
    for step in (1, 2, 3, 4):
        callback({"step": step})
    assert [r["step"] for r in seen] == [1, 2, 3, 4]
    assert sent == [(T.os.getpid(), T.signal.SIGINT)]


# ---------------------------------------------------------------------------- a real (smoke) run


def test_a_smoke_run_through_the_lesson_helpers(tmp_path, no_env):
    """The lesson's flow on synthetic images: pause, resume, a simulated Ctrl-C, resume."""
    sizes = T.LESSON_SIZES["smoke"]
    vgg = T.VGGPick("random", "vgg22", False, "")
    config = apply_overrides(get_preset("smoke"), T.lesson_overrides("smoke", None, vgg))
    out = tmp_path / "run"
    live = T.LivePlot(every=0.0, display=False)
    result = train(config, out, steps=sizes.pause_at, on_log=live, progress=False)
    assert (result.status, result.step) == ("paused", sizes.pause_at)
    assert live.draws == len(live.records) > 0
    listing = T.list_run(out)
    assert f"step_{sizes.pause_at:08d}.pt" in listing and "log.jsonl" in listing
    overview = T.checkpoint_overview(result.checkpoint)
    assert f"step {sizes.pause_at}, phase srresnet" in overview
    assert "optimiser state" in overview and "random number generator states" in overview
    train(config, out, resume=True, steps=config.srresnet_steps - result.step, progress=False)
    result = train(
        config, out, resume=True, on_log=T.interrupt_at(sizes.interrupt_at), progress=False
    )
    assert (result.status, result.step) == ("interrupted", sizes.interrupt_at)
    assert "lr schedule" in T.checkpoint_overview(result.checkpoint)
    result = train(config, out, resume=True, progress=False)
    assert result.status == "finished"
    records = T.read_log(out)
    assert [r["step"] for r in records if "loss/mse" in r] == list(
        range(1, config.srresnet_steps + 1)
    )
    fig = T.plot_samples(sorted((out / "samples").glob("*.png"))[:2])
    assert [ax.get_title() for ax in fig.axes][0].startswith("step_")
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == list(T.SAMPLE_COLUMNS)


def test_plot_batch_shows_hr_over_lr():
    lr = torch.rand(3, 3, 8, 8)
    hr = torch.rand(3, 3, 32, 32) * 2 - 1
    fig = T.plot_batch(lr, hr, n=8)
    assert len(fig.axes) == 6
    assert fig.axes[0].get_ylabel() == "HR 32x32"


def test_loss_balance_compares_the_terms_of_g_loss(tmp_path):
    records = write_log(tmp_path / "log.jsonl")
    lines = T.loss_balance(records, 1e-3).splitlines()
    assert lines[0] == "end of phase 1 (update 100): pixel MSE 0.01"
    assert lines[1] == "end of phase 2 (update 120): content 0.4, 0.001 x adversarial 0.002"
    assert lines[2] == "content / pixel MSE: 40"
    assert lines[3].startswith("content / weighted adversarial: 200 (the adversarial term is 0.5")
    assert "both phases" in T.loss_balance(records[:3], 1e-3)
