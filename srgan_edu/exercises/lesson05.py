"""Checks for the exercises of lesson 05 (upsampling: sub-pixel and transposed convolution).

* :func:`pixel_shuffle` - exercise 05.1: the periodic shuffle of sub-pixel convolution (Shi et
  al. 2016), (B, C r^2, H, W) -> (B, C, rH, rW), checked against ``F.pixel_shuffle``.
* :func:`transposed_output_size` - exercise 05.2: the output length of a transposed
  convolution, checked against the shape ``F.conv_transpose1d`` returns.
* :func:`overlap_count` - exercise 05.3: how many kernel taps reach each output pixel of a
  transposed convolution (the checkerboard's cause, Odena et al. 2016), checked against
  :func:`srgan_edu.teach.upsampling.overlap_count`.

The pixel-shuffle check feeds a tensor whose entries are their own flat index, so the student's
output says exactly where every input value went; the feedback names the rearrangement
(channels interleaved in the wrong order, i and j swapped, sub-pixels tiled instead of
interleaved) or, failing that, the first output pixel that came from the wrong place.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from srgan_edu.exercises.feedback import (
    CheckFailed,
    call,
    expect,
    expect_close,
    expect_shape,
    forbidden,
    passed,
    result,
    single_threaded,
)
from srgan_edu.teach.upsampling import overlap_count as library_overlap_count

__all__ = ["overlap_count", "pixel_shuffle", "transposed_output_size"]


# ----------------------------------------------------------------------------------------------
# exercise 05.1: pixel shuffle
# ----------------------------------------------------------------------------------------------

_SHUFFLE_TITLE = "Exercise 05.1, pixel shuffle by hand"

_SHUFFLES = [(F, "pixel_shuffle"), (torch, "pixel_shuffle")]
"""What the student may not call: ``nn.PixelShuffle`` runs ``F.pixel_shuffle`` too."""

_TRANSPOSED = [(F, "conv_transpose1d"), (F, "conv_transpose2d"), (torch, "conv_transpose1d")]
"""Transposed convolutions (``nn.ConvTranspose1d/2d`` and ``overlap_count`` run them too)."""

_SHUFFLE_RULE = "channel c*r*r + i*r + j should go to (c, h*r+i, w*r+j)"


def _shuffle_mistakes(x: torch.Tensor, r: int) -> list[tuple[torch.Tensor, str]]:
    """Outputs of the typical wrong rearrangements of ``x`` (B, C r^2, H, W), with their names."""
    b, k, h, w = x.shape
    c = k // (r * r)
    out = (b, c, h * r, w * r)
    mistakes = []
    if c > 1:
        mistakes.append(
            (
                x.reshape(b, r, r, c, h, w).permute(0, 3, 4, 1, 5, 2).reshape(out),
                "pixel shuffle output has the right shape but channels are interleaved in the "
                f"wrong order: {_SHUFFLE_RULE}. Yours fills (c, h*r+i, w*r+j) from channel "
                "(i*r + j)*C + c, as if the channels were grouped (r, r, C). The r*r channels "
                "of output channel c are neighbours, c*r*r ... c*r*r + r*r - 1: take "
                "x[:, i*r + j :: r*r], or reshape the channels to (C, r, r)",
            )
        )
    if r > 1:
        mistakes += [
            (
                x.reshape(b, c, r, r, h, w).permute(0, 1, 4, 3, 5, 2).reshape(out),
                "pixel shuffle output has the right shape but i and j are swapped (every r x r "
                f"block is transposed): {_SHUFFLE_RULE}, i.e. i picks the row and j the column",
            ),
            (
                x.reshape(b, c, r, r, h, w).permute(0, 1, 2, 4, 3, 5).reshape(out),
                "pixel shuffle output has the right shape but the sub-pixels are tiled instead "
                f"of interleaved: {_SHUFFLE_RULE}, so the r x r values of one LR pixel are "
                "neighbours; yours puts them a whole image apart (row i*H + h, column j*W + w). "
                "With reshape / permute: i must come right after H, and j right after W",
            ),
            (
                x.reshape(out),
                "pixel shuffle output has the right shape but you reshaped straight to "
                "(B, C, H*r, W*r). A reshape only cuts the memory into new rows; the values do "
                f"not move. {_SHUFFLE_RULE}: split the channels into (C, r, r), permute so "
                "that i follows H and j follows W, then reshape",
            ),
        ]
    return mistakes


def _where_from(got: torch.Tensor, x: torch.Tensor, r: int) -> str:
    """Name the first output pixel that holds the wrong input value (``x`` holds its indices)."""
    b, k, h, w = x.shape
    want = F.pixel_shuffle(x, r).double()
    bad = (got != want).nonzero()[0].tolist()
    bb, cc, yy, xx = bad
    i, j = yy % r, xx % r
    should = f"input[{bb}, {cc * r * r + i * r + j}, {yy // r}, {xx // r}]"
    text = (
        f"output[{bb}, {cc}, {yy}, {xx}] should hold {should} ({_SHUFFLE_RULE}, here c={cc}, "
        f"i={i}, j={j}, h={yy // r}, w={xx // r})"
    )
    value = float(got[bb, cc, yy, xx])
    if value == int(value) and 0 <= value < x.numel():
        src = np.unravel_index(int(value), (b, k, h, w))
        text += f", but yours holds input[{', '.join(str(int(s)) for s in src)}]"
    return text


@single_threaded
def pixel_shuffle(answer: Callable[..., Any], *, hidden: bool = False) -> None:
    """Check ``pixel_shuffle_by_hand(x, r)``: (B, C r^2, H, W) -> (B, C, rH, rW), equal to
    ``F.pixel_shuffle`` (the periodic shuffle PS of Shi et al. 2016, eq. 4)."""
    cases = [((2, 12, 4, 5), 2, "index"), ((1, 18, 3, 2), 3, "index")]
    if hidden:
        cases += [
            ((1, 3, 4, 4), 1, "index"),  # r = 1: nothing moves
            ((3, 16, 2, 3), 4, "index"),  # one output channel, r = 4
            ((1, 8, 5, 7), 2, "random"),
        ]
    for shape, r, kind in cases:
        b, k, h, w = shape
        c = k // (r * r)
        if kind == "index":  # every entry holds its own flat index: we see where it went
            x = torch.arange(b * k * h * w, dtype=torch.float32).reshape(shape)
        else:
            x = torch.randn(*shape, generator=torch.Generator().manual_seed(h * w))
        what = f"pixel_shuffle_by_hand(x of shape {shape}, r={r})"
        with forbidden(_SHUFFLES, "pixel_shuffle_by_hand", "F.pixel_shuffle (or nn.PixelShuffle)"):
            out = call(answer, x.clone(), r, what="pixel_shuffle_by_hand")
        got = result(out, what)
        want = F.pixel_shuffle(x, r).double()  # (B, C, rH, rW)
        if tuple(got.shape) == (b, c, w * r, h * r) and h != w:
            raise CheckFailed(
                f"{what} has shape {tuple(got.shape)}, expected {tuple(want.shape)}: height and "
                "width are swapped. Rows come from H (and i), columns from W (and j)"
            )
        if tuple(got.shape) != tuple(want.shape) and got.numel() == want.numel():
            raise CheckFailed(
                f"{what} has shape {tuple(got.shape)}, expected {tuple(want.shape)} = "
                f"(B, C r^2 / r^2, H r, W r): the right number of values, arranged in the wrong "
                "shape"
            )
        expect_shape(got, want.shape, what)
        if torch.equal(got, want):
            continue
        if not torch.equal(got.flatten().sort().values, x.double().flatten().sort().values):
            raise CheckFailed(
                f"{what}: your output holds values that are not in the input (or misses some). "
                "A pixel shuffle only moves values around, with no arithmetic: use reshape, "
                "permute or indexing, nothing that adds, averages or interpolates"
            )
        for wrong, message in _shuffle_mistakes(x, r):
            if torch.equal(got, wrong.double()) and not torch.equal(wrong.double(), want):
                raise CheckFailed(f"{what}: {message}")
        if kind == "index":
            raise CheckFailed(f"{what}: values are in the wrong places: {_where_from(got, x, r)}")
        expect_close(got, want, what, rtol=0.0, hint=f"A pixel shuffle moves {_SHUFFLE_RULE}.")
    passed(_SHUFFLE_TITLE, len(cases), hidden)


# ----------------------------------------------------------------------------------------------
# exercise 05.2: the output size of a transposed convolution
# ----------------------------------------------------------------------------------------------

_SIZE_TITLE = "Exercise 05.2, the output size of a transposed convolution"


def _torch_size(n: int, kernel: int, stride: int, padding: int, output_padding: int) -> int:
    """What PyTorch's transposed convolution returns for a length-n input: the reference."""
    y = F.conv_transpose1d(
        torch.zeros(1, 1, n),
        torch.zeros(1, 1, kernel),
        stride=stride,
        padding=padding,
        output_padding=output_padding,
    )
    return int(y.shape[-1])


