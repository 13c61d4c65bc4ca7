"""Where the HR training and evaluation images come from: CelebA, image folders, synthetic images.

The SRGAN data path starts here: a dataset yields high-resolution (HR) images as (3, H, W)
float32 tensors in [0, 1] (or compact uint8, see below); the LR input is made later, batched and
on the training device, by :mod:`srgan_edu.degrade`, and the HR target is moved to [-1, 1] with
:func:`srgan_edu.imaging.unit_to_signed` at the model's edge. Introduced in lesson 03 (images and
data); the training lessons read CelebA through :class:`CelebA`.

Sources
    * :class:`CelebA` - the user's own copy of the aligned faces (178x218), in the official,
      Kaggle or zip layout (see :data:`CELEBA_LAYOUTS`), split by ``list_eval_partition``.
    * :class:`ImageFolder` - any folder of HR images; :class:`PairedImageFolder` - HR + given LR
      pairs as in the Set5 / Set14 benchmark folders.
    * :class:`SyntheticImages` - procedural images for CI and quick demos; :func:`sample_image` -
      photos that ship with matplotlib, for the lessons offline.

Modes of the file datasets (``mode=``)
    * ``"train"`` - a random ``crop`` (paper: 96x96 HR patches, Ledig et al. 2017, Sec. 3.2) and a
      random horizontal flip. The randomness of sample ``i`` comes from a ``torch.Generator`` seeded
      with ``(seed, epoch, i)``, so a run is reproducible whatever the number of DataLoader
      workers; call :meth:`set_epoch` before each epoch for fresh crops.
    * ``"eval"`` - a deterministic centred crop, never a resize (faces are not squashed).
    * ``"full"`` - the whole decoded image, for cropping, flipping and degrading on the GPU
      (:func:`random_crop_flip`); with ``uint8=True`` workers ship 1 byte per value, 4x less than
      float32, and :func:`uint8_to_unit` converts on the device.

Bad data never ends in a bare traceback: a missing or half-downloaded dataset raises
:class:`DatasetError` with the expected layout and where to get the data; an unreadable image is
named in the error (``on_error="raise"``) or skipped and counted (``on_error="skip"``).
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import signal
import warnings
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, get_worker_info

from srgan_edu.imaging import (
    IMAGE_SUFFIXES,
    ImageReadError,
    decode_image,
    list_images,
    load_image,
)

PAPER_CROP = 96
"""Side of the random HR training crops in the paper (Ledig et al. 2017, Sec. 3.2)."""

CELEBA_SIZE = (218, 178)
"""(H, W) of CelebA's aligned-and-cropped faces (``img_align_celeba``)."""

SPLITS = {"train": 0, "val": 1, "test": 2}
"""The codes of CelebA's ``list_eval_partition`` file."""

CELEBA_PAGE = "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html"
KAGGLE_CELEBA = "jessicali9530/celeba-dataset"
IMG_DIR = "img_align_celeba"
PARTITION_NAMES = ("list_eval_partition.txt", "list_eval_partition.csv")

CELEBA_LAYOUTS = """\
Expected one of these layouts (ROOT is the folder you pass; passing the img_align_celeba
folder itself or the zip file works too):

  (a) official download             (b) Kaggle download
  ROOT/                             ROOT/
  |-- img_align_celeba/             |-- img_align_celeba/
  |   |-- 000001.jpg                |   `-- img_align_celeba/
  |   |-- ...                       |       |-- 000001.jpg
  |   `-- 202599.jpg                |       `-- ... 202599.jpg
  `-- list_eval_partition.txt       `-- list_eval_partition.csv   (header: image_id,partition)

  (c) the zip, not extracted
  ROOT/
  |-- img_align_celeba.zip          (members img_align_celeba/000001.jpg ...)
  `-- list_eval_partition.txt

The partition file has one line per image, e.g. '000001.jpg 0' (0 = train, 1 = val, 2 = test)."""

CELEBA_SOURCE = f"""\
Where to get CelebA: the official page {CELEBA_PAGE}
(Downloads -> Align&Cropped Images -> img_align_celeba.zip; list_eval_partition.txt is in the
'Eval' folder), or the Kaggle dataset "{KAGGLE_CELEBA}"
(kaggle datasets download -d {KAGGLE_CELEBA}). CelebA is for non-commercial research only."""


class DatasetError(RuntimeError):
    """Data that is missing, incomplete or unreadable; the message says what to do next."""


class ImageSizeError(DatasetError):
    """An image smaller than the requested crop; the message names the file and both sizes."""


# ----------------------------------------------------------------------------- crops and seeds


