"""Tests for srgan_edu.data: CelebA in three layouts, image folders, synthetic and sample images.

Every test writes its own tiny JPEG / PNG trees in tmp_path (24x20 images, ten files); the real-data
test uses ../shared/data/celeba_89x109 and is skipped when it is absent.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from srgan_edu.data import (
    CELEBA_PAGE,
    KAGGLE_CELEBA,
    CelebA,
    DatasetError,
    ImageFolder,
    ImageSizeError,
    PairedImageFolder,
    SyntheticImages,
    find_celeba,
    make_loader,
    parse_partition,
    random_crop_flip,
    read_partition,
    sample_image,
    sample_image_path,
    sample_images,
    split_holdout,
    uint8_to_unit,
)
from srgan_edu.imaging import decode_image, load_image

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
H, W = 24, 20  # tiny stand-ins for the 218x178 faces
NAMES = [f"{i:06d}.jpg" for i in range(1, 11)]
# 1-6 train, 7-8 val, 9-10 test on disk; 11-15 (train) and 16 (val) listed but not on disk
PARTS = {**{n: 0 for n in NAMES[:6]}, NAMES[6]: 1, NAMES[7]: 1, NAMES[8]: 2, NAMES[9]: 2}
PARTS.update({f"{i:06d}.jpg": 0 for i in range(11, 16)})
PARTS["000016.jpg"] = 1
LAYOUTS = ["official", "kaggle", "zip"]


def _jpeg_bytes(seed: int, size: tuple[int, int] = (H, W)) -> bytes:
    """A small JPEG with random blocky content (so every crop position looks different)."""
    import io

    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, size=(size[0], size[1], 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def _txt(parts: dict[str, int]) -> str:
    return "\n".join(f"{n} {p}" for n, p in parts.items()) + "\n"


def _csv(parts: dict[str, int]) -> str:
    return "image_id,partition\n" + "".join(f"{n},{p}\n" for n, p in parts.items())


def make_celeba(root: Path, layout: str, files: dict[str, bytes] | None = None) -> Path:
    """Write a CelebA tree in ``layout`` under ``root``; ``files`` overrides image bytes."""
    files = {n: _jpeg_bytes(i) for i, n in enumerate(NAMES)} | (files or {})
    root.mkdir(parents=True, exist_ok=True)
    if layout == "zip":
        with zipfile.ZipFile(root / "img_align_celeba.zip", "w") as zf:
            zf.writestr("img_align_celeba/", "")
            for name, data in files.items():
                zf.writestr(f"img_align_celeba/{name}", data)
        (root / "list_eval_partition.txt").write_text(_txt(PARTS))
        return root
    folder = root / "img_align_celeba"
    if layout == "kaggle":
        folder = folder / "img_align_celeba"
        (root / "list_eval_partition.csv").write_text(_csv(PARTS))
    else:
        (root / "list_eval_partition.txt").write_text(_txt(PARTS))
    folder.mkdir(parents=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return root


def _decoded(root: Path, layout: str, name: str) -> torch.Tensor:
    """The reference pixels of one image, decoded straight from the tree."""
    if layout == "zip":
        with zipfile.ZipFile(root / "img_align_celeba.zip") as zf:
            return decode_image(zf.read(f"img_align_celeba/{name}"))
    return load_image(find_celeba(root).images / name)


# ----------------------------------------------------------------------------- layouts and splits


@pytest.mark.parametrize("layout", LAYOUTS)
def test_layout_detection_and_split_counts(tmp_path, layout):
    root = make_celeba(tmp_path / "celeba", layout)
    found = find_celeba(root)
    assert found.kind == layout
    assert found.names == tuple(NAMES)
    # the image folder itself and the zip file are accepted too
    if layout == "zip":
        assert find_celeba(root / "img_align_celeba.zip").kind == "zip"
    else:
        assert find_celeba(root / "img_align_celeba").kind == layout
        assert find_celeba(found.images).kind == layout
    sizes = {s: len(CelebA(root, split=s, crop=8)) for s in ("train", "val", "test", "all")}
    assert sizes == {"train": 6, "val": 2, "test": 2, "all": 10}
    train = CelebA(root, split="train", crop=8)
    assert train.names == NAMES[:6]
    assert train.counts == {
        "present": 10,
        "listed": 16,
        "listed_in_split": 11,
        "not_on_disk": 5,
        "unlisted": 0,
        "used": 6,
    }
    assert train.image_size == (H, W)
    assert "6 images used of 10 present" in train.describe()


def test_folder_wins_over_zip_and_partition_inside_zip(tmp_path):
    root = make_celeba(tmp_path / "both", "official")
    make_celeba(root, "zip")
    assert find_celeba(root).kind == "official"
    # a Kaggle-style archive with the nested folder and the CSV inside, no file next to it
    archive = tmp_path / "archive.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for i, name in enumerate(NAMES):
            zf.writestr(f"img_align_celeba/img_align_celeba/{name}", _jpeg_bytes(i))
        zf.writestr("list_eval_partition.csv", _csv(PARTS))
    ds = CelebA(archive, split="val", mode="eval")
    assert ds.layout.partition_member == "list_eval_partition.csv"
    assert ds.names == NAMES[6:8]
    assert ds[1].shape == (3, 20, 20)


def test_parse_partition_formats(tmp_path):
    txt = tmp_path / "list_eval_partition.txt"
    txt.write_bytes(_txt(PARTS).replace("\n", "\r\n").encode())
    csv = tmp_path / "list_eval_partition.csv"
    csv.write_text(_csv(PARTS))
    assert read_partition(txt) == read_partition(csv) == PARTS
    with pytest.raises(DatasetError, match=r"line 3: expected"):
        parse_partition("000001.jpg 0\n000002.jpg 1\n000003.jpg 7\n", "p.txt")
    with pytest.raises(DatasetError, match="HTML page"):
        parse_partition("<!DOCTYPE html><html>quota exceeded</html>", "p.txt")
    with pytest.raises(DatasetError, match="empty"):
        parse_partition("\n\n", "p.txt")


# ----------------------------------------------------------------------------- crops and flips


@pytest.mark.parametrize("layout", ["official", "zip"])
def test_train_crops_match_their_boxes_and_are_reproducible(tmp_path, layout):
    root = make_celeba(tmp_path / "c", layout)
    ds = CelebA(root, split="all", crop=(12, 8), seed=3)
    flips = []
    for i in range(len(ds)):
        out = ds[i]
        assert out.shape == (3, 12, 8) and out.dtype == torch.float32
        box = ds.crop_box(i, H, W)
        ref = _decoded(root, layout, NAMES[i])[:, box.top : box.top + 12, box.left : box.left + 8]
        torch.testing.assert_close(out, ref.flip(-1) if box.flip else ref, rtol=0, atol=0)
        flips.append(box.flip)
    assert any(flips) and not all(flips)
    # same (seed, epoch, index) -> same sample, from a fresh dataset object too
    again = CelebA(root, split="all", crop=(12, 8), seed=3)
    assert all(torch.equal(ds[i], again[i]) for i in range(len(ds)))
    other_seed = CelebA(root, split="all", crop=(12, 8), seed=4)
    assert not all(torch.equal(ds[i], other_seed[i]) for i in range(len(ds)))
    boxes0 = [ds.crop_box(i, H, W) for i in range(len(ds))]
    ds.set_epoch(1)
    assert [ds.crop_box(i, H, W) for i in range(len(ds))] != boxes0
    no_flip = CelebA(root, split="all", crop=(12, 8), seed=3, flip=False)
    assert not any(no_flip.crop_box(i, H, W).flip for i in range(len(ds)))


def test_eval_centre_crop_exact_pixels(tmp_path):
    root = make_celeba(tmp_path / "c", "official")
    ref = _decoded(root, "official", NAMES[6])  # first val image, (3, 24, 20)
    # default: largest centred square with a side that is a multiple of 4 -> 20x20 at row 2
    ds = CelebA(root, split="val", mode="eval")
    torch.testing.assert_close(ds[0], ref[:, 2:22, 0:20], rtol=0, atol=0)
    ds = CelebA(root, split="val", mode="eval", crop=(8, 12))
    torch.testing.assert_close(ds[0], ref[:, 8:16, 4:16], rtol=0, atol=0)
    # the default square follows multiple_of (x3: side 18, rows 3..20, columns 1..18)
    ds = CelebA(root, split="val", mode="eval", multiple_of=3)
    torch.testing.assert_close(ds[0], ref[:, 3:21, 1:19], rtol=0, atol=0)
    with pytest.raises(ValueError, match="multiple of 4"):
        CelebA(root, mode="eval", crop=10)


def test_full_mode_uint8_and_gpu_side_crops(tmp_path):
    root = make_celeba(tmp_path / "c", "official")
    ds = CelebA(root, split="all", mode="full", uint8=True)
    x = ds[0]
    assert x.dtype == torch.uint8 and x.shape == (3, H, W)
    ref = _decoded(root, "official", NAMES[0])
    torch.testing.assert_close(uint8_to_unit(x), ref, rtol=0, atol=0)
    batch = torch.stack([ds[i] for i in range(6)])  # (6, 3, 24, 20)
    g = torch.Generator().manual_seed(0)
    crops = random_crop_flip(batch, 8, g)
    assert crops.shape == (6, 3, 8, 8) and crops.dtype == torch.uint8
    again = random_crop_flip(batch, 8, torch.Generator().manual_seed(0))
    assert torch.equal(crops, again)
    mirrored = 0
    for img, crop in zip(batch, crops, strict=True):  # each crop is one window of its image
        windows = img.unfold(1, 8, 1).unfold(2, 8, 1).permute(1, 2, 0, 3, 4)  # (17, 13, 3, 8, 8)
        plain = (windows == crop).flatten(2).all(-1).any()
        flipped = (windows.flip(-1) == crop).flatten(2).all(-1).any()
        assert plain or flipped
        mirrored += int(flipped and not plain)
    assert 0 < mirrored < 6
    with pytest.raises(ImageSizeError):
        random_crop_flip(batch, 30, g)


# ----------------------------------------------------------------------------- bad data


@pytest.mark.parametrize("layout", LAYOUTS)
def test_corrupt_files_raise_or_skip(tmp_path, layout):
    good = _jpeg_bytes(2)
    files = {NAMES[2]: b"", NAMES[3]: good[: len(good) // 2]}  # zero bytes, truncated JPEG
    root = make_celeba(tmp_path / "c", layout, files)
    strict = CelebA(root, split="train", mode="eval")
    for i, name in ((2, NAMES[2]), (3, NAMES[3])):
        with pytest.raises(DatasetError, match=name) as info:
            strict[i]
        assert "on_error='skip'" in str(info.value)
    lenient = CelebA(root, split="train", mode="eval", on_error="skip")
    with pytest.warns(UserWarning, match="skipping image"):
        out = lenient[2]
    # the replacement is the next readable image (index 4), deterministically
    torch.testing.assert_close(out, lenient[4], rtol=0, atol=0)
    torch.testing.assert_close(lenient[3], lenient[4], rtol=0, atol=0)
    assert set(lenient.skipped) == {NAMES[2], NAMES[3]} and lenient.num_skipped == 2
    assert len(lenient) == 6


def test_every_image_unreadable(tmp_path):
    root = make_celeba(tmp_path / "c", "official", {n: b"not a jpeg" for n in NAMES})
    ds = CelebA(root, split="val", mode="eval", on_error="skip")
    with pytest.warns(UserWarning), pytest.raises(DatasetError, match="none of the 2 images"):
        ds[0]


def test_image_smaller_than_crop(tmp_path):
    root = make_celeba(tmp_path / "c", "official", {NAMES[4]: _jpeg_bytes(9, (10, 10))})
    strict = CelebA(root, split="train", crop=(12, 8))
    with pytest.raises(ImageSizeError, match=r"000005\.jpg is 10x10 \(HxW\).*12x8"):
        strict[4]
    lenient = CelebA(root, split="train", crop=(12, 8), on_error="skip")
    with pytest.warns(UserWarning, match="000005.jpg"):
        assert lenient[4].shape == (3, 12, 8)
    assert list(lenient.skipped) == [NAMES[4]]
    # a crop larger than the faces themselves is a setting to fix: refused at construction
    with pytest.raises(ImageSizeError, match=r"are 24x20 \(HxW.*000001\.jpg.*28x28.*at most 20"):
        CelebA(root, crop=28, on_error="skip")


def _assert_explains_layouts(message: str) -> None:
    for part in (
        "img_align_celeba/",
        "list_eval_partition.txt",
        "list_eval_partition.csv",
        "img_align_celeba.zip",
        CELEBA_PAGE,
        KAGGLE_CELEBA,
    ):
        assert part in message, f"{part!r} missing from:\n{message}"


def test_missing_and_half_downloaded_data_messages(tmp_path):
    with pytest.raises(DatasetError, match="does not exist") as info:
        find_celeba(tmp_path / "nowhere")
    _assert_explains_layouts(str(info.value))
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("x")
    with pytest.raises(DatasetError, match=r"not found in .*other") as info:
        CelebA(tmp_path / "other")
    assert "notes.txt" in str(info.value)  # what was found
    _assert_explains_layouts(str(info.value))
    (tmp_path / "empty" / "img_align_celeba").mkdir(parents=True)
    with pytest.raises(DatasetError, match="holds no .jpg images") as info:
        find_celeba(tmp_path / "empty")
    _assert_explains_layouts(str(info.value))
    # a half-downloaded zip
    half = make_celeba(tmp_path / "half", "zip")
    archive = half / "img_align_celeba.zip"
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(DatasetError, match="not a readable zip archive") as info:
        CelebA(half)
    _assert_explains_layouts(str(info.value))


@pytest.mark.parametrize("layout", LAYOUTS)
def test_missing_partition_file(tmp_path, layout):
    root = make_celeba(tmp_path / "c", layout)
    for name in ("list_eval_partition.txt", "list_eval_partition.csv"):
        (root / name).unlink(missing_ok=True)
    with pytest.raises(DatasetError, match="no list_eval_partition.txt or .csv") as info:
        CelebA(root, split="train")
    _assert_explains_layouts(str(info.value))
    assert len(CelebA(root, split="all", crop=8)) == 10  # no split needed, no partition needed


def test_absent_split_and_holdout(tmp_path):
    files = {n: _jpeg_bytes(i) for i, n in enumerate(NAMES[:6])}  # train images only
    root = tmp_path / "c"
    make_celeba(root, "official")
    for name in NAMES[6:]:
        (root / "img_align_celeba" / name).unlink()
    with pytest.raises(DatasetError, match=r"lists 3 'val' images but none.*holdout") as info:
        CelebA(root, split="val")
    assert "train: 6, val: 0, test: 0" in str(info.value)
    train = CelebA(root, split="train", holdout=2, crop=8)
    held = CelebA(root, split="holdout", holdout=2, mode="eval")
    assert train.names == NAMES[:4] and held.names == NAMES[4:6]
    assert set(files) == set(train.names) | set(held.names)
    assert split_holdout(["b", "a", "c"], 1) == (["a", "b"], ["c"])
    with pytest.raises(DatasetError, match="holdout=6"):
        CelebA(root, split="holdout", holdout=6)
    with pytest.raises(ValueError, match="holdout=N"):
        CelebA(root, split="holdout")


def test_bad_arguments(tmp_path):
    root = make_celeba(tmp_path / "c", "official")
    with pytest.raises(ValueError, match="split"):
        CelebA(root, split="training")
    with pytest.raises(ValueError, match="mode"):
        CelebA(root, mode="test")
    with pytest.raises(ValueError, match="on_error"):
        CelebA(root, on_error="ignore")
    with pytest.raises(ValueError, match="crop"):
        CelebA(root, crop=(0, 8))


# ----------------------------------------------------------------------------- DataLoader workers


class _ZipHandle(Dataset):
    """Reports the file descriptor of the zip handle the dataset uses in the current process."""

    def __init__(self, celeba: CelebA) -> None:
        self.celeba = celeba

    def __len__(self) -> int:
        return 4

    def __getitem__(self, index: int) -> int:
        self.celeba[index]
        return self.celeba._zip().fp.fileno()


def test_dataloader_two_workers_on_zip(tmp_path):
    root = make_celeba(tmp_path / "c", "zip")
    ds = CelebA(root, split="all", crop=8, seed=1)
    expected = torch.stack([ds[i] for i in range(len(ds))])  # the main process opens the zip
    assert ds._zf is not None
    loader = make_loader(ds, batch_size=3, shuffle=False, num_workers=2)
    got = torch.cat(list(loader))
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    # shuffled, the loader still yields the same samples (index-seeded crops), in a seeded order
    order = torch.cat(list(make_loader(ds, batch_size=4, shuffle=True, num_workers=2, seed=5)))
    again = torch.cat(list(make_loader(ds, batch_size=4, shuffle=True, num_workers=0, seed=5)))
    torch.testing.assert_close(order, again, rtol=0, atol=0)
    # without worker_init too, a forked worker opens its own handle (no shared file offset)
    parent_fd = ds._zip().fp.fileno()
    fds = torch.cat(list(DataLoader(_ZipHandle(ds), batch_size=2, num_workers=2)))
    assert len(fds) == 4 and parent_fd not in fds.tolist()
    # a dataset that has opened its zip still pickles (spawned workers) and reads afterwards
    clone = pickle.loads(pickle.dumps(ds))
    assert clone._zf is None
    torch.testing.assert_close(clone[5], expected[5], rtol=0, atol=0)


# ----------------------------------------------------------------------------- image folders


def _png(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def test_image_folder(tmp_path):
    rng = np.random.default_rng(0)
    images = {f"{c}.png": rng.integers(0, 256, (18, 22, 3), dtype=np.uint8) for c in "abc"}
    for name, arr in images.items():
        _png(tmp_path / "hr" / name, arr)
    (tmp_path / "hr" / "readme.txt").write_text("not an image")
    ds = ImageFolder(tmp_path / "hr", multiple_of=4)
    assert ds.names == ["a.png", "b.png", "c.png"]
    ref = torch.from_numpy(images["b.png"]).permute(2, 0, 1).float() / 255
    torch.testing.assert_close(ds[1], ref[:, :16, :20], rtol=0, atol=0)  # modcrop to 16x20
    assert ImageFolder(tmp_path / "hr", crop=8)[0].shape == (3, 8, 8)
    train = ImageFolder(tmp_path / "hr", crop=8, mode="train", seed=0)
    box = train.crop_box(2, 18, 22)
    out = torch.from_numpy(images["c.png"]).permute(2, 0, 1).float() / 255
    out = out[:, box.top : box.top + 8, box.left : box.left + 8]
    torch.testing.assert_close(train[2], out.flip(-1) if box.flip else out, rtol=0, atol=0)
    with pytest.raises(ValueError, match="needs a crop"):
        ImageFolder(tmp_path / "hr", mode="train")
    with pytest.raises(DatasetError, match="image folder not found"):
        ImageFolder(tmp_path / "missing")
    (tmp_path / "none").mkdir()
    with pytest.raises(DatasetError, match="no images in"):
        ImageFolder(tmp_path / "none")


def test_paired_image_folder(tmp_path):
    rng = np.random.default_rng(1)
    hr = {n: rng.integers(0, 256, (18, 22, 3), dtype=np.uint8) for n in ("baby", "bird")}
    lr = {n: rng.integers(0, 256, (4, 5, 3), dtype=np.uint8) for n in hr}
    # BasicSR layout: GTmod12/ + LRbicx4/ with the same names
    for n in hr:
        _png(tmp_path / "set" / "GTmod12" / f"{n}.png", hr[n])
        _png(tmp_path / "set" / "LRbicx4" / f"{n}.png", lr[n])
    ds = PairedImageFolder(tmp_path / "set", scale=4)
    assert len(ds) == 2 and ds.names == ["baby.png", "bird.png"]
    lr_t, hr_t = ds[1]
    assert lr_t.shape == (3, 4, 5) and hr_t.shape == (3, 16, 20)  # HR mod-cropped to 4x LR
    torch.testing.assert_close(lr_t, torch.from_numpy(lr["bird"]).permute(2, 0, 1) / 255.0)
    torch.testing.assert_close(
        hr_t, torch.from_numpy(hr["bird"][:16, :20]).permute(2, 0, 1) / 255.0
    )
    # EDSR layout: HR/ + LR_bicubic/X4/ with an x4 suffix
    for n in hr:
        _png(tmp_path / "edsr" / "HR" / f"{n}.png", hr[n])
        _png(tmp_path / "edsr" / "LR_bicubic" / "X4" / f"{n}x4.png", lr[n])
    assert PairedImageFolder(tmp_path / "edsr", scale=4).names == ["baby.png", "bird.png"]
    # wrong LR size: named in the error
    _png(tmp_path / "set" / "LRbicx4" / "bird.png", lr["bird"][:3])
    with pytest.raises(DatasetError, match=r"LRbicx4/bird\.png is 3x5 .* should be 4x5"):
        PairedImageFolder(tmp_path / "set", scale=4)
    # an HR image without its LR partner
    (tmp_path / "set" / "LRbicx4" / "bird.png").unlink()
    with pytest.raises(DatasetError, match=r"no LR partner .*bird\.png"):
        PairedImageFolder(tmp_path / "set", scale=4)
    with pytest.raises(DatasetError, match="no x3 LR folder"):
        PairedImageFolder(tmp_path / "set", scale=3)


# ----------------------------------------------------------------------------- synthetic, samples


def test_synthetic_images_are_deterministic_and_detailed():
    a, b = SyntheticImages(4, 48, seed=0), SyntheticImages(9, 48, seed=0)
    assert all(torch.equal(a[i], b[i]) for i in range(4))  # image i depends on (seed, i) only
    assert not torch.equal(a[0], SyntheticImages(4, 48, seed=1)[0])
    assert not torch.equal(a[0], a[1])
    x = SyntheticImages(2, (40, 56), seed=7)[1]
    assert x.shape == (3, 40, 56) and x.dtype == torch.float32
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    grad = (x[:, :, 1:] - x[:, :, :-1]).abs().amax(0)  # (H, W-1) horizontal differences
    assert float(x.std()) > 0.05  # not flat
    assert float((grad > 0.2).float().mean()) > 0.01  # with sharp edges
    with pytest.raises(IndexError):
        a[4]


def test_sample_images_ship_with_matplotlib():
    import matplotlib

    path = sample_image_path("grace_hopper")
    assert path.name == "grace_hopper.jpg"
    assert path.is_relative_to(Path(matplotlib.get_data_path()))
    img = sample_image()
    assert img.shape == (3, 600, 512) and 0 <= float(img.min()) <= float(img.max()) <= 1
    images = sample_images()
    assert set(images) == {"grace_hopper", "synthetic"}
    assert images["synthetic"].shape == (3, 256, 256)
    with pytest.raises(ValueError, match="unknown sample image"):
        sample_image_path("lena")


# ----------------------------------------------------------------------------- the real sample


def test_real_celeba_half_resolution_sample():
    root = SHARED / "celeba_89x109"
    if not (root / "list_eval_partition.txt").is_file():
        pytest.skip(f"real CelebA sample not found at {root}")
    table = read_partition(root / "list_eval_partition.txt")
    assert len(table) == 202_599
    assert table["000001.jpg"] == 0 and table["162771.jpg"] == 1 and table["202599.jpg"] == 2
    train = CelebA(root, split="train", crop=64, seed=0)
    assert find_celeba(root).kind == "official"
    assert len(train) == 10_000 and train.counts["not_on_disk"] == 162_770 - 10_000
    assert train.image_size == (109, 89)
    assert train[123].shape == (3, 64, 64)
    with pytest.raises(DatasetError, match="'val' images but none"):
        CelebA(root, split="val")
    with pytest.raises(ImageSizeError, match="at most 88"):
        CelebA(root, split="train")  # the paper's 96x96 crop does not fit 89-pixel-wide faces
    rest = CelebA(root, split="train", holdout=500, crop=64)
    held = CelebA(root, split="holdout", holdout=500, mode="eval")
    assert len(rest) == 9_500 and len(held) == 500 and held.names[0] == "009501.jpg"
    assert not set(rest.names) & set(held.names)
    face = held[0]
    assert face.shape == (3, 88, 88)  # centred square, side a multiple of 4
    torch.testing.assert_close(face, load_image(held.layout.images / "009501.jpg")[:, 10:98, 0:88])
