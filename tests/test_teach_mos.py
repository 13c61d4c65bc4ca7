"""Tests for srgan_edu.teach.mos: lesson 09's blind rating study and MOS aggregation."""

from __future__ import annotations

import io
import json
import math

import matplotlib.figure
import numpy as np
import pytest
import torch
from PIL import Image
from scipy import stats

from srgan_edu.teach import mos as M

pytestmark = pytest.mark.usefixtures("close_figures")

METHODS = ("bicubic", "SRResNet", "SRGAN", "original")


def pictures(n_images: int = 3, size: int = 8) -> dict[str, dict[str, torch.Tensor]]:
    """Distinct constant-colour pictures, one per (image, method), so each can be recognised."""
    out = {}
    for i in range(n_images):
        out[f"face{i}.jpg"] = {
            m: torch.full((3, size, size), (i * len(METHODS) + k + 1) / 20.0)
            for k, m in enumerate(METHODS)
        }
    return out


def decoded(png: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(png))
    img.load()
    return img


def rating(rater: str, method: str, score: int, image: str = "x", item: str = "01") -> M.Rating:
    return M.Rating(rater, item, image, method, score)


# ---------------------------------------------------------------------------- the study


def test_every_image_method_pair_is_one_item_and_the_shuffle_follows_the_seed():
    pics = pictures()
    a, b, c = M.make_study(pics, seed=1), M.make_study(pics, seed=1), M.make_study(pics, seed=2)
    pairs = sorted((it.image, it.method) for it in a.items)
    assert pairs == sorted((img, m) for img in pics for m in METHODS)
    assert [it.item for it in a.items] == [f"{k:02d}" for k in range(1, 13)]
    assert a.items == b.items  # same seed, same study
    assert [(it.image, it.method) for it in a.items] != [(it.image, it.method) for it in c.items]
    # each item's picture is the one of its (image, method)
    for it in a.items:
        assert torch.equal(a.pictures[it.item], pics[it.image][it.method])
    assert a.methods == sorted(METHODS)


def test_the_study_order_is_not_grouped_by_method():
    study = M.make_study(pictures(n_images=6), seed=0)
    methods = [it.method for it in study.items]
    # unshuffled, the methods would repeat with period 4; a seeded shuffle breaks that pattern
    assert methods != [METHODS[k % 4] for k in range(len(methods))]
    assert methods[:6] != [methods[0]] * 6


def test_each_rater_gets_a_seeded_order_of_their_own():
    study = M.make_study(pictures(), seed=3)
    ann, ann2, bob = study.order_for("ann"), study.order_for("ann"), study.order_for("bob")
    assert ann == ann2
    assert ann != bob
    assert sorted(ann) == sorted(bob) == sorted(it.item for it in study.items)


def test_pictures_of_different_sizes_are_refused_because_size_would_give_the_method_away():
    pics = pictures()
    pics["face0.jpg"]["bicubic"] = torch.zeros(3, 16, 16)
    with pytest.raises(ValueError, match="one size"):
        M.make_study(pics)
    with pytest.raises(ValueError, match="no picture"):
        M.make_study({"a": {"x": torch.zeros(3, 4, 4), "y": torch.zeros(3, 4, 4)}, "b": {}})


def test_what_a_rater_sees_is_blind():
    pics = pictures()
    study = M.make_study(pics, seed=0)
    session = M.start_session(study, "ann")
    seen_items = []
    while not session.done:
        view = session.view()
        low = view.text.lower()
        for m in METHODS:
            assert m.lower() not in low
        for image in pics:
            assert image.lower() not in low and "face" not in low
        img = decoded(view.png)
        assert img.size == (24, 24)  # zoom 3 of an 8x8 picture
        assert not img.info  # no PNG text chunks: nothing about the method in the file
        # the picture shown is the current item's, enlarged with nearest neighbour
        it = study.item(session.current)
        expected = int((pics[it.image][it.method][0, 0, 0] * 255).round())  # as to_pil rounds
        assert np.asarray(img)[0, 0, 0] == expected
        seen_items.append(session.current)
        M.submit(session, 3)
    assert sorted(seen_items) == sorted(it.item for it in study.items)
    # every item id is a number: it says nothing about method or image
    assert all(it.item.isdigit() for it in study.items)


# ---------------------------------------------------------------------------- the session


def test_session_state_machine_rate_next_back_done():
    study = M.make_study(pictures(n_images=1), seed=0)  # 4 items
    s = M.start_session(study, "ann")
    assert (s.position, s.total, s.done) == (0, 4, False)
    with pytest.raises(M.RatingError, match="before moving on"):
        s.next()  # not rated yet
    with pytest.raises(M.RatingError, match="1 \\(bad\\) to 5"):
        s.rate(6)
    with pytest.raises(M.RatingError):
        s.rate(True)
    with pytest.raises(M.RatingError, match="first image"):
        s.back()
    s.rate(2)
    s.rate(4)  # changing one's mind replaces the score
    s.next()
    assert s.position == 1 and s.scores == {s.order[0]: 4}
    s.back()
    assert s.view().score == 4  # back shows the earlier score
    for score in (4, 1, 5, 3):
        view = M.submit(s, score)
    assert s.done and view.done and view.png is None and view.position == 4
    assert "All 4 images rated" in view.text
    with pytest.raises(M.RatingError, match="rated already"):
        s.rate(3)
    got = s.ratings()
    assert [r.score for r in got] == [4, 1, 5, 3]
    assert {r.method for r in got} == set(METHODS)  # revealed only in the results
    assert all(r.rater == "ann" for r in got)


