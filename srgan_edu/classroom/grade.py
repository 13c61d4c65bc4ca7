"""``grade``: run each submitted notebook in its own kernel and score its exercise checks.

For every ``submissions/STUDENT/NAME.ipynb`` (any depth below the student's folder) the
instructor's ``NAME.ipynb`` is the reference:

1. the submission is read; a file that is not a notebook scores zero with that reason;
2. every check cell is replaced by the instructor's version (hidden tests included), found by
   cell id, else by nbgrader ``grade_id``; a deleted check cell is put back after the student's
   solution cell, so a deleted check cannot hide a missing answer;
3. the notebook runs top to bottom in a fresh kernel in a temporary folder, errors allowed, each
   cell stopped after ``cell_timeout`` seconds and the whole notebook after ``timeout``; a kernel
   that dies ends the run there. Exercises checked before that keep their result;
4. an exercise earns its points when its check cell ran without an error. The feedback is the
   check's message (what is wrong and how to fix it), or why the cell did not run.

Nothing a submission does stops the run: each notebook's problems are recorded and grading moves
on. Lessons run in fast mode (``SRGAN_EDU_FAST=1``) unless ``full=True``: the checks do not
depend on the lessons' sizes, and a class's worth of notebooks then grades in minutes.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat

from srgan_edu.classroom.notebook import Exercise, exercises, is_check, is_solution

__all__ = [
    "ExerciseResult",
    "GradeReport",
    "NotebookResult",
    "find_submissions",
    "grade",
    "grade_notebook",
]

CELL_TIMEOUT = 120
NOTEBOOK_TIMEOUT = 900
_TIMEOUT_ENAME = "CellTimeout"


@dataclass
class ExerciseResult:
    """One exercise of one submission: points earned and the feedback behind them."""

    grade_id: str
    title: str
    max_points: float
    passed: bool
    feedback: str

    @property
    def points(self) -> float:
        return self.max_points if self.passed else 0.0


@dataclass
class NotebookResult:
    """One submitted notebook: per-exercise results and what went wrong around them."""

    student: str
    notebook: str
    exercises: list[ExerciseResult]
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def points(self) -> float:
        return sum(e.points for e in self.exercises)

    @property
    def max_points(self) -> float:
        return sum(e.max_points for e in self.exercises)


# ----------------------------------------------------------------------------------------------
# putting the instructor's check cells into a submission
# ----------------------------------------------------------------------------------------------


def _solution_ids_before(source: Any, ex: Exercise) -> list[str]:
    """Ids of the solution cells between the previous check cell and ``ex``'s."""
    ids = []
    for cell in reversed(source.cells[: ex.index]):
        if is_check(cell):
            break
        if is_solution(cell) and cell.get("id"):
            ids.append(cell["id"])
    return ids


def _find(cells: Sequence[Any], cell_id: str, grade_id: str | None = None) -> int | None:
    for i, cell in enumerate(cells):
        if cell_id and cell.get("id") == cell_id:
            return i
    if grade_id:
        for i, cell in enumerate(cells):
            if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == grade_id:
                return i
    return None


def restore_checks(submitted: Any, source: Any) -> tuple[Any, dict[str, Any], list[str]]:
    """Put the instructor's check cells (with hidden tests) into ``submitted``, in place.

    Returns the notebook, ``{grade_id: check cell}`` and notes on cells that had to be put back.
    """
    notes, checks = [], {}
    for ex in exercises(source):
        original = source.cells[ex.index]
        cell = nbformat.from_dict(json.loads(json.dumps(original)))  # a deep copy
        cell["outputs"], cell["execution_count"] = [], None
        at = _find(submitted.cells, ex.cell_id, ex.grade_id)
        if at is not None:
            submitted.cells[at] = cell
        else:
            after = None
            for sid in _solution_ids_before(source, ex):
                after = _find(submitted.cells, sid)
                if after is not None:
                    break
            if after is None:  # the solution is gone too: after the previous exercise's check
                previous = [checks[g] for g in checks]
                after = max(submitted.cells.index(c) for c in previous) if previous else -1
            submitted.cells.insert(after + 1, cell)
            notes.append(
                f"{ex.title}: the check cell was deleted; the instructor's copy was put back"
            )
        checks[ex.grade_id] = cell
    return submitted, checks, notes


