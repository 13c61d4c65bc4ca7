"""Tests for srgan_edu.teach.quality: lesson 06's distortions, MSE search, SSIM terms, VGG helpers
and widget callback. Small images and tiny VGG cuts keep them fast."""

from __future__ import annotations

import io
import math

import matplotlib.figure
import numpy as np
import pytest
import torch
from PIL import Image

from srgan_edu.data import sample_image
from srgan_edu.imaging import to_pil, unit_to_signed
from srgan_edu.losses import ContentLoss
from srgan_edu.metrics import mse, psnr, ssim, ssim_map
from srgan_edu.teach import quality as Q
from srgan_edu.vgg import WEIGHTS_ENV, VGGFeatures

pytestmark = pytest.mark.usefixtures("close_figures")


@pytest.fixture(scope="module")
def patch() -> torch.Tensor:
    """A 64 x 64 crop of the sample photo around an eye: edges, texture and flat skin."""
    return sample_image()[:, 150:214, 170:234].contiguous()


@pytest.fixture
def no_full_weights(monkeypatch, tmp_path):
    """No $SRGAN_EDU_VGG19_WEIGHTS and an empty torch.hub cache: only local candidates remain."""
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))


def _partial_state(last_conv: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """A VGG19 state dict with torchvision's keys and shapes up to features.``last_conv``."""
    generator = torch.Generator().manual_seed(seed)
    widths = {0: (64, 3), 2: (64, 64), 5: (128, 64), 7: (128, 128)}
    state = {}
    for i, (out, inp) in widths.items():
        if i <= last_conv:
            state[f"features.{i}.weight"] = torch.randn(out, inp, 3, 3, generator=generator) * 0.05
            state[f"features.{i}.bias"] = torch.zeros(out)
    return state


# ---------------------------------------------------------------------------- distortions


@pytest.mark.parametrize("kind", list(Q.DISTORTIONS))
def test_weakest_setting_leaves_the_image_almost_unchanged(patch, kind):
    spec = Q.DISTORTIONS[kind]
    out = Q.distort(patch, kind, spec.weakest())
    assert out.shape == patch.shape and out.dtype == patch.dtype
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    # JPEG at quality 100 still rounds; everything else is exact.
    assert float(mse(out, patch)) < (1e-4 if kind == "jpeg" else 1e-12)


@pytest.mark.parametrize("quality", [1, 8, 50, 75, 100])
def test_jpeg_at_whole_quality_is_exactly_pillows_jpeg(patch, quality):
    buffer = io.BytesIO()
    to_pil(patch).save(buffer, "JPEG", quality=quality)
    buffer.seek(0)
    expected = np.asarray(Image.open(buffer).convert("RGB"), dtype=np.float32) / 255.0
    got = Q.jpeg(patch, quality).permute(1, 2, 0).numpy()
    np.testing.assert_array_equal(got, expected)


def test_jpeg_tables_at_a_fraction_lie_between_the_whole_qualities():
    low, mid, high = Q.jpeg_tables(8), Q.jpeg_tables(8.5), Q.jpeg_tables(9)
    for a, b, c in zip(low, mid, high, strict=True):
        assert all(x >= y >= z for x, y, z in zip(a, b, c, strict=True))
    assert Q.jpeg_tables(50)[0] == list(Q.JPEG_LUMA)  # quality 50 = the standard's table
    with pytest.raises(ValueError, match=r"\[1, 100\]"):
        Q.jpeg_tables(0.5)


def test_whole_pixel_shift_moves_the_picture_exactly(patch):
    moved = Q.shift(patch, 2)
    torch.testing.assert_close(moved[:, :, 2:], patch[:, :, :-2], atol=1e-5, rtol=0)
    down = Q.shift(patch, 0, dy=1)
    torch.testing.assert_close(down[:, 1:, :], patch[:, :-1, :], atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="too large"):
        Q.shift(patch[:, :16, :16], 9)


def test_contrast_stretch_keeps_the_mean_and_scales_differences():
    x = torch.linspace(0.3, 0.7, 3 * 16 * 16).reshape(3, 16, 16)
    y = Q.contrast_stretch(x, 1.5)
    torch.testing.assert_close(y.mean(), x.mean())
    torch.testing.assert_close(y - y.mean(), 1.5 * (x - x.mean()))


def test_noise_is_seeded_and_scales_one_pattern(patch):
    mid = torch.full_like(patch, 0.5)  # no clipping at these strengths
    a, b = Q.add_noise(mid, 0.01, seed=3), Q.add_noise(mid, 0.02, seed=3)
    torch.testing.assert_close(b - 0.5, 2 * (a - 0.5))
    assert not torch.equal(a, Q.add_noise(mid, 0.01, seed=4))


def test_unknown_distortion_and_bad_image_say_what_is_expected(patch):
    with pytest.raises(ValueError, match="choose one of"):
        Q.distort(patch, "sharpen", 1.0)
    with pytest.raises(ValueError, match=r"\(3, H, W\)"):
        Q.blur(patch[None], 1.0)


# ---------------------------------------------------------------------------- the MSE search


@pytest.mark.parametrize("kind", list(Q.DISTORTIONS))
@pytest.mark.parametrize("psnr_db", [24.0, 32.0])
def test_match_mse_hits_the_target_for_every_distortion(patch, kind, psnr_db):
    target = Q.mse_for_psnr(psnr_db)
    m = Q.match_mse(patch, kind, target, tol=0.005)
    assert m.reached and m.rel_error <= 0.005
    # the reported MSE is the image's, and PSNR follows from it
    assert math.isclose(m.mse, float(mse(m.image, patch)), rel_tol=1e-6)
    assert abs(float(psnr(m.image, patch)) - psnr_db) < 0.03
    spec = Q.DISTORTIONS[kind]
    assert spec.low <= m.strength <= spec.high
    torch.testing.assert_close(Q.distort(patch, kind, m.strength), m.image)
    assert m.tries <= 45


def test_match_all_keeps_the_lessons_order(patch):
    out = Q.match_all(patch, Q.mse_for_psnr(28), kinds=["shift", "blur"])
    assert list(out) == ["shift", "blur"]


def test_unreachable_target_raises_or_reports_the_closest(patch):
    target = Q.mse_for_psnr(8.0)  # far beyond what 4 pixels of shift can do
    with pytest.raises(ValueError, match="cannot reach MSE"):
        Q.match_mse(patch, "shift", target)
    m = Q.match_mse(patch, "shift", target, strict=False)
    assert not m.reached and m.strength == Q.DISTORTIONS["shift"].high
    with pytest.raises(ValueError, match="> 0"):
        Q.match_mse(patch, "blur", 0.0)


def test_mse_for_psnr_inverts_the_psnr_formula():
    assert math.isclose(Q.mse_for_psnr(20), 0.01)
    assert math.isclose(Q.mse_for_psnr(48.13, data_range=255), 255**2 * 10 ** (-4.813))


# ---------------------------------------------------------------------------- SSIM terms


def test_ssim_terms_multiply_to_the_librarys_ssim_map(patch):
    y = Q.blur(patch, 1.2)
    terms = Q.ssim_terms(y, patch)
    lib = ssim_map(y.double(), patch.double())
    assert terms["ssim"].shape == lib.shape == (3, 54, 54)
    torch.testing.assert_close(terms["ssim"], lib, atol=1e-10, rtol=0)
    torch.testing.assert_close(
        terms["luminance"] * terms["contrast"] * terms["structure"], terms["ssim"]
    )
    assert math.isclose(float(terms["ssim"].mean()), float(ssim(y, patch)), abs_tol=1e-5)
    batch = Q.ssim_terms(y[None], patch[None])
    torch.testing.assert_close(batch["ssim"][0], terms["ssim"])


def test_ssim_terms_see_what_each_distortion_changes(patch):
    same = Q.ssim_terms(patch, patch)
    for name, tmap in same.items():
        torch.testing.assert_close(tmap, torch.ones_like(tmap), msg=name)
    # A contrast stretch without clipping keeps the structure term at 1.
    mid = 0.5 + 0.2 * (patch - patch.mean())
    stretched = Q.ssim_terms(Q.contrast_stretch(mid, 1.5), mid)
    assert float(stretched["structure"].min()) > 0.999
    assert float(stretched["contrast"].mean()) < 0.99


# ---------------------------------------------------------------------------- VGG helpers


def test_receptive_fields_of_the_papers_layers():
    assert Q.receptive_field("conv1_1") == 3
    assert Q.receptive_field("vgg22") == 14
    assert Q.receptive_field("relu3_4") == 48
    assert Q.receptive_field("relu5_4") == 252


def test_feature_distance_is_the_content_loss_per_image(patch):
    loss = ContentLoss("relu1_2", None, seed=1)
    images = torch.stack([Q.blur(patch, 1.0), Q.add_noise(patch, 0.05)])
    d = Q.feature_distance(loss.vgg, patch, images)
    assert d.shape == (2,)
    for i in range(2):
        expected = loss(unit_to_signed(images[i : i + 1]), unit_to_signed(patch[None]))
        assert math.isclose(float(d[i]), float(expected), rel_tol=1e-5)
    maps = Q.feature_distance_maps(loss.vgg, patch, images)
    assert maps.shape == (2, 64, 64)
    torch.testing.assert_close(maps.flatten(1).mean(1), d)


def test_without_any_real_weights_random_ones_stand_in_and_the_note_says_what_to_download(
    no_full_weights, tmp_path
):
    loss, choice = Q.load_content_loss("relu2_2", shared_dir=tmp_path / "absent")
    assert isinstance(loss, ContentLoss) and not choice.real and choice.weights is None
    assert choice.label == "random" and "RANDOM" in choice.describe()
    assert "Download" in choice.advice and "vgg19-dcbe5ffd.pth" in choice.advice
    assert any(note.startswith("full ImageNet VGG19: ") for note in choice.notes)


def test_a_missing_file_named_by_the_environment_still_gives_advice(monkeypatch, tmp_path):
    monkeypatch.setenv(WEIGHTS_ENV, str(tmp_path / "nowhere.pth"))
    _, choice = Q.load_content_loss("relu1_1", shared_dir=tmp_path / "absent")
    assert not choice.real and "nowhere.pth" in choice.advice and "Download" in choice.advice


def test_a_partial_copy_serves_the_layers_it_covers_only(no_full_weights, tmp_path):
    torch.save(_partial_state(last_conv=7), tmp_path / "fake_caffe_conv1_1-conv2_2.pth")
    loss, choice = Q.load_content_loss("relu2_2", shared_dir=tmp_path)
    assert choice.real and choice.label == "ImageNet"
    assert loss.vgg.preprocessing == "caffe"  # from the file name, as the library detects it
    assert "fake_caffe" in choice.source and "caffe" in choice.describe()
    torch.testing.assert_close(loss.vgg.features[7].weight, _partial_state(7)["features.7.weight"])

    deep, deep_choice = Q.load_content_loss("relu3_1", shared_dir=tmp_path)
    assert not deep_choice.real and deep.vgg.preprocessing == "torchvision"
    assert any("conv3_1" in note for note in deep_choice.notes)


def test_full_weights_named_by_the_environment_come_first(monkeypatch, tmp_path):
    path = tmp_path / "my_vgg19.pth"
    torch.save(_partial_state(last_conv=2, seed=5), path)
    monkeypatch.setenv(WEIGHTS_ENV, str(path))
    loss, choice = Q.load_content_loss("relu1_2", shared_dir=tmp_path / "absent")
    assert choice.real and choice.weights == "imagenet" and str(path) in choice.source
    torch.testing.assert_close(
        loss.vgg.features[2].weight, _partial_state(2, 5)["features.2.weight"]
    )


@pytest.mark.skipif(
    not (Q.shared_vgg_dir() / "vgg19_caffe_rgb_conv1_1-conv3_4.pth").is_file(),
    reason="the course's shared partial VGG19 copy is not on this machine",
)
def test_the_shared_partial_copy_gives_real_vgg22_and_random_vgg54(no_full_weights):
    _, c22 = Q.load_content_loss("relu2_2")
    _, c54 = Q.load_content_loss("relu5_4")
    assert c22.real and "conv1_1-conv3_4" in c22.source
    assert not c54.real and any("conv4_1" in note for note in c54.notes)


# ---------------------------------------------------------------------------- pictures, sweep


def test_pictures_have_one_panel_per_measure_and_distortion(patch):
    matched = Q.match_all(patch, Q.mse_for_psnr(26), kinds=["blur", "noise"])
    vgg = VGGFeatures("relu1_2", None)
    images = torch.stack([m.image for m in matched.values()])
    maps = {"tiny VGG": Q.feature_distance_maps(vgg, patch, images)}
    fig = Q.plot_damage_maps(patch, matched, maps)
    assert len(fig.axes) == 2 * 3
    assert len(Q.plot_ssim_terms(patch, matched).axes) == 2 * 4
    assert len(Q.plot_images({"a": patch, "b": images[0]}, columns=2).axes) == 2
    assert len(Q.plot_feature_maps(vgg, patch, n=3).axes) == 4
    with pytest.raises(ValueError, match="maps for 2 distortions"):
        Q.plot_damage_maps(patch, matched, {"bad": maps["tiny VGG"][:1]})


def test_quality_sweep_marks_unreachable_levels_as_nan(patch):
    vgg = VGGFeatures("relu1_2", None)
    result = Q.quality_sweep(
        patch, [8.0, 30.0], {"v": vgg}, kinds=["shift", "noise"], progress=False
    )
    assert set(result) == {"shift", "noise"}
    assert math.isnan(result["shift"]["ssim"][0]) and not math.isnan(result["noise"]["ssim"][0])
    assert abs(result["shift"]["psnr"][1] - 30.0) < 0.05 and result["noise"]["v"][1] > 0
    noisy = Q.match_mse(patch, "noise", Q.mse_for_psnr(30.0)).image
    assert math.isclose(result["noise"]["ssim"][1], float(ssim(noisy, patch)), abs_tol=1e-5)
    assert isinstance(Q.plot_sweep(result), matplotlib.figure.Figure)


# ---------------------------------------------------------------------------- the widget


@pytest.fixture(scope="module")
def tiny_losses():
    loss = ContentLoss("relu1_2", None, seed=0)
    choice = Q.VGGChoice("relu1_2", None, "random He-normal weights, seed 0", False)
    return {"VGG12": (loss, choice)}


@pytest.mark.parametrize("kind", list(Q.DISTORTIONS))
@pytest.mark.parametrize("psnr_db", [15.0, 45.0])
def test_widget_callback_at_the_ends_of_the_slider(patch, tiny_losses, kind, psnr_db):
    fig, numbers = Q.explore_distortion(patch, kind, psnr_db, tiny_losses)
    assert isinstance(fig, matplotlib.figure.Figure) and len(fig.axes) == 4
    assert set(numbers) == {"strength", "mse", "psnr", "ssim", "VGG12"}
    assert all(math.isfinite(v) for v in numbers.values())
    title = fig._suptitle.get_text()
    assert "VGG12" in title and "random weights" in title
    reachable = abs(numbers["psnr"] - psnr_db) < 0.05
    assert reachable != ("cannot reach" in title)


def test_widget_callback_without_vgg_and_the_widget(patch):
    fig, numbers = Q.explore_distortion(patch, "noise", 30.0)
    assert set(numbers) == {"strength", "mse", "psnr", "ssim"}
    noisy = Q.add_noise(patch, numbers["strength"])
    assert math.isclose(numbers["ssim"], float(ssim(noisy, patch)), abs_tol=1e-5)
    assert abs(numbers["psnr"] - 30.0) < 0.05
    w = Q.quality_widget(patch, None, psnr_db=30.0)
    labels = {c.description for c in w.children if hasattr(c, "description")}
    assert {"distortion", "target PSNR [dB]", "Measure"} <= labels
    assert not w.out.outputs  # nothing measured before the button is pressed
