"""Tests for srgan_edu.teach.evaluation: lesson 09's data, models and failure pictures."""

from __future__ import annotations

import matplotlib.figure
import pytest
import torch
from PIL import Image

from srgan_edu.checkpoint import network_entry, save_checkpoint
from srgan_edu.data import DatasetError, SyntheticImages, sample_image
from srgan_edu.evaluate import EvalResult, bicubic_upscaler, eval_pairs, evaluate_upscalers
from srgan_edu.metrics import psnr, rgb_to_y
from srgan_edu.models import build_generator
from srgan_edu.teach import evaluation as E

pytestmark = pytest.mark.usefixtures("one_thread", "close_figures")


def tiny_celeba(root):
    """A CelebA folder in the official layout: 3 faces, all in the train partition."""
    images = root / "img_align_celeba"
    images.mkdir(parents=True)
    for i in range(1, 4):
        Image.new("RGB", (20, 24), (10 * i, 20, 30)).save(images / f"{i:06d}.jpg")
    (root / "list_eval_partition.txt").write_text("".join(f"{i:06d}.jpg 0\n" for i in range(1, 4)))
    return root


def save_generator(path, seed):
    G = build_generator(4, n_blocks=1, channels=8, seed=seed)
    save_checkpoint({"kind": "generator", "generator": network_entry(G), "step": 7}, path)
    return G


# ---------------------------------------------------------------------------- finding data


def test_find_celeba_follows_the_environment_variable(tmp_path):
    root = tiny_celeba(tmp_path / "celeba")
    assert E.find_celeba({E.CELEBA_ENV: str(root)}) == root
    with pytest.raises(DatasetError, match="not a CelebA folder"):
        E.find_celeba({E.CELEBA_ENV: str(tmp_path)})
    default = E.find_celeba({})  # the shared sample next to the repository, or nothing
    assert default is None or default == E.shared_data_dir() / "celeba_89x109"


def test_find_benchmarks_under_the_names_they_ship_with(tmp_path):
    (tmp_path / "bench" / "Set5" / "HR").mkdir(parents=True)
    (tmp_path / "bench" / "B100").mkdir()
    (tmp_path / "home" / "set14").mkdir(parents=True)
    found = E.find_benchmarks([tmp_path / "bench", tmp_path / "home"])
    assert found == {
        "Set5": tmp_path / "bench" / "Set5",
        "Set14": tmp_path / "home" / "set14",
        "BSD100": tmp_path / "bench" / "B100",
    }
    assert E.find_benchmarks([tmp_path / "nothing"]) == {}
    via_env = E.find_benchmarks(env={E.BENCHMARKS_ENV: str(tmp_path / "bench")})
    assert via_env["Set5"] == tmp_path / "bench" / "Set5"
    assert "download" in E.BENCHMARK_HELP and E.BENCHMARKS_ENV in E.BENCHMARK_HELP


def test_find_pretrained_by_file_name(tmp_path):
    assert E.find_pretrained(tmp_path / "missing") == {}
    assert E.find_pretrained(tmp_path) == {}
    for name in ("srresnet_laptop.pt", "srresnet.pt", "srgan_celeba.pt", "other.pt"):
        (tmp_path / name).write_bytes(b"")
    assert E.find_pretrained(tmp_path) == {
        "SRResNet": tmp_path / "srresnet.pt",  # the exact name wins
        "SRGAN": tmp_path / "srgan_celeba.pt",
    }
    assert E.find_pretrained(env={E.CHECKPOINTS_ENV: str(tmp_path)}) == E.find_pretrained(tmp_path)


def test_find_pretrained_defaults_to_the_shipped_models(tmp_path, monkeypatch):
    from srgan_edu import pretrained as P

    monkeypatch.setenv(P.PRETRAINED_ENV, str(tmp_path))  # an empty copy: nothing checks out
    with pytest.warns(UserWarning, match="left out") as record:
        assert E.find_pretrained(env={}) == {}
    assert [str(w.message).split(" left out")[0] for w in record] == list(E.SHIPPED_MODELS)
    assert all("is missing" in str(w.message) for w in record)
    monkeypatch.delenv(P.PRETRAINED_ENV)
    assert E.checkpoint_dir() == P.pretrained_dir()
    if all((E.checkpoint_dir() / f"{n}.pt").is_file() for n in E.SHIPPED_MODELS.values()):
        assert E.find_pretrained(env={}) == {
            label: P.pretrained_path(name) for label, name in E.SHIPPED_MODELS.items()
        }


