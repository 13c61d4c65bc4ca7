"""Anomaly detection with a trained 1-D GAN and the KS test: ``python -m toy_gan.anomaly``.

The generator G was trained to turn U(0, 1) noise into N(0, 1) samples. If the noise source feeding
it breaks (its output is no longer uniform), G's outputs stop looking normal. So: push a batch
from the source through G, KS-test the result against N(0, 1), and flag an anomaly when p < alpha.
Over many batches of a healthy source the flag rate is the false-alarm rate (about alpha when G
is good); for a broken source it is the detection power. Introduced in lesson 02.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from scipy import stats

from toy_gan.gan import (
    CheckpointError,
    GANConfig,
    Generator,
    generate,
    load_generator,
    save_generator,
)
from toy_gan.gan import train_gan as _train_gan
from toy_gan.ks import CDF, KSResult, ks_batches, ks_test

# --- input sources -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """A noise source: a name, its parameters, and the law it draws from (values in [0, 1])."""

    name: str
    params: dict[str, float] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """Short human-readable name, e.g. ``beta(1,5)``."""
        if not self.params:
            return self.name
        return f"{self.name}({','.join(f'{v:g}' for v in self.params.values())})"

    @property
    def healthy(self) -> bool:
        """True for normal operation: the uniform source on exactly [0, 1]."""
        return self.name == "uniform" and self.params == {"low": 0.0, "high": 1.0}

    def draw(self, rng: np.random.Generator, shape: int | tuple[int, ...]) -> np.ndarray:
        """Draws of the given shape."""
        p = self.params
        if self.name == "uniform":
            return rng.uniform(p["low"], p["high"], shape)
        if self.name == "beta":
            return rng.beta(p["a"], p["b"], shape)
        if self.name == "triangular":
            return rng.triangular(0.0, p["mode"], 1.0, shape)
        if self.name == "normal":
            return np.clip(rng.normal(p["mean"], p["std"], shape), 0.0, 1.0)
        if self.name == "stuck":
            return np.clip(p["value"] + rng.uniform(-p["jitter"], p["jitter"], shape), 0.0, 1.0)
        raise AssertionError(f"unhandled source {self.name}")


SOURCE_HELP = {
    "uniform": (
        "uniform on [low, high]; U(0,1) is normal operation, a narrower range is drift",
        {"low": 0.0, "high": 1.0},
    ),
    "beta": (
        "beta(a, b): beta(1,5) is the seed's broken source, skewed towards 0",
        {"a": 1.0, "b": 5.0},
    ),
    "triangular": ("triangular on [0, 1] peaked at `mode`", {"mode": 0.5}),
    "normal": (
        "N(mean, std) clipped to [0, 1]: Gaussian noise instead of uniform",
        {"mean": 0.5, "std": 0.15},
    ),
    "stuck": (
        "a stuck sensor: `value` plus uniform jitter of +-`jitter`",
        {"value": 0.5, "jitter": 0.02},
    ),
}
SOURCES = tuple(SOURCE_HELP)


def make_source(name: str, **params: float | None) -> Source:
    """Build a source, filling in default parameters and checking their ranges."""
    if name not in SOURCE_HELP:
        raise ValueError(f"unknown source {name!r}; choose one of {', '.join(SOURCES)}")
    defaults = SOURCE_HELP[name][1]
    unknown = sorted(k for k, v in params.items() if v is not None and k not in defaults)
    if unknown:
        raise ValueError(f"source {name!r} takes {sorted(defaults)}, not {unknown}")
    p = {k: float(params[k]) if params.get(k) is not None else v for k, v in defaults.items()}
    if not all(math.isfinite(v) for v in p.values()):
        raise ValueError(f"source parameters must be finite numbers, got {p}")
    checks = {
        "uniform": (0.0 <= p.get("low", 0) < p.get("high", 1) <= 1.0, "0 <= low < high <= 1"),
        "beta": (p.get("a", 1) > 0 and p.get("b", 1) > 0, "a > 0 and b > 0"),
        "triangular": (0.0 <= p.get("mode", 0.5) <= 1.0, "0 <= mode <= 1"),
        "normal": (p.get("std", 1) > 0, "std > 0"),
        "stuck": (
            0.0 <= p.get("value", 0.5) <= 1.0 and p.get("jitter", 0) >= 0,
            "0 <= value <= 1 and jitter >= 0",
        ),
    }
    ok, rule = checks[name]
    if not ok:
        raise ValueError(f"invalid parameters for source {name!r}: need {rule}, got {p}")
    return Source(name, p)


# --- the detector -------------------------------------------------------------------------------


REFERENCES = ("normal", "generator")


def generator_cdf(generator: Generator, n: int = 200_000, seed: int = 12345) -> CDF:
    """The CDF of G(U) for healthy noise U ~ U(0, 1), estimated from ``n`` draws.

    Testing against this instead of N(0, 1) calibrates the detector: its false-alarm rate is then
    alpha even though G, trained on 1000 observed points, is not exactly N(0, 1).
    """
    x = np.sort(generate(generator, n, seed=seed))
    return lambda v: np.searchsorted(x, v, side="right") / n


class AnomalyDetector:
    """Flags a batch of source outputs as anomalous when KS(G(batch), reference) has p < alpha.

    ``reference="normal"`` tests against N(0, 1), the law G was trained to produce (the seed's
    design); ``"generator"`` against G's own output law on healthy noise (calibrated).
    """

    def __init__(self, generator: Generator, alpha: float = 0.05, reference: str = "normal"):
        if not 0.0 < alpha < 1.0:
            raise ValueError(f"alpha must be in (0, 1), got {alpha}")
        if reference not in REFERENCES:
            raise ValueError(f"reference must be one of {REFERENCES}, got {reference!r}")
        self.generator = generator.eval()
        self.alpha = alpha
        self.reference = reference
        self.cdf: CDF = stats.norm.cdf if reference == "normal" else generator_cdf(generator)

    def transform(self, u: np.ndarray, chunk: int = 1 << 18) -> np.ndarray:
        """G(u) for an array of source outputs of any shape.

        Works through ``chunk`` values at a time, so memory stays bounded however many batches
        are tested (G's hidden layer holds 50 floats per input).
        """
        u = np.asarray(u, dtype=np.float32)
        flat = u.reshape(-1, 1)
        out = np.empty(len(flat), dtype=np.float32)
        with torch.no_grad():
            for start in range(0, len(flat), chunk):
                part = torch.from_numpy(flat[start : start + chunk])
                out[start : start + chunk] = self.generator(part).squeeze(1).numpy()
        return out.reshape(u.shape)

    def test(self, u: np.ndarray) -> KSResult:
        """KS test of one batch: G(u) against the reference law."""
        return ks_test(self.transform(u), self.cdf)

    def flag_rate(self, source: Source, n: int, batches: int, rng: np.random.Generator) -> float:
        """Fraction of ``batches`` batches of size ``n`` from ``source`` that are flagged."""
        _, p = ks_batches(self.transform(source.draw(rng, (batches, n))), self.cdf)
        return float(np.mean(p < self.alpha))


# --- one full run (what the CLI prints) ----------------------------------------------------------


def typical_batch(pvalues: np.ndarray) -> int:
    """Index of the batch with the median p-value: the one a report shows.

    A single batch's verdict is itself random (a healthy source is flagged in alpha of all
    batches); the typical batch shows what the source usually does, the flag rate the rest.
    """
    return int(np.argsort(pvalues, kind="stable")[len(pvalues) // 2])


@dataclass
class SourceResult:
    """One row of the report."""

    source: str
    params: dict[str, float]
    healthy: bool
    n: int
    ks_statistic: float
    p_value: float
    anomaly: bool
    flag_rate: float  # over `batches` batches: false-alarm rate (healthy) or power (broken)


@dataclass
class AnomalyReport:
    """Everything one run measured, ready for a table, JSON or a figure."""

    alpha: float
    sample_size: int
    batches: int
    seed: int
    generator: str  # "trained (N steps, seed S)" or the checkpoint path
    train_seconds: float
    reference: str  # "normal" or "generator": the law the KS test compares with
    results: list[SourceResult]
    samples: dict[str, np.ndarray] = field(repr=False, default_factory=dict)  # G(typical batch)
    pvalues: dict[str, np.ndarray] = field(repr=False, default_factory=dict)  # over all batches

    @property
    def false_alarm_rate(self) -> float | None:
        """Flag rate of the healthy uniform source (None if it was not tested)."""
        healthy = [r.flag_rate for r in self.results if r.healthy]
        return healthy[0] if healthy else None

    @property
    def power(self) -> dict[str, float]:
        """Flag rate of each broken source."""
        return {r.source: r.flag_rate for r in self.results if not r.healthy}

    def to_dict(self) -> dict:
        """Plain values only (what ``--json`` prints)."""
        return {
            "alpha": self.alpha,
            "sample_size": self.sample_size,
            "batches": self.batches,
            "seed": self.seed,
            "generator": self.generator,
            "train_seconds": round(self.train_seconds, 3),
            "reference": self.reference,
            "results": [asdict(r) for r in self.results],
            "false_alarm_rate": self.false_alarm_rate,
            "power": self.power,
        }


def get_generator(
    checkpoint: str | Path | None = None, seed: int = 0, steps: int | None = None
) -> tuple[Generator, str, float]:
    """Load G from ``checkpoint``, or train one with the reliable recipe (a few seconds)."""
    if checkpoint is not None:
        return load_generator(checkpoint), str(checkpoint), 0.0
    config = GANConfig(seed=seed) if steps is None else GANConfig(seed=seed, steps=steps)
    start = time.perf_counter()
    result = _train_gan(config)
    return (
        result.generator,
        f"trained ({config.steps} steps, seed {seed})",
        (time.perf_counter() - start),
    )


def run(
    sources: list[Source] | None = None,
    sample_size: int = 100,
    alpha: float = 0.05,
    batches: int = 1000,
    seed: int = 0,
    checkpoint: str | Path | None = None,
    steps: int | None = None,
    generator: Generator | None = None,
    reference: str = "normal",
) -> AnomalyReport:
    """Test each source on ``batches`` batches of ``sample_size``: the typical (median-p) batch
    gives the row's D, p and verdict; the fraction flagged is the false-alarm rate of a healthy
    source and the detection power for a broken one. Default sources: the healthy uniform and
    the broken beta(1,5)."""
    if sample_size < 1 or batches < 1:
        raise ValueError("sample_size and batches must be positive")
    sources = sources or [make_source("uniform"), make_source("beta", a=1, b=5)]
    if generator is not None:
        label, seconds = "given", 0.0
    else:
        generator, label, seconds = get_generator(checkpoint, seed=seed, steps=steps)
    detector = AnomalyDetector(generator, alpha, reference)
    report = AnomalyReport(alpha, sample_size, batches, seed, label, seconds, reference, [])
    for k, source in enumerate(sources):
        rng = np.random.default_rng([seed, k])
        u = source.draw(rng, (batches, sample_size))  # (batches, n)
        x = detector.transform(u)
        d, p = ks_batches(x, detector.cdf)
        typical = typical_batch(p)
        report.results.append(
            SourceResult(
                source=source.label,
                params=dict(source.params),
                healthy=source.healthy,
                n=sample_size,
                ks_statistic=float(d[typical]),
                p_value=float(p[typical]),
                anomaly=bool(p[typical] < alpha),
                flag_rate=float(np.mean(p < alpha)),
            )
        )
        report.samples[source.label] = x[typical]
        report.pvalues[source.label] = p
    return report


def format_report(report: AnomalyReport) -> str:
    """The table the CLI prints."""
    lines = [
        f"Generator: {report.generator}"
        + (f" in {report.train_seconds:.1f} s" if report.train_seconds else ""),
        "KS test of G(source) against "
        + ("N(0,1)" if report.reference == "normal" else "G's output on healthy noise")
        + f", alpha = {report.alpha:g}",
        "",
        "Typical batch (median p-value) of each source, and the fraction of all batches flagged:",
        f"{'source':<18}{'n':>7}{'KS D':>9}{'p-value':>11}  {'verdict':<9}"
        f"{'flagged in ' + str(report.batches) + ' batches':>26}",
    ]
    for r in report.results:
        verdict = "ANOMALY" if r.anomaly else "normal"
        lines.append(
            f"{r.source:<18}{r.n:>7}{r.ks_statistic:>9.3f}{r.p_value:>11.3g}  {verdict:<9}"
            f"{r.flag_rate:>26.3f}"
        )
    lines.append("")
    if report.false_alarm_rate is not None:
        lines.append(
            f"False-alarm rate (healthy uniform, n={report.sample_size}): "
            f"{report.false_alarm_rate:.3f}  (alpha = {report.alpha:g})"
        )
    for name, power in report.power.items():
        lines.append(f"Detection power ({name}, n={report.sample_size}): {power:.3f}")
    return "\n".join(lines)


# --- command line --------------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad argument on one line instead of usage + error."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _alpha(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1), got {text!r}") from None
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"alpha must be strictly between 0 and 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    sources = "\n".join(
        f"  {name:<11}{text} (defaults: "
        + ", ".join(f"--{k} {v:g}" for k, v in params.items())
        + ")"
        for name, (text, params) in SOURCE_HELP.items()
    )
    parser = _Parser(
        prog="python -m toy_gan.anomaly",
        description=(
            "Detect a broken noise source with a 1-D GAN. The generator G maps U(0,1) noise to "
            "N(0,1); a batch from the source is pushed through G and KS-tested against N(0,1); "
            "p < alpha flags an anomaly. With no arguments: trains G (seconds), tests the healthy "
            "uniform source and the broken beta(1,5), and reports the false-alarm rate and the "
            "detection power over many batches."
        ),
        epilog=f"sources:\n{sources}\n\n"
        "example: python -m toy_gan.anomaly --source beta --a 2 --b 2",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--source",
        choices=SOURCES,
        default=None,
        help="the source to test besides the healthy uniform (default: beta(1,5))",
    )
    for name, default in (
        ("low", None),
        ("high", None),
        ("a", None),
        ("b", None),
        ("mode", None),
        ("mean", None),
        ("std", None),
        ("value", None),
        ("jitter", None),
    ):
        parser.add_argument(
            f"--{name}", type=float, default=default, metavar="X", help=argparse.SUPPRESS
        )
    parser.add_argument(
        "--sample-size",
        "-n",
        type=_positive_int,
        default=100,
        help="samples per KS test (default: 100, the seed's size)",
    )
    parser.add_argument(
        "--alpha",
        type=_alpha,
        default=0.05,
        help="significance level: flag when p < alpha (default: 0.05)",
    )
    parser.add_argument(
        "--batches",
        type=_positive_int,
        default=1000,
        help="batches for the false-alarm rate and power (default: 1000)",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument(
        "--steps",
        type=_positive_int,
        default=None,
        help="training steps when no checkpoint is given (default: 1500)",
    )
    parser.add_argument(
        "--reference",
        choices=REFERENCES,
        default="normal",
        help="test G's output against N(0,1) (default) or against G's own "
        "output on healthy noise ('generator': calibrated false-alarm rate)",
    )
    parser.add_argument(
        "--checkpoint", metavar="PATH", help="load a trained generator instead of training one"
    )
    parser.add_argument(
        "--save-checkpoint",
        metavar="PATH",
        help="save the generator used (to reuse it with --checkpoint)",
    )
    parser.add_argument(
        "--plot",
        metavar="PATH",
        default="anomaly_report.png",
        help="where to write the figure (default: anomaly_report.png; 'none' to skip)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object instead of the table"
    )
    return parser


PARAM_NAMES = ("low", "high", "a", "b", "mode", "mean", "std", "value", "jitter")


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m toy_gan.anomaly``; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    given = {k: getattr(args, k) for k in PARAM_NAMES if getattr(args, k) is not None}
    name = args.source or ("beta" if not given else None)
    if name is None:
        parser.error(f"--{next(iter(given))} needs --source")
    extra = sorted(set(given) - set(SOURCE_HELP[name][1]))
    if extra:
        takes = " ".join(f"--{k}" for k in SOURCE_HELP[name][1])
        parser.error(f"source {name!r} takes {takes}, not " + " ".join(f"--{k}" for k in extra))
    try:
        tested = make_source(name, **given)
    except ValueError as err:
        parser.error(str(err))
    sources = [make_source("uniform")]
    if not tested.healthy:
        sources.append(tested)

    try:
        generator, label, seconds = get_generator(args.checkpoint, args.seed, args.steps)
        if args.save_checkpoint:
            save_generator(generator, args.save_checkpoint)
    except CheckpointError as err:
        print(f"{parser.prog}: error: {err}", file=sys.stderr)
        return 1
    except OSError as err:
        print(f"{parser.prog}: error: cannot save the checkpoint: {err}", file=sys.stderr)
        return 1
    report = run(
        sources,
        args.sample_size,
        args.alpha,
        args.batches,
        args.seed,
        generator=generator,
        reference=args.reference,
    )
    report.generator, report.train_seconds = label, seconds
    if args.plot and args.plot.lower() != "none":
        from toy_gan.plots import anomaly_figure

        try:
            anomaly_figure(report, path=args.plot)
        except OSError as err:
            print(
                f"{parser.prog}: error: cannot write the plot {args.plot}: {err}", file=sys.stderr
            )
            return 1
    if args.json:
        out = report.to_dict()
        out["plot"] = None if not args.plot or args.plot.lower() == "none" else args.plot
        print(json.dumps(out, indent=2))
    else:
        print(format_report(report))
        if args.plot and args.plot.lower() != "none":
            print(f"Figure: {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