class CropBox(NamedTuple):
    """Where a sample is cut from its image: rows ``top:top+height``, columns ``left:left+width``,
    then mirrored left-right when ``flip``."""

    top: int
    left: int
    height: int
    width: int
    flip: bool


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """A 63-bit seed for sample ``index`` of ``epoch``: the same in every process and run
    (a hash of the three numbers, unlike Python's salted ``hash``)."""
    digest = hashlib.blake2b(f"{seed}/{epoch}/{index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


def _as_size(crop: int | Sequence[int] | None, what: str = "crop") -> tuple[int, int] | None:
    """``96`` or ``(96, 96)`` -> ``(96, 96)``; validates positivity."""
    if crop is None:
        return None
    if isinstance(crop, int):
        crop = (crop, crop)
    size = tuple(int(c) for c in crop)
    if len(size) != 2 or min(size) <= 0:
        raise ValueError(f"{what} must be a positive int or (height, width), got {crop!r}")
    return size  # type: ignore[return-value]


def centre_box(height: int, width: int, crop: tuple[int, int]) -> CropBox:
    """The ``crop`` box centred in a ``height`` x ``width`` image (spare pixel: bottom/right)."""
    ch, cw = crop
    return CropBox((height - ch) // 2, (width - cw) // 2, ch, cw, False)


def random_crop_flip(
    batch: torch.Tensor,
    crop: int | Sequence[int],
    generator: torch.Generator | None = None,
    flip: bool = True,
) -> torch.Tensor:
    """Batched random crops (one offset per image) and random horizontal flips, on any device.

    For ``mode="full"`` data: workers only decode, the GPU cuts the paper's 96x96 patches.
    ``batch`` is (B, C, H, W) of any dtype; offsets and flips are drawn from ``generator`` (a CPU
    generator keeps runs reproducible across devices).
    """
    ch, cw = _as_size(crop)  # type: ignore[misc]
    b, _, h, w = batch.shape
    if ch > h or cw > w:
        raise ImageSizeError(f"crop {ch}x{cw} is larger than the batch's images ({h}x{w})")
    gen_device = generator.device if generator is not None else torch.device("cpu")
    top = torch.randint(0, h - ch + 1, (b,), generator=generator, device=gen_device)
    left = torch.randint(0, w - cw + 1, (b,), generator=generator, device=gen_device)
    mirror = torch.rand(b, generator=generator, device=gen_device) < 0.5
    draws = torch.stack([top, left, mirror.long()])  # (3, B): one host-to-device copy
    if batch.device.type == "cuda" and draws.device.type == "cpu":
        # from pinned memory the copy is asynchronous: the host goes on queueing work instead
        # of waiting for the GPU to drain (a pageable copy would synchronise every step)
        draws = draws.pin_memory()
    top, left, mirror = draws.to(batch.device, non_blocking=True).unbind(0)
    rows = top[:, None] + torch.arange(ch, device=batch.device)  # (B, ch)
    cols = left[:, None] + torch.arange(cw, device=batch.device)  # (B, cw)
    if flip:  # a mirrored crop reads its columns right to left
        cols = torch.where(mirror[:, None].bool(), cols.flip(1), cols)
    idx = torch.arange(b, device=batch.device)[:, None, None]
    out = batch.permute(0, 2, 3, 1)[idx, rows[:, :, None], cols[:, None, :]]  # (B, ch, cw, C)
    return out.permute(0, 3, 1, 2).contiguous()  # (B, C, ch, cw)


def uint8_to_unit(x: torch.Tensor) -> torch.Tensor:
    """uint8 images (as shipped with ``uint8=True``) -> float32 in [0, 1]; floats pass through."""
    if x.dtype == torch.uint8:
        return x.float().div_(255.0)
    return x


def _to_uint8(x: torch.Tensor) -> torch.Tensor:
    return (x * 255.0).round_().clamp_(0, 255).to(torch.uint8)


# ----------------------------------------------------------------------------- shared dataset core


class _CroppedImages(Dataset):
    """Decoding, cropping, flipping and error policy shared by the file-backed datasets.

    Subclasses set ``self.names`` and implement ``_read(j) -> (3, H, W) float``.
    """

    names: list[str]
    default_train_crop: int | None = None

    def __init__(
        self,
        mode: str,
        crop: int | Sequence[int] | None,
        flip: bool,
        seed: int,
        multiple_of: int,
        uint8: bool,
        on_error: str,
    ) -> None:
        if mode not in ("train", "eval", "full"):
            raise ValueError(f"mode must be 'train', 'eval' or 'full', got {mode!r}")
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        if multiple_of < 1:
            raise ValueError(f"multiple_of must be >= 1, got {multiple_of}")
        if mode == "train" and crop is None:
            crop = self.default_train_crop
            if crop is None:
                raise ValueError("mode='train' needs a crop size, e.g. crop=96 as in the paper")
        size = _as_size(crop)
        if size is not None and mode != "full" and (size[0] % multiple_of or size[1] % multiple_of):
            raise ValueError(
                f"crop {size[0]}x{size[1]} is not a multiple of {multiple_of} (the SR scale), so "
                f"the LR image would not be an exact 1/{multiple_of}; use e.g. crop="
                f"{max(multiple_of, size[0] // multiple_of * multiple_of)} or set multiple_of"
            )
        self.mode, self.crop, self.flip, self.seed = mode, size, flip, int(seed)
        self.multiple_of, self.uint8, self.on_error = multiple_of, uint8, on_error
        self.epoch = 0
        self.skipped: dict[str, str] = {}
        """Names of the images skipped under ``on_error="skip"`` (in this process) -> reason."""
        self._bad: set[int] = set()

    def __len__(self) -> int:
        return len(self.names)

    @property
    def num_skipped(self) -> int:
        """How many images this process has skipped as unreadable or too small."""
        return len(self.skipped)

    def set_epoch(self, epoch: int) -> None:
        """Use the crops and flips of ``epoch`` (call before each epoch's DataLoader pass)."""
        self.epoch = int(epoch)

    def _default_eval_box(self, height: int, width: int) -> CropBox:
        raise NotImplementedError

    def crop_box(self, index: int, height: int, width: int, name: str = "the image") -> CropBox:
        """The box sample ``index`` cuts from a ``height`` x ``width`` image in this mode/epoch."""
        if self.mode == "full":
            return CropBox(0, 0, height, width, False)
        if self.mode == "eval":
            box = (
                self._default_eval_box(height, width)
                if self.crop is None
                else centre_box(height, width, self.crop)
            )
        else:
            ch, cw = self.crop  # type: ignore[misc]
            box = CropBox(0, 0, ch, cw, False)
            if ch <= height and cw <= width:
                g = torch.Generator().manual_seed(sample_seed(self.seed, self.epoch, index))
                top = int(torch.randint(0, height - ch + 1, (1,), generator=g))
                left = int(torch.randint(0, width - cw + 1, (1,), generator=g))
                mirror = bool(torch.rand(1, generator=g) < 0.5) and self.flip
                box = CropBox(top, left, ch, cw, mirror)
        if box.height > height or box.width > width or box.height <= 0 or box.width <= 0:
            raise ImageSizeError(
                f"{name} is {height}x{width} (HxW) but the {self.mode} crop is "
                f"{box.height}x{box.width}; pass a smaller crop (at most "
                f"{min(height, width) // self.multiple_of * self.multiple_of} for a square), "
                "remove the image, or pass on_error='skip' to skip such images"
            )
        return box

    def _read(self, j: int) -> torch.Tensor:
        raise NotImplementedError

    def _skip(self, j: int, reason: str) -> None:
        self._bad.add(j)
        if self.names[j] not in self.skipped:
            self.skipped[self.names[j]] = reason
            if len(self.skipped) <= 10:  # the rest are only counted, in .skipped
                more = " (further skips are counted in .skipped)" if len(self.skipped) == 10 else ""
                warnings.warn(f"skipping image: {reason}{more}", stacklevel=3)

    def __getitem__(self, index: int) -> torch.Tensor:
        """Sample ``index``: (3, h, w) float32 in [0, 1], or uint8 with ``uint8=True``.

        Under ``on_error="skip"`` an unreadable or too-small image is replaced by the next good
        one (index + 1, + 2, ..., wrapping around), cut with sample ``index``'s own crop and flip,
        so the result is deterministic and the dataset length never changes.
        """
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for a dataset of {n} images")
        index %= n
        for step in range(n):
            j = (index + step) % n
            if j in self._bad:
                continue
            try:
                img = self._read(j)  # (3, H, W)
                box = self.crop_box(index, img.shape[-2], img.shape[-1], name=self._where(j))
            except ImageReadError as err:
                if self.on_error == "raise":
                    raise DatasetError(
                        f"{err}\nThe file is corrupt or incomplete: download it again, or pass "
                        "on_error='skip' to skip unreadable images and count them."
                    ) from err
                self._skip(j, str(err))
                continue
            except ImageSizeError as err:
                if self.on_error == "raise":
                    raise
                self._skip(j, str(err))
                continue
            out = img[:, box.top : box.top + box.height, box.left : box.left + box.width]
            if box.flip:
                out = out.flip(-1)
            out = out.contiguous()
            return _to_uint8(out) if self.uint8 else out
        shown = "\n  ".join(list(self.skipped.values())[:5])
        raise DatasetError(f"none of the {n} images could be used; first problems:\n  {shown}")

    def _where(self, j: int) -> str:
        return self.names[j]


# ----------------------------------------------------------------------------- CelebA


@dataclass(frozen=True)
class CelebALayout:
    """A detected CelebA copy: its kind, where the images are and where the partition file is."""

    kind: str  # "official", "kaggle" or "zip"
    images: Path  # the folder of JPEGs, or the zip archive
    partition: Path | None  # the partition file on disk, if found
    partition_member: str | None = None  # ... or its name inside the zip
    names: tuple[str, ...] = field(default=(), repr=False)  # image file names, sorted
    members: dict[str, str] = field(default_factory=dict, repr=False)  # zip: name -> member


def _found(root: Path) -> str:
    if not root.exists():
        return f"Found: {root} does not exist."
    if root.is_file():
        return f"Found: {root} is a file ({root.stat().st_size:,} bytes)."
    entries = sorted(os.listdir(root))
    shown = ", ".join(e + ("/" if (root / e).is_dir() else "") for e in entries[:12])
    more = f" and {len(entries) - 12} more" if len(entries) > 12 else ""
    return f"Found in {root}: {shown or 'nothing (empty folder)'}{more}."


def _layout_error(problem: str, root: Path) -> DatasetError:
    return DatasetError(f"{problem}\n{_found(root)}\n\n{CELEBA_LAYOUTS}\n\n{CELEBA_SOURCE}")


def _scan(folder: Path) -> list[str]:
    """Image file names directly in ``folder`` (``os.scandir``: fast on 202,599 files)."""
    with os.scandir(folder) as it:
        return sorted(
            e.name
            for e in it
            if e.is_file()
            and not e.name.startswith(".")
            and os.path.splitext(e.name)[1].lower() in IMAGE_SUFFIXES
        )


def _find_partition(folders: Sequence[Path]) -> Path | None:
    for folder in folders:
        for sub in ("", "Eval"):
            for name in PARTITION_NAMES:
                candidate = folder / sub / name
                if candidate.is_file():
                    return candidate
    return None


def _zip_layout(path: Path, search: Sequence[Path]) -> CelebALayout:
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, OSError) as err:
        raise _layout_error(
            f"{path} is not a readable zip archive ({err}); it is probably an incomplete "
            "download: download it again.",
            path.parent,
        ) from err
    members: dict[str, str] = {}
    partition_member = None
    for info in infos:
        base = info.filename.rsplit("/", 1)[-1]
        if info.is_dir() or not base or base.startswith("."):
            continue
        if base in PARTITION_NAMES and partition_member is None:
            partition_member = info.filename
        elif os.path.splitext(base)[1].lower() in IMAGE_SUFFIXES:
            members.setdefault(base, info.filename)
    if not members:
        raise _layout_error(f"the zip archive {path} holds no images.", path.parent)
    partition = _find_partition(search)
    return CelebALayout(
        "zip",
        path,
        partition,
        None if partition else partition_member,
        tuple(sorted(members)),
        members,
    )


def looks_like_celeba(path: str | os.PathLike) -> bool:
    """Whether ``path`` is meant as CelebA: a zip file, ``img_align_celeba`` or a folder holding
    either (anything else is treated as a plain image folder by training and evaluation)."""
    path = Path(path).expanduser()
    if path.is_file():
        return path.suffix.lower() == ".zip"
    return path.name == IMG_DIR or (path / IMG_DIR).is_dir() or (path / f"{IMG_DIR}.zip").is_file()


def find_celeba(root: str | os.PathLike) -> CelebALayout:
    """Detect the CelebA layout (official, Kaggle or zip) at ``root``; see :data:`CELEBA_LAYOUTS`.

    ``root`` may be the folder holding ``img_align_celeba``, that folder itself, or the zip file.
    A folder with images wins over a zip next to it. Raises :class:`DatasetError` when nothing
    usable is there.
    """
    given = Path(root).expanduser()
    if not given.exists():
        raise _layout_error(f"CelebA not found at {given}.", given)
    if given.is_file():
        if given.suffix.lower() != ".zip":
            raise _layout_error(
                f"{given} is a file but not a zip archive; pass the folder that holds CelebA.",
                given,
            )
        return _zip_layout(given, [given.parent])
    chain = [given]  # accept ROOT/img_align_celeba(/img_align_celeba) and walk up to ROOT
    while chain[-1].name == IMG_DIR and chain[-1].parent != chain[-1]:
        chain.append(chain[-1].parent)
    top = chain[-1]
    search = [top, *chain[:-1]]
    outer = top / IMG_DIR
    for kind, folder in (("kaggle", outer / IMG_DIR), ("official", outer)):
        if folder.is_dir():
            names = _scan(folder)
            if names:
                return CelebALayout(kind, folder, _find_partition(search), None, tuple(names))
    archive = top / f"{IMG_DIR}.zip"
    if archive.is_file():
        return _zip_layout(archive, search)
    if outer.is_dir():
        raise _layout_error(
            f"{outer} exists but holds no .jpg images: the download or the extraction is "
            "unfinished. Extract img_align_celeba.zip again (or pass the zip itself).",
            outer,
        )
    raise _layout_error(f"CelebA not found in {top}.", top)


def parse_partition(text: str, source: str = "list_eval_partition") -> dict[str, int]:
    """Parse CelebA's partition table (``000001.jpg 0`` lines, or CSV ``image_id,partition``).

    Returns ``{file name: 0 | 1 | 2}`` in file order; a malformed line raises
    :class:`DatasetError` naming ``source`` and the line number.
    """
    table: dict[str, int] = {}
    stripped = text.lstrip()
    if not stripped:
        raise DatasetError(f"the partition file {source} is empty: download it again.")
    if stripped.startswith("<"):
        raise DatasetError(
            f"{source} is an HTML page, not CelebA's partition file (a failed download?): "
            f"download list_eval_partition.txt again.\n\n{CELEBA_SOURCE}"
        )
    lines = text.splitlines()
    header = lines[0].strip().lower().endswith("partition")  # the Kaggle CSV header
    body = lines[1:] if header else lines
    # fast path (202,599 lines): whitespace- or comma-separated pairs, every code 0, 1 or 2
    tokens = "\n".join(body).replace(",", " ").split()
    if set(tokens[1::2]) <= {"0", "1", "2"} and len(tokens) == 2 * sum(map(bool, body)):
        return dict(zip(tokens[0::2], map(int, tokens[1::2]), strict=True))
    for lineno, line in enumerate(lines, 1):  # slow path: find the bad line and name it
        line = line.strip()
        if not line:
            continue
        fields = [f.strip() for f in line.split(",")] if "," in line else line.split()
        if lineno == 1 and header:
            continue
        if len(fields) != 2 or fields[1] not in ("0", "1", "2"):
            raise DatasetError(
                f"{source}, line {lineno}: expected '<image>.jpg <0|1|2>', found {line[:80]!r}; "
                "the file may be truncated or not CelebA's partition file: download it again."
            )
        table[fields[0]] = int(fields[1])
    return table


def read_partition(path: str | os.PathLike) -> dict[str, int]:
    """Read ``list_eval_partition.txt`` / ``.csv`` from disk (see :func:`parse_partition`)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig", errors="replace")
    except OSError as err:
        raise DatasetError(f"cannot read the partition file {path}: {err}") from err
    return parse_partition(text, str(path))


def split_holdout(names: Sequence[str], n: int) -> tuple[list[str], list[str]]:
    """Split sorted ``names`` into (rest, held out): the held-out set is the last ``n`` by name."""
    names = sorted(names)
    if not 0 < n < len(names):
        raise DatasetError(
            f"holdout={n} must be between 1 and {len(names) - 1} for {len(names)} images."
        )
    return names[:-n], names[-n:]


class CelebA(_CroppedImages):
    """CelebA aligned faces from the user's local copy (official, Kaggle or zip layout).

    ``split``: ``"train"``, ``"val"``, ``"test"`` (from ``list_eval_partition``), ``"all"`` (every
    image present, no partition file needed) or ``"holdout"`` (the last ``holdout`` present train
    images by name; ``split="train"`` then leaves them out) - for partial copies such as the
    shared 10,000-image sample, which is all train partition.

    The split is the intersection of the partition file with the files present; ``counts`` and
    :meth:`describe` report what was listed, present and used.

    ``mode="train"``: random ``crop`` (default 96, the paper's HR patch) + random horizontal flip.
    ``mode="eval"``: ``crop`` centred, or by default the largest centred square whose side is a
    multiple of ``multiple_of``: 176x176 at rows 21..196 of the 218x178 faces for x4 (88x88 at rows
    10..97 of the 109x89 half-resolution copy). ``mode="full"``: the whole image.
    """

    default_train_crop = PAPER_CROP

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "train",
        mode: str = "train",
        crop: int | Sequence[int] | None = None,
        *,
        flip: bool = True,
        seed: int = 0,
        multiple_of: int = 4,
        uint8: bool = False,
        on_error: str = "raise",
        holdout: int = 0,
        limit: int | None = None,
        partition: str | os.PathLike | None = None,
    ) -> None:
        super().__init__(mode, crop, flip, seed, multiple_of, uint8, on_error)
        if split not in (*SPLITS, "all", "holdout"):
            raise ValueError(
                f"split must be 'train', 'val', 'test', 'all' or 'holdout', got {split!r}"
            )
        if holdout and split not in ("train", "holdout"):
            raise ValueError("holdout=N goes with split='train' or split='holdout'")
        if split == "holdout" and holdout <= 0:
            raise ValueError("split='holdout' needs holdout=N (how many images to hold out)")
        self.layout = find_celeba(root)
        self.split = split
        self._zf: zipfile.ZipFile | None = None
        self._zf_pid: int | None = None
        present = self.layout.names
        self.counts = {"present": len(present)}
        if split == "all":
            names = list(present)
        else:
            table = self._partition_table(partition)
            code = SPLITS["train" if split == "holdout" else split]
            listed = [name for name, part in table.items() if part == code]
            on_disk = set(present)
            names = sorted(name for name in listed if name in on_disk)
            self.counts.update(
                listed=len(table),
                listed_in_split=len(listed),
                not_on_disk=len(listed) - len(names),
                unlisted=len(on_disk.difference(table)),
            )
            if not names:
                raise DatasetError(self._absent_split_message(table, present, split))
            if holdout:
                rest, held = split_holdout(names, holdout)
                names = held if split == "holdout" else rest
        if limit is not None:
            names = names[: max(0, int(limit))]
        self.names = names
        self.counts["used"] = len(names)
        self.image_size = self._peek_size()
        """(H, W) of the first image (all CelebA faces share one size), or None if unreadable."""
        if self.image_size is not None and self.mode != "full" and self.crop is not None:
            h, w = self.image_size  # a crop that cannot fit the faces is a setting to fix
            if self.crop[0] > h or self.crop[1] > w:
                m = self.multiple_of
                raise ImageSizeError(
                    f"the faces in this copy are {h}x{w} (HxW, e.g. {self._where(0)}) but the "
                    f"{self.mode} crop is {self.crop[0]}x{self.crop[1]}: pass crop=N with N at "
                    f"most {min(h, w) // m * m} (a multiple of multiple_of={m})."
                )

    def _peek_size(self) -> tuple[int, int] | None:
        if not self.names:
            return None
        try:
            if self.layout.kind == "zip":
                source = io.BytesIO(self._zip().read(self.layout.members[self.names[0]]))
            else:
                source = self.layout.images / self.names[0]
            with Image.open(source) as img:
                return img.height, img.width
        except (OSError, SyntaxError, ValueError, zipfile.BadZipFile, zlib.error, EOFError):
            return None

    def _partition_table(self, partition: str | os.PathLike | None) -> dict[str, int]:
        if partition is not None:
            return read_partition(partition)
        if self.layout.partition is not None:
            return read_partition(self.layout.partition)
        if self.layout.partition_member is not None:
            data = self._zip().read(self.layout.partition_member)
            return parse_partition(data.decode("utf-8", errors="replace"), str(self.layout.images))
        images = self.layout.images
        where = images.parent.parent if self.layout.kind == "kaggle" else images.parent
        raise _layout_error(
            f"found the {self.layout.kind} layout ({len(self.layout.names):,} images in "
            f"{self.layout.images}) but no list_eval_partition.txt or .csv next to it, which "
            f"split={self.split!r} needs. Put the partition file in {where}, pass "
            "partition=PATH, or use split='all' for every image without a split.",
            where,
        )

    def _absent_split_message(self, table: dict[str, int], present: Sequence[str], split: str):
        by_split = {s: 0 for s in SPLITS}
        unlisted = 0
        for name in present:
            part = table.get(name)
            if part is None:
                unlisted += 1
            else:
                by_split[next(s for s, c in SPLITS.items() if c == part)] += 1
        have = ", ".join(f"{s}: {c:,}" for s, c in by_split.items())
        wanted = "train" if split == "holdout" else split
        listed = sum(1 for p in table.values() if p == SPLITS[wanted])
        return (
            f"the partition file lists {listed:,} {wanted!r} images but none of them is in "
            f"{self.layout.images}. The {len(present):,} images present are - {have}, "
            f"not listed: {unlisted:,}.\nYour copy is partial: download the rest, or hold out "
            "images from what you have, e.g. CelebA(root, split='holdout', holdout=1000) for "
            "evaluation and CelebA(root, split='train', holdout=1000) for training."
        )

    def describe(self) -> str:
        """One line on what the dataset holds, e.g. for a lesson or the training log."""
        c = self.counts
        text = f"CelebA {self.split} ({self.layout.kind} layout, {self.layout.images}): "
        text += f"{c['used']:,} images used of {c['present']:,} present"
        if self.image_size is not None:
            text += f" ({self.image_size[0]}x{self.image_size[1]} HxW)"
        if "listed" in c:
            text += (
                f"; partition file lists {c['listed']:,} images, {c['listed_in_split']:,} in "
                f"this split, {c['not_on_disk']:,} of them not on disk"
            )
        return text + "."

    def __repr__(self) -> str:
        return f"<{self.describe()} mode={self.mode!r}>"

    def _default_eval_box(self, height: int, width: int) -> CropBox:
        m = self.multiple_of
        side = min(height, width) // m * m
        return centre_box(height, width, (side, side))

    def _where(self, j: int) -> str:
        if self.layout.kind == "zip":
            return f"{self.layout.images}:{self.layout.members[self.names[j]]}"
        return str(self.layout.images / self.names[j])

    def _zip(self) -> zipfile.ZipFile:
        """The archive, opened lazily once per process (a forked worker must not share the
        parent's file offset, and an open ZipFile cannot be pickled for spawned workers)."""
        if self._zf is None or self._zf_pid != os.getpid():
            self._zf = zipfile.ZipFile(self.layout.images)
            self._zf_pid = os.getpid()
        return self._zf

    def _read(self, j: int) -> torch.Tensor:
        name = self.names[j]
        if self.layout.kind != "zip":
            path = self.layout.images / name
            try:
                return load_image(path)
            except FileNotFoundError as err:
                raise ImageReadError(f"cannot read image {path}: it disappeared") from err
        where = self._where(j)
        try:
            data = self._zip().read(self.layout.members[name])
        except (zipfile.BadZipFile, zlib.error, OSError, EOFError, KeyError) as err:
            raise ImageReadError(f"cannot read image {where}: {err}") from err
        return decode_image(data, where)

    def close(self) -> None:
        """Close the zip archive if this process opened it (harmless otherwise)."""
        if self._zf is not None and self._zf_pid == os.getpid():
            self._zf.close()
        self._zf, self._zf_pid = None, None

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_zf"], state["_zf_pid"] = None, None  # each process opens its own handle
        return state


def celeba_training_split(
    root: str | os.PathLike, val_holdout: int, *, seed: int = 0, multiple_of: int = 4
) -> tuple[CelebA, CelebA | None]:
    """The ``(train, val)`` images training takes from a CelebA copy (lesson 08).

    Train: the ``train`` split as whole uint8 images (``mode="full"``, cropped on the device),
    unreadable files skipped. Val: the first ``val_holdout`` images of the ``val`` split, or, for
    a copy without val images (like the 10,000-face sample), the last ``val_holdout`` train
    images by name, which training then never sees. ``srgan_edu.train`` and
    ``srgan_edu.prepare`` both call this, so a prepared array holds exactly these train images.
    """
    k = val_holdout
    common: dict = dict(seed=seed, multiple_of=multiple_of)
    try:
        val = CelebA(root, "val", mode="eval", limit=k, **common) if k else None
        train = CelebA(root, "train", mode="full", uint8=True, on_error="skip", **common)
    except DatasetError:
        if not k:
            raise
        # a partial copy without val images: hold out the last k train images instead
        val = CelebA(root, "holdout", mode="eval", holdout=k, **common)
        train = CelebA(root, "train", mode="full", uint8=True, on_error="skip", holdout=k, **common)
    return train, val


# ----------------------------------------------------------------------------- image folders


class ImageFolder(_CroppedImages):
    """Every image directly in ``root`` (sorted by name), as HR images for evaluation or training.

    ``mode="eval"`` with ``crop=None`` (default): the whole image, cut at the bottom/right to a
    multiple of ``multiple_of`` (MATLAB's ``modcrop``, so HR/scale is exact); with ``crop``: the
    centred crop. ``mode="train"``: random ``crop`` + flip, as :class:`CelebA`. Images of
    different sizes cannot share a batch in ``eval``: use ``batch_size=1``.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        crop: int | Sequence[int] | None = None,
        mode: str = "eval",
        *,
        flip: bool = True,
        seed: int = 0,
        multiple_of: int = 1,
        uint8: bool = False,
        on_error: str = "raise",
    ) -> None:
        super().__init__(mode, crop, flip, seed, multiple_of, uint8, on_error)
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise DatasetError(
                f"image folder not found: {self.root}. Pass a folder that holds image files "
                f"({', '.join(IMAGE_SUFFIXES)})."
            )
        self.paths = list_images(self.root)
        if not self.paths:
            raise DatasetError(
                f"no images in {self.root} (looked for {', '.join(IMAGE_SUFFIXES)}). "
                f"{_found(self.root)}"
            )
        self.names = [p.name for p in self.paths]

    def _default_eval_box(self, height: int, width: int) -> CropBox:
        m = self.multiple_of
        return CropBox(0, 0, height // m * m, width // m * m, False)

    def _where(self, j: int) -> str:
        return str(self.paths[j])

    def _read(self, j: int) -> torch.Tensor:
        try:
            return load_image(self.paths[j])
        except FileNotFoundError as err:
            raise ImageReadError(f"cannot read image {self.paths[j]}: it disappeared") from err


def _image_size(path: Path) -> tuple[int, int]:
    """(H, W) from the file header, without decoding the pixels."""
    try:
        with Image.open(path) as img:
            return img.height, img.width
    except (OSError, SyntaxError, ValueError) as err:
        raise DatasetError(f"cannot read image {path}: {err}") from err


class PairedImageFolder(Dataset):
    """HR images with their given LR versions, as in the SR benchmark folders (Set5, Set14 ...).

    Pairing rules: the HR folder is ``hr_dir`` or the first of ``HR/``, ``GTmod12/``, ``GT/`` in
    ``root``; the LR folder is ``lr_dir`` or the first of ``LRbicx{scale}/`` (BasicSR) and
    ``LR_bicubic/X{scale}/`` (EDSR) in ``root``. Files pair by name without extension; an LR name
    may carry an ``x{scale}`` suffix (``babyx4.png`` <-> ``baby.png``). Every HR image needs an LR
    partner. The HR image is cut at the bottom/right to a multiple of ``scale`` (``modcrop``) and
    the LR image must then be exactly HR/scale, else :class:`DatasetError` names both files.

    Items are ``(lr, hr)``, both (3, h, w) float32 in [0, 1] (uint8 with ``uint8=True``).
    """

    HR_DIRS = ("HR", "GTmod12", "GT")

    def __init__(
        self,
        root: str | os.PathLike,
        scale: int = 4,
        *,
        hr_dir: str | os.PathLike | None = None,
        lr_dir: str | os.PathLike | None = None,
        uint8: bool = False,
    ) -> None:
        self.root, self.scale, self.uint8 = Path(root).expanduser(), int(scale), uint8
        if self.scale < 1:
            raise ValueError(f"scale must be >= 1, got {scale}")
        lr_dirs = (f"LRbicx{self.scale}", f"LR_bicubic/X{self.scale}")
        expected = (
            f"Expected {self.root}/HR/*.png (or GTmod12/, GT/) with "
            f"{self.root}/LRbicx{self.scale}/*.png (or LR_bicubic/X{self.scale}/) of the same "
            "names, or pass hr_dir= and lr_dir=."
        )
        if not self.root.is_dir():
            raise DatasetError(f"folder not found: {self.root}. {expected}")
        self.hr_dir = self._pick(hr_dir, self.HR_DIRS, "HR", expected)
        self.lr_dir = self._pick(lr_dir, lr_dirs, f"x{self.scale} LR", expected)
        hr_paths, lr_paths = list_images(self.hr_dir), list_images(self.lr_dir)
        if not hr_paths:
            raise DatasetError(f"no images in {self.hr_dir}. {expected}")
        hr_by_stem = {p.stem: p for p in hr_paths}
        suffix = f"x{self.scale}"
        lr_by_stem: dict[str, Path] = {}
        self.unpaired_lr: list[str] = []
        for p in lr_paths:
            stem = p.stem
            if stem not in hr_by_stem and stem.endswith(suffix):
                stem = stem[: -len(suffix)]
            if stem in hr_by_stem:
                lr_by_stem[stem] = p
            else:
                self.unpaired_lr.append(p.name)
        missing = [p.name for p in hr_paths if p.stem not in lr_by_stem]
        if missing:
            raise DatasetError(
                f"{len(missing)} HR image(s) in {self.hr_dir} have no LR partner in "
                f"{self.lr_dir}: {', '.join(missing[:10])}. {expected}"
            )
        self.pairs = [(lr_by_stem[p.stem], p) for p in hr_paths]
        self.names = [p.name for p in hr_paths]
        for lr_path, hr_path in self.pairs:  # header sizes only: fast, fails before any work
            self._check(_image_size(hr_path), _image_size(lr_path), hr_path, lr_path)

    def _pick(self, given, defaults: Sequence[str], what: str, expected: str) -> Path:
        if given is not None:
            folder = self.root / given  # an absolute ``given`` replaces root
            if not folder.is_dir():
                raise DatasetError(f"{what} folder not found: {folder}. {expected}")
            return folder
        for name in defaults:
            if (self.root / name).is_dir():
                return self.root / name
        raise DatasetError(f"no {what} folder in {self.root}. {expected} {_found(self.root)}")

    def _check(self, hr: tuple[int, int], lr: tuple[int, int], hr_path: Path, lr_path: Path):
        s = self.scale
        want = (hr[0] // s, hr[1] // s)
        if tuple(lr) != want or min(want) == 0:
            raise DatasetError(
                f"LR image {lr_path} is {lr[0]}x{lr[1]} (HxW) but its HR image {hr_path} is "
                f"{hr[0]}x{hr[1]}, so x{s} LR should be {want[0]}x{want[1]}. Check scale={s} "
                "and that the two files belong together."
            )

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        lr_path, hr_path = self.pairs[index]
        lr, hr = load_image(lr_path), load_image(hr_path)  # (3, h, w), (3, H, W)
        self._check(tuple(hr.shape[-2:]), tuple(lr.shape[-2:]), hr_path, lr_path)
        hr = hr[:, : lr.shape[-2] * self.scale, : lr.shape[-1] * self.scale].contiguous()
        if self.uint8:
            return _to_uint8(lr), _to_uint8(hr)
        return lr, hr


# ----------------------------------------------------------------------------- synthetic images


def synthetic_image(height: int, width: int, generator: torch.Generator) -> torch.Tensor:
    """One procedural (3, H, W) image in [0, 1]: a colour gradient, fine gratings, soft-edged
    discs and boxes (one striped), and grain - edges and detail for SR to learn from."""
    g = generator
    y = torch.arange(height, dtype=torch.float32)[:, None].expand(height, width)  # (H, W)
    x = torch.arange(width, dtype=torch.float32)[None, :].expand(height, width)  # (H, W)
    scale = float(max(height, width))

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(shape, generator=g)

    # background: a linear gradient between two colours in a random direction
    theta = float(rand(1)) * 2 * math.pi
    t = (x * math.cos(theta) + y * math.sin(theta)) / scale
    t = (t - t.min()) / (t.max() - t.min()).clamp_min(1e-6)
    c0, c1 = rand(3, 1, 1), rand(3, 1, 1)
    img = c0 * (1 - t) + c1 * t  # (3, H, W)
    # texture: two faint sinusoidal gratings with periods of 3 to 12 pixels
    for _ in range(2):
        angle = float(rand(1)) * math.pi
        period = 3.0 + 9.0 * float(rand(1))
        phase = 2 * math.pi * (x * math.cos(angle) + y * math.sin(angle)) / period  # (H, W)
        img = img + 0.06 * torch.sin(phase)
    # shapes: discs and boxes with a one-pixel soft edge; the first shape is striped
    for k in range(3 + int(torch.randint(0, 4, (1,), generator=g))):
        cy, cx = float(rand(1)) * height, float(rand(1)) * width
        r = (0.08 + 0.22 * float(rand(1))) * min(height, width)
        if float(rand(1)) < 0.5:
            inside = r - torch.sqrt((y - cy) ** 2 + (x - cx) ** 2)
        else:
            inside = torch.minimum(r - (y - cy).abs(), 0.7 * r - (x - cx).abs())
        mask = (inside + 0.5).clamp(0, 1)  # (H, W), 1 inside, a 1-pixel ramp at the edge
        colour = rand(3, 1, 1).expand(3, height, width)
        if k == 0:
            stripes = (torch.sin(2 * math.pi * (x + y) / (4.0 + 6.0 * float(rand(1)))) > 0).float()
            colour = colour * (0.55 + 0.45 * stripes)
        img = img * (1 - mask) + colour * mask
    img = img + 0.02 * torch.randn(img.shape, generator=g)  # grain
    return img.clamp(0, 1).contiguous()


class SyntheticImages(Dataset):
    """``n`` procedural HR images of ``size`` (int or (H, W)); image ``i`` depends only on
    ``(seed, i)``, so CI and demos need no files and no download."""

    def __init__(self, n: int = 64, size: int | Sequence[int] = PAPER_CROP, seed: int = 0) -> None:
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        self.n, self.size, self.seed = int(n), _as_size(size, "size"), int(seed)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> torch.Tensor:
        if not -self.n <= index < self.n:
            raise IndexError(f"index {index} out of range for {self.n} images")
        g = torch.Generator().manual_seed(sample_seed(self.seed, 0, index % self.n))
        return synthetic_image(*self.size, g)  # type: ignore[misc]


# ----------------------------------------------------------------------------- offline samples

SAMPLE_IMAGES = {"grace_hopper": "grace_hopper.jpg"}
"""Photos matplotlib ships in its ``sample_data`` (Grace Hopper: U.S. Navy photo, public domain)."""


def sample_image_path(name: str = "grace_hopper") -> Path:
    """Path of a sample photo that ships with matplotlib (via ``cbook.get_sample_data``)."""
    if name not in SAMPLE_IMAGES:
        raise ValueError(f"unknown sample image {name!r}; choose from {sorted(SAMPLE_IMAGES)}")
    import matplotlib.cbook

    try:
        path = Path(matplotlib.cbook.get_sample_data(SAMPLE_IMAGES[name], asfileobj=False))
    except (OSError, ValueError):
        path = None
    if path is None or not path.is_file():
        raise DatasetError(
            f"matplotlib's sample image {SAMPLE_IMAGES[name]} is missing from this install; "
            "reinstall matplotlib (pip install --force-reinstall matplotlib) or use "
            "SyntheticImages instead."
        )
    return path


def sample_image(name: str = "grace_hopper") -> torch.Tensor:
    """A sample photo as a (3, H, W) float32 tensor in [0, 1] (Grace Hopper: 600x512)."""
    return load_image(sample_image_path(name))


def sample_images() -> dict[str, torch.Tensor]:
    """Every offline image the lessons use: matplotlib's photos and one synthetic 256x256."""
    images = {name: sample_image(name) for name in SAMPLE_IMAGES}
    images["synthetic"] = SyntheticImages(1, 256, seed=0)[0]
    return images


# ----------------------------------------------------------------------------- DataLoader helpers


def _reset_handles(dataset: Dataset) -> None:
    """Drop per-process handles (the CelebA zip) of ``dataset`` and of any datasets it wraps."""
    if isinstance(dataset, CelebA):
        dataset.close()
    for inner in [getattr(dataset, "dataset", None), *getattr(dataset, "datasets", [])]:
        if isinstance(inner, Dataset):
            _reset_handles(inner)


def worker_init(worker_id: int) -> None:
    """``worker_init_fn`` for DataLoaders: each worker opens its own zip handle.

    Workers ignore SIGINT and SIGTERM: Ctrl-C in a terminal, ``kill -- -PGID`` and batch
    schedulers signal the whole process group, and a worker that died first would make the main
    process fail with "DataLoader worker killed" instead of saving a checkpoint. The main process
    alone decides when to stop; PyTorch ends the workers when it does (or if it dies).
    Crops and flips need no per-worker seeding: they come from ``(seed, epoch, index)``.
    """
    info = get_worker_info()
    if info is not None:  # in a worker process (its main thread)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        _reset_handles(info.dataset)


def make_loader(
    dataset: Dataset,
    batch_size: int,
    *,
    shuffle: bool = True,
    num_workers: int = 0,
    seed: int = 0,
    drop_last: bool = False,
    pin_memory: bool = False,
    multiprocessing_context: str | None = None,
) -> DataLoader:
    """A DataLoader with a seeded shuffle and :func:`worker_init`; works with every layout.

    Workers are not persistent, so :meth:`CelebA.set_epoch` called before an epoch reaches them.
    Use ``multiprocessing_context="spawn"`` where fork is unavailable (Windows, macOS default).
    """
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        num_workers=num_workers,
        generator=torch.Generator().manual_seed(int(seed)),
        worker_init_fn=worker_init if num_workers > 0 else None,
        drop_last=drop_last,
        pin_memory=pin_memory,
        persistent_workers=False,
        multiprocessing_context=multiprocessing_context if num_workers > 0 else None,
    )


__all__ = [
    "CELEBA_LAYOUTS",
    "CELEBA_SIZE",
    "PAPER_CROP",
    "SPLITS",
    "CelebA",
    "CelebALayout",
    "CropBox",
    "DatasetError",
    "ImageFolder",
    "ImageSizeError",
    "PairedImageFolder",
    "SyntheticImages",
    "celeba_training_split",
    "centre_box",
    "find_celeba",
    "looks_like_celeba",
    "make_loader",
    "parse_partition",
    "random_crop_flip",
    "read_partition",
    "sample_image",
    "sample_image_path",
    "sample_images",
    "sample_seed",
    "split_holdout",
    "synthetic_image",
    "uint8_to_unit",
    "worker_init",
]
