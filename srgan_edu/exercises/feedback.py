"""What every exercise check shares: the failure type, tensor and number comparisons, the pass line.

Checks talk to a student, not to a test runner: a failure says *what* differs and, where the
mistake is a common one, *which* mistake it looks like ("channels are interleaved in the wrong
order", "you averaged over the wrong axis"). Numeric comparisons report the relative error
``max|got - want| / max|want|`` against the tolerance, so a student sees how far off they are.
Introduced with the exercises of lesson 01.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch

__all__ = [
    "CheckFailed",
    "as_tensor",
    "call",
    "expect",
    "expect_close",
    "expect_shape",
    "forbidden",
    "named_mistake",
    "one_thread",
    "passed",
    "reject_named_mistake",
    "result",
    "single_threaded",
    "relative_error",
]


class CheckFailed(AssertionError):
    """An exercise check's verdict: what is wrong, in words a student can act on.

    A subclass of ``AssertionError``, so nbgrader and pytest count it as a failed test too.
    """


def expect(condition: bool, message: str) -> None:
    """Raise :class:`CheckFailed` with ``message`` unless ``condition`` holds."""
    if not condition:
        raise CheckFailed(message)


def call(fn: Callable[..., Any], *args: Any, what: str, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)``, turning a crash into feedback that names the exercise's function.

    ``NotImplementedError`` passes through unchanged: it means the exercise is not done yet,
    and the released notebooks' stubs raise it on purpose.
    """
    if not callable(fn):
        raise CheckFailed(f"{what} should be a function, got a {type(fn).__name__}")
    try:
        return fn(*args, **kwargs)
    except NotImplementedError:
        raise
    except CheckFailed:
        raise
    except Exception as err:  # the student's code crashed: say where, keep the cause attached
        raise CheckFailed(f"{what} raised {type(err).__name__}: {err}".rstrip(": ")) from err


def result(value: Any, what: str) -> torch.Tensor:
    """The student's return value as a float64 tensor; ``None`` means a forgotten ``return``."""
    expect(value is not None, f"{what} returned None: did you forget the return statement?")
    return as_tensor(value, what)


def as_tensor(value: Any, what: str) -> torch.Tensor:
    """A student's result as a float64 tensor (tensors, arrays, lists and numbers accepted)."""
    if isinstance(value, torch.Tensor):
        return value.detach().to(torch.float64).cpu()
    if isinstance(value, (np.ndarray, list, tuple, int, float, np.floating, np.integer)):
        try:
            return torch.as_tensor(np.asarray(value, dtype=np.float64))
        except (TypeError, ValueError):
            pass
    raise CheckFailed(f"{what} should be a tensor (or array / number), got {type(value).__name__}")


def expect_shape(value: torch.Tensor, shape: Sequence[int], what: str) -> None:
    """Refuse a result of the wrong shape, showing both shapes."""
    if tuple(value.shape) != tuple(shape):
        raise CheckFailed(f"{what} has shape {tuple(value.shape)}, expected {tuple(shape)}")


def relative_error(got: torch.Tensor, want: torch.Tensor) -> float:
    """``max|got - want| / max|want|`` (the absolute error when ``want`` is all zeros)."""
    got, want = got.to(torch.float64), want.to(torch.float64)
    scale = float(want.abs().max()) if want.numel() else 0.0
    err = float((got - want).abs().max()) if want.numel() else 0.0
    return err / scale if scale > 0 else err


def expect_close(
    got: Any,
    want: Any,
    what: str,
    rtol: float = 1e-5,
    hint: str | None = None,
) -> None:
    """Refuse ``got`` unless it matches ``want`` in shape and within relative error ``rtol``.

    The message gives the relative error, the tolerance, the first differing entry, and
    ``hint`` (what the mismatch usually means) when given.
    """
    g, w = as_tensor(got, what), as_tensor(want, "the reference")
    expect_shape(g, w.shape, what)
    if not bool(torch.isfinite(g).all()):
        raise CheckFailed(f"{what} contains NaN or inf values")
    err = relative_error(g, w)
    if err > rtol or math.isnan(err):
        where = ""
        if g.numel() > 1:
            index = tuple(int(i) for i in np.unravel_index(int((g - w).abs().argmax()), g.shape))
            where = (
                f"; the largest difference is at index {index}: {float(g[index]):.6g} vs "
                f"{float(w[index]):.6g}"
            )
        elif g.numel() == 1:
            where = f": got {float(g.reshape(())):.6g}, expected {float(w.reshape(())):.6g}"
        text = f"{what} is off by a relative error of {err:.2e} (allowed {rtol:.0e}){where}"
        raise CheckFailed(f"{text}. {hint}" if hint else text)


def named_mistake(
    got: torch.Tensor, want: torch.Tensor, mistakes: Mapping[str, Any], rtol: float
) -> str | None:
    """The message of the first typical wrong answer in ``mistakes`` (``{message: what that
    mistake computes}``) that ``got`` reproduces within ``rtol``, else None.

    A mistake that happens to give the right answer on this case names nothing, so a correct
    answer is never blamed for it.
    """
    for message, wrong in mistakes.items():
        wrong = as_tensor(wrong, "a wrong answer")
        if wrong.shape != got.shape or (
            wrong.shape == want.shape and relative_error(wrong, want) <= rtol
        ):
            continue
        if relative_error(got, wrong) <= rtol:
            return message
    return None


def reject_named_mistake(
    got: torch.Tensor, want: torch.Tensor, mistakes: Mapping[str, Any], rtol: float
) -> None:
    """Raise :class:`CheckFailed` with the message of the typical mistake ``got`` reproduces
    (:func:`named_mistake`), if any."""
    mistake = named_mistake(got, want, mistakes, rtol)
    if mistake:
        raise CheckFailed(mistake)


def passed(name: str, cases: int, hidden: bool = False) -> None:
    """Print the one line a passing check shows (deterministic, so nbval can compare it)."""
    extra = " (with the hidden cases)" if hidden else ""
    print(f"✓ {name}: {cases} check(s) passed{extra}")


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run on one CPU thread, then restore the count: checks use tiny tensors, and on a busy
    machine extra threads only wait for each other (seconds instead of milliseconds)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def single_threaded(check: Callable[..., None]) -> Callable[..., None]:
    """Decorator: the whole check runs under :func:`one_thread`."""

    @functools.wraps(check)
    def run(*args: Any, **kwargs: Any) -> None:
        with one_thread():
            return check(*args, **kwargs)

    return run


@contextlib.contextmanager
def forbidden(targets: Sequence[tuple[Any, str]], exercise: str, what: str) -> Iterator[None]:
    """While the student's code runs, each ``module.name`` in ``targets`` refuses to work: it
    would do the whole exercise (``what`` names it in the feedback). Names a lesson imported
    from those modules refuse too, as long as they are looked up through the module."""
    originals = [(module, name, getattr(module, name)) for module, name in targets]

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise CheckFailed(
            f"{exercise} calls {what}, which does the whole exercise; write it yourself"
        )

    for module, name, _ in originals:
        setattr(module, name, refuse)
    try:
        yield
    finally:
        for module, name, original in originals:
            setattr(module, name, original)