def test_submit_without_a_score_stays_on_the_item_and_says_so():
    s = M.start_session(M.make_study(pictures(n_images=1)), "ann")
    view = M.submit(s, None)
    assert view.position == 0 and "Choose a score" in view.text
    assert M.go_back(s).position == 0  # back at the first item: harmless


def test_a_session_needs_a_rater_name():
    with pytest.raises(M.RatingError, match="name"):
        M.start_session(M.make_study(pictures(n_images=1)), "  ")


def test_unshuffled_session_follows_the_study_order():
    study = M.make_study(pictures(), seed=5)
    s = M.start_session(study, "ann", shuffle=False)
    assert s.order == [it.item for it in study.items]


def test_widget_driven_by_clicks_rates_every_item_and_saves(tmp_path):
    study = M.make_study(pictures(n_images=1), seed=0)
    session = M.start_session(study, "ann")
    target = tmp_path / "ann.json"
    panel = M.rating_widget(session, save_to=target)
    text, picture, scores, buttons, status = panel.children
    back, nxt = buttons.children
    assert "Image 1 of 4" in text.value and picture.value and back.disabled
    nxt.click()  # no score chosen: stays
    assert session.position == 0 and "Choose a score" in text.value
    scores.value = 5
    nxt.click()
    assert session.position == 1 and "Image 2 of 4" in text.value and scores.value is None
    back.click()
    assert session.position == 0 and scores.value == 5  # the earlier score is shown again
    for value in (2, 3, 4, 1):
        scores.value = value
        nxt.click()
    assert session.done and nxt.disabled and scores.disabled
    assert picture.layout.display == "none"
    assert "4 ratings saved" in status.value and target.is_file()
    assert [r.score for r in M.load_ratings(target)] == [2, 3, 4, 1]


# ---------------------------------------------------------------------------- files


@pytest.mark.parametrize("suffix", [".json", ".csv"])
def test_save_load_round_trip(tmp_path, suffix):
    study = M.make_study(pictures(), seed=0)
    ratings = M.simulate_ratings(study, 3, dict.fromkeys(METHODS, 3.0), seed=1)
    path = M.save_ratings(ratings, tmp_path / f"r{suffix}")
    assert M.load_ratings(path) == ratings
    # several files load as one list (a teacher collecting the class's files)
    other = M.save_ratings(ratings[:5], tmp_path / f"s{suffix}")
    assert M.load_ratings(path, other) == ratings + ratings[:5]


def test_bad_ratings_files_are_explained(tmp_path):
    with pytest.raises(M.RatingError, match=".json or .csv"):
        M.save_ratings([], tmp_path / "r.txt")
    bad = tmp_path / "bad.csv"
    bad.write_text("rater,item,image,method,score\nann,01,a,bicubic,7\n")
    with pytest.raises(M.RatingError, match="row 1.*1..5"):
        M.load_ratings(bad)
    bad.write_text("rater,item,score\nann,01,3\n")
    with pytest.raises(M.RatingError, match="missing image, method"):
        M.load_ratings(bad)
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"ratings": []}))
    with pytest.raises(M.RatingError, match="not a ratings file"):
        M.load_ratings(other)
    with pytest.raises(M.RatingError, match="cannot read"):
        M.load_ratings(tmp_path / "missing.csv")


# ---------------------------------------------------------------------------- aggregation


def test_t_interval_by_hand_and_equal_to_scipy():
    scores = [1, 2, 2, 3, 5]
    mean, lo, hi = M.t_interval(scores)
    # by hand: mean 13/5 = 2.6; s^2 = (2.56 + 0.36 + 0.36 + 0.16 + 5.76) / 4 = 2.3;
    # t_{0.975, 4} = 2.776445; half width = 2.776445 * sqrt(2.3 / 5) = 1.883072
    assert mean == pytest.approx(2.6)
    assert hi - mean == pytest.approx(2.776445 * math.sqrt(2.3 / 5), rel=1e-6)
    assert mean - lo == pytest.approx(hi - mean)
    ref = stats.t.interval(0.95, len(scores) - 1, loc=np.mean(scores), scale=stats.sem(scores))
    assert (lo, hi) == pytest.approx(ref, rel=1e-12)
    ref90 = stats.t.interval(0.9, 4, loc=2.6, scale=stats.sem(scores))
    assert M.t_interval(scores, 0.9)[1:] == pytest.approx(ref90, rel=1e-12)
    one = M.t_interval([4])
    assert one[0] == 4 and math.isnan(one[1]) and math.isnan(one[2])