# ----------------------------------------------------------------------------------------------
# running a notebook
# ----------------------------------------------------------------------------------------------


def _error_of(cell: Any) -> dict[str, Any] | None:
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            return out
    return None


def _describe_error(err: Mapping[str, Any]) -> str:
    ename, evalue = str(err.get("ename", "Error")), str(err.get("evalue", "")).strip()
    if ename == "CheckFailed":
        return evalue
    if ename == "NotImplementedError":
        return f"not done yet (NotImplementedError: {evalue})" if evalue else "not done yet"
    if ename == _TIMEOUT_ENAME:
        return evalue
    return f"{ename}: {evalue}" if evalue else ename


def run_notebook(
    nb: Any,
    workdir: str | os.PathLike,
    *,
    cell_timeout: float = CELL_TIMEOUT,
    timeout: float = NOTEBOOK_TIMEOUT,
    env: Mapping[str, str] | None = None,
) -> tuple[dict[int, str], str | None]:
    """Execute ``nb`` in place in a new kernel started in ``workdir``.

    Returns ``{cell index: why it did not run}`` for the cells never run, and the reason the
    run ended early (``None`` if every cell ran). Errors inside cells are kept as outputs.
    """
    from nbclient import NotebookClient
    from nbclient.exceptions import DeadKernelError

    client = NotebookClient(
        nb,
        timeout=int(cell_timeout),
        allow_errors=True,
        interrupt_on_timeout=True,
        error_on_timeout={
            "ename": _TIMEOUT_ENAME,
            "evalue": f"the cell ran longer than {cell_timeout:g} s and was stopped (an endless "
            "loop? a far too large computation?)",
            "traceback": [],
        },
        kernel_name="python3",
        startup_timeout=120,
        iopub_timeout=5,
        resources={"metadata": {"path": str(workdir)}},
    )
    timed_out: set[int] = set()

    def on_error(cell: Any, cell_index: int, execute_reply: Any) -> None:
        if execute_reply.get("content", {}).get("ename") == _TIMEOUT_ENAME:
            timed_out.add(cell_index)

    client.on_cell_error = on_error
    not_run: dict[int, str] = {}
    ended: str | None = None
    deadline = time.monotonic() + timeout
    code = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    kernel_env = {**os.environ, **(env or {})}
    try:
        with client.setup_kernel(env=kernel_env, cwd=str(workdir)):
            for n, index in enumerate(code):
                left = deadline - time.monotonic()
                if left <= 1:
                    ended = f"the notebook ran longer than {timeout:g} s in all and was stopped"
                    not_run.update((i, ended) for i in code[n:])
                    break
                client.timeout = int(max(1, min(cell_timeout, left)))
                try:
                    client.execute_cell(nb.cells[index], index)
                except DeadKernelError:
                    ended = f"the kernel died while running cell {index} (a crash or exit())"
                    not_run.update((i, ended) for i in code[n:])
                    break
                if index in timed_out:  # the interrupt's KeyboardInterrupt is not the story
                    cell = nb.cells[index]
                    cell.outputs = [o for o in cell.outputs if o.get("output_type") != "error"]
                    cell.outputs.append(
                        nbformat.v4.new_output(
                            "error",
                            ename=_TIMEOUT_ENAME,
                            evalue=f"the cell ran longer than {client.timeout} s and was stopped "
                            "(an endless loop? a far too large computation?)",
                            traceback=[],
                        )
                    )
    except Exception as err:  # the kernel did not start, or died between cells
        ended = ended or f"the kernel failed: {type(err).__name__}: {err}"
        for i in code:
            if not nb.cells[i].get("outputs") and i not in not_run:
                not_run[i] = ended
    return not_run, ended


# ----------------------------------------------------------------------------------------------
# grading
# ----------------------------------------------------------------------------------------------


def _zero(source: Any, reason: str) -> list[ExerciseResult]:
    return [ExerciseResult(e.grade_id, e.title, e.points, False, reason) for e in exercises(source)]


