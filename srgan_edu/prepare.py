"""Decode the CelebA train images once into a uint8 array: ``python -m srgan_edu.prepare``.

Pillow decodes a few hundred 178x218 faces a second per CPU core (``bench/input_pipeline.py``
measures it), far fewer than a GPU trains on, so this one-time step decodes CelebA's 162,770
train JPEGs into a NumPy ``.npy`` array that training reads instead (``--prepared DIR``): from a
memory map, or held whole in GPU memory and indexed there. Used from lesson 08 on (training SRGAN
on CelebA). What a prepared folder holds::

    images.npy   (N, H, W, 3) uint8: row i is training image i (np.load(..., mmap_mode="r"))
    index.json   source folder, split and holdout, file names, shape, library version, and
                 ``done``: how many rows are written

The images are exactly the ones training takes from the same ``--data`` and ``--val-holdout``
(:func:`srgan_edu.data.celeba_training_split`), in the same order, as the same uint8 values.

Layout (N, H, W, 3): the order in which a JPEG decodes, so rows are written without a transpose;
one image is one contiguous block of the file (a batch read touches B blocks); the device's
random crop (:func:`srgan_edu.data.random_crop_flip`) gathers pixels in (B, H, W, C) order
anyway; and ``arr[i]`` shows with any image viewer. The loop views a batch as (B, 3, H, W).

Resumable: rows are decoded and written in chunks (by worker processes); after each chunk the
array file is synced to disk and then ``done`` is replaced atomically in ``index.json``, so Ctrl-C,
a kill or a crash loses at most the chunks in flight, and the same command continues from
``done``. Running it on a finished folder does nothing; a folder prepared from other images is
refused. Unreadable images are treated as training treats them (``on_error="skip"``): the row of
a bad image holds the next readable one, which is what the JPEG loader hands the loop for that
index, and ``index.json`` lists the skipped files.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import multiprocessing
import os
import shutil
import signal
import sys
import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from srgan_edu import __version__
from srgan_edu.checkpoint import atomic_write
from srgan_edu.data import CELEBA_LAYOUTS, CelebA, DatasetError, celeba_training_split

__all__ = [
    "ARRAY_FILE",
    "INDEX_FILE",
    "PrepareError",
    "PrepareResult",
    "PreparedImages",
    "main",
    "prepare",
    "read_index",
]

ARRAY_FILE = "images.npy"
INDEX_FILE = "index.json"
FORMAT = "srgan_edu.prepared"
FORMAT_VERSION = 1
DEFAULT_HOLDOUT = 500
"""The training config's default ``val_holdout`` (only copies without a val split use it)."""
DEFAULT_CHUNK = 1024
"""Images per chunk: progress is saved after each; smaller for small sets (4 chunks a worker)."""


class PrepareError(DatasetError):
    """A prepared folder that does not fit the request (other data, unfinished, damaged)."""


def _command(source: Any, out: Any, holdout: int) -> str:
    return f"python -m srgan_edu.prepare {source} --out {out} --holdout {holdout}"


# ----------------------------------------------------------------------------- the index


def read_index(folder: str | os.PathLike) -> dict[str, Any]:
    """The ``index.json`` of a prepared folder; :class:`PrepareError` if there is none."""
    folder = Path(folder).expanduser()
    path = folder / INDEX_FILE
    if not folder.is_dir():
        raise PrepareError(
            f"prepared folder not found: {folder}. Make it with python -m srgan_edu.prepare "
            f"CELEBA_ROOT --out {folder}"
        )
    if not path.is_file():
        raise PrepareError(
            f"{folder} holds no {INDEX_FILE}, so it is not a folder made by python -m "
            f"srgan_edu.prepare: pass that folder, or prepare one with python -m "
            f"srgan_edu.prepare CELEBA_ROOT --out {folder}"
        )
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise PrepareError(
            f"cannot read {path} ({err}): delete {folder} and prepare again"
        ) from err
    if not isinstance(index, dict) or index.get("format") != FORMAT:
        raise PrepareError(f"{path} is not a {FORMAT} index: delete {folder} and prepare again")
    if index.get("format_version") != FORMAT_VERSION:
        raise PrepareError(
            f"{folder} was prepared in format {index.get('format_version')} but this library "
            f"(srgan-edu {__version__}) reads format {FORMAT_VERSION}: prepare it again"
        )
    return index


def _write_index(folder: Path, index: dict[str, Any]) -> None:
    text = json.dumps(index, indent=1) + "\n"
    atomic_write(folder / INDEX_FILE, lambda f: f.write(text.encode()))


