"""Images on disk <-> tensors, in one place, and the value-range convention of the whole library.

Convention (Ledig et al. 2017, Sec. 3.2): low-resolution (LR) inputs are in [0, 1]; high-
resolution (HR) targets and generator outputs are in [-1, 1]. Convert at the edges with
:func:`unit_to_signed` and :func:`signed_to_unit`; nothing else rescales.

Every image file is read with Pillow through :func:`load_image`, which applies the EXIF rotation
and turns grayscale, palette, RGBA and 16-bit images into RGB on purpose, so that a dataset, the
evaluator and the upscaler all see the same pixels. Introduced in lesson 03.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

T = TypeVar("T")

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


class ImageReadError(ValueError):
    """A file that should be an image could not be decoded; the message names the file."""


def unit_to_signed(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] -> [-1, 1]: the range of HR targets and generator outputs."""
    return x * 2.0 - 1.0


def signed_to_unit(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> [0, 1]: back to the range of LR inputs, metrics and saved images."""
    return (x + 1.0) * 0.5


def to_rgb(img: Image.Image, background: tuple[int, int, int] = (255, 255, 255)) -> np.ndarray:
    """A Pillow image as an (H, W, 3) float32 array in [0, 1], whatever its mode.

    Grayscale is repeated over three channels; an alpha channel is composited over
    ``background`` (white by default, as a viewer shows it); 16-bit and 32-bit integer images
    keep their full precision instead of being truncated to 8 bits.
    """
    img = ImageOps.exif_transpose(img)
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(img, dtype=np.float64)
        peak = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        gray = np.clip(arr / peak, 0.0, 1.0).astype(np.float32)
        return np.repeat(gray[..., None], 3, axis=2)
    if img.mode == "F":
        gray = np.clip(np.asarray(img, dtype=np.float32), 0.0, 1.0)
        return np.repeat(gray[..., None], 3, axis=2)
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (*background, 255))
        img = Image.alpha_composite(canvas, rgba)
    rgb = img.convert("RGB")
    return np.asarray(rgb, dtype=np.float32) / 255.0


def _read_file(path: str | os.PathLike, convert: Callable[[Image.Image], T]) -> T:
    """Open an image file with Pillow and ``convert`` it; every decoding failure becomes an
    :class:`ImageReadError` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image not found: {path}")
    try:
        with Image.open(path) as img:
            img.load()
            return convert(img)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise ImageReadError(f"cannot read image {path}: {err}") from err


def load_image(path: str | os.PathLike) -> torch.Tensor:
    """Read an image file as a (3, H, W) float32 tensor in [0, 1].

    Raises :class:`FileNotFoundError` for a missing file and :class:`ImageReadError` (naming the
    file) for one Pillow cannot decode, e.g. a truncated download or a zero-byte file.
    """
    arr = _read_file(path, to_rgb)  # (H, W, 3)
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))


def decode_image(data: bytes, name: str = "<bytes>") -> torch.Tensor:
    """Like :func:`load_image` for an image held in memory (e.g. a member of a zip archive)."""
    import io

    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            arr = to_rgb(img)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise ImageReadError(f"cannot read image {name}: {err}") from err
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))


def to_pil(x: torch.Tensor) -> Image.Image:
    """A (3, H, W) or (1, H, W) tensor in [0, 1] as an 8-bit Pillow image (rounded, clipped)."""
    if x.dim() == 4:
        if x.shape[0] != 1:
            raise ValueError(f"to_pil takes one image, got a batch of {x.shape[0]}")
        x = x[0]
    arr = (x.detach().float().clamp(0, 1) * 255.0).round().to(torch.uint8).cpu().numpy()
    if arr.shape[0] == 1:
        return Image.fromarray(arr[0], mode="L")
    return Image.fromarray(arr.transpose(1, 2, 0), mode="RGB")


