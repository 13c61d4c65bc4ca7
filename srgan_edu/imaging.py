"""Images on disk <-> tensors, in one place, and the value-range convention of the whole library.

Convention (Ledig et al. 2017, Sec. 3.2 / 4.1): low-resolution (LR) inputs are in [0, 1]; high-
resolution (HR) targets and generator outputs are in [-1, 1]. Convert at the edges with
:func:`unit_to_signed` and :func:`signed_to_unit`; nothing else rescales.

Every image file is read with Pillow through :func:`load_image`, which applies the EXIF rotation
and turns grayscale, palette, RGBA and 16-bit images into RGB on purpose, so that a dataset, the
evaluator and the upscaler all see the same pixels. Introduced in lesson 03.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

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


def load_image(path: str | os.PathLike) -> torch.Tensor:
    """Read an image file as a (3, H, W) float32 tensor in [0, 1].

    Raises :class:`FileNotFoundError` for a missing file and :class:`ImageReadError` (naming the
    file) for one Pillow cannot decode, e.g. a truncated download or a zero-byte file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image not found: {path}")
    try:
        with Image.open(path) as img:
            img.load()
            arr = to_rgb(img)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise ImageReadError(f"cannot read image {path}: {err}") from err
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
