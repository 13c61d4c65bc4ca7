"""Tests for srgan_edu.upscale: tiled == untiled, the receptive field, file kinds, the CLI."""

from __future__ import annotations

import errno
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from srgan_edu.checkpoint import network_entry, save_checkpoint
from srgan_edu.degrade import bicubic_up
from srgan_edu.imaging import load_image, load_image_parts
from srgan_edu.models import SRResNet
from srgan_edu.upscale import (
    CPU_MEMORY_FORMAT,
    DEFAULT_TILE,
    auto_tile,
    bicubic_tensor,
    main,
    plan_outputs,
    receptive_radius,
    tile_spans,
    upscale_file,
    upscale_tensor,
)

ROOT = Path(__file__).resolve().parents[1]
LUMA = torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1)  # ITU-R BT.601, as Pillow's "L"
H, W = 20, 28  # LR test images: not square, not a multiple of any tile size used below


def tiny(scale: int = 4, upsampler: str = "subpixel", channels: int = 8) -> SRResNet:
    return SRResNet(scale=scale, n_blocks=2, channels=channels, upsampler=upsampler, seed=0).eval()


@pytest.fixture(scope="module")
def gen() -> SRResNet:
    return tiny()


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory, gen) -> Path:
    path = tmp_path_factory.mktemp("ckpt") / "g.pt"
    return save_checkpoint({"generator": network_entry(gen)}, path)


