"""Exercise cells in a notebook, and the student version of it (``release``).

The markers are nbgrader's, so the same lessons work with nbgrader too:

* a **solution** cell has ``nbgrader.solution: true`` in its metadata and its answer between
  ``### BEGIN SOLUTION`` and ``### END SOLUTION``;
* a **check** cell has ``nbgrader.grade: true``, its ``points`` and ``grade_id``, and may hold
  instructor-only cases between ``### BEGIN HIDDEN TESTS`` and ``### END HIDDEN TESTS``.

:func:`release` replaces each solution region by a stub that raises ``NotImplementedError``
(keeping the ``def`` line and docstring above it), removes hidden tests, and clears the outputs
of exercise cells; every other cell is left as it is. Cells keep their ids, which is how the
grader finds the instructor's version of a check cell in a submission.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Any

__all__ = [
    "BEGIN_HIDDEN",
    "BEGIN_SOLUTION",
    "END_HIDDEN",
    "END_SOLUTION",
    "Exercise",
    "MarkerError",
    "exercises",
    "release_notebook",
    "strip_hidden",
    "stub_solutions",
]

BEGIN_SOLUTION = "### BEGIN SOLUTION"
END_SOLUTION = "### END SOLUTION"
BEGIN_HIDDEN = "### BEGIN HIDDEN TESTS"
END_HIDDEN = "### END HIDDEN TESTS"
STUB = 'raise NotImplementedError("{what}: replace this line with your solution")'


class MarkerError(ValueError):
    """Unbalanced or nested BEGIN/END markers in a cell (the notebook cannot be released)."""


@dataclass(frozen=True)
class Exercise:
    """One graded check cell: its ``grade_id``, points, cell id and place in the notebook."""

    grade_id: str
    points: float
    cell_id: str
    index: int
    title: str  # "Exercise 05.1" from the grade_id exNN_K, else the grade_id


def _source(cell: Any) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else str(src)


def _nbgrader(cell: Any) -> dict[str, Any]:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return meta if isinstance(meta, dict) else {}


def is_solution(cell: Any) -> bool:
    """A cell the student writes (nbgrader ``solution`` flag, or a BEGIN SOLUTION marker)."""
    return bool(_nbgrader(cell).get("solution")) or BEGIN_SOLUTION in _source(cell)


def is_check(cell: Any) -> bool:
    """A graded check cell (nbgrader ``grade`` flag on a code cell)."""
    return cell.get("cell_type") == "code" and bool(_nbgrader(cell).get("grade"))


def title_of(grade_id: str) -> str:
    """``ex05_1`` -> ``Exercise 05.1``; any other grade_id is its own title."""
    m = re.fullmatch(r"ex(\d+)_(\d+)", grade_id)
    return f"Exercise {m[1]}.{m[2]}" if m else grade_id


def exercises(nb: Any) -> list[Exercise]:
    """The graded check cells of ``nb`` in order (grade_id, points, cell id, index)."""
    found = []
    for i, cell in enumerate(nb.get("cells", [])):
        if is_check(cell):
            meta = _nbgrader(cell)
            gid = str(meta.get("grade_id") or cell.get("id") or f"cell{i}")
            found.append(
                Exercise(
                    gid, float(meta.get("points", 0)), str(cell.get("id", "")), i, title_of(gid)
                )
            )
    return found


def _regions(lines: list[str], begin: str, end: str, where: str) -> list[tuple[int, int]]:
    """(begin line, end line) index pairs of the marker regions; refuses broken nesting."""
    out, start = [], None
    for i, line in enumerate(lines):
        text = line.strip()
        if text == begin:
            if start is not None:
                raise MarkerError(f"{where}: '{begin}' at line {i + 1} inside another one")
            start = i
        elif text == end:
            if start is None:
                raise MarkerError(f"{where}: '{end}' at line {i + 1} without '{begin}'")
            out.append((start, i))
            start = None
    if start is not None:
        raise MarkerError(f"{where}: '{begin}' at line {start + 1} is never closed by '{end}'")
    return out


def stub_solutions(source: str, what: str = "this exercise", where: str = "cell") -> str:
    """``source`` with each solution region replaced by a ``NotImplementedError`` stub."""
    lines = source.splitlines()
    regions = _regions(lines, BEGIN_SOLUTION, END_SOLUTION, where)
    for start, stop in reversed(regions):
        indent = lines[start][: len(lines[start]) - len(lines[start].lstrip())]
        lines[start : stop + 1] = [f"{indent}# YOUR CODE HERE", indent + STUB.format(what=what)]
    return "\n".join(lines)


def strip_hidden(source: str, where: str = "cell") -> str:
    """``source`` without its hidden-test regions (markers included); trailing blank lines go."""
    lines = source.splitlines()
    for start, stop in reversed(_regions(lines, BEGIN_HIDDEN, END_HIDDEN, where)):
        del lines[start : stop + 1]
    return "\n".join(lines).rstrip("\n")


def _title_for_solution(nb: Any, index: int) -> str:
    """The exercise a solution cell belongs to: the next check cell's title."""
    for cell in nb["cells"][index + 1 :]:
        if is_check(cell):
            return title_of(str(_nbgrader(cell).get("grade_id", "this exercise")))
    return "this exercise"


def release_notebook(nb: Any, name: str = "notebook") -> Any:
    """The student version of ``nb`` (a new object; ``nb`` is not changed).

    Solutions become stubs, hidden tests go, exercise cells lose their outputs and execution
    counts. Releasing a released notebook changes nothing (no markers are left to act on).
    """
    out = copy.deepcopy(nb)
    for i, cell in enumerate(out["cells"]):
        if cell.get("cell_type") != "code":
            continue
        where = f"{name}, cell {i} (id {cell.get('id', '?')})"
        src = _source(cell)
        changed = False
        if BEGIN_SOLUTION in src:
            src = stub_solutions(src, _title_for_solution(out, i), where)
            changed = True
        if BEGIN_HIDDEN in src:
            src = strip_hidden(src, where)
            changed = True
        if changed or is_solution(cell) or is_check(cell):
            cell["source"] = src
            cell["outputs"] = []
            cell["execution_count"] = None
    return out