def test_mos_summary_against_hand_computed_values():
    ratings = [
        rating("ann", "bicubic", 1), rating("ann", "bicubic", 2), rating("ann", "SRGAN", 4),
        rating("bob", "bicubic", 2), rating("bob", "SRGAN", 5), rating("bob", "SRGAN", 3),
        rating("cy", "bicubic", 3), rating("cy", "SRGAN", 4),
    ]  # fmt: skip
    summary = M.mos_summary(ratings, methods=["bicubic", "SRGAN"], n_boot=500)
    bic, gan = summary["bicubic"], summary["SRGAN"]
    assert (bic.n, bic.raters, gan.n, gan.raters) == (4, 3, 4, 3)
    assert bic.mean == pytest.approx(2.0) and gan.mean == pytest.approx(4.0)
    # std of (1, 2, 2, 3) with ddof 1: sqrt(2 / 3)
    assert bic.std == pytest.approx(math.sqrt(2 / 3))
    half = stats.t.ppf(0.975, 3) * math.sqrt(2 / 3) / 2
    assert (bic.t_low, bic.t_high) == pytest.approx((2 - half, 2 + half))
    assert list(summary) == ["bicubic", "SRGAN"]
    assert list(M.mos_summary(ratings)) == ["SRGAN", "bicubic"]  # default: sorted names


def test_bootstrap_over_raters_resamples_whole_raters():
    # rater means for "m": ann 1.5 (two ratings), bob 4 (one), cy 3 (one)
    ratings = [rating("ann", "m", 1), rating("ann", "m", 2), rating("bob", "m", 4)]
    ratings += [rating("cy", "m", 3), rating("cy", "other", 5)]
    lo, hi = M.bootstrap_over_raters(ratings, "m", n_boot=4000, seed=0)
    # every resample's MOS is a pooled mean of the raters' scores: between 1.5 (ann only) and 4
    assert 1.5 <= lo < hi <= 4.0
    # the same bootstrap written out directly: resample rater indices, pool their sums and counts
    sums, counts = np.array([3.0, 4.0, 3.0]), np.array([2.0, 1.0, 1.0])
    draws = np.random.default_rng(0).integers(0, 3, size=(4000, 3))
    means = sums[draws].sum(1) / counts[draws].sum(1)
    assert (lo, hi) == pytest.approx(tuple(np.quantile(means, [0.025, 0.975])))
    assert M.bootstrap_over_raters(ratings, "m", seed=0) == M.bootstrap_over_raters(
        ratings, "m", seed=0
    )
    # one rater: no between-rater spread to resample
    assert all(math.isnan(v) for v in M.bootstrap_over_raters(ratings, "other"))


def test_bootstrap_interval_is_wider_than_the_t_interval_when_raters_disagree():
    # two harsh raters, two generous raters: the ratings look many, the raters are few
    ratings = []
    for rater, base in [("a", 1), ("b", 1), ("c", 4), ("d", 4)]:
        ratings += [rating(rater, "m", base + (k % 2)) for k in range(20)]
    s = M.mos_summary(ratings, n_boot=3000)["m"]
    assert s.boot_high - s.boot_low > 2 * (s.t_high - s.t_low)


def test_simulated_ratings_are_labelled_and_follow_the_means():
    study = M.make_study(pictures(n_images=6), seed=0)
    means = {"bicubic": 1.5, "SRResNet": 2.5, "SRGAN": 3.5, "original": 4.5}
    ratings = M.simulate_ratings(study, 12, means, seed=0)
    assert len(ratings) == 12 * len(study)
    assert all(r.rater.startswith("simulated-") for r in ratings)
    assert all(1 <= r.score <= 5 for r in ratings)
    summary = M.mos_summary(ratings, methods=list(means))
    got = [summary[m].mean for m in means]
    assert got == sorted(got)  # the invented order comes out
    assert M.simulate_ratings(study, 2, means, seed=4) == M.simulate_ratings(
        study, 2, means, seed=4
    )
    with pytest.raises(ValueError, match="missing"):
        M.simulate_ratings(study, 2, {"bicubic": 2.0})


def test_table_and_plot():
    study = M.make_study(pictures(), seed=0)
    ratings = M.simulate_ratings(study, 4, dict(zip(METHODS, (2, 3, 4, 5), strict=True)))
    summary = M.mos_summary(ratings, methods=list(METHODS), n_boot=200)
    table = M.mos_table(summary)
    lines = table.splitlines()
    assert lines[0].split()[:2] == ["method", "MOS"] and len(lines) == 5
    assert lines[1].startswith("bicubic") and f"{summary['bicubic'].mean:.2f}" in lines[1]
    fig = M.plot_mos(summary, title="simulated")
    assert isinstance(fig, matplotlib.figure.Figure)
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == list(METHODS)
    with pytest.raises(M.RatingError, match="no ratings"):
        M.mos_summary([])