def _summary(index: dict[str, Any]) -> str:
    n, h, w, _ = index["shape"]
    k = index["train_holdout"]
    held = f"the last {k} train images held out: --val-holdout {k}" if k else "it has a val split"
    return f"{n:,} train images of {h}x{w} (HxW) from {index['source']} ({held})"


# ----------------------------------------------------------------------------- decoding rows


class _RowWriter:
    """Decodes training images ``lo..hi-1`` and writes them as rows ``lo..hi-1`` of the file."""

    def __init__(self, images: CelebA, path: Path, offset: int, shape: tuple[int, ...]) -> None:
        self.images, self.path, self.offset, self.shape = images, path, offset, shape

    def __call__(self, span: tuple[int, int]) -> tuple[int, int, dict[str, str]]:
        lo, hi = span
        before = set(self.images.skipped)
        rows = np.empty((hi - lo, *self.shape[1:]), dtype=np.uint8)  # (n, H, W, 3)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # skips are reported once, by the main process
            for j, i in enumerate(range(lo, hi)):
                image = self.images[i]  # (3, H, W) uint8, exactly what the JPEG loader gives
                if tuple(image.shape[1:]) != self.shape[1:3]:
                    h, w = self.shape[1:3]
                    raise PrepareError(
                        f"image {self.images._where(i)} is {image.shape[1]}x{image.shape[2]} "
                        f"(HxW) but the others are {h}x{w}; CelebA's aligned faces all share "
                        "one size: replace the file with a good copy, or delete it"
                    )
                rows[j] = image.permute(1, 2, 0).numpy()  # (H, W, 3)
        with open(self.path, "r+b") as f:
            f.seek(self.offset + lo * rows[0].nbytes)
            f.write(memoryview(rows).cast("B"))
        new = {k: v for k, v in self.images.skipped.items() if k not in before}
        return lo, hi, new


_WORKER: _RowWriter | None = None


def _start_worker(writer: _RowWriter) -> None:
    """Pool initializer: Ctrl-C goes to the main process only (it stops the pool and saves)."""
    global _WORKER
    _WORKER = writer
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # pool.terminate() ends workers quietly
    torch.set_num_threads(1)  # one image at a time per process; the processes are the parallelism


def _work(span: tuple[int, int]) -> tuple[int, int, dict[str, str]]:
    assert _WORKER is not None
    return _WORKER(span)


def _spans(start: int, end: int, chunk: int) -> list[tuple[int, int]]:
    return [(lo, min(lo + chunk, end)) for lo in range(start, end, chunk)]


def _decoded_chunks(
    writer: _RowWriter, spans: list[tuple[int, int]], workers: int
) -> Iterator[tuple[int, int, dict[str, str]]]:
    """``writer(span)`` for each span, in order, by a pool of ``workers`` processes (0: here)."""
    if not workers:
        yield from map(writer, spans)
        return
    pool = multiprocessing.get_context().Pool(
        workers, initializer=_start_worker, initargs=(writer,)
    )
    try:
        yield from pool.imap(_work, spans)  # in order, so ``done`` is always a finished prefix
    finally:
        pool.terminate()
        pool.join()


@contextlib.contextmanager
def _signals_as_interrupt() -> Iterator[None]:
    """Ctrl-C (SIGINT) and ``kill`` (SIGTERM) stop the preparation: finished chunks stay recorded.

    SIGINT gets a handler of its own too: a process started in the background by a
    non-interactive shell inherits SIGINT *ignored*, and Python then raises no KeyboardInterrupt.
    The previous handlers come back on exit.
    """

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, previous in old.items():
            signal.signal(sig, previous)


# ----------------------------------------------------------------------------- prepare


@dataclass
class PrepareResult:
    """How a call to :func:`prepare` ended: ``status`` is ``"finished"``, ``"paused"`` (after
    ``stop_after`` images) or ``"interrupted"`` (Ctrl-C / SIGTERM); run it again to go on."""

    out: Path
    status: str
    done: int
    total: int
    shape: tuple[int, ...]
    nbytes: int
    seconds: float
    written: int = 0
    """Images written by this call (0: the folder was already complete)."""
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def array(self) -> Path:
        return self.out / ARRAY_FILE