def test_photo_tiles_stand_in_for_faces():
    tiles = E.PhotoTiles(88)
    photo = sample_image()
    assert len(tiles) == (photo.shape[1] // 88) * (photo.shape[2] // 88)
    assert torch.equal(tiles[6], photo[:, 88:176, 88:176])  # row 1, column 1 of 5 columns
    assert tiles.names[6] == "photo_r1c1"
    data = E.open_test_data(None)
    assert data.label == "photo tiles" and len(data) == len(tiles)
    names, lr, hr = next(iter(eval_pairs(data, 4, batch_size=3)))
    assert names == tiles.names[:3] and lr.shape == (3, 3, 22, 22) and hr.shape == (3, 3, 88, 88)
    assert "STAND-IN" in E.FALLBACK_NOTE and E.CELEBA_ENV in E.FALLBACK_NOTE


def test_open_test_data_holds_out_the_last_faces_by_name(tmp_path):
    root = tiny_celeba(tmp_path / "celeba")
    data = E.open_test_data(root, holdout=2)
    assert data.dataset.names == ["000002.jpg", "000003.jpg"]


# ---------------------------------------------------------------------------- models


def test_lesson_config_is_the_laptop_preset_made_small():
    c = E.lesson_config("/data/celeba", "/w/vgg.pth", srresnet_steps=50)
    assert (c.n_blocks, c.channels, c.d_channels, c.d_dense) == (8, 32, 32, 256)  # laptop nets
    assert (c.content, c.phase, c.val_holdout) == ("vgg22", "both", E.HOLDOUT)
    assert (c.hr_crop, c.srresnet_steps, c.data, c.vgg_weights) == (
        32,
        50,
        "/data/celeba",
        "/w/vgg.pth",
    )
    synthetic = E.lesson_config(None, None)
    assert synthetic.data is None and synthetic.vgg_weights == "random"
    assert synthetic.val_holdout == 32  # synthetic validation images: a few are enough
    assert E.lesson_config("/d", None, holdout=48).val_holdout == 48
    assert E.run_folder(c) == E.run_folder(
        E.lesson_config("/data/celeba", "/w/vgg.pth", srresnet_steps=50)
    )
    assert E.run_folder(c) != E.run_folder(synthetic)


def test_get_models_prefers_shipped_checkpoints(tmp_path):
    G1 = save_generator(tmp_path / "ckpt" / "srresnet.pt", seed=1)
    G2 = save_generator(tmp_path / "ckpt" / "srgan.pt", seed=2)

    def must_not_train(*args, **kwargs):
        raise AssertionError("training with pretrained checkpoints present")

    models = E.get_models(
        E.lesson_config(None, None), tmp_path / "runs", tmp_path / "ckpt", "cpu",
        train_fn=must_not_train,
    )  # fmt: skip
    assert models.source == "pretrained"
    for name, G in (("SRResNet", G1), ("SRGAN", G2)):
        got = models.generators[name].state_dict()
        assert all(torch.equal(got[k], v) for k, v in G.state_dict().items())
    assert "SRGAN: pretrained" in models.describe() and "7 updates" in models.describe()


def test_get_models_trains_once_then_reuses_the_finished_run(tmp_path):
    config = E.lesson_config(
        None, None, srresnet_steps=2, srgan_steps=1, n_blocks=1, channels=8, d_channels=8,
        d_dense=16, batch_size=2, hr_crop=24, val_holdout=2, log_every=1,
    )  # fmt: skip
    calls = []

    def spy(cfg, out, **kwargs):
        from srgan_edu.train import train

        calls.append(out)
        return train(cfg, out, **kwargs)

    first = E.get_models(config, tmp_path / "runs", tmp_path / "none", "cpu", False, spy)
    assert first.source == "trained" and len(calls) == 1
    assert calls[0] == E.run_folder(config, tmp_path / "runs")
    assert set(first.generators) == {"SRResNet", "SRGAN"}
    assert any(r.get("phase") == "srgan" for r in first.history)
    again = E.get_models(config, tmp_path / "runs", tmp_path / "none", "cpu", False, spy)
    assert again.source == "reused" and len(calls) == 1
    for name in first.generators:
        a, b = first.generators[name].state_dict(), again.generators[name].state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a)
    # phase 2 started from phase 1 and changed it
    g1, g2 = first.generators["SRResNet"].state_dict(), first.generators["SRGAN"].state_dict()
    assert not all(torch.equal(g1[k], g2[k]) for k in g1)


# ---------------------------------------------------------------------------- looking closer


def result(method, values):
    p = torch.tensor(values, dtype=torch.float32)
    return EvalResult(method, 4, [f"im{i}" for i in range(len(values))], p, p / 40)


def test_psnr_gain_and_worst_images():
    results = {
        "bicubic": result("bicubic", [25, 26, 27, 28]),
        "SRGAN": result("SRGAN", [24, 27, 25, 28.5]),
    }
    assert E.psnr_gain(results, "SRGAN").tolist() == pytest.approx([-1, 1, -2, 0.5])
    worst = E.worst_images(results, "SRGAN", n=2)
    assert [(i, name) for i, name, _ in worst] == [(2, "im2"), (0, "im0")]
    assert worst[0][2] == pytest.approx(-2.0)
    results["other"] = EvalResult("other", 4, ["x"], torch.ones(1), torch.ones(1))
    with pytest.raises(ValueError, match="different images"):
        E.psnr_gain(results, "other")


