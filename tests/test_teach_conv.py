"""Tests for srgan_edu.teach.conv: lesson 03's hand-written convolutions, kernels and widget."""

from __future__ import annotations

import itertools

import matplotlib.figure
import matplotlib.pyplot as plt
import pytest
import torch
import torch.nn.functional as F
from scipy import signal

from srgan_edu.models import Discriminator, SRResNet
from srgan_edu.teach import conv as C

pytestmark = pytest.mark.usefixtures("one_thread", "close_figures")

HAND_WRITTEN = [C.conv2d_loops, C.conv2d_im2col]


def _case(seed: int, c_in: int, c_out: int, kh: int, kw: int, h: int = 7, w: int = 9):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, c_in, h, w, generator=g, dtype=torch.float64)
    weight = torch.randn(c_out, c_in, kh, kw, generator=g, dtype=torch.float64)
    bias = torch.randn(c_out, generator=g, dtype=torch.float64)
    return x, weight, bias


SETTINGS = [
    # (c_in, c_out, kh, kw, stride, padding)
    (1, 1, 3, 3, 1, 0),
    (3, 4, 3, 3, 1, 1),
    (3, 4, 3, 3, 2, 1),
    (3, 2, 5, 5, 2, 2),
    (2, 3, 1, 1, 1, 0),
    (3, 4, 3, 3, 4, 0),  # stride larger than the kernel
    (2, 2, 2, 4, 3, 1),  # even, non-square kernel
    (2, 3, 3, 5, (1, 2), (2, 0)),  # different stride and padding per axis
    (3, 4, 7, 7, 1, 3),
]


@pytest.mark.parametrize("conv", HAND_WRITTEN, ids=lambda f: f.__name__)
@pytest.mark.parametrize("c_in,c_out,kh,kw,stride,padding", SETTINGS)
@pytest.mark.parametrize("with_bias", [True, False])
def test_hand_written_conv_equals_torch(conv, c_in, c_out, kh, kw, stride, padding, with_bias):
    x, weight, bias = _case(0, c_in, c_out, kh, kw)
    bias = bias if with_bias else None
    expected = F.conv2d(x, weight, bias, stride=stride, padding=padding)
    got = conv(x, weight, bias, stride=stride, padding=padding)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected)


@pytest.mark.parametrize("conv", HAND_WRITTEN, ids=lambda f: f.__name__)
@pytest.mark.parametrize("stride,padding", [(1, 0), (1, 1), (2, 1), (3, 2)])
def test_hand_written_conv_gradients_equal_torch(conv, stride, padding):
    x, weight, bias = _case(1, 3, 4, 3, 3)
    inputs = [t.clone().requires_grad_(True) for t in (x, weight, bias)]
    refs = [t.clone().requires_grad_(True) for t in (x, weight, bias)]
    g = torch.Generator().manual_seed(2)
    out = conv(*inputs, stride=stride, padding=padding)
    upstream = torch.randn(out.shape, generator=g, dtype=out.dtype)  # a random dL/d(out)
    (out * upstream).sum().backward()
    (F.conv2d(*refs, stride=stride, padding=padding) * upstream).sum().backward()
    for name, mine, ref in zip(("input", "weight", "bias"), inputs, refs, strict=True):
        torch.testing.assert_close(mine.grad, ref.grad, msg=f"gradient wrt {name} differs")


@pytest.mark.parametrize("conv", HAND_WRITTEN, ids=lambda f: f.__name__)
@pytest.mark.parametrize("k", [1, 3, 5, 9])
def test_same_padding_keeps_the_size_and_matches_torch(conv, k):
    x, weight, bias = _case(3, 2, 3, k, k, h=10, w=11)
    got = conv(x, weight, bias, padding="same")
    assert got.shape[-2:] == x.shape[-2:]
    torch.testing.assert_close(got, F.conv2d(x, weight, bias, padding="same"))
    assert C.same_padding(k) == (k - 1) // 2


def test_same_padding_rejects_even_kernels_and_strides():
    with pytest.raises(ValueError, match="odd kernel"):
        C.same_padding(4)
    x, weight, _ = _case(0, 1, 1, 3, 3)
    with pytest.raises(ValueError, match="stride 1"):
        C.conv2d_im2col(x, weight, stride=2, padding="same")


@pytest.mark.parametrize("kernel_size,stride,padding", [(3, 1, 0), (3, 2, 1), ((2, 3), (2, 1), 2)])
def test_im2col_equals_unfold(kernel_size, stride, padding):
    x, _, _ = _case(4, 3, 1, 1, 1, h=8, w=7)
    expected = F.unfold(x, kernel_size, padding=padding, stride=stride)
    assert torch.equal(C.im2col(x, kernel_size, stride, padding), expected)


