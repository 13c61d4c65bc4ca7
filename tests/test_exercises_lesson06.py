"""Lesson 06's exercise checks: right answers pass, typical wrong answers get named feedback."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage.metrics import structural_similarity

from srgan_edu.exercises import lesson06 as check
from srgan_edu.exercises.feedback import CheckFailed
from srgan_edu.metrics import gaussian_window

pytestmark = pytest.mark.usefixtures("one_thread")


def not_done(*args, **kwargs):
    raise NotImplementedError("Exercise: replace this line with your solution")


def crashes(*args, **kwargs):
    return [1, 2][5]


# --- 06.1 PSNR ---------------------------------------------------------------------------------


def psnr_by_hand(x, y, data_range=1.0):
    """The solution: MSE per image over (C, H, W), then 10 log10(MAX^2 / MSE)."""
    mse = ((x - y) ** 2).mean(dim=(1, 2, 3))  # (B,)
    return 10 * torch.log10(data_range**2 / mse)


def test_psnr_right_answer_passes(capsys):
    check.psnr(psnr_by_hand)
    assert capsys.readouterr().out == "✓ Exercise 06.1, PSNR by hand: 2 check(s) passed\n"
    check.psnr(psnr_by_hand, hidden=True)
    assert "5 check(s) passed (with the hidden cases)" in capsys.readouterr().out

    def with_numpy(x, y, data_range=1.0):  # another right way: numpy, returns an array
        err = ((x.numpy().astype(np.float64) - y.numpy()) ** 2).reshape(len(x), -1).mean(1)
        with np.errstate(divide="ignore"):
            return 20 * np.log10(data_range / np.sqrt(err))  # MAX / RMSE with 20 log10

    check.psnr(with_numpy, hidden=True)


def test_psnr_not_done_and_crash():
    with pytest.raises(NotImplementedError):
        check.psnr(not_done)
    with pytest.raises(CheckFailed, match=r"psnr_by_hand raised IndexError"):
        check.psnr(crashes)


def _psnr(formula):
    """A student's PSNR computing ``formula(mse per image, data_range)``."""

    def psnr(x, y, data_range=1.0):
        return formula(((x - y) ** 2).mean(dim=(1, 2, 3)), data_range)

    return psnr


@pytest.mark.parametrize(
    ("wrong", "feedback"),
    [
        (_psnr(lambda m, peak: 20 * torch.log10(peak**2 / m)), "20 log10"),
        (_psnr(lambda m, peak: 10 * torch.log(peak**2 / m)), "natural logarithm"),
        (_psnr(lambda m, peak: 10 * torch.log10(peak / m)), "data_range=255.*MAX must be squared"),
        (_psnr(lambda m, peak: 10 * torch.log10(1 / m)), "data_range=255.*ignored data_range"),
        (_psnr(lambda m, peak: 10 * torch.log10(peak**2 / m.sqrt())), "RMSE"),
        (_psnr(lambda m, peak: 10 * torch.log10(m / peak**2)), "wrong sign"),
        (_psnr(lambda m, peak: 10 * torch.log10(peak**2 / m) + 0.01), "relative error"),
        (
            lambda x, y, data_range=1.0: (
                10 * torch.log10(data_range**2 / ((x - y) ** 2).sum((1, 2, 3)))
            ),
            "summed the squared differences",
        ),
        (
            lambda x, y, data_range=1.0: 10 * torch.log10(data_range**2 / ((x - y) ** 2).mean()),
            r"one number for 3 images.*dims \(1, 2, 3\)",
        ),
        (
            lambda x, y, data_range=1.0: psnr_by_hand(x, y, data_range).mean(),
            "one number for 3 images",
        ),
        (
            lambda x, y, data_range=1.0: (
                10 * torch.log10(data_range**2 / ((x - y) ** 2).mean((2, 3)))
            ),
            "one value per image and channel",
        ),
        (lambda x, y, data_range=1.0: None, "forget the return"),
    ],
)
def test_psnr_names_the_mistake(wrong, feedback):
    with pytest.raises(CheckFailed, match=feedback):
        check.psnr(wrong)