def grade_notebook(
    submitted: str | os.PathLike,
    source: Any,
    *,
    student: str = "",
    cell_timeout: float = CELL_TIMEOUT,
    timeout: float = NOTEBOOK_TIMEOUT,
    full: bool = False,
    executed: str | os.PathLike | None = None,
) -> NotebookResult:
    """Grade one submitted notebook against the instructor's ``source`` notebook (a node).

    ``executed``: where to save the executed submission (for the instructor to look at).
    """
    path = Path(submitted)
    start = time.monotonic()
    result = NotebookResult(student, path.name, [])
    try:
        nb = nbformat.read(path, as_version=4)
        if not isinstance(nb.get("cells"), list):
            raise ValueError("it has no list of cells")
    except Exception as err:  # invalid JSON, not a notebook, unreadable file
        reason = f"the file could not be read as a notebook ({type(err).__name__}: {err})"
        result.exercises = _zero(source, reason.splitlines()[0][:300])
        result.problems.append(reason.splitlines()[0][:300])
        return result
    nb, checks, notes = restore_checks(nb, source)
    result.problems.extend(notes)
    env = {"MPLBACKEND": "Agg", "PYTHONUNBUFFERED": "1"}
    if not full:
        env["SRGAN_EDU_FAST"] = "1"
    with tempfile.TemporaryDirectory(prefix="grade_") as tmp:
        not_run, ended = run_notebook(nb, tmp, cell_timeout=cell_timeout, timeout=timeout, env=env)
    if ended:
        result.problems.append(ended)
    for ex in exercises(source):
        cell = checks[ex.grade_id]
        index = nb.cells.index(cell)
        if index in not_run:
            passed, feedback = False, f"not run: {not_run[index]}"
        else:
            err = _error_of(cell)
            passed = err is None
            feedback = "passed" if passed else _describe_error(err)
            if not passed:
                for sid in _solution_ids_before(source, ex):
                    at = _find(nb.cells, sid)
                    broken = _error_of(nb.cells[at]) if at is not None else None
                    if broken is None:
                        continue
                    why = _describe_error(broken)
                    if broken.get("ename") == "NotImplementedError":
                        feedback = why  # the stub itself ran: nothing written yet
                    else:
                        feedback = f"your solution cell failed ({why}); then: {feedback}"
                    break
        result.exercises.append(ExerciseResult(ex.grade_id, ex.title, ex.points, passed, feedback))
    if executed is not None:
        Path(executed).parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, executed)
    result.seconds = time.monotonic() - start
    return result


def find_submissions(folder: str | os.PathLike) -> list[tuple[str, Path]]:
    """``(student, path)`` for every ``.ipynb`` below ``folder``; the student is the first
    folder under it (``folder/STUDENT/.../NAME.ipynb``), ``"-"`` for files directly in it."""
    root = Path(folder)
    found = []
    for path in sorted(root.rglob("*.ipynb")):
        rel = path.relative_to(root)
        if ".ipynb_checkpoints" in rel.parts:
            continue
        found.append((rel.parts[0] if len(rel.parts) > 1 else "-", path))
    return found


@dataclass
class GradeReport:
    """Every graded notebook, and the files written about them."""

    results: list[NotebookResult]
    csv: Path | None = None
    feedback: list[Path] = field(default_factory=list)
    summary: Path | None = None

    def totals(self) -> dict[str, tuple[float, float]]:
        """``{student: (points, max points)}`` over their notebooks."""
        out: dict[str, tuple[float, float]] = {}
        for r in self.results:
            p, m = out.get(r.student, (0.0, 0.0))
            out[r.student] = (p + r.points, m + r.max_points)
        return out


def _pattern(message: str) -> str:
    """A feedback message with its numbers masked, so the same mistake groups together."""
    return re.sub(r"\d+(\.\d+)?(e[-+]?\d+)?", "#", message)


def summary_markdown(results: Sequence[NotebookResult]) -> str:
    """The class summary: per exercise, how many passed and the commonest failure message."""
    rows: dict[tuple[str, str], list[ExerciseResult]] = {}
    for r in results:
        for e in r.exercises:
            rows.setdefault((r.notebook, e.title), []).append(e)
    lines = [
        "# Class summary",
        "",
        "What to re-teach: the exercises most students failed, and the feedback they got most.",
        "",
        "| notebook | exercise | passed | commonest feedback among failures |",
        "|---|---|---|---|",
    ]
    for (notebook, title), items in rows.items():
        fails = [e.feedback for e in items if not e.passed]
        common = ""
        if fails:
            pattern, count = Counter(_pattern(f) for f in fails).most_common(1)[0]
            example = next(f for f in fails if _pattern(f) == pattern)
            common = f"{count}x: {example}".replace("|", "\\|").replace("\n", " ")
        passed = sum(e.passed for e in items)
        lines.append(f"| {notebook} | {title} | {passed}/{len(items)} | {common} |")
    return "\n".join(lines) + "\n"