def _size_mistakes(n: int, k: int, s: int, p: int, op: int) -> list[tuple[int, str]]:
    return [
        (
            (n + 2 * p - k) // s + 1,
            "that is the output size of an ordinary (strided) convolution, which shrinks its "
            "input. A transposed convolution goes the other way: each input pixel stamps the "
            "kernel, stride pixels apart, (n - 1)*stride - 2*padding + kernel",
        ),
        (
            n * s - 2 * p + k + op,
            "off by one stride: n input pixels have n - 1 gaps of `stride` between their "
            "stamps, so (n - 1)*stride, not n*stride",
        ),
        (
            (n - 1) * s + 2 * p + k + op,
            "padding works the other way round here: a transposed convolution *removes* "
            "`padding` pixels at each end, - 2*padding",
        ),
        (
            (n - 1) * s - p + k + op,
            "padding is removed at *both* ends: - 2*padding, not - padding",
        ),
        (
            n * s,
            "the output is not always n*stride: the last stamp sticks out by kernel - stride "
            "pixels, and padding trims both ends: (n - 1)*stride - 2*padding + kernel",
        ),
        (
            (n - 1) * s - 2 * p + k,
            "you left out output_padding: it adds that many pixels at one end of the output",
        ),
        (
            (n - 1) * s - 2 * p + k + 2 * op,
            "output_padding is added at one end only: + output_padding, not + 2*output_padding",
        ),
    ]


