"""Tests for srgan_edu.vgg: layer table, forward pass vs. hand computation, weight loading.

No test touches the network: the torch hub cache is a tmp folder (TORCH_HOME), and the offline
case replaces torch.hub's download function with one that raises URLError.
"""

from __future__ import annotations

import socket
from pathlib import Path
from urllib.error import URLError

import pytest
import torch
import torch.nn.functional as F

from srgan_edu.imaging import load_image
from srgan_edu.vgg import (
    CAFFE_MEAN_RGB,
    CAFFE_TO_TORCHVISION,
    TORCHVISION_MEAN,
    TORCHVISION_STD,
    VGG19_FILENAME,
    VGG19_URL,
    WEIGHTS_ENV,
    VGGFeatures,
    VGGWeightsError,
    VGGWeightsUnavailable,
    build_vgg19_features,
    detect_preprocessing,
    imagenet_weights_path,
    vgg19_layer,
    vgg19_layers,
)

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CAFFE_FILE = DATA / "vgg19" / "vgg19_caffe_rgb_conv1_1-conv3_4.pth"
CELEBA = DATA / "celeba_89x109" / "img_align_celeba"

# torchvision's vgg19().features: the conv modules' indices and widths (configuration "E").
CONV_INDEX = {
    "conv1_1": 0, "conv1_2": 2, "conv2_1": 5, "conv2_2": 7,
    "conv3_1": 10, "conv3_2": 12, "conv3_3": 14, "conv3_4": 16,
    "conv4_1": 19, "conv4_2": 21, "conv4_3": 23, "conv4_4": 25,
    "conv5_1": 28, "conv5_2": 30, "conv5_3": 32, "conv5_4": 34,
}  # fmt: skip
WIDTHS = [64, 64, 128, 128] + [256] * 4 + [512] * 8


def real_shaped_state(last_conv: int = 34, seed: int = 0) -> dict[str, torch.Tensor]:
    """A state dict with torchvision's vgg19 key names and shapes up to ``features.last_conv``."""
    g = torch.Generator().manual_seed(seed)
    state, c_in = {}, 3
    for (_, i), width in zip(CONV_INDEX.items(), WIDTHS, strict=True):
        if i > last_conv:
            break
        state[f"features.{i}.weight"] = torch.randn(width, c_in, 3, 3, generator=g) * 0.05
        state[f"features.{i}.bias"] = torch.randn(width, generator=g) * 0.1
        c_in = width
    return state


@pytest.fixture(scope="module")
def torch_home(tmp_path_factory) -> Path:
    """A TORCH_HOME whose hub cache holds a full-size vgg19 state dict under the official name.

    Features have their real shapes (20M values); the classifier keys are real names with small
    stand-in tensors (the real ones are 120M values and are ignored by the loader anyway).
    """
    home = tmp_path_factory.mktemp("torch_home")
    state = real_shaped_state()
    for j in (0, 3, 6):
        state[f"classifier.{j}.weight"] = torch.zeros(4, 4)
        state[f"classifier.{j}.bias"] = torch.zeros(4)
    checkpoints = home / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    torch.save(state, checkpoints / VGG19_FILENAME)
    return home


@pytest.fixture
def no_download(monkeypatch):
    """Make any download attempt fail the way it fails offline, and count the attempts."""
    calls = []

    def offline(url, dst, *args, **kwargs):
        calls.append((url, dst))
        raise URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    return calls


# ---- the layer table --------------------------------------------------------------------------


def test_layer_table_matches_torchvision_indices():
    layers = vgg19_layers()
    assert len(layers) == 37
    assert {layer.name: layer.index for layer in layers if layer.kind == "conv"} == CONV_INDEX
    assert [layer.channels for layer in layers if layer.kind == "conv"] == WIDTHS
    named = {layer.name: layer for layer in layers}
    assert named["relu2_2"].index == 8 and named["relu2_2"].channels == 128
    assert named["relu5_4"].index == 35 and named["relu5_4"].stride == 16
    assert named["pool5"].index == 36 and named["pool5"].stride == 32
    assert vgg19_layer("vgg22") == named["relu2_2"] and vgg19_layer("VGG54") == named["relu5_4"]


def test_unknown_layer_names_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown VGG19 layer 'relu5_5'.*Did you mean"):
        vgg19_layer("relu5_5")


def test_full_features_have_torchvision_keys_shapes_and_size():
    with torch.device("meta"):  # shapes without filling 20M values
        features = build_vgg19_features()
    assert len(features) == 37
    state = {f"features.{k}": v for k, v in features.state_dict().items()}
    expected = real_shaped_state()
    assert list(state) == list(expected)  # features.0.weight ... features.34.bias, in order
    assert all(state[k].shape == expected[k].shape for k in state)
    assert sum(p.numel() for p in features.parameters()) == 20_024_384  # torchvision's figure