def prepare(
    root: str | os.PathLike,
    out: str | os.PathLike,
    *,
    holdout: int = DEFAULT_HOLDOUT,
    workers: int | None = None,
    chunk: int = DEFAULT_CHUNK,
    stop_after: int | None = None,
    progress: bool = True,
) -> PrepareResult:
    """Decode the CelebA train images training would use into ``out/images.npy`` (resumable).

    ``root`` and ``holdout`` mean what ``--data`` and ``--val-holdout`` mean to training (the
    holdout matters only for a copy without val images). ``workers``: decoding processes (None:
    one per CPU core; 0: this process). ``stop_after``: write at most this many more images,
    then return ``status="paused"``. A finished ``out`` is left as it is; an ``out`` prepared from
    other images raises :class:`PrepareError`.
    """
    if holdout < 0:
        raise PrepareError(f"holdout must be 0 or more, got {holdout}")
    if chunk < 1:
        raise PrepareError(f"chunk must be a positive number of images, got {chunk}")
    started = time.perf_counter()
    out = Path(out).expanduser()
    train, val = celeba_training_split(root, holdout)
    first = train[0]  # (3, H, W) uint8; an unreadable first image gives the next one, as training
    total = len(train)
    shape = (total, first.shape[1], first.shape[2], 3)  # (N, H, W, 3)
    wanted = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "version": __version__,
        "source": str(Path(root).expanduser().resolve()),
        "images": str(Path(train.layout.images).resolve()),
        "layout": train.layout.kind,
        "split": "train",
        "val_holdout": holdout,
        "train_holdout": holdout if val is not None and val.split == "holdout" else 0,
        "array": ARRAY_FILE,
        "axes": "NHWC",
        "dtype": "uint8",
        "shape": list(shape),
        "nbytes": math.prod(shape),
        "done": 0,
        "total": total,
        "complete": False,
        "seconds": 0.0,
        "skipped": {},
        "names": list(train.names),
    }
    array_path = out / ARRAY_FILE
    index = _open_or_create(out, wanted, first)
    done = index["done"]
    if done >= total:
        return PrepareResult(out, "finished", done, total, shape, wanted["nbytes"],
                             time.perf_counter() - started, 0, index["skipped"])  # fmt: skip
    end = total if stop_after is None else min(total, done + max(0, stop_after))
    _check_disk(out, wanted["nbytes"] * (end - done) // total)
    offset = np.load(array_path, mmap_mode="r").offset  # bytes of the .npy header
    writer = _RowWriter(train, array_path, offset, shape)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    workers = (cores or 1) if workers is None else max(0, workers)
    chunk = max(1, min(chunk, math.ceil((end - done) / (4 * max(workers, 1)))))
    spans = _spans(done, end, chunk)

    from tqdm.auto import tqdm

    bar = tqdm(total=total, initial=done, unit="img", desc="prepare", disable=not progress,
               dynamic_ncols=True, smoothing=0.1)  # fmt: skip
    status, call_start = "finished" if end == total else "paused", time.perf_counter()
    chunks = _decoded_chunks(writer, spans, workers)
    fd = os.open(array_path, os.O_RDWR)
    try:
        with _signals_as_interrupt(), contextlib.closing(chunks):
            try:
                for lo, hi, skipped in chunks:
                    assert lo == index["done"]
                    os.fsync(fd)  # the rows are on disk before the index says so
                    for name, reason in skipped.items():
                        if name not in index["skipped"] and len(index["skipped"]) < 10:
                            text = f"skipped: {reason} (its row holds the next readable image)"
                            bar.write(text, file=sys.stderr)
                        index["skipped"][name] = reason
                    now = time.perf_counter()
                    index.update(done=hi, complete=hi == total,
                                 seconds=round(index["seconds"] + now - call_start, 3))  # fmt: skip
                    call_start = now
                    _write_index(out, index)
                    bar.update(hi - lo)
            except KeyboardInterrupt:
                status = "interrupted"
                bar.write(
                    f"interrupted: {index['done']:,} of {total:,} images are saved in {out}; "
                    "run the same command again to continue",
                    file=sys.stderr,
                )
    finally:
        os.close(fd)
        bar.close()
    return PrepareResult(out, status, index["done"], total, shape, wanted["nbytes"],
                         time.perf_counter() - started, index["done"] - done,
                         index["skipped"])  # fmt: skip


_IDENTITY = ("images", "shape", "names")
"""What must match for an existing folder to be continued (or used by training)."""


def _open_or_create(out: Path, wanted: dict[str, Any], first: torch.Tensor) -> dict[str, Any]:
    """The index of ``out`` if it was prepared from the same images, else a new empty array."""
    array_path = out / ARRAY_FILE
    if (out / INDEX_FILE).is_file():
        index = read_index(out)
        if any(index.get(k) != wanted[k] for k in _IDENTITY):
            raise PrepareError(
                f"{out} was prepared from other images - {_summary(index)} - but this call asks "
                f"for {_summary(wanted)}. Prepare into another --out folder, or delete {out} "
                "to prepare it again"
            )
        if not array_path.is_file():
            raise PrepareError(f"{array_path} is missing: delete {out} and prepare again")
        if index["done"] > 0 and not torch.equal(_row(array_path, 0), first):
            raise PrepareError(
                f"the first image in {out} differs from {wanted['names'][0]} in "
                f"{wanted['images']}: the files changed since it was prepared. Delete {out} "
                "and prepare again"
            )
        index["version"] = wanted["version"]
        return index
    if out.is_dir() and any(p.name not in (ARRAY_FILE,) for p in out.iterdir()):
        found = ", ".join(sorted(p.name for p in out.iterdir())[:6])
        raise PrepareError(
            f"{out} is not empty (it holds {found}) and is not a prepared folder: pass a new "
            "or empty --out folder"
        )
    out.mkdir(parents=True, exist_ok=True)
    _check_disk(out, wanted["nbytes"])
    array = np.lib.format.open_memmap(array_path, mode="w+", dtype=np.uint8,
                                      shape=tuple(wanted["shape"]))  # fmt: skip
    del array  # a sparse file of the full size; rows are written by _RowWriter
    index = dict(wanted)
    _write_index(out, index)
    return index


def _row(array_path: Path, i: int) -> torch.Tensor:
    """Row ``i`` of a prepared array as (3, H, W) uint8."""
    return torch.from_numpy(np.array(np.load(array_path, mmap_mode="r")[i])).permute(2, 0, 1)


def _check_disk(out: Path, need: int) -> None:
    free = shutil.disk_usage(out if out.exists() else out.parent).free
    if need > free:
        raise PrepareError(
            f"preparing needs {_size(need)} more on the disk of {out}, which has "
            f"{_size(free)} free: free some space or pass another --out"
        )


def _size(n: int) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e8 else f"{n / 1e6:.2f} MB"


# ----------------------------------------------------------------------------- reading it back


class PreparedImages(Dataset):
    """A finished preparation as a dataset: item ``i`` is (3, H, W) uint8, equal to training
    image ``i`` from the JPEGs; :meth:`batch` reads a whole step's rows in one call.

    ``expect``: the train images of the run (from :func:`~srgan_edu.data.celeba_training_split`);
    the folder is refused unless it holds exactly them (names, size, first image).
    """

    def __init__(
        self,
        folder: str | os.PathLike,
        *,
        expect: CelebA | None = None,
        val_holdout: int | None = None,
        data: str | os.PathLike | None = None,
    ) -> None:
        self.folder = Path(folder).expanduser()
        self.index = read_index(self.folder)
        self.path = self.folder / ARRAY_FILE
        self.shape: tuple[int, ...] = tuple(self.index["shape"])  # (N, H, W, 3)
        done, total = self.index["done"], self.index["total"]
        if done < total:
            raise PrepareError(
                f"{self.folder} is prepared up to {done:,} of {total:,} images: run "
                f"{_command(self.index['source'], self.folder, self.index['val_holdout'])} "
                "again to finish it (it continues where it stopped)"
            )
        self._array: np.ndarray | None = None
        self._pid: int | None = None
        if expect is not None:
            self._check(expect, val_holdout, data)

    def _check(self, train: CelebA, val_holdout: int | None, data: Any) -> None:
        k = self.index["val_holdout"] if val_holdout is None else val_holdout
        same = list(train.names) == self.index["names"]
        if same and train.image_size is not None:
            same = tuple(train.image_size) == self.shape[1:3]
        if same:
            same = torch.equal(self[0], train[0])
        if not same:
            source = train.layout.images if data is None else data
            made = self.index
            raise PrepareError(
                f"{self.folder} holds {_summary(made)}, but --data {source} with --val-holdout "
                f"{k} trains on {len(train):,} images"
                f"{' (other files or pixels)' if len(train) == self.shape[0] else ''}: pass "
                f"--data {made['source']} --val-holdout {made['val_holdout']} (what it was made "
                f"from), or prepare a new folder: {_command(source, 'NEW_DIR', k)}"
            )

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape)

    def describe(self) -> str:
        """One line for the training log."""
        return (
            f"prepared array {self.path} ({self.nbytes / 1e9:.2f} GB): {_summary(self.index)}; "
            f"{len(self.index['skipped'])} unreadable file(s) replaced by the next image."
        )

    def array(self) -> np.ndarray:
        """The (N, H, W, 3) uint8 memory map, opened once per process."""
        if self._array is None or self._pid != os.getpid():
            array = np.load(self.path, mmap_mode="r")
            if array.shape != self.shape or array.dtype != np.uint8:
                raise PrepareError(
                    f"{self.path} holds {array.dtype} {array.shape}, but {INDEX_FILE} says uint8 "
                    f"{self.shape}: the folder is damaged; delete it and prepare again"
                )
            self._array, self._pid = array, os.getpid()
        return self._array

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index: int) -> torch.Tensor:
        """Image ``index`` as (3, H, W) uint8 (like ``CelebA(..., mode="full", uint8=True)``)."""
        return torch.from_numpy(np.array(self.array()[index])).permute(2, 0, 1).contiguous()

    def batch(self, indices: Sequence[int]) -> torch.Tensor:
        """Rows ``indices`` in that order, read at once: (B, H, W, 3) uint8."""
        return torch.from_numpy(np.asarray(self.array()[np.asarray(indices, dtype=np.int64)]))

    def to_tensor(self, device: torch.device | str) -> torch.Tensor:
        """The whole array in ``device`` memory: (N, H, W, 3) uint8, copied ~256 MB at a time."""
        array = self.array()
        out = torch.empty(self.shape, dtype=torch.uint8, device=device)
        rows = max(1, (256 << 20) // math.prod(self.shape[1:]))
        for lo in range(0, len(self), rows):
            out[lo : lo + rows].copy_(torch.from_numpy(np.array(array[lo : lo + rows])))
        return out

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_array"], state["_pid"] = None, None  # each process maps the file itself
        return state


# ----------------------------------------------------------------------------- command line

EXAMPLES = (
    """\
examples:
  python -m srgan_edu.prepare ~/data/celeba --out ~/data/celeba_prepared
  python -m srgan_edu.train --data ~/data/celeba --prepared ~/data/celeba_prepared --preset paper
  python -m srgan_edu.prepare ../shared/data/celeba_89x109 --out prepared/sample --holdout 1000

Full CelebA: 162,770 train images of 218x178 (HxW) -> an 18.9 GB images.npy. Ctrl-C (or kill) stops
it; the same command continues where it stopped. --holdout must equal training's --val-holdout
for a copy without val images (the laptop preset holds out 1000); full CelebA has a val split
and ignores it.

"""
    + CELEBA_LAYOUTS
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m srgan_edu.prepare",
        description="Decode the CelebA images training uses into one uint8 array on disk, once "
        "(resumable); train with --prepared DIR to read it instead of the JPEGs.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    parser.add_argument("root", metavar="CELEBA_ROOT", help="CelebA folder or zip (as --data)")
    parser.add_argument("--out", required=True, metavar="DIR", help="folder for the array")
    parser.add_argument(
        "--holdout",
        type=int,
        default=DEFAULT_HOLDOUT,
        metavar="N",
        help=f"training's --val-holdout (default {DEFAULT_HOLDOUT})",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="K",
        help="decoding processes (default: one per CPU core; 0: this process)",
    )
    parser.add_argument(
        "--chunk",
        type=int,
        default=DEFAULT_CHUNK,
        metavar="N",
        help=f"images between saved progress points (default {DEFAULT_CHUNK})",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def main(argv: list[str] | None = None) -> int:
    """The CLI: exit 0 when finished, 130 when interrupted (rerun to go on), 2 on a user error."""
    from srgan_edu.cli import one_line

    args = build_parser().parse_args(argv)
    try:
        result = prepare(
            args.root,
            args.out,
            holdout=args.holdout,
            workers=args.workers,
            chunk=args.chunk,
            progress=not args.no_progress,
        )
    except DatasetError as err:
        print(f"error: {one_line(err)}", file=sys.stderr)
        return 2
    except OSError as err:  # e.g. --out cannot be created or the disk is full
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # before the first chunk started: nothing to save
        print("interrupted before any image was written", file=sys.stderr)
        return 130
    n, h, w, _ = result.shape
    status = "already prepared" if result.status == "finished" and not result.written else None
    print(
        f"{status or result.status}: {result.done:,} of {n:,} images ({h}x{w}) in {result.array} "
        f"({result.nbytes / 1e9:.2f} GB), {result.seconds:.1f} s; "
        f"{len(result.skipped)} unreadable file(s) skipped",
        file=sys.stderr,
    )
    return 130 if result.status == "interrupted" else 0


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())