def rand_lr(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


def rand_u8(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def as_float(path: Path) -> np.ndarray:
    """Pixels of an image file as stored, in [0, 1] (8 or 16 bits)."""
    with Image.open(path) as img:
        arr = np.asarray(img)
    return arr.astype(np.float64) / (65535.0 if arr.dtype == np.uint16 else 255.0)


# ----------------------------------------------------------------------------------------------
# receptive field and tiling
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scale", "upsampler"), [(4, "subpixel"), (2, "subpixel"), (3, "nearest"), (8, "nearest")]
)
def test_receptive_radius_matches_autograd(scale, upsampler):
    # The LR pixels that one LR pixel's s x s output block depends on are exactly those with a
    # nonzero gradient; their farthest distance must be the radius computed from the arch.
    g = tiny(scale, upsampler, channels=4)
    n, a = 36, 18
    x = rand_lr(1, 3, n, n).requires_grad_(True)
    g(x)[..., scale * a : scale * (a + 1), scale * a : scale * (a + 1)].sum().backward()
    rows = torch.nonzero(x.grad.abs().sum((0, 1, 3))).flatten()
    cols = torch.nonzero(x.grad.abs().sum((0, 1, 2))).flatten()
    reach = max(a - rows.min(), rows.max() - a, a - cols.min(), cols.max() - a).item()
    assert receptive_radius(g) == reach


def test_receptive_radius_of_paper_generator():
    # 4 (head 9x9) + 2 * 16 (blocks) + 1 (fuse) + 1 + 1 (two x2 sub-pixel stages) + 1 (tail)
    assert receptive_radius(SRResNet().arch()) == 40


def test_tile_spans_cover_the_image_once():
    spans = tile_spans(20, 7, 3)
    assert spans == [(0, 7, 0, 10), (7, 14, 4, 17), (14, 20, 11, 20)]
    assert tile_spans(5, 8, 3) == [(0, 5, 0, 5)]


@pytest.mark.parametrize("tile", [6, 9, 16])
def test_tiled_equals_untiled(gen, tile):
    lr = rand_lr(2, 3, H, W)  # a batch of two; no tile size divides both sides
    full = upscale_tensor(gen, lr)
    tiled = upscale_tensor(gen, lr, tile=tile)  # default overlap: the receptive radius
    assert tiled.shape == (2, 3, 4 * H, 4 * W)
    torch.testing.assert_close(tiled, full, rtol=0, atol=1e-5)


def test_default_overlap_is_the_smallest_exact_one(gen):
    lr = rand_lr(1, 3, H, W, seed=1)
    full = upscale_tensor(gen, lr)
    radius = receptive_radius(gen)

    def err(overlap: int) -> float:
        return (upscale_tensor(gen, lr, tile=10, overlap=overlap) - full).abs().max().item()

    assert err(radius) < 1e-6  # float rounding only
    assert err(radius - 1) > 1e-6  # one pixel less and the zero padding leaks in
    assert err(2) > 1e-3  # a thin margin gives visible seams


def test_single_image_tile_larger_than_image_and_value_range(gen):
    lr = rand_lr(3, H, W, seed=2)
    sr = upscale_tensor(gen, lr, tile=64)
    assert sr.shape == (3, 4 * H, 4 * W)
    assert 0.0 <= sr.min() and sr.max() <= 1.0
    with torch.inference_mode():
        x = lr[None].contiguous(memory_format=CPU_MEMORY_FORMAT)  # what upscale_tensor feeds G
        ref = ((gen(x) + 1) / 2).clamp(0, 1)[0]
        plain = ((gen(lr[None]) + 1) / 2).clamp(0, 1)[0]  # (B, C, H, W) layout: rounding only
    torch.testing.assert_close(sr, ref, rtol=0, atol=0)
    torch.testing.assert_close(sr, plain, rtol=0, atol=1e-6)


def test_training_mode_generator_runs_in_eval_and_is_restored():
    g = tiny()
    g.train()
    for m in g.modules():  # non-trivial running statistics, so train and eval mode differ
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.fill_(0.3)
            m.running_var.fill_(2.0)
    lr = rand_lr(1, 3, 12, 12)
    sr = upscale_tensor(g, lr, tile=5)
    assert g.training
    g.eval()
    torch.testing.assert_close(sr, upscale_tensor(g, lr), rtol=0, atol=1e-5)


def test_cpu_inference_feeds_the_generator_channels_last(gen):
    # channels-last storage is the fast layout of PyTorch's CPU convolutions (bench/upscale_cpu.py)
    seen = []
    hook = gen.head.register_forward_pre_hook(lambda m, args: seen.append(args[0]))
    try:
        upscale_tensor(gen, rand_lr(1, 3, H, W), tile=9)
        # an (H, W, C) array's view: strides that count as channels-last with batch stride 3
        hwc = torch.from_numpy(rand_u8((H, W, 3))).permute(2, 0, 1).float() / 255
        assert hwc[None].is_contiguous(memory_format=torch.channels_last)
        sr = upscale_tensor(gen, hwc)
    finally:
        hook.remove()
    assert CPU_MEMORY_FORMAT == torch.channels_last and len(seen) == 3 * 4 + 1  # 9-px tiles + 1
    for x in seen:  # fresh channels-last tensors: (B, C, H, W) strides (H*W*C, 1, W*C, C)
        b, c, h, w = x.shape
        assert x.stride() == (h * w * c, 1, w * c, c)
    torch.testing.assert_close(sr, upscale_tensor(gen, hwc.contiguous()), rtol=0, atol=0)


def test_auto_tile_runs_what_fits_in_one_tile_in_one_piece():
    paper = SRResNet().arch()  # receptive radius 40: a tile with its margins is 256 x 256 pixels
    side = DEFAULT_TILE + 2 * 40
    assert receptive_radius(paper) == 40
    g = SRResNet(seed=0)
    assert auto_tile(g, 256, 256) is None  # the 256 x 256 -> 1024 x 1024 case: untiled
    assert auto_tile(g, side, side) is None
    assert auto_tile(g, side, side + 1) == DEFAULT_TILE
    assert auto_tile(g, 1024, 1024) == DEFAULT_TILE
    assert auto_tile(g, 100, side * side // 100) is None  # memory goes with the pixel count
    assert auto_tile(g, DEFAULT_TILE, DEFAULT_TILE, overlap=0) is None  # no margins: one tile
    assert auto_tile(g, DEFAULT_TILE, DEFAULT_TILE + 1, overlap=0) == DEFAULT_TILE


@pytest.mark.parametrize(("width", "tiled"), [(1000, False), (3000, True)])
def test_upscale_file_default_tiles_only_images_bigger_than_one_tile(gen, tmp_path, width, tiled):
    # tiny generator: radius 12, so one tile with margins holds (DEFAULT_TILE + 24)^2 pixels
    limit = (DEFAULT_TILE + 2 * receptive_radius(gen)) ** 2
    assert (16 * width > limit) == tiled
    calls = math.ceil(width / DEFAULT_TILE) if tiled else 1  # one row of tiles
    src = tmp_path / "strip.png"
    Image.fromarray(rand_u8((16, width, 3), seed=7)).save(src)
    seen = []
    hook = gen.register_forward_pre_hook(lambda m, args: seen.append(args[0].shape))
    try:
        [dst] = upscale_file(gen, src)  # tile="auto"
    finally:
        hook.remove()
    assert len(seen) == calls
    ref = upscale_tensor(gen, load_image(src)).numpy().transpose(1, 2, 0)  # untiled
    assert np.abs(as_float(dst) - ref).max() <= 0.5 / 255 + 1e-6
    with pytest.raises(ValueError, match="'auto', a positive integer or None"):
        upscale_file(gen, src, tile="big")


def test_bad_arguments_are_explained(gen):
    with pytest.raises(ValueError, match=r"\(B, 3, h, w\)"):
        upscale_tensor(gen, torch.rand(1, 1, 8, 8))
    with pytest.raises(ValueError, match="tile must be a positive integer"):
        upscale_tensor(gen, torch.rand(3, 8, 8), tile=0)
    with pytest.raises(ValueError, match="pass overlap"):
        receptive_radius(torch.nn.Conv2d(3, 3, 3))


def test_tiled_bicubic_equals_untiled():
    x = rand_lr(1, 2, H, W, seed=3)
    torch.testing.assert_close(bicubic_tensor(x, 4, tile=6), bicubic_up(x, 4), rtol=0, atol=1e-6)


# ----------------------------------------------------------------------------------------------
# files: the output keeps the input's kind
# ----------------------------------------------------------------------------------------------


def test_rgb_png_default_name_and_scale_from_checkpoint(tmp_path):
    g2 = tiny(scale=2)
    ck = save_checkpoint({"generator": network_entry(g2)}, tmp_path / "x2.pt")
    src = tmp_path / "face.png"
    Image.fromarray(rand_u8((H, W, 3))).save(src)
    out = tmp_path / "out"
    assert main([str(src), "-o", str(out), "--checkpoint", str(ck), "--tile", "9"]) == 0
    dst = out / "face_x2.png"
    with Image.open(dst) as img:
        assert (img.mode, img.size) == ("RGB", (2 * W, 2 * H))
    ref = upscale_tensor(g2, load_image(src)).numpy().transpose(1, 2, 0)
    assert np.abs(as_float(dst) - ref).max() <= 0.5 / 255 + 1e-6


def test_grayscale_stays_grayscale(gen, tmp_path):
    src = tmp_path / "gray.png"
    Image.fromarray(rand_u8((H, W))).save(src)
    [dst] = upscale_file(gen, src, tile=8)
    assert dst == tmp_path / "gray_x4.png"
    with Image.open(dst) as img:
        assert (img.mode, img.size) == ("L", (4 * W, 4 * H))
    ref = (upscale_tensor(gen, load_image(src)) * LUMA).sum(0).numpy()
    assert np.abs(as_float(dst) - ref).max() <= 0.5 / 255 + 1e-6


def test_rgba_keeps_alpha_upscaled_with_bicubic(gen, tmp_path):
    src = tmp_path / "logo.png"
    rgba = rand_u8((H, W, 4), seed=4)
    Image.fromarray(rgba).save(src)
    dst = tmp_path / "logo_big.png"
    written = upscale_file(gen, src, dst, tile=8, bicubic=True)
    assert written == [dst, tmp_path / "logo_big_bicubic.png"]
    with Image.open(dst) as img:
        assert (img.mode, img.size) == ("RGBA", (4 * W, 4 * H))
    out = as_float(dst)
    straight = torch.from_numpy(rgba.transpose(2, 0, 1).astype(np.float32) / 255)  # (4, H, W)
    ref_rgb = upscale_tensor(gen, straight[:3]).numpy().transpose(1, 2, 0)  # not composited
    ref_alpha = bicubic_up(straight[3:], 4)[0].numpy()
    assert np.abs(out[..., :3] - ref_rgb).max() <= 0.5 / 255 + 1e-6
    assert np.abs(out[..., 3] - ref_alpha).max() <= 0.5 / 255 + 1e-6
    bic = as_float(written[1])
    ref_bic = bicubic_up(straight, 4).numpy().transpose(1, 2, 0)
    assert np.abs(bic - ref_bic).max() <= 0.5 / 255 + 1e-6


def test_rgba_to_jpeg_is_composited_over_white(gen, tmp_path):
    src = tmp_path / "clear.png"
    Image.new("RGBA", (W, H), (0, 0, 0, 0)).save(src)  # fully transparent black
    [dst] = upscale_file(gen, src, tmp_path / "clear.jpg", tile=None)
    with Image.open(dst) as img:
        assert img.mode == "RGB"
        assert np.asarray(img).min() >= 250  # white, not the hidden black


def test_16bit_png_is_computed_from_16_bits_and_written_as_16_bits(gen, tmp_path):
    src = tmp_path / "depth.png"
    data = np.random.default_rng(5).integers(0, 65536, (H, W), dtype=np.uint16)
    Image.fromarray(data).save(src)
    [dst] = upscale_file(gen, src, tmp_path / "depth_x4.png", tile=8)
    with Image.open(dst) as img:
        assert (img.mode, img.size) == ("I;16", (4 * W, 4 * H))
        out = np.asarray(img).astype(np.float64)
    gray = torch.from_numpy(data.astype(np.float32) / 65535).expand(3, H, W)
    ref = (upscale_tensor(gen, gray) * LUMA).sum(0).double().numpy() * 65535
    # within 16-bit rounding (+ float32 error); an input read as 8 bits is off by up to ~8 here
    assert np.abs(out - ref).max() <= 1.0
    assert len(np.unique(out)) > 256


@pytest.mark.parametrize(("orientation", "turns"), [(6, -1), (8, 1)])
def test_exif_rotated_jpeg_comes_out_upright(gen, tmp_path, orientation, turns):
    src = tmp_path / "phone.jpg"
    exif = Image.Exif()
    exif[0x0112] = orientation  # 6: rotate 90 deg clockwise to view, 8: counter-clockwise
    Image.fromarray(rand_u8((H, W, 3), seed=6)).save(src, exif=exif, quality=95)
    with Image.open(src) as img:
        stored = np.asarray(img.convert("RGB"))  # the pixels as stored, sideways
    upright = np.ascontiguousarray(np.rot90(stored, k=turns))  # (W, H, 3)
    [dst] = upscale_file(gen, src, tmp_path / "phone_x4.png", tile=8)
    with Image.open(dst) as img:
        assert img.size == (4 * H, 4 * W)  # width, height swapped
        assert img.getexif().get(0x0112) in (None, 1)
    ref = upscale_tensor(gen, torch.from_numpy(upright.transpose(2, 0, 1) / 255.0).float())
    assert np.abs(as_float(dst) - ref.numpy().transpose(1, 2, 0)).max() <= 0.5 / 255 + 1e-6


def test_load_image_parts_agrees_with_load_image_without_alpha(tmp_path):
    src = tmp_path / "rgb.png"
    Image.fromarray(rand_u8((H, W, 3))).save(src)
    parts = load_image_parts(src)
    assert parts.alpha is None and not parts.grayscale and parts.bit_depth == 8
    torch.testing.assert_close(parts.rgb, load_image(src), rtol=0, atol=0)


# ----------------------------------------------------------------------------------------------
# the command line and what a user can get wrong
# ----------------------------------------------------------------------------------------------


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def test_cli_bad_images_among_good_ones(ckpt, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(2):
        Image.fromarray(rand_u8((H, W, 3), seed=i)).save(folder / f"ok{i}.png")
    (folder / "zero.jpg").write_bytes(b"")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    out = tmp_path / "out"
    code = main(
        [str(folder), str(tmp_path / "missing.png"), "-o", str(out), "--checkpoint", str(ckpt)]
    )
    assert code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("error: ") for line in err)
    assert any("missing.png not found" in line for line in err)
    assert any("zero.jpg" in line for line in err) and any("broken.png" in line for line in err)
    assert sorted(p.name for p in out.iterdir()) == ["ok0_x4.png", "ok1_x4.png"]  # no temp files


def test_cli_checkpoint_errors(tmp_path, capsys):
    src = tmp_path / "a.png"
    Image.fromarray(rand_u8((8, 8, 3))).save(src)
    foreign = tmp_path / "foreign.pt"
    torch.save(tiny().state_dict(), foreign)  # a bare state dict, not an srgan_edu checkpoint
    for ck, says in [
        (tmp_path / "nope.pt", "not found"),
        (foreign, "not an srgan_edu checkpoint"),
        (tmp_path, "is a folder"),
    ]:
        assert main([str(src), "-o", str(tmp_path / "o"), "--checkpoint", str(ck)]) == 1
        assert says in one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "o").exists()


def test_cli_output_file_with_several_inputs(ckpt, tmp_path, capsys):
    srcs = []
    for i in range(2):
        srcs.append(tmp_path / f"{i}.png")
        Image.fromarray(rand_u8((8, 8, 3), seed=i)).save(srcs[-1])
    taken = tmp_path / "taken.png"
    taken.write_bytes(b"keep me")
    code = main([*map(str, srcs), "-o", str(taken), "--checkpoint", str(ckpt)])
    assert code == 1
    assert "names a file" in one_error_line(capsys.readouterr().err)
    assert taken.read_bytes() == b"keep me"


def test_cli_disk_full_leaves_old_output_intact(ckpt, tmp_path, capsys, monkeypatch):
    src = tmp_path / "a.png"
    Image.fromarray(rand_u8((8, 8, 3))).save(src)
    dst = tmp_path / "a_x4.png"
    dst.write_bytes(b"previous result")

    def full_disk(self, fp, *args, **kwargs):
        fp.write(b"half an image")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", full_disk)
    assert main([str(src), "-o", str(dst), "--checkpoint", str(ckpt)]) == 1
    assert "No space left" in one_error_line(capsys.readouterr().err)
    assert dst.read_bytes() == b"previous result"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "a_x4.png"]  # no temp file