def test_psnr_identical_images_give_inf_in_the_hidden_cases():
    def with_epsilon(x, y, data_range=1.0):
        mse = ((x - y) ** 2).mean(dim=(1, 2, 3))
        return 10 * torch.log10(data_range**2 / (mse + 1e-12))

    check.psnr(with_epsilon)
    with pytest.raises(CheckFailed, match=r"image 1 equals its reference.*\+inf.*epsilon"):
        check.psnr(with_epsilon, hidden=True)


def test_psnr_accepts_a_column_of_values():
    check.psnr(lambda x, y, data_range=1.0: psnr_by_hand(x, y, data_range)[:, None], hidden=True)


# --- 06.2 the SSIM map -------------------------------------------------------------------------


def ssim_map_by_hand(x, y, data_range=1.0):
    """The solution: Gaussian-weighted local statistics, 'valid' positions, channel by channel."""
    c = x.shape[1]
    g = gaussian_window(1.5).to(x.dtype)
    window = torch.outer(g, g).expand(c, 1, 11, 11)  # one 11 x 11 window per channel

    def local_mean(img):  # (B, C, H, W) -> (B, C, H - 10, W - 10)
        return F.conv2d(img, window, groups=c)

    mu_x, mu_y = local_mean(x), local_mean(y)
    var_x = local_mean(x * x) - mu_x**2
    var_y = local_mean(y * y) - mu_y**2
    cov_xy = local_mean(x * y) - mu_x * mu_y
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    num = (2 * mu_x * mu_y + c1) * (2 * cov_xy + c2)
    return num / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))


def test_ssim_right_answer_passes(capsys):
    check.ssim_map(ssim_map_by_hand)
    assert capsys.readouterr().out == "✓ Exercise 06.2, the SSIM map by hand: 2 check(s) passed\n"
    check.ssim_map(ssim_map_by_hand, hidden=True)
    assert "5 check(s) passed (with the hidden cases)" in capsys.readouterr().out


def test_ssim_three_terms_with_c3_half_c2_pass():
    """l * c * s with C3 = C2 / 2 (the lesson's by-hand form) is the same map."""

    def three_terms(x, y, data_range=1.0):
        g = gaussian_window(1.5).to(x.dtype)
        w = torch.outer(g, g)[None, None]
        b, c, h, wd = x.shape

        def mean(img):  # each channel on its own, by folding channels into the batch
            return F.conv2d(img.reshape(b * c, 1, h, wd), w).reshape(b, c, h - 10, wd - 10)

        mu_x, mu_y = mean(x), mean(y)
        var_x, var_y = mean(x * x) - mu_x**2, mean(y * y) - mu_y**2
        cov = mean(x * y) - mu_x * mu_y
        sd_x, sd_y = var_x.clamp_min(0).sqrt(), var_y.clamp_min(0).sqrt()
        c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
        lum = (2 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1)
        con = (2 * sd_x * sd_y + c2) / (var_x + var_y + c2)
        return lum * con * (cov + c2 / 2) / (sd_x * sd_y + c2 / 2)

    check.ssim_map(three_terms, hidden=True)


def test_ssim_reference_agrees_with_scikit_image():
    x, y = check._image_pair((1, 1, 20, 16), 255.0, 1)
    mean = structural_similarity(
        x[0, 0].double().numpy(),
        y[0, 0].double().numpy(),
        data_range=255.0,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
    )
    ours = ssim_map_by_hand(x.double(), y.double(), 255.0)
    # scikit-image averages over the positions its (cropped) window reaches: the same 'valid' ones
    assert abs(float(ours.mean()) - mean) < 1e-6


def test_ssim_not_done_and_crash():
    with pytest.raises(NotImplementedError):
        check.ssim_map(not_done)
    with pytest.raises(CheckFailed, match=r"ssim_map_by_hand raised IndexError"):
        check.ssim_map(crashes)