@single_threaded
def transposed_output_size(answer: Callable[..., Any], *, hidden: bool = False) -> None:
    """Check ``transposed_out_size(n, kernel, stride, padding=0, output_padding=0) -> int``
    against the output length of ``F.conv_transpose1d``."""
    cases = [(32, 4, 2, 1, 0), (6, 3, 2, 0, 0), (5, 3, 1, 1, 0), (10, 3, 2, 1, 1)]
    if hidden:
        cases += [
            (6, 5, 3, 1, 0),
            (1, 4, 2, 0, 0),
            (7, 1, 3, 0, 0),
            (16, 9, 4, 4, 2),
            (9, 2, 2, 0, 1),
        ]
    answers = []  # (case, what, the student's answer, the right one)
    for n, k, s, p, op in cases:
        want = _torch_size(n, k, s, p, op)
        args = f"n={n}, kernel={k}, stride={s}, padding={p}, output_padding={op}"
        what = f"transposed_out_size({args})"
        with forbidden(_TRANSPOSED, "transposed_out_size", "a transposed convolution"):
            got = call(answer, n, k, s, padding=p, output_padding=op, what="transposed_out_size")
        expect(got is not None, f"{what} returned None: did you forget the return statement?")
        if isinstance(got, torch.Tensor) and got.numel() == 1 and not got.is_floating_point():
            got = int(got)
        if isinstance(got, (float, np.floating)) or (
            isinstance(got, torch.Tensor) and got.is_floating_point()
        ):
            raise CheckFailed(
                f"{what} returned the float {float(got):g}; a size is a whole number of pixels: "
                "return an int (use // if you divide anywhere)"
            )
        expect(
            isinstance(got, (int, np.integer)) and not isinstance(got, bool),
            f"{what} should return an int, got {type(got).__name__}",
        )
        answers.append(((n, k, s, p, op), what, int(got), want))
    wrong_ones = [a for a in answers if a[2] != a[3]]
    if wrong_ones:
        # Name a mistake only if it explains the answers of *every* case: with padding 1,
        # "- padding" and "+ 1" agree on one case but not on all of them.
        _, what, got, want = wrong_ones[0]
        for i, (_, message) in enumerate(_size_mistakes(*answers[0][0])):
            if all(got_ == _size_mistakes(*case)[i][0] for case, _, got_, _ in answers):
                raise CheckFailed(f"{what} returned {got}, expected {want}: {message}")
        raise CheckFailed(
            f"{what} returned {got}, but nn.ConvTranspose1d with these settings gives "
            f"{want} pixels. Count the stamps: n inputs, stride apart, each kernel wide; then "
            "padding trims each end and output_padding adds to one end"
        )
    passed(_SIZE_TITLE, len(cases), hidden)