def test_output_size_formula_matches_real_convolutions_over_a_grid():
    checked = too_big = 0
    for n, k, s, p in itertools.product(range(1, 11), range(1, 6), range(1, 5), range(4)):
        x = torch.zeros(1, 1, n, n)
        weight = torch.zeros(1, 1, k, k)
        if k > n + 2 * p:
            with pytest.raises(ValueError, match=r"does not fit.*n \+ 2p >= k"):
                C.conv_output_size(n, k, s, p)
            with pytest.raises(RuntimeError):  # PyTorch refuses too, less helpfully
                F.conv2d(x, weight, stride=s, padding=p)
            too_big += 1
            continue
        out = F.conv2d(x, weight, stride=s, padding=p).shape[-1]
        assert C.conv_output_size(n, k, s, p) == out, (n, k, s, p)
        checked += 1
    assert checked > 600 and too_big > 10


def test_output_size_error_says_how_much_padding_is_needed():
    with pytest.raises(ValueError, match="padding >= 1"):
        C.conv_output_size(5, 7)
    with pytest.raises(ValueError, match="padding >= 2"):
        C.conv_output_size(5, 9, padding=1)
    for bad in [
        dict(n=0, k=3),
        dict(n=5, k=0),
        dict(n=5, k=3, stride=0),
        dict(n=5, k=3, padding=-1),
    ]:
        with pytest.raises(ValueError, match="must be an integer"):
            C.conv_output_size(**bad)


def test_worked_example_gives_the_classic_feature_map():
    img = torch.tensor(C.EXAMPLE_IMAGE, dtype=torch.float32)[None, None]
    ker = torch.tensor(C.EXAMPLE_KERNEL, dtype=torch.float32)[None, None]
    expected = torch.tensor([[4.0, 3.0, 4.0], [2.0, 4.0, 3.0], [2.0, 3.0, 4.0]])
    for conv in (*HAND_WRITTEN, F.conv2d):
        assert torch.equal(conv(img, ker)[0, 0], expected)


def test_deep_learning_convolution_is_cross_correlation():
    x, weight, _ = _case(5, 1, 1, 3, 3)
    img, ker = x[0, 0].numpy(), weight[0, 0]
    ours = C.conv2d_im2col(x[:1], weight)[0, 0].numpy()
    assert ours == pytest.approx(signal.correlate2d(img, ker.numpy(), mode="valid"))
    flipped = C.conv2d_im2col(x[:1], ker.flip(0, 1)[None, None])[0, 0].numpy()
    assert flipped == pytest.approx(signal.convolve2d(img, ker.numpy(), mode="valid"))


def test_conv_errors_name_the_shapes_and_the_fix():
    x, weight, _ = _case(0, 3, 2, 3, 3)
    with pytest.raises(ValueError, match="expects 3 input channels but x has 1"):
        C.conv2d_loops(x[:, :1], weight)
    with pytest.raises(ValueError, match="unsqueeze"):
        C.conv2d_im2col(x[0], weight)
    with pytest.raises(ValueError, match=r"kernel\[None, None\]"):
        C.conv2d_im2col(x, weight[0, 0])
    with pytest.raises(ValueError, match="one value per output channel"):
        C.conv2d_im2col(x, weight, torch.zeros(3, dtype=x.dtype))
    with pytest.raises(ValueError, match="does not fit"):
        C.conv2d_loops(x[..., :2, :2], weight)


def test_kernels_have_the_documented_sums_and_shapes():
    for name in C.KERNEL_NAMES:
        k = C.make_kernel(name)
        assert k.dtype == torch.float32 and k.dim() == 2 and k.shape[0] == k.shape[1]
        assert k.shape[0] % 2 == 1  # odd: 'same' padding exists
    for name in ("box 3x3", "box 7x7", "gaussian σ=1 (9x9)", "gaussian σ=2 (17x17)", "sharpen"):
        assert float(C.make_kernel(name).sum()) == pytest.approx(1.0, abs=1e-6)
    for name in ("sobel x", "sobel y", "laplacian"):
        assert float(C.make_kernel(name).sum()) == 0.0
    assert C.make_kernel("gaussian σ=2 (17x17)").shape == (17, 17)
    assert torch.equal(C.make_kernel("sobel y"), C.make_kernel("sobel x").T)
    with pytest.raises(ValueError, match="unknown kernel"):
        C.make_kernel("emboss")


def test_lesson_images_are_small_grey_images_in_unit_range():
    sizes = {"5x5 example": (5, 5), "photo: eye 24x24": (24, 24), "photo: face 64x64": (64, 64)}
    for name in C.LESSON_IMAGES:
        img = C.lesson_image(name)
        assert tuple(img.shape) == sizes[name]
        assert 0.0 <= float(img.min()) and float(img.max()) <= 1.0
    with pytest.raises(ValueError, match="unknown image"):
        C.lesson_image("lena")


