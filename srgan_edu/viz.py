"""Pictures of super-resolution results: comparison grids (LR | bicubic | SR | HR) and zoomed crops.

Everything here takes and returns tensors in [0, 1], so the same picture can be saved as a PNG
(:func:`srgan_edu.imaging.save_image`) by a training run or an evaluation, or shown in a notebook.
Introduced in lesson 08 (the sample grids a training run writes).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

__all__ = ["comparison_grid", "nearest_up", "tile_row"]


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
