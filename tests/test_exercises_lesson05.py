"""Lesson 05's exercise checks: right answers pass, typical wrong answers get named feedback."""

import pytest
import torch
import torch.nn.functional as F

from srgan_edu.exercises import lesson05 as check
from srgan_edu.exercises.feedback import CheckFailed
from srgan_edu.teach.upsampling import overlap_count, transposed_output_size

pytestmark = pytest.mark.usefixtures("one_thread")


def not_done(*args, **kwargs):
    raise NotImplementedError("Exercise: replace this line with your solution")


def crashes(*args, **kwargs):
    return [1, 2][5]


# --- 05.1 pixel shuffle ------------------------------------------------------------------------


def pixel_shuffle_by_hand(x, r):
    """The solution: one strided slice per sub-pixel position (i, j)."""
    b, k, h, w = x.shape
    out = x.new_empty(b, k // (r * r), h * r, w * r)
    for i in range(r):
        for j in range(r):
            out[:, :, i::r, j::r] = x[:, i * r + j :: r * r]  # channels c*r*r + i*r + j
    return out


def reshape_permute(x, r):
    """The lesson's way: reshape, permute, reshape."""
    b, k, h, w = x.shape
    c = k // (r * r)
    return x.reshape(b, c, r, r, h, w).permute(0, 1, 4, 2, 5, 3).reshape(b, c, h * r, w * r)


def test_pixel_shuffle_right_answers_pass(capsys):
    check.pixel_shuffle(pixel_shuffle_by_hand)
    assert capsys.readouterr().out == "✓ Exercise 05.1, pixel shuffle by hand: 2 check(s) passed\n"
    check.pixel_shuffle(pixel_shuffle_by_hand, hidden=True)
    assert "5 check(s) passed (with the hidden cases)" in capsys.readouterr().out
    check.pixel_shuffle(reshape_permute, hidden=True)


def test_pixel_shuffle_not_done_and_crash():
    with pytest.raises(NotImplementedError):
        check.pixel_shuffle(not_done)
    with pytest.raises(CheckFailed, match=r"pixel_shuffle_by_hand raised IndexError"):
        check.pixel_shuffle(crashes)


def _permuted(split, order):
    """A shuffle that splits the channels as ``split`` (names from 'c', 'i', 'j') and permutes
    the axes (b, *split, H, W) into ``order`` before the last reshape."""

    def shuffle(x, r):
        b, k, h, w = x.shape
        c = k // (r * r)
        sizes = {"c": c, "i": r, "j": r}
        names = ["b", *split, "H", "W"]
        y = x.reshape(b, *(sizes[n] for n in split), h, w)
        return y.permute(*(names.index(n) for n in order)).reshape(b, c, h * r, w * r)

    return shuffle


@pytest.mark.parametrize(
    ("wrong", "feedback"),
    [
        (
            _permuted("ijc", "bcHiWj"),
            r"right shape but channels are interleaved in the wrong order: channel "
            r"c\*r\*r \+ i\*r \+ j should go to \(c, h\*r\+i, w\*r\+j\)",
        ),
        (_permuted("cij", "bcHjWi"), "i and j are swapped"),
        (_permuted("cij", "bciHjW"), "tiled instead of interleaved"),
        (
            lambda x, r: x.reshape(x.shape[0], -1, x.shape[2] * r, x.shape[3] * r),
            "reshaped straight",
        ),
        (
            lambda x, r: F.interpolate(x[:, :: r * r], scale_factor=r, mode="nearest"),
            "values that are not in the input",
        ),
        (lambda x, r: reshape_permute(x, r) * 2, "values that are not in the input"),
        (lambda x, r: reshape_permute(x, r).transpose(2, 3), "height and width are swapped"),
        (
            lambda x, r: x.reshape(x.shape[0], -1, x.shape[3] * r, x.shape[2] * r),
            "height and width",
        ),
        (lambda x, r: reshape_permute(x, r).flatten(2), "right number of values"),
        (lambda x, r: x, r"has shape \(2, 12, 4, 5\), expected \(2, 3, 8, 10\)"),
        (lambda x, r: None, "forget the return"),
    ],
)
def test_pixel_shuffle_names_the_mistake(wrong, feedback):
    with pytest.raises(CheckFailed, match=feedback):
        check.pixel_shuffle(wrong)


def test_pixel_shuffle_other_misplacements_name_the_first_wrong_pixel():
    def rolled(x, r):  # a rearrangement that is none of the named ones
        return reshape_permute(x, r).roll(1, dims=-1)

    with pytest.raises(
        CheckFailed,
        match=r"output\[0, 0, 0, 0\] should hold input\[0, 0, 0, 0\] .*"
        r"but yours holds input\[0, 1, 0, 4\]",
    ):
        check.pixel_shuffle(rolled)


def test_pixel_shuffle_hidden_cases_catch_what_the_visible_ones_do_not():
    def one_output_channel_wrong(x, r):  # wrong only when C = 1 (no visible case has it)
        if x.shape[1] == r * r:
            return x[:, :1].repeat_interleave(r, 2).repeat_interleave(r, 3)
        return reshape_permute(x, r)

    check.pixel_shuffle(one_output_channel_wrong)
    with pytest.raises(CheckFailed, match=r"shape \(3, 16, 2, 3\), r=4"):
        check.pixel_shuffle(one_output_channel_wrong, hidden=True)


def test_pixel_shuffle_mistakes_are_distinct():
    """The named rearrangements differ from the right one and from each other on the cases."""
    for shape, r in (((2, 12, 4, 5), 2), ((1, 18, 3, 2), 3)):
        x = torch.arange(torch.Size(shape).numel(), dtype=torch.float32).reshape(shape)
        outs = [F.pixel_shuffle(x, r)] + [m for m, _ in check._shuffle_mistakes(x, r)]
        for a in range(len(outs)):
            for b in range(a + 1, len(outs)):
                assert not torch.equal(outs[a], outs[b]), (shape, a, b)


# --- 05.2 the output size of a transposed convolution ------------------------------------------


def transposed_out_size(n, kernel, stride, padding=0, output_padding=0):
    """The solution: (n - 1) * stride - 2 * padding + kernel + output_padding."""
    return (n - 1) * stride - 2 * padding + kernel + output_padding


def test_size_right_answer_passes(capsys):
    check.transposed_output_size(transposed_out_size)
    out = capsys.readouterr().out
    assert (
        out == "✓ Exercise 05.2, the output size of a transposed convolution: 4 check(s) passed\n"
    )
    check.transposed_output_size(transposed_out_size, hidden=True)
    assert "9 check(s) passed (with the hidden cases)" in capsys.readouterr().out


def test_size_reference_is_the_library_formula():
    for n, k, s, p in ((32, 4, 2, 1), (6, 3, 2, 0), (6, 5, 3, 1), (16, 9, 4, 4)):
        assert check._torch_size(n, k, s, p, 0) == transposed_output_size(n, k, s, p)


def test_size_not_done_and_crash():
    with pytest.raises(NotImplementedError):
        check.transposed_output_size(not_done)
    with pytest.raises(CheckFailed, match=r"transposed_out_size raised IndexError"):
        check.transposed_output_size(crashes)


def _size(formula):
    """A student's transposed_out_size computing ``formula(n, k, s, p, op)``."""

    def size(n, kernel, stride, padding=0, output_padding=0):
        return formula(n, kernel, stride, padding, output_padding)

    return size


@pytest.mark.parametrize(
    ("wrong", "feedback"),
    [
        (_size(lambda n, k, s, p, op: (n + 2 * p - k) // s + 1), "ordinary"),
        (_size(lambda n, k, s, p, op: n * s - 2 * p + k + op), "off by one stride"),
        (_size(lambda n, k, s, p, op: (n - 1) * s + 2 * p + k + op), "\\*removes\\*"),
        (_size(lambda n, k, s, p, op: (n - 1) * s - p + k + op), "\\*both\\* ends"),
        (_size(lambda n, k, s, p, op: n * s), "not always n\\*stride"),
        (_size(lambda n, k, s, p, op: (n - 1) * s - 2 * p + k), "left out output_padding"),
        (_size(lambda n, k, s, p, op: (n - 1) * s - 2 * p + k + 2 * op), "one end only"),
        (_size(lambda n, k, s, p, op: (n - 1) * s - 2 * p + k + op + 1), "Count the stamps"),
        (_size(lambda n, k, s, p, op: (n - 1) * s / 1 - 2 * p + k + op), "float 64.*an int"),
        (lambda *args, **kwargs: "64", "should return an int, got str"),
        (lambda *args, **kwargs: None, "forget the return"),
    ],
)
def test_size_names_the_mistake(wrong, feedback):
    with pytest.raises(CheckFailed, match=feedback):
        check.transposed_output_size(wrong)


def test_size_accepts_integer_tensors_and_numpy_ints():
    import numpy as np

    check.transposed_output_size(lambda *a, **kw: torch.tensor(transposed_out_size(*a, **kw)))
    check.transposed_output_size(lambda *a, **kw: np.int64(transposed_out_size(*a, **kw)))


# --- 05.3 kernel taps per output pixel ---------------------------------------------------------


def taps_per_pixel(n, kernel, stride, padding=0):
    """The solution: stamp every input pixel's kernel, then cut the padding off both ends."""
    counts = torch.zeros((n - 1) * stride + kernel, dtype=torch.long)
    for i in range(n):
        counts[i * stride : i * stride + kernel] += 1
    return counts[padding : counts.numel() - padding]


def test_taps_right_answer_passes(capsys):
    check.overlap_count(taps_per_pixel)
    out = capsys.readouterr().out
    assert out == "✓ Exercise 05.3, kernel taps per output pixel: 3 check(s) passed\n"
    check.overlap_count(taps_per_pixel, hidden=True)
    assert "7 check(s) passed (with the hidden cases)" in capsys.readouterr().out
    check.overlap_count(lambda *a, **kw: taps_per_pixel(*a, **kw).tolist())  # a list is fine


def test_taps_not_done_and_crash():
    with pytest.raises(NotImplementedError):
        check.overlap_count(not_done)
    with pytest.raises(CheckFailed, match=r"taps_per_pixel raised IndexError"):
        check.overlap_count(crashes)


def _stamped(length_delta=0, crop="both"):
    def taps(n, kernel, stride, padding=0):
        length = kernel + length_delta
        counts = torch.zeros((n - 1) * stride + kernel + 1, dtype=torch.long)
        for i in range(n):
            counts[i * stride : i * stride + length] += 1
        counts = counts[: (n - 1) * stride + kernel]
        if crop == "none":
            return counts
        if crop == "start":
            return counts[2 * padding :]
        if crop == "end":
            return counts[: counts.numel() - 2 * padding]
        return counts[padding : counts.numel() - padding]

    return taps


@pytest.mark.parametrize(
    ("wrong", "feedback"),
    [
        (_stamped(crop="none"), r"did not remove the padding. Cut 1 pixel\(s\) from each end"),
        (_stamped(crop="start"), "from the start.*from \\*each\\* end"),
        (_stamped(crop="end"), "from the end.*from \\*each\\* end"),
        (_stamped(length_delta=-1), "one too few"),
        (_stamped(length_delta=1), "one too many"),
        (lambda n, k, s, padding=0: taps_per_pixel(n, k, s, padding).flip(0) * 0 + 1, "relative"),
        (lambda n, k, s, padding=0: taps_per_pixel(n, k, s, padding)[None], "1-D tensor"),
    ],
)
def test_taps_names_the_mistake(wrong, feedback):
    with pytest.raises(CheckFailed, match=feedback):
        check.overlap_count(wrong)


def test_taps_hidden_cases_include_holes():
    """kernel < stride leaves output pixels that no input reaches: the count must be 0 there."""
    assert overlap_count(1, 3, n=4, dims=1).tolist() == [1, 0, 0, 1, 0, 0, 1, 0, 0, 1]

    def never_zero(n, kernel, stride, padding=0):
        return taps_per_pixel(n, kernel, stride, padding).clamp(min=1)

    check.overlap_count(never_zero)
    with pytest.raises(CheckFailed, match=r"kernel=1, stride=3"):
        check.overlap_count(never_zero, hidden=True)


# --- the library calls that would do an exercise are refused while it runs ---------------------


def test_checks_refuse_the_library_calls_and_restore_them():
    with pytest.raises(CheckFailed, match="calls F.pixel_shuffle.*write it yourself"):
        check.pixel_shuffle(lambda x, r: F.pixel_shuffle(x, r))
    with pytest.raises(CheckFailed, match="calls F.pixel_shuffle"):
        check.pixel_shuffle(lambda x, r: torch.nn.PixelShuffle(r)(x))

    def by_layer(n, kernel, stride, padding=0, output_padding=0):
        layer = torch.nn.ConvTranspose1d(1, 1, kernel, stride, padding, output_padding)
        return layer(torch.zeros(1, 1, n)).shape[-1]

    with pytest.raises(CheckFailed, match="calls a transposed convolution"):
        check.transposed_output_size(by_layer)
    with pytest.raises(CheckFailed, match="calls a transposed convolution"):
        check.overlap_count(lambda n, k, s, padding=0: overlap_count(k, s, n, padding, dims=1))
    x = torch.arange(8.0).reshape(1, 4, 1, 2)  # the originals are back
    assert torch.equal(F.pixel_shuffle(x, 2), torch.nn.PixelShuffle(2)(x))
    assert overlap_count(3, 2, n=2, dims=1).tolist() == [1, 1, 2, 1, 1]