# ---- forward pass, frozen, eval ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("layer", "shape"),
    [("relu1_2", (2, 64, 32, 32)), ("pool1", (2, 64, 16, 16)), ("relu2_2", (2, 128, 16, 16))],
)
def test_output_shapes(layer, shape):
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    assert VGGFeatures(layer, weights=None)(x).shape == shape


def test_relu2_2_equals_hand_computation_torchvision_convention():
    vgg = VGGFeatures("relu2_2", weights=None, seed=3)
    assert vgg.preprocessing == "torchvision"
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    mean = torch.tensor(TORCHVISION_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(TORCHVISION_STD).view(1, 3, 1, 1)
    h = (x - mean) / std
    w = {i: (vgg.features[i].weight, vgg.features[i].bias) for i in (0, 2, 5, 7)}
    h = F.relu(F.conv2d(h, *w[0], padding=1))
    h = F.relu(F.conv2d(h, *w[2], padding=1))
    h = F.max_pool2d(h, 2)
    h = F.relu(F.conv2d(h, *w[5], padding=1))
    h = F.relu(F.conv2d(h, *w[7], padding=1))
    torch.testing.assert_close(vgg(x), h, rtol=1e-5, atol=1e-5)


def test_before_activation_variant_and_rescale():
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    conv = VGGFeatures("conv2_2", weights=None, seed=5)
    relu = VGGFeatures("relu2_2", weights=None, seed=5)
    before = conv(x)
    assert (before < 0).any()  # really before the ReLU
    torch.testing.assert_close(relu(x), F.relu(before))
    scaled = VGGFeatures("relu2_2", weights=None, seed=5, rescale=1 / 12.75)
    torch.testing.assert_close(scaled(x), relu(x) / 12.75)


def test_frozen_always_eval_and_gradient_reaches_input():
    vgg = VGGFeatures("relu2_2", weights=None)
    assert not any(p.requires_grad for p in vgg.parameters())
    vgg.train()
    assert not vgg.training and not any(m.training for m in vgg.modules())
    wrapper = torch.nn.Sequential(vgg)
    wrapper.train()  # a parent's train() must not switch the VGG back
    assert not vgg.training
    x = torch.rand(1, 3, 16, 16, requires_grad=True)
    vgg(x).square().mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in vgg.parameters())


def test_state_dict_keys_are_torchvision_keys_only():
    vgg = VGGFeatures("relu2_2", weights=None)
    assert list(vgg.state_dict()) == [
        f"features.{i}.{p}" for i in (0, 2, 5, 7) for p in ("weight", "bias")
    ]


def test_random_weights_are_seeded():
    a, b, c = (VGGFeatures("relu1_2", weights=None, seed=s) for s in (7, 7, 8))
    assert torch.equal(a.features[2].weight, b.features[2].weight)
    assert not torch.equal(a.features[2].weight, c.features[2].weight)


def test_wrong_input_shape_is_explained():
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\) in \[0, 1\].*\(3, 16, 16\)"):
        VGGFeatures("relu1_1", weights=None)(torch.rand(3, 16, 16))


# ---- loading from a path ----------------------------------------------------------------------


def test_truncated_state_dict_loads_and_deeper_layers_are_refused(tmp_path):
    state = real_shaped_state(last_conv=7)  # conv1_1 .. conv2_2, enough for VGG22
    path = tmp_path / "vgg19_first_layers.pth"
    torch.save(state, path)
    vgg = VGGFeatures("relu2_2", weights=path)
    assert vgg.preprocessing == "torchvision"
    for key, value in state.items():
        assert torch.equal(vgg.state_dict()[key], value)
    with pytest.raises(VGGWeightsError) as err:
        VGGFeatures("relu5_4", weights=path)
    message = str(err.value)
    assert "conv3_1, conv3_2" in message and "conv5_4" in message and VGG19_URL in message
    assert "conv2_2," not in message  # only the missing layers are named


def test_bad_state_dicts_are_explained(tmp_path):
    state = real_shaped_state(last_conv=7)
    wrapped = tmp_path / "checkpoint.pth"
    torch.save({"model." + k: v for k, v in state.items()}, wrapped)
    with pytest.raises(VGGWeightsError, match=r"not VGG19 layers: \['model.features.0.weight'"):
        VGGFeatures("relu2_2", weights=wrapped)

    bad_shape = dict(state, **{"features.5.weight": torch.zeros(128, 32, 3, 3)})
    torch.save(bad_shape, tmp_path / "bad_shape.pth")
    with pytest.raises(VGGWeightsError, match=r"features.5.weight \(conv2_1\).*\(128, 64, 3, 3\)"):
        VGGFeatures("relu2_2", weights=tmp_path / "bad_shape.pth")

    torch.save([torch.zeros(3)], tmp_path / "a_list.pth")
    with pytest.raises(VGGWeightsError, match="not a state dict"):
        VGGFeatures("relu2_2", weights=tmp_path / "a_list.pth")

    (tmp_path / "truncated.pth").write_bytes(b"PK\x03\x04 half a download")
    with pytest.raises(VGGWeightsError, match="cannot read VGG19 weights"):
        VGGFeatures("relu2_2", weights=tmp_path / "truncated.pth")

    with pytest.raises(VGGWeightsUnavailable, match=r"not found: .*nowhere\.pth"):
        VGGFeatures("relu2_2", weights=tmp_path / "nowhere.pth")


