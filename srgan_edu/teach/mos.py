"""Lesson 09: a blind rating study for a classroom mean-opinion-score (MOS) test.

PSNR and SSIM rank SRGAN below SRResNet; people do not. In their MOS test, Ledig et al. (2017)
asked 26 raters to score the images of Set5, Set14 and BSD100 from 1 (bad) to 5 (excellent), each
version (nearest, bicubic, SRResNet, SRGAN, the original HR, ...) shown in random order without
saying which method made it; the mean score of a method is its MOS. This module runs the same
kind of study in a class:

* :func:`make_study` - the (image, method) items, shuffled with a seed; each gets an opaque id,
  and what a rater sees (:func:`render_item`, :meth:`RatingSession.view`) names neither the
  method nor the image.
* :class:`RatingSession` - one rater's pass through the study in their own seeded order: the
  state machine ``rate -> next -> ... -> done`` that the widget (:func:`rating_widget`) drives.
  :func:`submit` and :func:`go_back` are the widget's callbacks, plain functions.
* :func:`save_ratings` / :func:`load_ratings` - one row per rating, ``rater, item, image, method,
  score``, as JSON or CSV; a teacher collects everyone's files and loads them together.
* :func:`mos_summary` - per method: MOS, a 95 % t-interval over the ratings
  (:func:`t_interval`) and a bootstrap interval over raters (:func:`bootstrap_over_raters`);
  :func:`mos_table` prints it, :func:`plot_mos` draws it with error bars.
* :func:`simulate_ratings` - invented raters for demonstrating the arithmetic (clearly not data).

Images are (3, H, W) tensors in [0, 1], as everywhere in :mod:`srgan_edu`.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image
from scipy import stats

from srgan_edu.checkpoint import atomic_write
from srgan_edu.imaging import to_pil

if TYPE_CHECKING:
    import ipywidgets
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "MOS",
    "SCORES",
    "SCORE_LABELS",
    "Rating",
    "RatingError",
    "RatingSession",
    "RatingStudy",
    "RatingView",
    "StudyItem",
    "bootstrap_over_raters",
    "go_back",
    "load_ratings",
    "make_study",
    "mos_summary",
    "mos_table",
    "plot_mos",
    "rating_widget",
    "render_item",
    "save_ratings",
    "simulate_ratings",
    "start_session",
    "submit",
    "t_interval",
]

SCORES = (1, 2, 3, 4, 5)
SCORE_LABELS = {1: "bad", 2: "poor", 3: "fair", 4: "good", 5: "excellent"}
"""The absolute category rating scale of the paper's MOS test (1 bad .. 5 excellent)."""

FIELDS = ("rater", "item", "image", "method", "score")
"""Columns of a ratings file, in order."""

FORMAT = "srgan-edu MOS ratings"
"""The ``format`` entry of a JSON ratings file."""


class RatingError(ValueError):
    """A rating step a rater (or a ratings file) got wrong; the message says what to do."""


# ----------------------------------------------------------------------------------------------
# the study: shuffled, blind items
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StudyItem:
    """One picture to rate: ``item`` is what raters see; ``image`` and ``method`` stay hidden."""

    item: str
    image: str
    method: str


@dataclass
class RatingStudy:
    """The items of a study in their shuffled order, and their pictures (by item id)."""

    items: list[StudyItem]
    pictures: dict[str, torch.Tensor] = field(repr=False)
    seed: int = 0

    def __len__(self) -> int:
        return len(self.items)

    @property
    def methods(self) -> list[str]:
        """The methods in the study, sorted by name (not in any order a rater could learn)."""
        return sorted({it.method for it in self.items})

    @property
    def images(self) -> list[str]:
        return sorted({it.image for it in self.items})

    def item(self, item_id: str) -> StudyItem:
        for it in self.items:
            if it.item == item_id:
                return it
        raise KeyError(f"no item {item_id!r} in this study (items: {self.items[0].item} ...)")

    def order_for(self, rater: str) -> list[str]:
        """Item ids in the order ``rater`` sees them: a permutation seeded by the study's seed and
        the rater's name, so every rater has their own order (order effects average out) and the
        same name always gets the same order."""
        g = torch.Generator().manual_seed(_mix(self.seed, zlib.crc32(rater.encode("utf-8"))))
        perm = torch.randperm(len(self.items), generator=g).tolist()
        return [self.items[i].item for i in perm]


def _mix(seed: int, salt: int) -> int:
    """One 63-bit seed from two integers (stable across runs, unlike Python's ``hash``)."""
    return (int(seed) * 0x9E3779B97F4A7C15 + int(salt)) % (2**63 - 1)


