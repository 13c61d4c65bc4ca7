"""``release``: the student copy of a folder of lessons (solutions stubbed, hidden tests removed).

Every ``*.ipynb`` in the source folder is written to the output folder under the same name by
:func:`srgan_edu.classroom.notebook.release_notebook`; other files (pictures, data the lessons
read) are copied unchanged. What running the lessons wrote (``runs/``: training runs, rating
CSVs) and hidden folders are not copied: they are the instructor's, not course material.
Running it twice gives the same files, and it refuses to write into the source folder (or a
folder inside or around it), so the instructor's solutions can never be overwritten by their
own student version.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from srgan_edu.classroom.notebook import exercises, release_notebook

__all__ = ["ReleaseError", "ReleaseResult", "release"]


class ReleaseError(ValueError):
    """A release that cannot be made: missing source, output inside the source, bad markers."""


@dataclass
class ReleaseResult:
    """What :func:`release` wrote: notebooks (with their exercise count) and copied files."""

    out: Path
    notebooks: dict[str, int] = field(default_factory=dict)
    copied: list[str] = field(default_factory=list)

    @property
    def n_exercises(self) -> int:
        return sum(self.notebooks.values())


def _inside(a: Path, b: Path) -> bool:
    return a == b or b in a.parents


SKIPPED = ("runs", "__pycache__")
"""Folders never copied: what running the lessons writes (training runs, a class's rating CSVs),
caches, and every hidden folder (``.ipynb_checkpoints``, ``.git``)."""


def _files(source: Path) -> list[Path]:
    def kept(path: Path) -> bool:
        parts = path.relative_to(source).parts
        return not any(part in SKIPPED or part.startswith(".") for part in parts)

    return sorted(p for p in source.rglob("*") if p.is_file() and kept(p))


def release(source: str | os.PathLike, out: str | os.PathLike) -> ReleaseResult:
    """Write the student version of every notebook in ``source`` to ``out``.

    Raises :class:`ReleaseError` if ``source`` is not a folder of notebooks, if ``out`` is the
    source or lies inside it (or contains it), or if a notebook's markers are broken; in that
    case nothing of that notebook is written.
    """
    src, dst = Path(source).expanduser().resolve(), Path(out).expanduser().resolve()
    if not src.is_dir():
        raise ReleaseError(f"source {src} is not a folder; pass the folder of the lessons")
    if _inside(dst, src) or _inside(src, dst):
        raise ReleaseError(
            f"refusing to write the student version to {dst}: it would overwrite or mix with the "
            f"instructor's notebooks in {src}. Choose a separate folder, e.g. --out student/"
        )
    files = _files(src)
    if not any(p.suffix == ".ipynb" for p in files):
        raise ReleaseError(f"no notebooks (.ipynb) in {src}")
    result = ReleaseResult(dst)
    for path in files:
        rel = path.relative_to(src)
        target = dst / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix != ".ipynb":
            shutil.copy2(path, target)
            result.copied.append(str(rel))
            continue
        try:
            nb = nbformat.read(path, as_version=4)
            student = release_notebook(nb, str(rel))
        except (ValueError, json.JSONDecodeError) as err:  # MarkerError, unreadable notebook
            raise ReleaseError(f"{path}: {err}") from err
        nbformat.write(student, target)
        result.notebooks[str(rel)] = len(exercises(student))
    return result