def save_image(x: torch.Tensor, path: str | os.PathLike) -> Path:
    """Write a tensor in [0, 1] as an image file (format from the suffix); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    to_pil(x).save(path)
    return path


def list_images(folder: str | os.PathLike) -> list[Path]:
    """The image files directly inside ``folder``, sorted by name (hidden files skipped)."""
    folder = Path(folder)
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
    )


# ----------------------------------------------------------------------------------------------
# Keeping what load_image merges away: alpha, grayscale-ness, bit depth (used by the upscaler)
# ----------------------------------------------------------------------------------------------

_GRAY_MODES = ("1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F")
_ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")


@dataclass
class ImageParts:
    """An image file split into what :func:`load_image` merges: colour, alpha, kind, bit depth.

    ``rgb`` is (3, H, W) in [0, 1], upright (EXIF rotation applied); where the file has an alpha
    channel it is the straight (not composited, not premultiplied) colour and ``alpha`` is
    (1, H, W) in [0, 1], else ``alpha`` is None. ``grayscale`` says the file had one colour
    channel (the three channels of ``rgb`` are then equal); ``bit_depth`` is 16 for 16-bit
    grayscale files and 8 otherwise (Pillow reads 16-bit RGB PNGs as 8-bit RGB).
    """

    rgb: torch.Tensor  # (3, H, W)
    alpha: torch.Tensor | None  # (1, H, W) or None
    grayscale: bool
    bit_depth: int
    icc_profile: bytes | None = None


def _chw(arr: np.ndarray) -> torch.Tensor:
    """(H, W, C) float array -> (C, H, W) float32 tensor."""
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1), dtype=np.float32))


def _parts_from_pil(img: Image.Image) -> ImageParts:
    icc = img.info.get("icc_profile") or None
    img = ImageOps.exif_transpose(img)  # upright; the orientation tag is removed from the copy
    mode = img.mode
    has_alpha = mode in _ALPHA_MODES or (mode == "P" and "transparency" in img.info)
    grayscale = mode in _GRAY_MODES
    bit_depth = 8
    if mode.startswith("I") or mode == "F":
        rgb = to_rgb(img)  # (H, W, 3): the same 8/16-bit decision as load_image
        if mode.startswith("I;16") or mode == "F":
            bit_depth = 16
        elif np.asarray(img).max() > 255:  # mode "I": 16-bit data in a 32-bit image
            bit_depth = 16
        return ImageParts(_chw(rgb), None, True, bit_depth, icc)
    if not has_alpha:
        return ImageParts(_chw(to_rgb(img)), None, grayscale, bit_depth, icc)
    if grayscale:
        la = np.asarray(img.convert("LA"), dtype=np.float32) / 255.0  # (H, W, 2)
        rgb = np.repeat(la[..., :1], 3, axis=2)
        alpha = la[..., 1:]
    else:
        rgba = np.asarray(img.convert("RGBA"), dtype=np.float32) / 255.0  # (H, W, 4)
        rgb, alpha = rgba[..., :3], rgba[..., 3:]
    return ImageParts(_chw(rgb), _chw(alpha), grayscale, bit_depth, icc)


def load_image_parts(path: str | os.PathLike) -> ImageParts:
    """Read an image file as :class:`ImageParts`, keeping its alpha, grayscale-ness and bit depth.

    Same errors as :func:`load_image`. ``load_image`` composites alpha over white and always
    returns RGB; use this function where the output should keep the input's kind (the upscaler).
    """
    return _read_file(path, _parts_from_pil)


def parts_to_pil(
    rgb: torch.Tensor,
    alpha: torch.Tensor | None = None,
    grayscale: bool = False,
    bit_depth: int = 8,
) -> Image.Image:
    """The inverse of :func:`load_image_parts`: tensors in [0, 1] -> a Pillow image.

    ``rgb`` is (3, H, W) (or (1, 3, H, W)); ``alpha`` (1, H, W) or None. Grayscale images are
    made from ``rgb`` with the ITU-R BT.601 luma weights (0.299, 0.587, 0.114), as Pillow's
    ``convert("L")`` does. Modes: L, LA, RGB, RGBA, or I;16 for 16-bit grayscale without alpha
    (Pillow writes neither 16-bit colour nor 16-bit alpha: those come out as 8-bit).
    """
    if rgb.dim() == 4 and rgb.shape[0] == 1:
        rgb = rgb[0]
    if alpha is not None and alpha.dim() == 4 and alpha.shape[0] == 1:
        alpha = alpha[0]
    if rgb.dim() != 3 or rgb.shape[0] != 3:
        raise ValueError(f"parts_to_pil expects rgb of shape (3, H, W), got {tuple(rgb.shape)}")
    x = rgb.detach().float().cpu().clamp(0, 1)  # (3, H, W)
    if grayscale:
        weights = torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1)
        x = (x * weights).sum(0, keepdim=True)  # (1, H, W)
    if bit_depth == 16 and grayscale and alpha is None:
        arr16 = (x[0] * 65535.0).round().to(torch.int32).numpy().astype(np.uint16)  # (H, W)
        return Image.fromarray(arr16)  # mode I;16
    if alpha is not None:
        x = torch.cat([x, alpha.detach().float().cpu().clamp(0, 1)], dim=0)  # (C+1, H, W)
    arr = (x * 255.0).round().to(torch.uint8).numpy().transpose(1, 2, 0)  # (H, W, C)
    if arr.shape[2] == 1:
        return Image.fromarray(arr[..., 0])  # mode L
    return Image.fromarray(arr)  # LA, RGB or RGBA
