"""Lesson 03's exercise checks: right answers pass, typical wrong answers get named feedback."""

import math

import pytest
import scipy.signal
import torch
import torch.nn.functional as F

from srgan_edu.exercises import lesson03 as check
from srgan_edu.exercises.feedback import CheckFailed

pytestmark = pytest.mark.usefixtures("one_thread")


def not_done(*args, **kwargs):
    raise NotImplementedError("Exercise: replace this line with your solution")


def crashes(*args, **kwargs):
    return None + 1


# --- 03.1 the output-size formula --------------------------------------------------------------


def output_size(n, k, stride=1, padding=0):
    """The solution of the lesson."""
    if k > n + 2 * padding:
        raise ValueError(f"a {k}-pixel kernel does not fit into {n} pixels padded by {padding}")
    return (n + 2 * padding - k) // stride + 1


def test_output_size_right_answer_passes(capsys):
    check.conv_output_size_formula(output_size)
    assert (
        capsys.readouterr().out == "✓ Exercise 03.1, the output-size formula: 7 check(s) passed\n"
    )
    check.conv_output_size_formula(output_size, hidden=True)
    assert "(with the hidden cases)" in capsys.readouterr().out


def test_output_size_not_done_and_crash():
    with pytest.raises(NotImplementedError):
        check.conv_output_size_formula(not_done)
    with pytest.raises(CheckFailed, match=r"output_size_by_hand.*raised TypeError"):
        check.conv_output_size_formula(crashes)


def fits(formula):
    """A wrong formula, with the ValueError for a kernel that does not fit."""

    def answer(n, k, s=1, p=0):
        if k > n + 2 * p:
            raise ValueError("does not fit")
        return formula(n, k, s, p)

    return answer