def make_study(
    pictures: Mapping[str, Mapping[str, torch.Tensor]],
    seed: int = 0,
    methods: Sequence[str] | None = None,
) -> RatingStudy:
    """A blind study from ``pictures[image][method]`` = (3, H, W) in [0, 1].

    Every (image, method) pair becomes one item; the items are shuffled with ``seed`` and then
    numbered ``"01"``, ``"02"`` ..., so an item's id says nothing about its method or image.
    ``methods`` picks and orders the methods (default: all of the first image's). All pictures
    must have one size: a smaller or larger picture would give its method away.
    """
    if not pictures:
        raise ValueError("make_study needs pictures[image][method], got nothing")
    first = next(iter(pictures.values()))
    methods = list(methods if methods is not None else first)
    if len(methods) < 2:
        raise ValueError(f"a rating study compares at least 2 methods, got {methods}")
    pairs: list[tuple[str, str, torch.Tensor]] = []
    shape = None
    for image, per_method in pictures.items():
        missing = [m for m in methods if m not in per_method]
        if missing:
            raise ValueError(f"image {image!r} has no picture for {missing}; each image needs all")
        for m in methods:
            pic = per_method[m]
            if pic.dim() != 3 or pic.shape[0] != 3:
                raise ValueError(f"pictures must be (3, H, W), got {tuple(pic.shape)} for {m!r}")
            if shape is None:
                shape = tuple(pic.shape)
            elif tuple(pic.shape) != shape:
                raise ValueError(
                    f"all pictures must have one size (a different size would give the method "
                    f"away): {image!r}/{m!r} is {tuple(pic.shape)}, the first was {shape}"
                )
            pairs.append((str(image), str(m), pic))
    g = torch.Generator().manual_seed(int(seed))
    order = torch.randperm(len(pairs), generator=g).tolist()
    width = max(2, len(str(len(pairs))))
    items, store = [], {}
    for k, i in enumerate(order):
        image, method, pic = pairs[i]
        item_id = f"{k + 1:0{width}d}"
        items.append(StudyItem(item_id, image, method))
        store[item_id] = pic.detach().float().cpu().clamp(0, 1)
    return RatingStudy(items, store, int(seed))


def render_item(study: RatingStudy, item_id: str, zoom: int = 3) -> bytes:
    """The picture of ``item_id`` as PNG bytes, enlarged ``zoom`` x with nearest neighbour (every
    pixel stays visible; no smoothing added by the display). Pillow writes no text chunks, so
    nothing about the method travels in the file."""
    pic = study.pictures[item_id]  # (3, H, W)
    img = to_pil(pic)
    if zoom > 1:
        img = img.resize((img.width * zoom, img.height * zoom), resample=Image.NEAREST)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


# ----------------------------------------------------------------------------------------------
# one rater's session: the state machine behind the widget
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rating:
    """One score: who gave it, to which item, and (revealed after rating) what it showed."""

    rater: str
    item: str
    image: str
    method: str
    score: int


@dataclass
class RatingView:
    """What the widget shows now: a line of text, the picture (None when done), progress."""

    text: str
    png: bytes | None
    position: int  # 0-based index of the current item (== total when done)
    total: int
    score: int | None  # the score already given to the current item, if any
    done: bool


@dataclass
class RatingSession:
    """One rater going through a study: ``rate(score)``, ``next()``, ..., until ``done``.

    ``order`` is the sequence of item ids this rater sees; ``scores`` maps item id -> score.
    Going back (``back()``) and re-rating replaces the earlier score.
    """

    study: RatingStudy
    rater: str
    order: list[str]
    position: int = 0
    scores: dict[str, int] = field(default_factory=dict)
    zoom: int = 3

    @property
    def total(self) -> int:
        return len(self.order)

    @property
    def done(self) -> bool:
        return self.position >= len(self.order)

    @property
    def current(self) -> str | None:
        """The item id on screen, or None when every item has been rated."""
        return None if self.done else self.order[self.position]

    def rate(self, score: int) -> None:
        """Give the current item ``score`` (1..5); replaces an earlier score for it."""
        if self.done:
            raise RatingError("every image is rated already; save the ratings or go back")
        if isinstance(score, bool) or score not in SCORES:
            raise RatingError(
                f"a score is a whole number from 1 (bad) to 5 (excellent), got {score!r}"
            )
        self.scores[self.current] = int(score)  # type: ignore[index]

    def next(self) -> None:
        """Move to the next item; the current one must be rated first."""
        if self.done:
            raise RatingError("every image is rated already")
        if self.current not in self.scores:
            raise RatingError("choose a score from 1 to 5 for this image before moving on")
        self.position += 1

    def back(self) -> None:
        """Return to the previous item (to change its score)."""
        if self.position == 0:
            raise RatingError("this is the first image; there is nothing before it")
        self.position -= 1

    def view(self) -> RatingView:
        """The text and picture to show now. Names neither the method nor the image."""
        n = self.total
        if self.done:
            text = f"All {n} images rated, thank you {self.rater}."
            return RatingView(text, None, n, n, None, True)
        item = self.current
        text = f"Image {self.position + 1} of {n}: how good is its quality, from 1 to 5?"
        png = render_item(self.study, item, self.zoom)  # type: ignore[arg-type]
        return RatingView(text, png, self.position, n, self.scores.get(item), False)  # type: ignore[arg-type]

    def ratings(self) -> list[Rating]:
        """The scores given so far with their image and method revealed, in this rater's order."""
        out = []
        for item_id in self.order:
            if item_id in self.scores:
                it = self.study.item(item_id)
                out.append(Rating(self.rater, item_id, it.image, it.method, self.scores[item_id]))
        return out