def test_preprocessing_detection_and_choice(tmp_path, monkeypatch):
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    assert detect_preprocessing(None) == "torchvision"
    assert detect_preprocessing("imagenet") == "torchvision"
    assert detect_preprocessing(tmp_path / "vgg19_Caffe_rgb.pth") == "caffe"
    assert detect_preprocessing(tmp_path / "caffe" / "vgg19.pth") == "torchvision"  # name only
    monkeypatch.setenv(WEIGHTS_ENV, str(tmp_path / "my_caffe_vgg.pth"))
    assert detect_preprocessing("imagenet") == "caffe"
    vgg = VGGFeatures("relu1_1", weights=None, preprocessing="caffe")
    x = torch.rand(1, 3, 4, 4)
    expected = x * 255.0 - torch.tensor(CAFFE_MEAN_RGB).view(1, 3, 1, 1)
    torch.testing.assert_close(vgg.normalize(x), expected)
    with pytest.raises(ValueError, match="preprocessing must be"):
        VGGFeatures("relu1_1", weights=None, preprocessing="keras")


# ---- "imagenet": env var, torch hub cache, offline error --------------------------------------


def test_imagenet_weights_come_from_the_hub_cache_without_download(
    torch_home, monkeypatch, no_download
):
    monkeypatch.setenv("TORCH_HOME", str(torch_home))
    cached = torch_home / "hub" / "checkpoints" / VGG19_FILENAME
    assert imagenet_weights_path() == cached
    vgg = VGGFeatures("relu5_4", weights="imagenet", progress=False)
    assert no_download == []  # torch.hub found the file and did not try to download it
    assert vgg.source == str(cached) and vgg.preprocessing == "torchvision"
    saved = torch.load(cached, weights_only=True)
    for key, value in vgg.state_dict().items():
        assert torch.equal(value, saved[key]), key
    assert VGGFeatures("relu1_1", weights="imagenet").source == str(cached)  # truncated use


def test_offline_without_weights_says_what_to_download_and_where(
    tmp_path, monkeypatch, no_download
):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_home"))
    timeout_before = socket.getdefaulttimeout()
    with pytest.raises(VGGWeightsUnavailable) as err:
        VGGFeatures("relu5_4", weights="imagenet", progress=False)
    expected_path = tmp_path / "empty_home" / "hub" / "checkpoints" / VGG19_FILENAME
    assert len(no_download) == 1 and no_download[0] == (VGG19_URL, str(expected_path))
    message = str(err.value)
    assert VGG19_URL in message and str(expected_path) in message and WEIGHTS_ENV in message
    assert "URLError" in message and "weights=None" in message
    assert isinstance(err.value.__cause__, URLError)
    assert socket.getdefaulttimeout() == timeout_before  # the download timeout was restored
    assert not expected_path.exists()


def test_env_var_takes_precedence_over_cache_and_download(tmp_path, monkeypatch, no_download):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_home"))
    state = real_shaped_state(last_conv=7, seed=11)
    local = tmp_path / "my_vgg19_caffe.pth"
    torch.save(state, local)
    monkeypatch.setenv(WEIGHTS_ENV, str(local))
    vgg = VGGFeatures("relu2_2", weights="imagenet")
    assert no_download == [] and vgg.source == str(local)
    assert vgg.preprocessing == "caffe"  # judged by the env file's name
    assert torch.equal(vgg.features[7].weight, state["features.7.weight"])
    monkeypatch.setenv(WEIGHTS_ENV, str(tmp_path / "missing.pth"))
    with pytest.raises(VGGWeightsUnavailable, match=r"missing\.pth"):
        VGGFeatures("relu2_2", weights="imagenet")


def test_corrupt_cached_file_is_reported_not_redownloaded(tmp_path, monkeypatch, no_download):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    cached = tmp_path / "hub" / "checkpoints" / VGG19_FILENAME
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"\x00" * 100)
    with pytest.raises(VGGWeightsError, match=r"(?s)cached VGG19 weights .*Delete the file") as err:
        VGGFeatures("relu2_2", weights="imagenet")
    assert not isinstance(err.value, VGGWeightsUnavailable) and no_download == []