@pytest.mark.parametrize(
    "kernel,stride,padding,image",
    [
        ("X (worked example)", 1, 0, "5x5 example"),
        ("sobel x", 5, 0, "5x5 example"),  # stride > kernel: one window only
        ("laplacian", 4, 0, "photo: eye 24x24"),  # stride > kernel: pixels skipped
        ("box 3x3", 1, 8, "5x5 example"),  # more padding than kernel
        ("gaussian σ=2 (17x17)", 2, 8, "photo: face 64x64"),
        ("sharpen", 3, 1, "photo: face 64x64"),
    ],
)
def test_explore_conv_draws_input_kernel_and_output(kernel, stride, padding, image):
    fig = C.explore_conv(kernel=kernel, stride=stride, padding=padding, image=image)
    assert isinstance(fig, matplotlib.figure.Figure)
    assert len(fig.axes) == 3
    n = C.lesson_image(image).shape[0]
    k = C.make_kernel(kernel).shape[0]
    out = C.conv_output_size(n, k, stride, padding)
    assert fig.axes[2].get_title().endswith(f"= {out}")
    assert fig.axes[2].get_images()[0].get_array().shape == (out, out)
    assert plt.get_fignums() == [fig.number]  # one figure, left open for the caller


def test_explore_conv_reports_pixels_no_window_sees():
    fig = C.explore_conv(kernel="laplacian", stride=4, padding=2, image="photo: eye 24x24")
    # per axis the windows cover 18 of the 24 pixels: 24^2 - 18^2 = 252 are never used
    assert "252 input pixels are in no window" in fig.axes[2].get_xlabel()


def test_explore_conv_explains_a_kernel_larger_than_the_padded_input():
    fig = C.explore_conv(kernel="box 7x7", stride=1, padding=0, image="5x5 example")
    assert len(fig.axes) == 3
    assert fig.axes[2].get_images() == []
    text = " ".join(t.get_text() for t in fig.axes[2].texts).replace("\n", " ")
    assert "does not fit" in text and "padding >= 1" in text
    assert "does not fit" in fig.axes[2].get_title()


def test_explore_conv_rejects_unknown_names():
    with pytest.raises(ValueError, match="unknown kernel"):
        C.explore_conv(kernel="emboss")
    with pytest.raises(ValueError, match="unknown image"):
        C.explore_conv(image="lena")


def test_conv_widget_has_the_four_controls():
    ipywidgets = pytest.importorskip("ipywidgets")
    w = C.conv_widget(kernel="sobel y", stride=2, padding=1, image="photo: eye 24x24")
    assert isinstance(w, ipywidgets.interactive)
    values = {c._kwarg: c.value for c in w.kwargs_widgets}
    assert values == {"kernel": "sobel y", "stride": 2, "padding": 1, "image": "photo: eye 24x24"}
    plt.close("all")


def test_plot_conv_steps_draws_one_panel_per_output_pixel():
    fig = C.plot_conv_steps()
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[0] == "out[0,0] = 4" and titles[-1] == "out[2,2] = 4" and len(titles) == 9
    fig = C.plot_conv_steps(stride=2, padding=1)  # (5 + 2 - 3) / 2 + 1 = 3 per axis
    assert len(fig.axes) == 9
    with pytest.raises(ValueError, match="too many"):
        C.plot_conv_steps(torch.zeros(10, 10))


def test_plot_kernel_gallery_shows_each_kernel_and_its_result():
    img = C.lesson_image("photo: face 64x64")
    names = ["box 3x3", "sobel x", "gaussian σ=1 (9x9)"]
    fig = C.plot_kernel_gallery(img, names)
    assert len(fig.axes) == 6
    assert [ax.get_title() for ax in fig.axes[:3]] == names
    assert fig.axes[4].get_images()[0].get_array().shape == (64, 64)  # 'same' padding


def test_conv_shapes_follow_the_formula_in_the_srgan_networks():
    g = SRResNet(scale=4, n_blocks=2, channels=8, seed=0)
    shapes = C.conv_shapes(g, torch.zeros(1, 3, 12, 10))
    assert len(shapes) == 1 + 2 * 2 + 1 + 2 + 1  # head, blocks, fuse, two x2 stages, tail
    assert all(s.out_hw == s.predicted_hw for s in shapes)
    head = shapes[0]
    assert (head.name, head.kernel, head.padding, head.in_hw, head.out_hw) == (
        "head.0",
        9,
        4,
        (12, 10),
        (12, 10),
    )
    assert head.parameters == 3 * 8 * 81 + 8
    assert shapes[-1].in_hw == (48, 40)  # the tail works at the HR size
    d = Discriminator(hr_size=40, channels=4, dense=8, seed=0)
    shapes = C.conv_shapes(d, torch.zeros(1, 3, 40, 40))
    assert all(s.out_hw == s.predicted_hw for s in shapes)
    assert [s.out_hw[0] for s in shapes if s.stride == 2] == [20, 10, 5, 3]  # ceil(n / 2)
    # the hooks are gone afterwards
    assert all(not m._forward_hooks for m in d.modules())