def start_session(
    study: RatingStudy, rater: str, shuffle: bool = True, zoom: int = 3
) -> RatingSession:
    """A fresh session for ``rater``: in the rater's own seeded order (``shuffle=True``), or in
    the study's order, which is already shuffled."""
    rater = str(rater).strip()
    if not rater:
        raise RatingError("give the rater a name (or a pseudonym): ratings are grouped by rater")
    order = study.order_for(rater) if shuffle else [it.item for it in study.items]
    return RatingSession(study, rater, order, zoom=zoom)


def submit(session: RatingSession, score: int | None) -> RatingView:
    """The widget's "next" button: rate the current item ``score`` and move on; the new view.

    ``score=None`` (nothing chosen) keeps the current item and says so in the view's text.
    """
    if score is None:
        view = session.view()
        if not view.done:
            view.text = "Choose a score from 1 to 5 first. " + view.text
        return view
    session.rate(score)
    session.next()
    return session.view()


def go_back(session: RatingSession) -> RatingView:
    """The widget's "back" button: the previous item, with the score it was given."""
    if session.position > 0:
        session.back()
    return session.view()


# ----------------------------------------------------------------------------------------------
# ratings files
# ----------------------------------------------------------------------------------------------


def save_ratings(ratings: Iterable[Rating], path: str | os.PathLike) -> Path:
    """Write ratings as JSON (``.json``) or CSV (``.csv``), one row per rating; returns the path.

    Written atomically, so an interrupted save leaves the previous file whole.
    """
    path = Path(path)
    rows = [asdict(r) for r in ratings]
    suffix = path.suffix.lower()
    if suffix == ".json":
        text = json.dumps({"format": FORMAT, "version": 1, "ratings": rows}, indent=1)
    elif suffix == ".csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        text = buf.getvalue()
    else:
        raise RatingError(f"save ratings as .json or .csv, got {path.name!r}")
    data = text.encode("utf-8")
    return atomic_write(path, lambda f: f.write(data))


def _row_to_rating(row: Mapping[str, Any], where: str) -> Rating:
    missing = [k for k in FIELDS if k not in row]
    if missing:
        raise RatingError(f"{where}: missing {', '.join(missing)}; a rating needs {FIELDS}")
    try:
        score = int(row["score"])
    except (TypeError, ValueError):
        raise RatingError(f"{where}: score {row['score']!r} is not a whole number") from None
    if score not in SCORES or str(row["score"]).strip() not in {str(s) for s in SCORES}:
        raise RatingError(f"{where}: score must be 1..5, got {row['score']!r}")
    return Rating(*(str(row[k]) for k in FIELDS[:4]), score)


def load_ratings(*paths: str | os.PathLike) -> list[Rating]:
    """Ratings from one or more files written by :func:`save_ratings` (JSON or CSV), joined.

    A teacher loads every student's file at once: ``load_ratings(*Path("mos").glob("*.csv"))``.
    """
    out: list[Rating] = []
    for p in paths:
        path = Path(p)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as err:
            raise RatingError(f"cannot read ratings file {path}: {err.strerror or err}") from err
        if path.suffix.lower() == ".json":
            try:
                data = json.loads(text)
            except json.JSONDecodeError as err:
                raise RatingError(f"{path} is not valid JSON ({err}); re-save it") from err
            if not isinstance(data, dict) or data.get("format") != FORMAT:
                raise RatingError(f"{path} is not a ratings file written by save_ratings")
            rows = data.get("ratings", [])
        elif path.suffix.lower() == ".csv":
            rows = list(csv.DictReader(io.StringIO(text)))
        else:
            raise RatingError(f"ratings files are .json or .csv, got {path.name!r}")
        out += [_row_to_rating(r, f"{path}, row {i + 1}") for i, r in enumerate(rows)]
    return out