def test_cli_out_of_memory_suggests_a_smaller_tile(ckpt, tmp_path, capsys, monkeypatch):
    src = tmp_path / "a.png"
    Image.fromarray(rand_u8((8, 8, 3))).save(src)

    def oom(self, lr):
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(SRResNet, "forward", oom)
    assert main([str(src), "-o", str(tmp_path), "--checkpoint", str(ckpt), "--tile", "64"]) == 1
    assert "--tile 32" in one_error_line(capsys.readouterr().err)


def test_cli_help(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    assert "examples:" in text and "--tile" in text and "--checkpoint" in text


def test_cli_subprocess_run(ckpt, tmp_path):
    # the real entry point, once: a bad image is reported, the good one is still written
    good = tmp_path / "good.png"
    Image.fromarray(rand_u8((H, W, 3))).save(good)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a jpeg")
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "srgan_edu.upscale", str(bad), str(good), "-o", str(out)]
    cmd += ["--checkpoint", str(ckpt), "--bicubic"]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert "bad.jpg" in one_error_line(done.stderr)
    assert sorted(p.name for p in out.iterdir()) == ["good_x4.png", "good_x4_bicubic.png"]
    with Image.open(out / "good_x4.png") as img:
        assert img.size == (4 * W, 4 * H)


def test_plan_outputs_reports_clashing_names(tmp_path):
    pairs, errors = plan_outputs([Path("a/x.png"), Path("b/x.jpg"), Path("a/y.png")], tmp_path, 4)
    assert pairs == [
        (Path("a/x.png"), tmp_path / "x_x4.png"),
        (Path("a/y.png"), tmp_path / "y_x4.png"),
    ]
    assert len(errors) == 1 and "b/x.jpg" in errors[0] and "x_x4.png" in errors[0]
