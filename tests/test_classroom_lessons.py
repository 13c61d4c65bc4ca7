"""The classroom tools on the real lessons: every lesson has exercises, the student release
fails every check with NotImplementedError, and grading gives the instructor's notebooks full
marks and the untouched student notebooks zero (all ten lessons, run in fast mode)."""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import pytest

from srgan_edu.classroom.grade import grade
from srgan_edu.classroom.notebook import (
    BEGIN_HIDDEN,
    BEGIN_SOLUTION,
    exercises,
    is_check,
    is_solution,
)
from srgan_edu.classroom.release import release

ROOT = Path(__file__).resolve().parents[1]
LESSONS = ROOT / "lessons"
NOTEBOOKS = sorted(LESSONS.glob("[0-9][0-9]_*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name[:2] for p in NOTEBOOKS])
def test_every_lesson_has_at_least_two_exercises_in_the_agreed_form(path):
    nb = nbformat.read(path, as_version=4)
    found = exercises(nb)
    assert len(found) >= 2, f"{path.name} has {len(found)} exercises"
    lesson = path.name[:2]
    for k, ex in enumerate(found, start=1):
        assert ex.grade_id == f"ex{lesson}_{k}" and ex.cell_id == f"ex{lesson}-{k}-check"
        assert 1 <= ex.points <= 3
        check = nb.cells[ex.index].source
        assert f"from srgan_edu.exercises import lesson{lesson} as check" in check
        before = nb.cells[ex.index - 1]
        assert is_solution(before) and before.get("id") == f"ex{lesson}-{k}-solution"
        assert BEGIN_SOLUTION in before.source
        task = nb.cells[ex.index - 2]
        assert task.cell_type == "markdown" and f"Exercise {int(lesson):02d}.{k}" in task.source
        assert f"({ex.points:g} point" in task.source  # the points are announced to the student


def test_release_of_the_lessons(tmp_path):
    result = release(LESSONS, tmp_path / "student")
    assert set(result.notebooks) >= {p.name for p in NOTEBOOKS}
    for path in NOTEBOOKS:
        source = nbformat.read(path, as_version=4)
        student = nbformat.read(tmp_path / "student" / path.name, as_version=4)
        assert len(student.cells) == len(source.cells)
        for a, b in zip(source.cells, student.cells, strict=True):
            assert a.get("id") == b.get("id")
            if is_solution(a):
                assert BEGIN_SOLUTION not in b.source and "raise NotImplementedError" in b.source
            elif is_check(a):
                assert BEGIN_HIDDEN not in b.source and b.outputs == []
            else:
                assert a == b  # everything else intact, outputs included


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """Instructor and released student notebooks of all lessons, graded together."""
    tmp = tmp_path_factory.mktemp("classroom")
    release(LESSONS, tmp / "released")
    subs = tmp / "submissions"
    for who, folder in (("instructor", LESSONS), ("student", tmp / "released")):
        (subs / who).mkdir(parents=True)
        for path in NOTEBOOKS:
            shutil.copy(folder / path.name, subs / who / path.name)
    report = grade(subs, LESSONS, tmp / "grades.csv", cell_timeout=300, timeout=900, jobs=2)
    return report


def test_instructor_notebooks_get_full_marks(graded):
    results = [r for r in graded.results if r.student == "instructor"]
    assert len(results) == len(NOTEBOOKS)
    for r in results:
        failed = [(e.title, e.feedback) for e in r.exercises if not e.passed]
        assert not failed and not r.problems, (r.notebook, failed, r.problems)
        assert r.points == r.max_points > 0


def test_student_notebooks_get_zero_with_not_implemented_feedback(graded):
    results = [r for r in graded.results if r.student == "student"]
    assert len(results) == len(NOTEBOOKS)
    for r in results:
        assert r.points == 0 and not r.problems, (r.notebook, r.problems)
        for e in r.exercises:
            assert e.feedback.startswith("not done yet (NotImplementedError"), (r.notebook, e)
    summary = graded.summary.read_text()
    assert "| 05_upsampling.ipynb | Exercise 05.1 | 1/2 |" in summary