# ----------------------------------------------------------------------------------------------
# aggregation: MOS with confidence intervals
# ----------------------------------------------------------------------------------------------


def t_interval(scores: Sequence[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high): Student's t confidence interval for the mean of ``scores``.

    mean +- t_{(1+c)/2, n-1} * s / sqrt(n), with s the sample standard deviation (ddof 1). It
    treats every rating as an independent draw; ratings by one rater are not, so with few raters
    this interval is too narrow (see :func:`bootstrap_over_raters`). NaN bounds for n < 2.
    """
    x = np.asarray(scores, dtype=np.float64)
    if x.size == 0:
        return math.nan, math.nan, math.nan
    mean = float(x.mean())
    if x.size < 2:
        return mean, math.nan, math.nan
    half = (
        float(stats.t.ppf((1.0 + confidence) / 2.0, x.size - 1)) * x.std(ddof=1) / math.sqrt(x.size)
    )
    return mean, mean - half, mean + half


def bootstrap_over_raters(
    ratings: Sequence[Rating],
    method: str,
    confidence: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``method``'s MOS, resampling whole raters.

    Each of ``n_boot`` rounds draws as many raters as there are, with replacement, and takes the
    mean of all their scores for ``method`` (a rater drawn twice counts twice). Resampling raters
    rather than single ratings keeps each rater's habits (a harsh or generous scale) together,
    so the interval reflects how much the MOS would change with another class. NaN with fewer
    than 2 raters.
    """
    raters = sorted({r.rater for r in ratings})
    sums = np.zeros(len(raters))
    counts = np.zeros(len(raters))
    index = {name: i for i, name in enumerate(raters)}
    for r in ratings:
        if r.method == method:
            sums[index[r.rater]] += r.score
            counts[index[r.rater]] += 1
    keep = counts > 0
    sums, counts = sums[keep], counts[keep]
    if sums.size < 2:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, sums.size, size=(n_boot, sums.size))  # (n_boot, raters)
    means = sums[draws].sum(axis=1) / counts[draws].sum(axis=1)  # (n_boot,)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return float(low), float(high)


@dataclass
class MOS:
    """One method's mean opinion score and its 95 % (by default) intervals."""

    method: str
    n: int  # ratings
    raters: int
    mean: float
    std: float  # of the single ratings (ddof 1)
    t_low: float
    t_high: float
    boot_low: float
    boot_high: float


def mos_summary(
    ratings: Sequence[Rating],
    methods: Sequence[str] | None = None,
    confidence: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
) -> dict[str, MOS]:
    """``{method: MOS}`` for ``methods`` (default: every method, sorted by name)."""
    ratings = list(ratings)
    if not ratings:
        raise RatingError("no ratings to summarise: rate some images first, or load the files")
    methods = list(methods) if methods is not None else sorted({r.method for r in ratings})
    out = {}
    for m in methods:
        scores = [r.score for r in ratings if r.method == m]
        mean, lo, hi = t_interval(scores, confidence)
        std = float(np.std(scores, ddof=1)) if len(scores) > 1 else math.nan
        b_lo, b_hi = bootstrap_over_raters(ratings, m, confidence, n_boot, seed)
        raters = len({r.rater for r in ratings if r.method == m})
        out[m] = MOS(m, len(scores), raters, mean, std, lo, hi, b_lo, b_hi)
    return out


def mos_table(summary: Mapping[str, MOS], confidence: float = 0.95) -> str:
    """The summary as a text table: MOS, t-interval, bootstrap interval, counts."""
    pct = f"{confidence * 100:g}%"
    head = ["method", "MOS", f"{pct} t-interval", f"{pct} bootstrap (raters)", "ratings", "raters"]

    def span(lo: float, hi: float) -> str:
        return "-" if math.isnan(lo) else f"[{lo:.2f}, {hi:.2f}]"

    rows = [
        [
            s.method,
            f"{s.mean:.2f}",
            span(s.t_low, s.t_high),
            span(s.boot_low, s.boot_high),
            str(s.n),
            str(s.raters),
        ]
        for s in summary.values()
    ]
    widths = [max(len(r[j]) for r in [head, *rows]) for j in range(len(head))]
    lines = [
        "  ".join(c.ljust(widths[j]) if j == 0 else c.rjust(widths[j]) for j, c in enumerate(r))
        for r in [head, *rows]
    ]
    return "\n".join(lines)


