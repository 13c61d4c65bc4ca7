"""Pictures of super-resolution results: comparison grids (LR | bicubic | SR | HR) and zoomed crops.

Everything here takes and returns tensors in [0, 1], so the same picture can be saved as a PNG
(:func:`srgan_edu.imaging.save_image`) by a training run or an evaluation, or shown in a notebook.
Introduced in lesson 08 (the sample grids a training run writes).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

__all__ = ["comparison_grid", "nearest_up", "tile_row", "zoomed_crops"]


def nearest_up(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Nearest-neighbour enlargement of (B, C, h, w) to ``size``: shows the LR pixels as blocks."""
    return F.interpolate(x, size=size, mode="nearest")


def tile_row(images: Sequence[torch.Tensor], gap: int = 2, fill: float = 1.0) -> torch.Tensor:
    """(C, H, W) images of one height side by side with ``gap`` pixels of ``fill`` between."""
    if not images:
        raise ValueError("tile_row needs at least one image")
    height = images[0].shape[-2]
    if any(im.shape[-2] != height for im in images):
        raise ValueError(f"tile_row needs images of one height, got {[im.shape for im in images]}")
    spacer = images[0].new_full((images[0].shape[0], height, gap), fill)
    parts: list[torch.Tensor] = []
    for im in images:
        parts += [im, spacer]
    return torch.cat(parts[:-1], dim=-1)


def comparison_grid(
    columns: Sequence[torch.Tensor], gap: int = 2, fill: float = 1.0
) -> torch.Tensor:
    """One row per image, one column per method: e.g. ``[lr, bicubic, sr, hr]`` -> (3, H, W).

    Each entry of ``columns`` is a (B, 3, h, w) batch in [0, 1]; columns smaller than the largest
    (the LR input) are enlarged with :func:`nearest_up` so their pixels stay visible.
    """
    if not columns:
        raise ValueError("comparison_grid needs at least one column")
    batch = columns[0].shape[0]
    if any(c.shape[0] != batch for c in columns):
        raise ValueError(f"all columns need {batch} images, got {[c.shape[0] for c in columns]}")
    size = max(tuple(c.shape[-2:]) for c in columns)
    cols = [
        (c if tuple(c.shape[-2:]) == size else nearest_up(c, size)).detach().float().cpu()
        for c in columns
    ]
    rows = [tile_row([c[i].clamp(0, 1) for c in cols], gap, fill) for i in range(batch)]
    spacer = rows[0].new_full((rows[0].shape[0], gap, rows[0].shape[-1]), fill)
    parts: list[torch.Tensor] = []
    for r in rows:
        parts += [r, spacer]
    return torch.cat(parts[:-1], dim=-2)


def zoomed_crops(
    images: Sequence[torch.Tensor],
    box: tuple[int, int, int, int] | None = None,
    zoom: int = 2,
    max_side: int = 96,
    gap: int = 2,
    fill: float = 1.0,
) -> torch.Tensor:
    """One region cut from each image of one scene, enlarged ``zoom`` x, side by side: (3, H, W).

    ``images`` are (3, h, w) tensors in [0, 1] of the same scene at resolutions that divide the
    largest one (e.g. ``[lr, bicubic, sr, hr]``: the LR image is 1/scale of the others). ``box`` =
    (top, left, height, width) in the largest image's pixels, aligned to every ratio; by default
    the centred square of side ``max_side`` (or less, for a smaller image). Every crop is enlarged
    with :func:`nearest_up` to ``zoom`` x the box, so LR pixels show as blocks and fine detail in
    the SR output (or its absence) is visible.
    """
    if not images:
        raise ValueError("zoomed_crops needs at least one image")
    if zoom < 1:
        raise ValueError(f"zoom must be a positive integer, got {zoom}")
    big_h = max(im.shape[-2] for im in images)
    big_w = max(im.shape[-1] for im in images)
    ratios = []
    for im in images:
        h, w = im.shape[-2:]
        if big_h % h or big_w % w or big_h // h != big_w // w:
            raise ValueError(
                f"zoomed_crops needs sizes that divide the largest ({big_h}x{big_w}) by one "
                f"integer factor, got {[tuple(i.shape[-2:]) for i in images]}"
            )
        ratios.append(big_h // h)
    step = math.lcm(*ratios)  # box corners and sides must fall on whole pixels of every image
    if box is None:
        side = min(big_h, big_w, max_side) // step * step
        if side == 0:
            raise ValueError(f"images of {big_h}x{big_w} are too small to crop in steps of {step}")
        box = ((big_h - side) // 2 // step * step, (big_w - side) // 2 // step * step, side, side)
    top, left, height, width = box
    if any(v % step for v in box) or height <= 0 or width <= 0:
        raise ValueError(f"box {box} must be positive and aligned to multiples of {step}")
    if top < 0 or left < 0 or top + height > big_h or left + width > big_w:
        raise ValueError(f"box {box} does not fit in the {big_h}x{big_w} image")
    size = (height * zoom, width * zoom)
    crops = []
    for im, r in zip(images, ratios, strict=True):
        r_top, r_left = top // r, left // r
        part = im[..., r_top : r_top + height // r, r_left : r_left + width // r]
        part = part.detach().float().cpu().clamp(0, 1)  # (3, height / r, width / r)
        crops.append(nearest_up(part.unsqueeze(0), size)[0])  # (3, height*zoom, width*zoom)
    return tile_row(crops, gap, fill)
