"""Classical ways to sample a distribution, to compare with the GAN (lesson 02).

Each sampler turns uniform random numbers into draws from a target, like the GAN's generator
does, but with a rule derived from the target's density or CDF instead of a learned one:

- inverse transform: x = F^{-1}(u) is exact when the quantile function F^{-1} is known;
- accept-reject: propose from g, accept with probability f(x) / (M g(x)); exact, wastes 1 - 1/M;
- Metropolis-Hastings: a Markov chain whose stationary law is f; needs only f up to a constant,
  but its draws are correlated (hence burn-in and thinning).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import special

SQRT_2PI = float(np.sqrt(2.0 * np.pi))
LAPLACE_BOUND = float(np.sqrt(2.0 * np.e / np.pi))
"""M = sup_x N(x; 0, 1) / Laplace(x; 0, 1) = sqrt(2e / pi) ~ 1.3155, reached at |x| = 1."""


@dataclass
class Samples:
    """Draws from a sampler and how efficiently they were made."""

    x: np.ndarray
    acceptance_rate: float = 1.0  # fraction of proposals accepted (1 for inverse transform)


def _rng(seed: int | np.random.Generator | None) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def normal_pdf(x: np.ndarray) -> np.ndarray:
    """Density of N(0, 1)."""
    return np.exp(-0.5 * np.square(x)) / SQRT_2PI


def normal_logpdf(x: np.ndarray) -> np.ndarray:
    """log N(x; 0, 1), the target MH needs (constants may be dropped; kept here for clarity)."""
    return -0.5 * np.square(x) - np.log(SQRT_2PI)


def inverse_transform(
    n: int,
    ppf: Callable[[np.ndarray], np.ndarray] = special.ndtri,
    seed: int | np.random.Generator | None = None,
) -> Samples:
    """x = F^{-1}(u) with u ~ U(0, 1): exact draws from the law whose quantile function is ``ppf``.

    The default ``ppf`` is Phi^{-1}, the N(0, 1) quantile function, the map the GAN's generator
    has to learn.
    """
    u = _rng(seed).random(n)
    return Samples(np.asarray(ppf(u), dtype=np.float64))


def accept_reject(
    n: int,
    target_pdf: Callable[[np.ndarray], np.ndarray] = normal_pdf,
    proposal: str = "laplace",
    bound: float | None = None,
    seed: int | np.random.Generator | None = None,
) -> Samples:
    """Accept-reject (von Neumann 1951): keep a proposal x ~ g when u * M * g(x) <= f(x).

    Needs f(x) <= M g(x) everywhere; the accepted draws then follow f exactly and a proposal is
    kept with probability 1/M. Proposals: ``"laplace"`` (double exponential, the classic envelope
    for N(0, 1) with M = sqrt(2e/pi)) or ``"cauchy"`` (M = sqrt(2 pi / e) ~ 1.52 for N(0, 1)).
    """
    rng = _rng(seed)
    if proposal == "laplace":
        sample_g = lambda size: rng.laplace(0.0, 1.0, size)  # noqa: E731
        pdf_g = lambda x: 0.5 * np.exp(-np.abs(x))  # noqa: E731
        bound = LAPLACE_BOUND if bound is None else bound
    elif proposal == "cauchy":
        sample_g = lambda size: rng.standard_cauchy(size)  # noqa: E731
        pdf_g = lambda x: 1.0 / (np.pi * (1.0 + np.square(x)))  # noqa: E731
        bound = float(np.sqrt(2.0 * np.pi / np.e)) if bound is None else bound
    else:
        raise ValueError(f"proposal must be 'laplace' or 'cauchy', got {proposal!r}")
    kept: list[np.ndarray] = []
    proposed = accepted = 0
    while accepted < n:
        size = max(64, int(1.2 * bound * (n - accepted)))  # enough for one round, on average
        x = sample_g(size)
        u = rng.random(size)
        ok = u * bound * pdf_g(x) <= target_pdf(x)
        proposed += size
        accepted += int(ok.sum())
        kept.append(x[ok])
    x = np.concatenate(kept)[:n]
    # accepted / proposed over all rounds: an unbiased estimate of 1/M.
    return Samples(x, acceptance_rate=accepted / proposed)


def metropolis_hastings(
    n: int,
    log_target: Callable[[np.ndarray], np.ndarray] = normal_logpdf,
    step: float = 2.4,
    x0: float = 0.0,
    burn_in: int = 1000,
    thin: int = 10,
    seed: int | np.random.Generator | None = None,
) -> Samples:
    """Random-walk Metropolis-Hastings: propose x' = x + step * N(0, 1), accept with
    probability min(1, f(x') / f(x)) (the proposal is symmetric, so its densities cancel).

    The chain's draws are correlated: the first ``burn_in`` are dropped and only every ``thin``-th
    is kept. A step of about 2.4 standard deviations is the classic near-optimal choice for a
    one-dimensional Gaussian target (Gelman, Roberts & Gilks 1996).
    """
    if step <= 0:
        raise ValueError(f"step must be positive, got {step}")
    rng = _rng(seed)
    total = burn_in + n * thin
    noise = rng.standard_normal(total) * step
    log_u = np.log(rng.random(total))
    chain = np.empty(total)
    x, log_fx = float(x0), float(log_target(np.asarray(x0)))
    accepted = 0
    for i in range(total):
        proposal = x + noise[i]
        log_fp = float(log_target(np.asarray(proposal)))
        if log_u[i] <= log_fp - log_fx:
            x, log_fx = proposal, log_fp
            accepted += 1
        chain[i] = x
    return Samples(chain[burn_in::thin][:n], acceptance_rate=accepted / total)
