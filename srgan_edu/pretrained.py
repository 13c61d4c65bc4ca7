"""Trained x4 generators that ship with the course, loaded by name, offline, checked by sha256.

A learner on a laptop needs trained models to compare in lesson 09, not a promise. The files
live in the repository (``assets/checkpoints/NAME.pt``, a few MB each), so nothing is downloaded
and no link can die. Each has a model card next to it (``NAME.md``): the data and split, every
hyper-parameter, the hardware and wall time, the held-out figures, known failure cases, the
licence, and the one command that retrains it.

* :func:`load_pretrained` -> the generator in eval mode (``load_pretrained("srresnet_x4_celeba")``);
* :func:`pretrained_path` -> the verified file, which ``python -m srgan_edu.evaluate`` and
  ``upscale`` use when ``--checkpoint`` is a registered name;
* :func:`export` turns a training run's ``srresnet.pt`` / ``srgan.pt`` into a shipped file
  (float16 weights: half the size, and the held-out PSNR changes by less than 0.001 dB);
* ``python -m srgan_edu.pretrained`` lists the models and checks their files; ``export`` and
  ``measure`` are the two steps after training that the model cards name.

Every file is a normal srgan_edu checkpoint, read with ``torch.load(weights_only=True)``; its
sha256 is recorded below and compared before loading, so a damaged or swapped file is refused.
"""

from __future__ import annotations

import argparse
import difflib
import hashlib
import json
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from srgan_edu.checkpoint import CheckpointError, load_checkpoint, load_network, save_checkpoint

__all__ = [
    "PRETRAINED",
    "Pretrained",
    "export",
    "file_sha256",
    "load_pretrained",
    "measure",
    "pretrained_dir",
    "pretrained_path",
]

PRETRAINED_ENV = "SRGAN_EDU_PRETRAINED_DIR"
"""Environment variable naming another folder that holds the shipped files (e.g. a copy)."""


@dataclass(frozen=True)
class Pretrained:
    """One shipped generator: its name, file, sha256 and a one-line description."""

    name: str
    label: str  # the method's name in tables: SRResNet, SRGAN-VGG22, SRGAN-MSE
    sha256: str
    description: str

    @property
    def file(self) -> str:
        return f"{self.name}.pt"

    @property
    def card(self) -> str:
        return f"{self.name}.md"


PRETRAINED: dict[str, Pretrained] = {
    p.name: p
    for p in [
        Pretrained(
            "srresnet_x4_celeba",
            "SRResNet",
            "2b38910b6ca87ff7cdf217b0dbc5630015c122d8d3ddb1bbb5bba290df4a52b4",
            "SRResNet x4 (pixel MSE, eq. 4) on CelebA faces; 8 blocks, 32 channels",
        ),
        Pretrained(
            "srgan_vgg22_x4_celeba",
            "SRGAN-VGG22",
            "068d78f8a5be0c124f6a05defd3225845a8379648f3569af3f8c3cf549ebfa1a",
            "SRGAN x4 from srresnet_x4_celeba: VGG22 content loss (eq. 5) + 1e-3 adversarial",
        ),
        Pretrained(
            "srgan_mse_x4_celeba",
            "SRGAN-MSE",
            "4ebeca93bb79b1bb9afd1fa71f4ea3ad862c39db99c5a59b4dbbaacbd609a172",
            "SRGAN x4 from srresnet_x4_celeba: pixel MSE content loss (eq. 4) + 1e-3 adversarial",
        ),
    ]
}
"""The shipped generators by name. The sha256 values are those of the committed files."""


def pretrained_dir() -> Path:
    """Where the shipped files are: ``$SRGAN_EDU_PRETRAINED_DIR`` if set, else the repository's
    ``assets/checkpoints/`` (next to the ``srgan_edu`` package in a ``pip install -e .``)."""
    given = os.environ.get(PRETRAINED_ENV, "").strip()
    if given:
        return Path(given).expanduser()
    return Path(__file__).resolve().parents[1] / "assets" / "checkpoints"