# ---- the real (partial, Caffe) weights in ../shared/data/vgg19 --------------------------------


def _spatial_smoothness(weight: torch.Tensor) -> float:
    """Mean correlation of horizontally adjacent kernel taps (trained filters: high; random: ~0)."""
    a = weight[..., :-1].flatten(1)
    b = weight[..., 1:].flatten(1)
    a, b = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
    return float(((a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1))).mean())


@pytest.mark.skipif(not CAFFE_FILE.is_file(), reason="../shared/data/vgg19 not available")
def test_real_caffe_weights():
    vgg = VGGFeatures("relu2_2", weights=CAFFE_FILE)
    assert vgg.preprocessing == "caffe"  # detected from the file name
    conv1_1 = vgg.features[0]
    # Statistics stated in MANIFEST.md for block1_conv1: kernel std 0.191, bias mean 0.468.
    assert round(float(conv1_1.weight.std()), 3) == 0.191
    assert round(float(conv1_1.bias.mean()), 3) == 0.468
    # Trained first-layer filters are smooth edge/colour detectors; random ones are not.
    random = VGGFeatures("relu2_2", weights=None)
    assert _spatial_smoothness(conv1_1.weight) > 0.6
    assert abs(_spatial_smoothness(random.features[0].weight)) < 0.1

    # Caffe preprocessing and conv1_1 by hand.
    x = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    by_hand = x * 255.0 - torch.tensor([123.68, 116.779, 103.939]).view(1, 3, 1, 1)
    torch.testing.assert_close(vgg.normalize(x), by_hand)
    first = VGGFeatures("conv1_1", weights=CAFFE_FILE)
    expected = F.conv2d(by_hand, conv1_1.weight, conv1_1.bias, padding=1)
    torch.testing.assert_close(first(x) * CAFFE_TO_TORCHVISION, expected, rtol=1e-5, atol=1e-4)

    with pytest.raises(VGGWeightsError, match=r"conv4_1, .*conv5_4.*vgg19-dcbe5ffd"):
        VGGFeatures("relu5_4", weights=CAFFE_FILE)

    if not (CELEBA / "000002.jpg").is_file():
        pytest.skip("../shared/data/celeba_89x109 not available")
    faces = torch.stack([load_image(CELEBA / f"00000{i}.jpg") for i in range(1, 5)])
    faces = faces[:, :, 26:90, 12:76]  # (4, 3, 64, 64): the face, without most background
    kernel = torch.tensor([1.0, 2.0, 1.0])
    kernel = (kernel[:, None] * kernel[None, :] / 16).expand(3, 1, 3, 3)
    blurred = F.conv2d(F.pad(faces, (1, 1, 1, 1), mode="replicate"), kernel, groups=3)
    pixel_mse = (faces - blurred).square().mean()
    noisy = faces + pixel_mse.sqrt() * torch.randn(
        faces.shape, generator=torch.Generator().manual_seed(0)
    )

    def sensitivity(net: VGGFeatures) -> torch.Tensor:
        """Feature distance to the blurred copy over the distance to an equal-MSE noisy copy."""
        phi = net(faces)  # (4, 128, 32, 32)
        assert phi.shape == (4, 128, 32, 32) and torch.isfinite(phi).all()
        to_blur = (phi - net(blurred)).square().flatten(1).mean(1)
        to_noise = (phi - net(noisy)).square().flatten(1).mean(1)
        to_other = (phi - phi.roll(1, dims=0)).square().flatten(1).mean(1)
        assert (to_blur < to_other).all()  # a blurred face is nearer than another face
        return (to_blur / to_noise).mean()

    # ImageNet training makes the features care about fine detail: losing it by blurring costs
    # more, relative to noise of equal pixel MSE, than in an untrained VGG (2.4 vs. 1.3 here).
    assert sensitivity(vgg) > 1.5 * sensitivity(random)


def test_caffe_features_are_put_on_torchvision_scale():
    """Caffe inputs are ~57.6x torchvision's; the output is divided by that, then rescaled."""
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    raw = VGGFeatures("relu1_2", weights=None, preprocessing="caffe")
    scaled = VGGFeatures("relu1_2", weights=None, preprocessing="caffe", rescale=1 / 12.75)
    by_hand = raw.features(raw.normalize(x))
    assert CAFFE_TO_TORCHVISION == pytest.approx(255 * 0.226, rel=1e-3)
    torch.testing.assert_close(raw(x), by_hand / CAFFE_TO_TORCHVISION)
    torch.testing.assert_close(scaled(x), by_hand / CAFFE_TO_TORCHVISION / 12.75)
    tv = VGGFeatures("relu1_2", weights=None, preprocessing="torchvision", rescale=0.5)
    torch.testing.assert_close(tv(x), tv.features(tv.normalize(x)) * 0.5)
