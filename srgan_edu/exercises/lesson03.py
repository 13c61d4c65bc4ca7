"""Checks for lesson 03's exercises (convolution): output size, true convolution, im2col.

Exercise 03.1 asks for the output-size formula floor((n + 2p - k) / s) + 1, 03.2 for a
convolution in the signal-processing sense ("full" mode, kernel flipped), 03.3 for im2col, the
unfolded windows behind the convolution-as-matrix-product. They are compared with
``srgan_edu.teach.conv`` and ``scipy.signal.convolve2d`` on seeded inputs; the usual mistakes (a
forgotten +1, padding counted once, an unflipped or transposed kernel, channels interleaved in the
wrong order, padding on one side only, ...) are recognised and named. Introduced in lesson 03.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.signal
import torch
import torch.nn.functional as F

from srgan_edu.exercises.feedback import (
    CheckFailed,
    as_tensor,
    call,
    expect,
    expect_close,
    expect_shape,
    forbidden,
    passed,
    reject_named_mistake,
    relative_error,
)
from srgan_edu.teach.conv import conv_output_size
from srgan_edu.teach.conv import im2col as library_im2col

__all__ = ["conv_output_size_formula", "convolve2d_full", "im2col"]


# --- exercise 03.1: the output-size formula ----------------------------------------------------

_SIZE_MISTAKES: dict[str, Callable[[int, int, int, int], float]] = {
    "forgets the + 1: floor((n + 2p - k) / s) counts the steps *between* window positions; the "
    "first position, at 0, adds one": lambda n, k, s, p: (n + 2 * p - k) // s,
    "adds the padding only once: there are p zeros on *each* side, so the padded length is "
    "n + 2p": lambda n, k, s, p: (n + p - k) // s + 1,
    "rounds up; a window that would stick out of the padded input does not count, so round "
    "down: floor((n + 2p - k) / s) + 1 (// in Python)": (
        lambda n, k, s, p: math.ceil((n + 2 * p - k) / s) + 1
    ),
    "ignores the stride: the window moves s pixels at a time, so divide by s": (
        lambda n, k, s, p: n + 2 * p - k + 1
    ),
    "divides (n + 2p - k + 1) by s; only the steps between positions, n + 2p - k, are divided "
    "by s, then the first position is added: floor((n + 2p - k) / s) + 1": (
        lambda n, k, s, p: (n + 2 * p - k + 1) // s
    ),
}

_SIZE_CASES = [(5, 3, 1, 0), (5, 3, 1, 1), (6, 3, 2, 0), (5, 7, 1, 1), (96, 9, 1, 4), (95, 3, 2, 1)]
_TOO_SMALL = [(5, 7, 1, 0)]  # (n, k, s, p) where the kernel does not fit: ValueError expected


def conv_output_size_formula(answer: Callable[..., Any], *, hidden: bool = False) -> None:
    """Check ``answer(n, k, stride, padding)`` against ``srgan_edu.teach.conv.conv_output_size``.

    Also checks that a kernel larger than the padded input raises ``ValueError``. The hidden
    cases run every n <= 12, k <= 7, s <= 4, p <= 3.
    """
    what = "output_size_by_hand(n, k, stride, padding)"
    cases = list(_SIZE_CASES)
    too_small = list(_TOO_SMALL)
    if hidden:
        for n in range(1, 13):
            for k in range(1, 8):
                for s in range(1, 5):
                    for p in range(4):
                        (cases if k <= n + 2 * p else too_small).append((n, k, s, p))
    for n, k, s, p in cases:
        want = conv_output_size(n, k, s, p)
        got = call(answer, n, k, s, p, what=what)
        where = f"output_size_by_hand(n={n}, k={k}, stride={s}, padding={p})"
        _expect_int(got, where)
        if got != want:
            raise CheckFailed(_size_feedback(answer, where, got, want))
    for n, k, s, p in too_small:
        where = f"output_size_by_hand(n={n}, k={k}, stride={s}, padding={p})"
        try:
            got = answer(n, k, s, p)
        except ValueError:
            continue
        except NotImplementedError:
            raise
        except Exception as err:
            raise CheckFailed(
                f"{where} raised {type(err).__name__}: {err}; a kernel that does not fit should "
                "raise ValueError"
            ) from err
        raise CheckFailed(
            f"{where} returned {got!r}, but a {k}-pixel kernel does not fit into {n} pixels "
            f"padded by {p} ({n + 2 * p} in all): no window position exists. Raise a ValueError "
            "that says so when k > n + 2p"
        )
    passed("Exercise 03.1, the output-size formula", len(cases) + len(too_small), hidden)


def _expect_int(got: Any, where: str) -> None:
    if isinstance(got, (int, np.integer)) and not isinstance(got, bool):
        return
    if isinstance(got, (float, np.floating)):
        if float(got).is_integer():
            raise CheckFailed(
                f"{where} returned {got!r}, a float; a size is an integer: use floor division "
                "// (or int(...)) instead of /"
            )
        raise CheckFailed(
            f"{where} returned {got!r}: a number of window positions is an integer. Round down "
            "with floor division //: a window that sticks out does not count"
        )
    raise CheckFailed(f"{where} should return an int, got a {type(got).__name__}")


def _size_feedback(answer: Callable[..., Any], where: str, got: int, want: int) -> str:
    """Name the wrong formula when the student's answers follow one on every visible case."""
    base = f"{where} returned {got}, expected {want}"
    answers = {}
    for case in _SIZE_CASES:
        try:
            answers[case] = answer(*case)
        except Exception:  # noqa: BLE001 - only diagnosing here; the caller already failed
            return f"{base}: the formula is floor((n + 2p - k) / s) + 1"
    for message, formula in _SIZE_MISTAKES.items():
        consistent = all(answers[case] == formula(*case) for case in _SIZE_CASES)
        if consistent:
            return f"{base}. Your function {message}"
    return f"{base}: the formula is floor((n + 2p - k) / s) + 1"