def file_sha256(path: str | os.PathLike) -> str:
    """The sha256 of a file's bytes, as hex (read in 1 MB blocks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _entry(name: str) -> Pretrained:
    if name in PRETRAINED:
        return PRETRAINED[name]
    close = difflib.get_close_matches(str(name), PRETRAINED, n=1, cutoff=0.5)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise CheckpointError(
        f"no pretrained model named {name!r}; the course ships {', '.join(PRETRAINED)}.{hint}"
    )


def pretrained_path(name: str, folder: str | os.PathLike | None = None) -> Path:
    """The file of the shipped model ``name``, after checking its sha256.

    Raises :class:`CheckpointError` for an unknown name (with the closest one), a missing file
    (saying where it was expected and how to restore it) or a file whose sha256 differs from the
    one recorded in :data:`PRETRAINED` (damaged, or replaced by another model).
    """
    entry = _entry(name)
    path = (Path(folder) if folder is not None else pretrained_dir()) / entry.file
    if not path.is_file():
        raise CheckpointError(
            f"pretrained model {name!r}: {path} is missing. The files ship in the repository's "
            "assets/checkpoints/: use a clone installed with `pip install -e .` (git checkout "
            f"assets/checkpoints restores them), or set {PRETRAINED_ENV} to a folder holding "
            f"{entry.file}"
        )
    found = file_sha256(path)
    if found != entry.sha256:
        raise CheckpointError(
            f"pretrained model {name!r}: {path} has sha256 {found[:16]}..., expected "
            f"{entry.sha256[:16]}...: the file is damaged or is not the shipped model. Restore "
            "it with `git checkout assets/checkpoints`"
        )
    return path


def load_pretrained(
    name: str, device: str | torch.device = "cpu", folder: str | os.PathLike | None = None
) -> torch.nn.Module:
    """The shipped generator ``name`` in float32 and eval mode on ``device``.

    The file's sha256 is checked first, then it is read with ``weights_only=True``. Weights
    stored as float16 are widened to float32 as they load (lesson 09; ``python -m
    srgan_edu.pretrained`` lists the names).
    """
    return load_network(pretrained_path(name, folder), "generator", map_location=device)


def is_name(text: str | os.PathLike) -> bool:
    """Whether ``text`` is a registered model name (a ``--checkpoint`` value, say)."""
    return isinstance(text, str) and text in PRETRAINED


# ----------------------------------------------------------------------------------------------
# making a shipped file from a training run
# ----------------------------------------------------------------------------------------------


def export(
    generator_file: str | os.PathLike,
    name: str,
    out_dir: str | os.PathLike | None = None,
    *,
    dtype: torch.dtype = torch.float16,
) -> tuple[Path, str]:
    """Write the generator of a training run (``srresnet.pt`` / ``srgan.pt``) as ``NAME.pt``.

    Floating-point weights are stored as ``dtype`` (float16 halves the file; integer buffers
    such as BatchNorm's counter are kept). The run's config, step and validations (from its
    ``log.jsonl``, for the learning curve in lesson 08) travel along, plus the model's
    ``label``. Returns the path and its sha256, the value to record in :data:`PRETRAINED`.
    """
    entry = _entry(name)
    payload = load_checkpoint(generator_file)
    model = load_network(payload, "generator")  # refuses a file without a generator
    log = Path(generator_file).parent / "log.jsonl"  # the run's validations, for the curve
    history = []
    if log.is_file():
        for line in log.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:  # a line cut off by a crash
                continue
            if "val/psnr_y" in record:
                history.append(
                    {k: v for k, v in record.items() if isinstance(v, (int, float, str))}
                )
    state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in model.state_dict().items()}
    shipped = {
        "kind": "generator",
        "generator": {"arch": dict(model.arch()), "state_dict": state},
        "config": payload.get("config"),
        "step": payload.get("step"),
        "val": payload.get("val"),
        "val_history": history,
        "name": entry.name,
        "label": entry.label,
        "weights_dtype": str(dtype).replace("torch.", ""),
    }
    out = Path(out_dir) if out_dir is not None else pretrained_dir()
    out.mkdir(parents=True, exist_ok=True)
    path = save_checkpoint(shipped, out / entry.file)
    return path, file_sha256(path)


def measure(
    generator: str | os.PathLike,
    data: str | os.PathLike,
    *,
    holdout: int = 1000,
    limit: int | None = None,
    batch_size: int = 50,
) -> dict[str, Any]:
    """Y-PSNR / SSIM of ``generator`` (a name or a file) and of bicubic on held-out faces.

    The faces are the last ``holdout`` train images of ``data`` by name (the images training
    never saw), or the first ``limit`` of them. Runs :func:`srgan_edu.evaluate.evaluate`, the
    same measurement as the command line, on the CPU, so the figures do not depend on a GPU.
    """
    from srgan_edu.evaluate import evaluate

    report = evaluate(
        data,
        generator,
        split="holdout",
        holdout=holdout,
        limit=limit,
        batch_size=batch_size,
        device="cpu",
    )
    psnr, ssim = report.result.mean()
    b_psnr, b_ssim = report.results["bicubic"].mean()
    return {
        "n": report.result.n,
        "psnr_y": psnr,
        "ssim_y": ssim,
        "bicubic_psnr_y": b_psnr,
        "bicubic_ssim_y": b_ssim,
        "gain_db": psnr - b_psnr,
    }


# ----------------------------------------------------------------------------------------------
# command line
# ----------------------------------------------------------------------------------------------

EXAMPLES = """\
examples:
  python -m srgan_edu.pretrained                      # list the shipped models, check their files
  python -m srgan_edu.upscale --checkpoint srresnet_x4_celeba face.jpg
  python -m srgan_edu.evaluate --data ~/data/celeba --checkpoint srgan_vgg22_x4_celeba
  # after training (see a model card): ship a run's generator, then measure it
  python -m srgan_edu.pretrained export runs/srresnet/srresnet.pt srresnet_x4_celeba
  python -m srgan_edu.pretrained measure srresnet_x4_celeba --data ../shared/data/celeba_89x109
"""


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m srgan_edu.pretrained`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="python -m srgan_edu.pretrained",
        description="The trained generators shipped in assets/checkpoints: list and check them, "
        "export a training run's generator as one, measure one on held-out faces.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("list", help="list the models and check their files (the default)")
    ex = sub.add_parser("export", help="write a run's generator as assets/checkpoints/NAME.pt")
    ex.add_argument("generator", help="srresnet.pt or srgan.pt of a training run")
    ex.add_argument("name", choices=sorted(PRETRAINED))
    ex.add_argument("--out", default=None, help="folder (default: assets/checkpoints)")
    ex.add_argument("--float32", action="store_true", help="keep float32 weights")
    me = sub.add_parser("measure", help="Y-PSNR/SSIM vs bicubic on the held-out faces (JSON)")
    me.add_argument("generator", help="a registered name or a generator file")
    me.add_argument("--data", required=True, help="the CelebA folder training used")
    me.add_argument("--holdout", type=int, default=1000, help="held-out faces (default 1000)")
    me.add_argument("--limit", type=int, default=None, help="only the first N of them")
    return parser


def _list() -> int:
    bad = 0
    for entry in PRETRAINED.values():
        try:
            path = pretrained_path(entry.name)
            size = path.stat().st_size / 1e6
            payload = load_checkpoint(path)
            val = payload.get("val") or {}
            psnr = val.get("val/psnr_y")
            extra = f", training's last validation {psnr:.2f} dB" if psnr else ""
            print(f"{entry.name}: ok ({size:.1f} MB, sha256 {entry.sha256[:12]}...{extra})")
        except CheckpointError as err:
            bad += 1
            print(f"{entry.name}: error: {err}")
        print(f"    {entry.description}; card: {pretrained_dir() / entry.card}")
    return 1 if bad else 0


def main(argv: Sequence[str] | None = None) -> int:
    """The CLI: 0 when every listed file checks out, 1 otherwise, 2 on a user error."""
    args = build_parser().parse_args(argv)
    try:
        if args.command in (None, "list"):
            return _list()
        if args.command == "export":
            dtype = torch.float32 if args.float32 else torch.float16
            path, sha = export(args.generator, args.name, args.out, dtype=dtype)
            print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB)")
            print(f"sha256 {sha}  <- record it in srgan_edu/pretrained.py PRETRAINED")
            return 0
        result: Mapping[str, Any] = measure(
            args.generator, args.data, holdout=args.holdout, limit=args.limit
        )
        print(json.dumps(result))
        return 0
    except (CheckpointError, OSError, ValueError) as err:
        from srgan_edu.cli import one_line

        print(f"error: {one_line(err)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