def _ssim(**options):
    """A student's SSIM map with one of the check's typical mistakes."""

    def ssim(x, y, data_range=1.0):
        return check._ssim_variant(x, y, data_range, **options).float()

    return ssim


@pytest.mark.parametrize(
    ("wrong", "feedback"),
    [
        (_ssim(centred=False), "E\\[x\\^2\\] - mu_x\\^2"),
        (_ssim(box=True), "equal weights.*Gaussian"),
        (_ssim(scale_constants=False), "data_range=255.*C1 = \\(0.01 L\\)\\^2"),
        (_ssim(swap_constants=True), "C1 and C2 are swapped"),
        (_ssim(c3_full=True), "C3 = C2 / 2"),
        (lambda x, y, data_range=1.0: ssim_map_by_hand(x, y, data_range) * 0.99, "relative error"),
        (
            lambda x, y, data_range=1.0: ssim_map_by_hand(
                F.pad(x, (5, 5, 5, 5), mode="replicate"),
                F.pad(y, (5, 5, 5, 5), mode="replicate"),
                data_range,
            ),
            "you padded the images",
        ),
        (
            lambda x, y, data_range=1.0: ssim_map_by_hand(x, y, data_range).mean(1, keepdim=True),
            "summed over the channels",
        ),
        (
            lambda x, y, data_range=1.0: ssim_map_by_hand(x, y, data_range).mean(),
            "has shape \\(\\)",
        ),
        (
            lambda x, y, data_range=1.0: ssim_map_by_hand(x, y, data_range).sqrt() * torch.nan,
            "NaN or inf",
        ),
    ],
)
def test_ssim_names_the_mistake(wrong, feedback):
    with pytest.raises(CheckFailed, match=feedback):
        check.ssim_map(wrong)


def test_ssim_float64_window_with_float32_images_is_a_named_crash():
    def float64_window(x, y, data_range=1.0):
        c = x.shape[1]
        g = gaussian_window(1.5)  # float64, the images are float32
        return F.conv2d(x, torch.outer(g, g).expand(c, 1, 11, 11), groups=c)

    with pytest.raises(CheckFailed, match="ssim_map_by_hand raised RuntimeError"):
        check.ssim_map(float64_window)


# --- the library calls that would do an exercise are refused while it runs ---------------------


def test_checks_refuse_the_library_calls_and_restore_them():
    from srgan_edu.metrics import psnr, ssim_map
    from srgan_edu.teach.quality import ssim_terms

    with pytest.raises(CheckFailed, match="psnr_by_hand calls the library's mse / psnr"):
        check.psnr(lambda x, y, data_range=1.0: psnr(x, y, data_range))
    with pytest.raises(CheckFailed, match="ssim_map_by_hand calls the library's SSIM"):
        check.ssim_map(lambda x, y, data_range=1.0: ssim_map(x, y, data_range))
    with pytest.raises(CheckFailed, match="ssim_map_by_hand calls the library's SSIM"):
        check.ssim_map(lambda x, y, data_range=1.0: ssim_terms(x, y, data_range)["ssim"])
    x, y = check._image_pair((1, 3, 16, 16), 1.0, 0)  # the originals are back
    assert torch.allclose(ssim_map(x, y), ssim_terms(x, y)["ssim"].float(), atol=1e-5)
    assert torch.isfinite(psnr(x, y)).all()


def test_checks_run_on_one_thread_and_restore_the_count():
    threads = torch.get_num_threads()
    seen = []

    def spy(x, y, data_range=1.0):
        seen.append(torch.get_num_threads())
        return psnr_by_hand(x, y, data_range)

    torch.set_num_threads(2)
    try:
        check.psnr(spy)
        assert seen == [1, 1] and torch.get_num_threads() == 2
        with pytest.raises(NotImplementedError):
            check.ssim_map(not_done)
        assert torch.get_num_threads() == 2  # restored after a failure too
    finally:
        torch.set_num_threads(threads)