@pytest.mark.parametrize(
    ("wrong", "feedback"),
    [
        (fits(lambda n, k, s, p: (n + 2 * p - k) // s), r"forgets the \+ 1"),
        (fits(lambda n, k, s, p: (n + p - k) // s + 1), "adds the padding only once"),
        (fits(lambda n, k, s, p: math.ceil((n + 2 * p - k) / s) + 1), "rounds up"),
        (fits(lambda n, k, s, p: n + 2 * p - k + 1), "ignores the stride"),
        (fits(lambda n, k, s, p: (n + 2 * p - k + 1) // s), r"divides \(n \+ 2p - k \+ 1\) by s"),
        (
            fits(lambda n, k, s, p: (n + 2 * p - k) / s + 1),
            r"returned 3.0, a float.*floor division",
        ),
        (fits(lambda n, k, s, p: float((n + 2 * p - k) // s + 1)), "a float.*floor division"),
        (fits(lambda n, k, s, p: str(n)), "should return an int, got a str"),
        (fits(lambda n, k, s, p: (n + 2 * p) // s + 1), "returned 6, expected 3: the formula"),
        (lambda n, k, s=1, p=0: (n + 2 * p - k) // s + 1, "does not fit.*Raise a ValueError"),
        (lambda n, k, s=1, p=0: max(0, (n + 2 * p - k) // s + 1), "returned 0.*Raise a ValueError"),
    ],
)
def test_output_size_names_the_mistake(wrong, feedback):
    with pytest.raises(CheckFailed, match=feedback):
        check.conv_output_size_formula(wrong)


def test_output_size_wrong_error_type_is_named():
    def asserts(n, k, s=1, p=0):
        assert k <= n + 2 * p, "kernel too large"
        return (n + 2 * p - k) // s + 1

    with pytest.raises(CheckFailed, match="(?s)raised AssertionError.*should raise ValueError"):
        check.conv_output_size_formula(asserts)


def test_output_size_hidden_grid_catches_an_off_by_one_at_large_strides():
    def tuned(n, k, s=1, p=0):  # right on the visible cases, wrong when s = 4 and n + 2p - k = 3
        if k > n + 2 * p:
            raise ValueError("does not fit")
        return (n + 2 * p - k) // s + 1 + (s == 4 and n + 2 * p - k == 3)

    check.conv_output_size_formula(tuned)
    with pytest.raises(CheckFailed, match="stride=4"):
        check.conv_output_size_formula(tuned, hidden=True)


# --- 03.2 convolution with a flipped kernel ----------------------------------------------------


def convolve_full(image, kernel):
    """The solution of the lesson: flip, pad by k - 1, slide (F.conv2d)."""
    kh, kw = kernel.shape
    out = F.conv2d(image[None, None], kernel.flip(0, 1)[None, None], padding=(kh - 1, kw - 1))
    return out[0, 0]


def correlate_with(transform, padding=None, squeeze=True):
    def answer(image, kernel):
        kh, kw = kernel.shape
        pad = (kh - 1, kw - 1) if padding is None else padding(kh, kw)
        k = transform(kernel)
        out = F.conv2d(image[None, None], k[None, None], padding=pad)
        return out[0, 0] if squeeze else out

    return answer


def test_convolve_right_answer_passes(capsys):
    check.convolve2d_full(convolve_full)
    assert capsys.readouterr().out == (
        "✓ Exercise 03.2, convolution with a flipped kernel: 2 check(s) passed\n"
    )
    check.convolve2d_full(convolve_full, hidden=True)
    assert "6 check(s) passed (with the hidden cases)" in capsys.readouterr().out
    check.convolve2d_full(lambda i, k: convolve_full(i.float(), k.float()), hidden=True)  # float32


def test_convolve_not_done_crash_and_scipy():
    with pytest.raises(NotImplementedError):
        check.convolve2d_full(not_done)
    with pytest.raises(CheckFailed, match=r"convolve2d_full\(image, kernel\) raised TypeError"):
        check.convolve2d_full(crashes)
    with pytest.raises(CheckFailed, match="calls scipy.signal.convolve2d.*yourself"):
        check.convolve2d_full(lambda i, k: scipy.signal.convolve2d(i.numpy(), k.numpy()))
    assert scipy.signal.convolve2d.__name__ == "convolve2d"  # put back after the check


@pytest.mark.parametrize(
    ("wrong", "feedback"),
    [
        (correlate_with(lambda k: k), "cross-correlation.*not flipped.*flip\\(0, 1\\)"),
        (correlate_with(lambda k: k.flip(0)), "only upside down"),
        (correlate_with(lambda k: k.flip(1)), "only left-right"),
        (correlate_with(lambda k: k.T), "transposed kernel"),
        (correlate_with(lambda k: torch.rot90(k)), "by 90 degrees"),
        (correlate_with(lambda k: k.flip(0, 1), lambda kh, kw: "same"), r"input's size \('same'\)"),
        (correlate_with(lambda k: k.flip(0, 1), lambda kh, kw: 0), "'valid' size"),
        (correlate_with(lambda k: k.flip(0, 1), squeeze=False), "without the batch and channel"),
        (lambda i, k: convolve_full(i, k) * 1.001, "relative error"),
    ],
)
def test_convolve_names_the_mistake(wrong, feedback):
    with pytest.raises(CheckFailed, match=feedback):
        check.convolve2d_full(wrong)


def test_convolve_transposed_kernel_is_named_by_its_shape():
    def transposed(image, kernel):  # on a square kernel a wrong value, on 2x4 a wrong shape
        if kernel.shape[0] == kernel.shape[1]:
            return convolve_full(image, kernel)
        return convolve_full(image, kernel.T)

    with pytest.raises(CheckFailed, match=r"shape \(8, 9\).*transposed kernel"):
        check.convolve2d_full(transposed)


# --- 03.3 im2col -------------------------------------------------------------------------------


def im2col(x, k, stride=1, padding=0):
    """The solution of the lesson: one window per output position, flattened (C, k, k)."""
    b, c, h, w = x.shape
    h_out = (h + 2 * padding - k) // stride + 1
    w_out = (w + 2 * padding - k) // stride + 1
    xp = F.pad(x, (padding, padding, padding, padding))
    cols = []
    for i in range(h_out):
        for j in range(w_out):
            window = xp[:, :, i * stride : i * stride + k, j * stride : j * stride + k]
            cols.append(window.reshape(b, c * k * k))
    return torch.stack(cols, dim=2)


def test_im2col_right_answer_passes(capsys):
    check.im2col(im2col)
    assert capsys.readouterr().out == "✓ Exercise 03.3, im2col: 2 check(s) passed\n"
    check.im2col(im2col, hidden=True)
    assert "6 check(s) passed (with the hidden cases)" in capsys.readouterr().out


def test_im2col_not_done_crash_and_unfold():
    with pytest.raises(NotImplementedError):
        check.im2col(not_done)
    with pytest.raises(CheckFailed, match=r"im2col_by_hand\(x, k, stride, padding\) raised"):
        check.im2col(crashes)
    with pytest.raises(CheckFailed, match="calls torch.nn.functional.unfold"):
        check.im2col(lambda x, k, s, p: F.unfold(x, k, padding=p, stride=s))
    assert F.unfold(torch.ones(1, 1, 3, 3), 2).shape == (1, 4, 4)  # put back after the check


def windows_then(arrange):
    """im2col's windows as (B, C, k, k, H', W'), rearranged and flattened by ``arrange``."""

    def answer(x, k, s=1, p=0):
        b, c, h, w = x.shape
        ho, wo = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
        return arrange(im2col(x, k, s, p).reshape(b, c, k, k, ho, wo))

    return answer


def flat(t, order):
    b, c, k, _, ho, wo = t.shape
    return t.permute(*order).reshape(b, c * k * k, ho * wo)


def one_side_padding(x, k, s=1, p=0):
    b, c, h, w = x.shape
    xp = F.pad(x, (p, p))  # pads only the width
    return im2col(xp, k, s, 0)


@pytest.mark.parametrize(
    ("wrong", "feedback"),
    [
        (windows_then(lambda t: flat(t, (0, 2, 3, 1, 4, 5))), "channels are interleaved"),
        (windows_then(lambda t: flat(t, (0, 1, 3, 2, 4, 5))), "column by column: row c"),
        (windows_then(lambda t: flat(t, (0, 1, 2, 3, 5, 4))), "orders the windows column by"),
        (lambda x, k, s, p: im2col(x, k, s, p).transpose(1, 2), "one window per row"),
        (windows_then(lambda t: t.flatten(1, 3)), r"still on an \(H', W'\) grid"),
        (lambda x, k, s, p: im2col(x, k, s, 0), "as many windows as without padding"),
        (lambda x, k, s, p: im2col(x, k, 1, p), "as many windows as stride 1 gives"),
        (one_side_padding, r"padded only left and right.*F.pad\(x, \(p, p, p, p\)\)"),
        (lambda x, k, s, p: im2col(x, k, s, p)[0], "no batch dimension"),
        (lambda x, k, s, p: im2col(x, k, s, p)[:, :, :-1], r"expected \(2, 27, 63\)"),
        (lambda x, k, s, p: im2col(x, k, s, p) * 2, "relative error"),
    ],
)
def test_im2col_names_the_mistake(wrong, feedback):
    with pytest.raises(CheckFailed, match=feedback):
        check.im2col(wrong)
