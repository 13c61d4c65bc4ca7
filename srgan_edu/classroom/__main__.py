"""``python -m srgan_edu.classroom release|grade``: the instructor's two commands."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from srgan_edu.classroom.grade import CELL_TIMEOUT, NOTEBOOK_TIMEOUT, grade
from srgan_edu.classroom.release import ReleaseError, release

EXAMPLES = """\
examples:
  python -m srgan_edu.classroom release lessons/ --out student/
  # hand out student/, collect each student's notebooks into submissions/STUDENT/, then
  python -m srgan_edu.classroom grade submissions/ --out grades.csv
  python -m srgan_edu.classroom grade submissions/ --out grades.csv --jobs 4 --executed graded/

grade writes grades.csv (student, notebook, exercise, points, max_points, passed, feedback), one
feedback file per student in grades_feedback/STUDENT.md and the class summary
grades_feedback/summary.md (per exercise: how many passed, the commonest feedback).
"""


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m srgan_edu.classroom`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="python -m srgan_edu.classroom",
        description="Release the student version of the lessons; grade submitted notebooks.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    rel = sub.add_parser("release", help="write student notebooks (solutions stubbed)")
    rel.add_argument("source", help="folder of the instructor's notebooks (lessons/)")
    rel.add_argument("--out", required=True, help="folder for the student version")
    gr = sub.add_parser("grade", help="run and score submitted notebooks")
    gr.add_argument("submissions", help="folder with one subfolder per student")
    gr.add_argument("--out", required=True, help="CSV file for the grades")
    gr.add_argument("--source", default="lessons", help="instructor's notebooks (default lessons)")
    gr.add_argument("--feedback", default=None, help="folder for feedback files")
    gr.add_argument("--cell-timeout", type=float, default=CELL_TIMEOUT, help="seconds per cell")
    gr.add_argument("--timeout", type=float, default=NOTEBOOK_TIMEOUT, help="seconds per notebook")
    gr.add_argument("--jobs", type=int, default=1, help="notebooks graded at once (default 1)")
    gr.add_argument("--executed", default=None, help="folder to keep the executed notebooks")
    gr.add_argument("--full", action="store_true", help="run lessons in full mode, not fast")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Exit 0 on success, 2 on a user error (message on stderr)."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "release":
            r = release(args.source, args.out)
            print(
                f"released {len(r.notebooks)} notebooks with {r.n_exercises} exercises to "
                f"{r.out} ({len(r.copied)} other files copied)"
            )
            return 0
        report = grade(
            args.submissions,
            args.source,
            args.out,
            feedback_dir=args.feedback,
            cell_timeout=args.cell_timeout,
            timeout=args.timeout,
            full=args.full,
            jobs=args.jobs,
            executed_dir=args.executed,
            log=lambda line: print(line, file=sys.stderr, flush=True),
        )
        for student, (points, most) in sorted(report.totals().items()):
            print(f"{student}: {points:g} / {most:g}")
        print(f"grades: {report.csv}; feedback and class summary: {report.summary.parent}")
        return 0
    except (ReleaseError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