# ----------------------------------------------------------------------------------------------
# exercise 05.3: kernel taps per output pixel
# ----------------------------------------------------------------------------------------------

_TAPS_TITLE = "Exercise 05.3, kernel taps per output pixel"


def _uncropped(n: int, k: int, s: int, length: int | None = None) -> torch.Tensor:
    """Counts of a transposed convolution without padding, stamps ``length`` wide (default k)."""
    length = k if length is None else length
    counts = torch.zeros((n - 1) * s + max(k, length), dtype=torch.float64)
    for i in range(n):
        counts[i * s : i * s + length] += 1
    return counts


def _taps_mistakes(n: int, k: int, s: int, p: int) -> list[tuple[torch.Tensor, str]]:
    full = _uncropped(n, k, s)
    mistakes = []
    if p > 0:
        mistakes += [
            (
                full[2 * p :],
                f"you cut 2*padding = {2 * p} pixels from the start; padding removes "
                f"{p} pixel(s) from *each* end",
            ),
            (
                full[: -2 * p],
                f"you cut 2*padding = {2 * p} pixels from the end; padding removes "
                f"{p} pixel(s) from *each* end",
            ),
        ]
    for length, word in ((k - 1, "one too few"), (k + 1, "one too many")):
        if length >= 1:
            wrong = _uncropped(n, k, s, length)[: (n - 1) * s + k]
            wrong = wrong[p : wrong.numel() - p] if p else wrong
            mistakes.append(
                (
                    wrong,
                    f"each stamp covers {word} pixel(s): input pixel i reaches the `kernel` "
                    "output pixels i*stride, ..., i*stride + kernel - 1",
                )
            )
    return mistakes


@single_threaded
def overlap_count(answer: Callable[..., Any], *, hidden: bool = False) -> None:
    """Check ``taps_per_pixel(n, kernel, stride, padding=0)``: the number of kernel taps that
    reach each output pixel of a 1-D transposed convolution, as
    :func:`srgan_edu.teach.upsampling.overlap_count` (dims=1) counts them."""
    cases = [(6, 3, 2, 0), (6, 4, 2, 1), (6, 5, 3, 1)]
    if hidden:
        cases += [(4, 1, 3, 0), (5, 2, 2, 0), (3, 7, 2, 3), (1, 3, 2, 1)]
    for n, k, s, p in cases:
        want = library_overlap_count(k, s, n=n, padding=p, dims=1).double()
        what = f"taps_per_pixel(n={n}, kernel={k}, stride={s}, padding={p})"
        with forbidden(_TRANSPOSED, "taps_per_pixel", "a transposed convolution"):
            out = call(answer, n, k, s, padding=p, what="taps_per_pixel")
        got = result(out, what)
        expect(got.dim() == 1, f"{what} should return a 1-D tensor, got shape {tuple(got.shape)}")
        full = _uncropped(n, k, s)
        if p > 0 and got.shape == full.shape:
            raise CheckFailed(
                f"{what} has {got.numel()} entries = (n - 1)*stride + kernel: you did not remove "
                f"the padding. Cut {p} pixel(s) from each end, which leaves "
                f"(n - 1)*stride - 2*padding + kernel = {want.numel()}"
            )
        expect_shape(got, want.shape, what)
        if torch.equal(got, want):
            continue
        for wrong, message in _taps_mistakes(n, k, s, p):
            if (
                wrong.shape == got.shape
                and torch.equal(got, wrong)
                and not torch.equal(wrong, want)
            ):
                raise CheckFailed(f"{what}: {message}")
        expect_close(
            got,
            want,
            what,
            rtol=0.0,
            hint="Stamp a row of `kernel` ones at i*stride for every input pixel i into a row of "
            "length (n - 1)*stride + kernel, then cut `padding` pixels from each end.",
        )
    passed(_TAPS_TITLE, len(cases), hidden)