# --- exercise 03.2: a convolution in the signal-processing sense --------------------------------


def _correlate_full(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    return scipy.signal.correlate2d(image, kernel, mode="full")


def convolve2d_full(answer: Callable[..., Any], *, hidden: bool = False) -> None:
    """Check ``answer(image, kernel)`` against ``scipy.signal.convolve2d(image, kernel, "full")``.

    (H, W) and (kh, kw) float64 tensors in, (H + kh - 1, W + kw - 1) out: the kernel flipped by
    180 degrees and zero padding of kh - 1 rows and kw - 1 columns on each side.
    """
    what = "convolve2d_full(image, kernel)"
    gen = torch.Generator().manual_seed(3)

    def rand(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=gen, dtype=torch.float64)

    cases = [
        ("a 6x7 image, a 3x3 kernel", rand(6, 7), rand(3, 3)),
        ("a 5x8 image, a 2x4 kernel", rand(5, 8), rand(2, 4)),
    ]
    if hidden:
        sobel = torch.tensor([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=torch.float64)
        cases += [
            ("a 9x9 image, the Sobel x kernel", rand(9, 9), sobel),
            ("a 4x6 image, a 1x1 kernel", rand(4, 6), rand(1, 1)),
            ("a 3x4 image, a 4x5 kernel (larger than the image)", rand(3, 4), rand(4, 5)),
            ("a 7x5 image, a 5x2 kernel", rand(7, 5), rand(5, 2)),
        ]
    for name, image, kernel in cases:
        _check_convolve_case(answer, what, f"{what} on {name}", image, kernel)
    passed("Exercise 03.2, convolution with a flipped kernel", len(cases), hidden)


def _check_convolve_case(
    answer: Callable[..., Any], what: str, where: str, image: torch.Tensor, kernel: torch.Tensor
) -> None:
    img, ker = image.numpy(), kernel.numpy()
    want = torch.as_tensor(scipy.signal.convolve2d(img, ker, mode="full"))
    with (
        forbidden([(scipy.signal, "convolve2d")], what, "scipy.signal.convolve2d"),
        forbidden([(scipy.signal, "convolve")], what, "scipy.signal.convolve"),
        forbidden([(scipy.signal, "fftconvolve")], what, "scipy.signal.fftconvolve"),
    ):
        got = as_tensor(call(answer, image.clone(), kernel.clone(), what=what), where)
    (h, w), (kh, kw) = image.shape, kernel.shape
    if got.shape != want.shape:
        if got.dim() == 4 and got.shape[:2] == (1, 1):
            raise CheckFailed(
                f"{where} has shape {tuple(got.shape)}: return the (H', W') image, without the "
                "batch and channel dimensions F.conv2d needs (out[0, 0])"
            )
        shapes = {
            (h, w): "has the input's size ('same'); 'full' mode keeps every position where the "
            "kernel overlaps the image by at least one pixel: pad kh - 1 rows and kw - 1 "
            f"columns of zeros on each side, giving ({h + kh - 1}, {w + kw - 1})",
            (h - kh + 1, w - kw + 1): "has the 'valid' size (no padding); 'full' mode pads "
            f"kh - 1 = {kh - 1} rows and kw - 1 = {kw - 1} columns of zeros on each side",
            (h + kw - 1, w + kh - 1): "has the size you get with a transposed kernel: kernel.T "
            "swaps rows and columns (a mirror along the diagonal); turning the kernel by 180 "
            "degrees is kernel.flip(0, 1)",
            (h + 2 * (kh - 1), w + 2 * (kw - 1)): "is the padded image, not the convolution",
        }
        for shape, message in shapes.items():
            if tuple(got.shape) == shape and shape != tuple(want.shape):
                raise CheckFailed(f"{where} has shape {tuple(got.shape)}: it {message}")
        expect_shape(got, want.shape, where)
    rtol = 1e-6
    if relative_error(got, want) <= rtol:
        return
    mistakes = {
        f"{where} is a cross-correlation (what F.conv2d computes): the kernel is not flipped. "
        "A convolution in the signal-processing sense turns it by 180 degrees first: "
        "kernel.flip(0, 1)": _correlate_full(img, ker),
        f"{where} flips the kernel only upside down (rows); flip it left-right too: "
        "kernel.flip(0, 1)": _correlate_full(img, ker[::-1, :]),
        f"{where} flips the kernel only left-right (columns); flip it upside down too: "
        "kernel.flip(0, 1)": _correlate_full(img, ker[:, ::-1]),
        f"{where} uses the transposed kernel: kernel.T mirrors it along the diagonal, but the "
        "flip is a turn by 180 degrees, kernel.flip(0, 1)": _correlate_full(img, ker.T),
        f"{where} turns the kernel by 90 degrees (rot90); the flip is a turn by 180 degrees, "
        "kernel.flip(0, 1) or torch.rot90(kernel, 2)": _correlate_full(img, np.rot90(ker)),
        f"{where} turns the kernel by -90 degrees; the flip is a turn by 180 degrees, "
        "kernel.flip(0, 1) or torch.rot90(kernel, 2)": _correlate_full(img, np.rot90(ker, -1)),
    }
    reject_named_mistake(got, want, mistakes, rtol)
    expect_close(
        got,
        want,
        where,
        rtol,
        hint="Flip the kernel (kernel.flip(0, 1)), pad by kh - 1 and kw - 1, then slide.",
    )


# --- exercise 03.3: im2col ---------------------------------------------------------------------


def im2col(answer: Callable[..., Any], *, hidden: bool = False) -> None:
    """Check ``answer(x, k, stride, padding)`` against ``srgan_edu.teach.conv.im2col``.

    (B, C, H, W) in, (B, C*k*k, H'*W') out, the layout of ``F.unfold``: row c*k*k + u*k + v holds
    pixel (u, v) of channel c's window, column i*W' + j is output position (i, j).
    """
    what = "im2col_by_hand(x, k, stride, padding)"
    gen = torch.Generator().manual_seed(4)

    def rand(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=gen)

    cases = [
        ("x (2, 3, 7, 9), k=3, stride 1, padding 1", rand(2, 3, 7, 9), 3, 1, 1),
        ("x (1, 2, 8, 6), k=2, stride 2, padding 0", rand(1, 2, 8, 6), 2, 2, 0),
    ]
    if hidden:
        cases += [
            ("x (1, 1, 5, 5), k=3, stride 1, padding 0", rand(1, 1, 5, 5), 3, 1, 0),
            ("x (2, 4, 6, 5), k=1, stride 1, padding 0", rand(2, 4, 6, 5), 1, 1, 0),
            ("x (3, 2, 10, 11), k=5, stride 3, padding 2", rand(3, 2, 10, 11), 5, 3, 2),
            ("x (2, 3, 9, 9), k=2, stride 3, padding 1", rand(2, 3, 9, 9), 2, 3, 1),
        ]
    for name, x, k, s, p in cases:
        _check_im2col_case(answer, what, f"{what} on {name}", x, k, s, p)
    passed("Exercise 03.3, im2col", len(cases), hidden)


def _check_im2col_case(
    answer: Callable[..., Any], what: str, where: str, x: torch.Tensor, k: int, s: int, p: int
) -> None:
    want = library_im2col(x, k, stride=s, padding=p)  # (B, C*k*k, H'*W')
    with forbidden([(F, "unfold")], what, "torch.nn.functional.unfold"):
        got = as_tensor(call(answer, x.clone(), k, s, p, what=what), where)
    b, c, h, w = x.shape
    ho, wo = conv_output_size(h, k, s, p), conv_output_size(w, k, s, p)
    ckk, positions = c * k * k, ho * wo
    if got.shape != want.shape:
        _im2col_shape_feedback(got, where, x, k, s, p, (b, ckk, ho, wo))
    rtol = 1e-6
    if relative_error(got, want) <= rtol:
        return
    windows = want.reshape(b, c, k, k, ho, wo)  # (B, C, u, v, i, j)
    mistakes = {
        f"{where} has the right shape but the channels are interleaved in the wrong order: "
        "row c*k*k + u*k + v should hold pixel (u, v) of channel c's window (all of channel 0's "
        "k*k pixels first, then channel 1's), not u*k*C + v*C + c": (
            windows.permute(0, 2, 3, 1, 4, 5).reshape(b, ckk, positions)
        ),
        f"{where} has the right shape but flattens each window column by column: row "
        "c*k*k + u*k + v should hold window pixel (u, v), row u, column v (row by row, "
        "like reshape)": windows.transpose(2, 3).reshape(b, ckk, positions),
        f"{where} has the right shape but orders the windows column by column: column i*W' + j "
        "should hold the window of output position (i, j), moving along a row first": (
            windows.transpose(4, 5).reshape(b, ckk, positions)
        ),
    }
    reject_named_mistake(got, want, mistakes, rtol)
    expect_close(
        got,
        want,
        where,
        rtol,
        hint="Column i*W' + j is x_pad[b, :, i*s : i*s + k, j*s : j*s + k] flattened (C, k, k).",
    )


def _im2col_shape_feedback(
    got: torch.Tensor,
    where: str,
    x: torch.Tensor,
    k: int,
    s: int,
    p: int,
    full: tuple[int, int, int, int],
) -> None:
    """Raise the feedback for a result of the wrong shape, naming the likely cause."""
    b, ckk, ho, wo = full
    h, w = x.shape[-2:]
    shape = tuple(got.shape)
    want = (b, ckk, ho * wo)

    def size(n: int, stride: int, pad: int) -> int:
        return (n + 2 * pad - k) // stride + 1 if n + 2 * pad >= k else 0

    causes = {
        (b, ho * wo, ckk): "one window per row; im2col (like F.unfold) puts one window per "
        "*column*: (B, C*k*k, H'*W'), so transpose the last two dimensions",
        (b, ckk, ho, wo): "the windows are still on an (H', W') grid: flatten the positions "
        "into one dimension of H'*W' columns",
        (ckk, ho * wo): "no batch dimension: keep B in front, (B, C*k*k, H'*W')",
        (b, ckk, size(h, 1, p) * size(w, 1, p)): f"as many windows as stride 1 gives; stride {s} "
        "moves the window s pixels at a time, so start windows at 0, s, 2s, ...",
        (b, ckk, size(h, s, 0) * size(w, s, 0)): f"as many windows as without padding; pad x "
        f"with {p} zero(s) on each of the four sides first: F.pad(x, (p, p, p, p))",
        (b, ckk, size(h, s, 0) * size(w, s, p)): "as many windows as an input padded only left "
        "and right: F.pad(x, (p, p)) pads the last dimension only; pad all four sides with "
        "F.pad(x, (p, p, p, p))",
    }
    for bad, cause in causes.items():
        if shape == bad and bad != want:
            raise CheckFailed(f"{where} has shape {shape}, expected {want}: {cause}")
    expect(False, f"{where} has shape {shape}, expected {want} = (B, C*k*k, H'*W')")