def test_upscale_images_gives_the_pictures_the_table_measured():
    data = SyntheticImages(3, 32, seed=0)
    up = {"bicubic": bicubic_upscaler(4)}
    got = E.upscale_images(data, [2, 0], up)
    assert list(got) == ["LR", "bicubic", "HR"]
    assert got["LR"].shape == (2, 3, 8, 8) and got["HR"].shape == (2, 3, 32, 32)
    assert torch.equal(got["HR"][0], data[2]) and torch.equal(got["HR"][1], data[0])
    _, lr, _ = next(iter(eval_pairs(torch.stack([data[2], data[0]]), 4)))
    assert torch.equal(got["LR"], lr)
    assert torch.equal(got["bicubic"], bicubic_upscaler(4)(lr))


def test_region_psnr_is_the_y_psnr_of_the_cropped_region():
    g = torch.Generator().manual_seed(0)
    hr = torch.rand(2, 3, 40, 40, generator=g)
    sr = (hr + 0.05 * torch.randn(2, 3, 40, 40, generator=g)).clamp(0, 1)
    box = (8, 4, 12, 20)
    q = lambda x: torch.round(x * 255) / 255  # noqa: E731
    by_hand = psnr(rgb_to_y(q(sr)[..., 8:20, 4:24]), rgb_to_y(q(hr)[..., 8:20, 4:24]))
    assert torch.allclose(E.region_psnr(sr, hr, box), by_hand)
    sr2 = sr.clone()
    sr2[..., :8, :] = 0  # damage outside the box: no effect
    assert torch.allclose(E.region_psnr(sr2, hr, box), by_hand)
    with pytest.raises(ValueError, match="does not fit"):
        E.region_psnr(sr, hr, (30, 0, 20, 10))


def test_crops_figure_has_one_row_per_image_and_named_columns():
    hr = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    cols = {"LR": hr[:, :, ::4, ::4], "bicubic": hr, "HR": hr}
    fig = E.crops_figure(cols, box=(8, 4, 8, 16), zoom=2, row_labels=["a", "b", "c"], title="t")
    assert isinstance(fig, matplotlib.figure.Figure) and len(fig.axes) == 3
    labels = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert labels == ["LR", "bicubic", "HR"]
    assert fig.axes[1].get_ylabel() == "b"
    image = fig.axes[0].images[0].get_array()
    assert image.shape[0] == 16  # 8 HR rows enlarged 2x
    assert E.EYE_BOX[0] % 4 == 0 and all(v % 4 == 0 for v in E.EYE_BOX)


def kept_results(n=3):
    """bicubic and a fake 'model' (bicubic brightened) on n synthetic images, all kept."""
    data = torch.stack([SyntheticImages(n, 88, seed=2)[i] for i in range(n)])
    up = {
        "bicubic": bicubic_upscaler(4),
        "model": lambda lr: (bicubic_upscaler(4)(lr) + 0.05).clamp(0, 1),
    }
    return evaluate_upscalers(up, eval_pairs(data, 4, batch_size=2), 4, keep_examples=n)


def test_kept_columns_are_the_kept_pictures():
    results = kept_results()
    cols = E.kept_columns(results, [2, 0])
    assert list(cols) == ["LR", "bicubic", "model", "HR"]
    assert cols["LR"].shape == (2, 3, 22, 22) and cols["HR"].shape == (2, 3, 88, 88)
    assert torch.equal(cols["model"][0], results["model"].examples[2].sr)
    assert torch.equal(cols["HR"][1], results["bicubic"].examples[0].hr)
    with pytest.raises(IndexError, match="not kept"):
        E.kept_columns(results, [3])


def test_show_face_and_the_browser_widget(monkeypatch):
    results = kept_results()
    fig = E.show_face(results, 1, "whole face")
    assert isinstance(fig, matplotlib.figure.Figure)
    title = fig._suptitle.get_text()
    assert "image 1" in title and f"model {float(results['model'].psnr[1]):.2f} dB" in title
    eyes = E.show_face(results, 0, "eyes")
    assert eyes.axes[0].images[0].get_array().shape[0] == E.EYE_BOX[2] * 3  # eye rows, zoom 3
    with pytest.raises(ValueError, match="region"):
        E.show_face(results, 0, "nose")
    calls = []
    real = E.show_face
    monkeypatch.setattr(E, "show_face", lambda r, i, reg: calls.append((i, reg)) or real(r, i, reg))
    panel = E.face_browser(results)
    index, region = panel.children[:2]
    assert (index.min, index.max, index.value) == (0, 2, 0)
    assert list(region.options) == ["whole face", "eyes"]
    index.value = 2  # moving the slider re-runs show_face for image 2
    region.value = "eyes"
    assert calls == [(0, "whole face"), (2, "whole face"), (2, "eyes")]
    assert E.GLASSES and all(name.endswith(".jpg") for name in E.GLASSES)