def plot_mos(
    summary: Mapping[str, MOS], title: str | None = None, ax: Axes | None = None
) -> Figure:
    """MOS per method as bars with both intervals as error bars; returns the figure."""
    import matplotlib.pyplot as plt

    if ax is None:
        fig, ax = plt.subplots(figsize=(1.6 + 1.3 * len(summary), 3.2))
    else:
        fig = ax.figure
    names = list(summary)
    x = np.arange(len(names))
    means = np.array([summary[m].mean for m in names])
    ax.bar(x, means, width=0.55, color="#9ecae1", edgecolor="#3182bd", label="MOS")

    def err(lo: str, hi: str) -> np.ndarray:
        low = np.array([getattr(summary[m], lo) for m in names])
        high = np.array([getattr(summary[m], hi) for m in names])
        return np.vstack([means - low, high - means])

    intervals = [
        (-0.08, "t_low", "t_high", "k", "t-interval (ratings)"),
        (0.08, "boot_low", "boot_high", "#e6550d", "bootstrap (raters)"),
    ]
    for shift, lo, hi, color, label in intervals:
        ax.errorbar(
            x + shift, means, yerr=err(lo, hi), fmt="none", ecolor=color, capsize=4, label=label
        )
    ax.set_xticks(x, names)
    ax.set_ylim(0.5, 5.5)
    ax.set_yticks(SCORES, [f"{s} {SCORE_LABELS[s]}" for s in SCORES])
    ax.set_ylabel("mean opinion score")
    ax.legend(fontsize=8, loc="upper left")
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def simulate_ratings(
    study: RatingStudy,
    n_raters: int,
    means: Mapping[str, float],
    rater_sd: float = 0.4,
    noise_sd: float = 0.7,
    seed: int = 0,
) -> list[Rating]:
    """SIMULATED ratings (no person involved): for demonstrating the aggregation only.

    Rater ``k`` gives item (image, method) the score round(means[method] + b_k + e), clipped to
    1..5, with a rater bias b_k ~ N(0, rater_sd) and noise e ~ N(0, noise_sd); raters are named
    ``"simulated-01"`` ... so they cannot be mistaken for real ones.
    """
    missing = [m for m in study.methods if m not in means]
    if missing:
        raise ValueError(f"simulate_ratings needs a mean score for every method; missing {missing}")
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n_raters):
        rater = f"simulated-{k + 1:02d}"
        bias = rng.normal(0.0, rater_sd)
        for item_id in study.order_for(rater):
            it = study.item(item_id)
            score = int(np.clip(np.rint(means[it.method] + bias + rng.normal(0.0, noise_sd)), 1, 5))
            out.append(Rating(rater, item_id, it.image, it.method, score))
    return out


# ----------------------------------------------------------------------------------------------
# the widget
# ----------------------------------------------------------------------------------------------


def rating_widget(
    session: RatingSession, save_to: str | os.PathLike | None = None
) -> ipywidgets.VBox:
    """An ipywidgets panel for ``session``: the picture, scores 1-5, "back" and "next".

    Every button calls a plain function (:func:`submit`, :func:`go_back`); when the last item is
    rated the ratings are saved to ``save_to`` (JSON or CSV) if given. The panel's ``children``
    are ``[text, picture, scores, buttons, status]``; tests drive it with ``button.click()``.
    """
    import ipywidgets as W

    text = W.HTML()
    picture = W.Image(format="png")
    scores = W.ToggleButtons(
        options=[(f"{s} {SCORE_LABELS[s]}", s) for s in SCORES],
        value=None,
        style={"button_width": "88px"},
    )
    back = W.Button(description="back", icon="arrow-left", layout=W.Layout(width="90px"))
    nxt = W.Button(
        description="next",
        icon="arrow-right",
        button_style="primary",
        layout=W.Layout(width="90px"),
    )
    status = W.HTML()

    def show(view: RatingView) -> None:
        text.value = f"<b>{view.text}</b>"
        if view.png is not None:
            picture.value = view.png
            picture.layout.display = None
        else:
            picture.layout.display = "none"
        scores.value = view.score
        scores.disabled = nxt.disabled = view.done
        back.disabled = view.position == 0
        if view.done and save_to is not None:
            path = save_ratings(session.ratings(), save_to)
            status.value = f"{len(session.ratings())} ratings saved to <code>{path}</code>"
        elif not view.done:
            status.value = ""

    nxt.on_click(lambda _: show(submit(session, scores.value)))
    back.on_click(lambda _: show(go_back(session)))
    show(session.view())
    return W.VBox([text, picture, scores, W.HBox([back, nxt]), status])