def feedback_markdown(student: str, results: Sequence[NotebookResult]) -> str:
    """One student's feedback file: points per notebook and each exercise's message."""
    total = sum(r.points for r in results)
    most = sum(r.max_points for r in results)
    lines = [f"# Feedback for {student}", "", f"Total: {total:g} / {most:g} points", ""]
    for r in results:
        lines += [f"## {r.notebook}: {r.points:g} / {r.max_points:g} points", ""]
        lines += [f"- note: {p}" for p in r.problems]
        for e in r.exercises:
            mark = "passed" if e.passed else "not passed"
            text = "" if e.passed else f": {e.feedback}"
            lines.append(f"- {e.title} ({e.points:g}/{e.max_points:g}, {mark}){text}")
        lines.append("")
    return "\n".join(lines)


def grade(
    submissions: str | os.PathLike,
    source: str | os.PathLike,
    out_csv: str | os.PathLike,
    *,
    feedback_dir: str | os.PathLike | None = None,
    cell_timeout: float = CELL_TIMEOUT,
    timeout: float = NOTEBOOK_TIMEOUT,
    full: bool = False,
    jobs: int = 1,
    executed_dir: str | os.PathLike | None = None,
    log: Any = None,
) -> GradeReport:
    """Grade every submission below ``submissions`` against the notebooks in ``source``.

    Writes ``out_csv`` (one row per student, notebook and exercise), one Markdown feedback file
    per student in ``feedback_dir`` (default: ``<csv name>_feedback/`` beside the CSV) and the
    class summary ``summary.md`` there. ``jobs`` notebooks run at once.
    """
    import csv

    src = Path(source)
    if not src.is_dir():
        raise FileNotFoundError(f"source folder {src} not found: pass the instructor's lessons")
    subs = Path(submissions)
    if not subs.is_dir():
        raise FileNotFoundError(f"submissions folder {subs} not found")
    references: dict[str, Any] = {}
    for path in sorted(src.glob("*.ipynb")):
        references[path.name] = nbformat.read(path, as_version=4)
    work = []
    unmatched = []
    for student, path in find_submissions(subs):
        if path.name in references:
            work.append((student, path))
        else:
            unmatched.append(NotebookResult(student, path.name, [], [
                f"no notebook named {path.name} among the lessons in {src}; not graded"
            ]))  # fmt: skip

    def one(item: tuple[str, Path]) -> NotebookResult:
        student, path = item
        executed = None
        if executed_dir is not None:
            executed = Path(executed_dir) / student / path.name
        r = grade_notebook(
            path,
            references[path.name],
            student=student,
            cell_timeout=cell_timeout,
            timeout=timeout,
            full=full,
            executed=executed,
        )
        if log is not None:
            log(f"{student}/{path.name}: {r.points:g}/{r.max_points:g} points ({r.seconds:.0f} s)")
        return r

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        results = list(pool.map(one, work)) + unmatched

    out = Path(out_csv)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(
            ["student", "notebook", "exercise", "points", "max_points", "passed", "feedback"]
        )
        for r in results:
            for e in r.exercises:
                w.writerow([r.student, r.notebook, e.title, f"{e.points:g}", f"{e.max_points:g}",
                            int(e.passed), e.feedback])  # fmt: skip
            if not r.exercises:
                w.writerow([r.student, r.notebook, "", 0, 0, 0, "; ".join(r.problems)])
    report = GradeReport(results, out)
    fb = Path(feedback_dir) if feedback_dir is not None else out.with_name(f"{out.stem}_feedback")
    fb.mkdir(parents=True, exist_ok=True)
    by_student: dict[str, list[NotebookResult]] = {}
    for r in results:
        by_student.setdefault(r.student, []).append(r)
    for student, rs in sorted(by_student.items()):
        path = fb / f"{student}.md"
        path.write_text(feedback_markdown(student, rs), encoding="utf-8")
        report.feedback.append(path)
    report.summary = fb / "summary.md"
    report.summary.write_text(summary_markdown(results), encoding="utf-8")
    return report
