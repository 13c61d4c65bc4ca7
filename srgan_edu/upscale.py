"""Any image size through a trained generator: tiled inference and ``python -m srgan_edu.upscale``.

A photo of 4000 x 3000 pixels does not fit through the generator in one piece on most machines: the
x4 output's 64-channel feature maps alone would take tens of gigabytes. So the LR image is cut into
``tile`` x ``tile`` tiles, each tile is run with a margin of ``overlap`` extra LR pixels on every
side, and only the tile's centre part is kept. Memory is then bounded by the tile size. By default
(``tile="auto"``) an image runs in one piece when it holds no more pixels than one tile with its
margins (it then needs no more memory, and the margins cost extra work), else in
:data:`DEFAULT_TILE` tiles.

Why the margin, and how wide: every convolution pads its input with zeros, so pixels near a tile's
edge see zeros where the full image has neighbours. An output pixel depends only on the LR pixels
within the generator's *receptive field*; :func:`receptive_radius` works it out from the
architecture (Ledig et al. 2017, Fig. 4): 4 LR pixels for the first 9x9 convolution, 2 per residual
block (two 3x3 convolutions), 1 for the convolution after the blocks, then the upsampling stages
and the last 9x9 convolution (4 HR pixels). For the paper's x4 generator with 16 blocks that is
40 LR pixels. With ``overlap`` at least that large (the default), every kept pixel is computed from
exactly the pixels it sees in the full image, so tiled and untiled results agree up to float
rounding (``tests/test_upscale.py`` checks 1e-5; BatchNorm in eval mode uses stored statistics, so
it treats a tile like the whole image). A smaller overlap is faster and differs near tile seams.

:func:`upscale_tensor` is the tensor-level call the lessons use; :func:`upscale_image` and
:func:`upscale_file` keep what the input file was: grayscale stays grayscale, an alpha channel is
upscaled with bicubic interpolation and reattached, 16-bit grayscale PNG/TIFF stays 16-bit, and
EXIF-rotated photos come out upright. Introduced in lesson 09 (your own photos through SRGAN).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from itertools import product
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import nn
from tqdm.auto import tqdm

from srgan_edu.checkpoint import CheckpointError, atomic_write, load_network
from srgan_edu.cli import DeviceError, one_line, resolve_checkpoint, resolve_device
from srgan_edu.degrade import bicubic_up
from srgan_edu.imaging import (
    IMAGE_SUFFIXES,
    ImageParts,
    ImageReadError,
    list_images,
    load_image_parts,
    parts_to_pil,
    signed_to_unit,
)

DEFAULT_TILE = 176
"""Tile side in LR pixels of the default tiling (``tile="auto"``: :func:`upscale_file`, the CLI).
With the paper's generator and its overlap of 40 a tile with its margins is 256 x 256 LR pixels,
so a 256 x 256 image (or any other of at most 65,536 pixels) still runs in one piece, and a
1024 x 1024 photo runs in 6 x 6 tiles (1.9x the work of one piece) on its way to 4096 x 4096 in
1.26 GB of memory: under the 1.5 GB a laptop can spare, where one 256-pixel tile alone takes a
process to 1.36 GB. Measured by ``bench/upscale_cpu.py`` (``bench/results/upscale_cpu.json``)."""

CPU_MEMORY_FORMAT = torch.channels_last
"""Memory layout of the tensors :func:`upscale_tensor` feeds a generator on the CPU. PyTorch's CPU
convolutions (oneDNN) run the paper's generator 3x faster on channels-last (B, H, W, C) storage
than on the default (B, C, H, W): 3.1 s instead of 9.4 s for 256 x 256 -> 1024 x 1024 on two
cores; the numbers agree up to float rounding (~1e-6). Measured by ``bench/upscale_cpu.py``."""

BICUBIC_RADIUS = 3
"""LR pixels on each side that one bicubic output pixel reads (kernel support 2, +1 for rounding);
the overlap used when the alpha channel and the comparison image are interpolated tile by tile."""

OUTPUT_SUFFIX = ".png"

# Pillow format names for the suffixes we write; 16 bits per sample only where Pillow writes them.
_FORMATS = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".bmp": "BMP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".webp": "WEBP",
}
_SIXTEEN_BIT_FORMATS = ("PNG", "TIFF")


class UpscaleError(ValueError):
    """Something the user asked for cannot be done (bad output name, clashing outputs, ...)."""


# ----------------------------------------------------------------------------------------------
# Receptive field and tiling
# ----------------------------------------------------------------------------------------------


def _unwrap(model: nn.Module) -> nn.Module:
    model = getattr(model, "module", model)  # DistributedDataParallel
    return getattr(model, "_orig_mod", model)  # torch.compile


def _scale_of(generator: nn.Module) -> int:
    scale = getattr(_unwrap(generator), "scale", None)
    if not isinstance(scale, int) or scale < 1:
        raise ValueError(
            f"{type(generator).__name__} has no integer .scale attribute; upscale_tensor needs "
            "one to size its output (SRResNet has it)"
        )
    return scale


def receptive_radius(generator: nn.Module | dict[str, Any]) -> int:
    """How many LR pixels on each side of a pixel can change the generator's output over it.

    Worked out from the architecture (an :class:`~srgan_edu.models.SRResNet` or its ``arch()``
    dict) by following one output pixel back through the layers of Fig. 4: the 9x9 tail conv
    (4 HR pixels), each upsampling stage (sub-pixel: 3x3 conv on the coarse grid; nearest: 3x3
    conv on the fine grid), the fuse conv (1), two 3x3 convs per residual block (2 each) and the
    9x9 head conv (4). Paper generator (x4, 16 blocks, sub-pixel): 40.
    """
    arch = generator if isinstance(generator, dict) else getattr(_unwrap(generator), "arch", None)
    if callable(arch):
        arch = arch()
    if not isinstance(arch, dict) or arch.get("name") != "srresnet":
        raise ValueError(
            f"cannot work out the receptive field of {type(generator).__name__}: it is not an "
            "srgan_edu SRResNet; pass overlap=... (LR pixels) explicitly"
        )
    scale, n_blocks, upsampler = arch["scale"], arch["n_blocks"], arch["upsampler"]
    factors = [3] if scale == 3 else [2] * int(math.log2(scale))
    a = 10**6  # an LR pixel far from any border; its output pixels are scale*a .. scale*a+scale-1
    lo, hi = scale * a - 4, scale * a + scale - 1 + 4  # tail conv 9x9 on the HR grid
    for r in reversed(factors):
        if upsampler == "subpixel":  # conv 3x3 on the coarse grid, then PixelShuffle(r)
            lo, hi = lo // r - 1, hi // r + 1
        else:  # nearest upsampling by r, then conv 3x3 on the fine grid
            lo, hi = (lo - 1) // r, (hi + 1) // r
    trunk = 1 + 2 * n_blocks + 4  # fuse conv, residual blocks, head conv 9x9 (LR grid)
    lo, hi = lo - trunk, hi + trunk
    return max(a - lo, hi - a)


def tile_spans(n: int, tile: int, overlap: int) -> list[tuple[int, int, int, int]]:
    """Cut ``range(n)`` into cores of ``tile`` pixels; each with its input span ``overlap`` wider.

    Returns ``(core_start, core_end, in_start, in_end)`` per tile; the last core may be shorter,
    and input spans stop at the image border (where the network pads just as it does untiled).
    """
    spans = []
    for c0 in range(0, n, tile):
        c1 = min(c0 + tile, n)
        spans.append((c0, c1, max(0, c0 - overlap), min(n, c1 + overlap)))
    return spans


def _tiled(
    fn: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    scale: int,
    tile: int | None,
    overlap: int,
    progress: bool,
    desc: str,
) -> torch.Tensor:
    """Apply ``fn`` ((B, C, h, w) -> (B, C', s*h, s*w)) tile by tile, keeping each tile's core."""
    b, _, h, w = x.shape
    if tile is None or (h <= tile and w <= tile):
        return fn(x)
    rows, cols = tile_spans(h, tile, overlap), tile_spans(w, tile, overlap)
    out: torch.Tensor | None = None
    bar = tqdm(
        list(product(rows, cols)),
        desc=desc,
        unit="tile",
        leave=False,
        disable=None if progress else True,  # None: shown only on a terminal
    )
    s = scale
    for (y0, y1, iy0, iy1), (x0, x1, ix0, ix1) in bar:
        piece = fn(x[:, :, iy0:iy1, ix0:ix1])  # (B, C', s*(iy1-iy0), s*(ix1-ix0))
        if out is None:
            out = x.new_empty((b, piece.shape[1], s * h, s * w), dtype=piece.dtype)
        core = piece[:, :, s * (y0 - iy0) : s * (y1 - iy0), s * (x0 - ix0) : s * (x1 - ix0)]
        out[:, :, s * y0 : s * y1, s * x0 : s * x1] = core
    assert out is not None
    return out


def auto_tile(generator: nn.Module, h: int, w: int, overlap: int | None = None) -> int | None:
    """The default tiling of an h x w LR image: None (one piece) if it holds no more pixels than
    one :data:`DEFAULT_TILE` tile with its margins (so it needs no more memory), else the tile."""
    margin = receptive_radius(generator) if overlap is None else overlap
    return None if h * w <= (DEFAULT_TILE + 2 * margin) ** 2 else DEFAULT_TILE


def _check_tiling(tile: int | None, overlap: int | None) -> None:
    if tile is not None and (isinstance(tile, bool) or not isinstance(tile, int) or tile < 1):
        raise ValueError(f"tile must be a positive integer (LR pixels) or None, got {tile!r}")
    if overlap is not None and (
        isinstance(overlap, bool) or not isinstance(overlap, int) or overlap < 0
    ):
        raise ValueError(f"overlap must be an integer >= 0 (LR pixels) or None, got {overlap!r}")


def _as_batch(lr: torch.Tensor, who: str) -> tuple[torch.Tensor, bool]:
    if not isinstance(lr, torch.Tensor):
        raise TypeError(f"{who} expects a torch.Tensor, got {type(lr).__name__}")
    if lr.dim() not in (3, 4) or lr.shape[-3] != 3:
        raise ValueError(
            f"{who} expects an RGB image (3, h, w) or a batch (B, 3, h, w) in [0, 1], got shape "
            f"{tuple(lr.shape)}"
        )
    if not lr.is_floating_point():
        raise ValueError(f"{who} expects floats in [0, 1], got {lr.dtype}; use x.float() / 255")
    return (lr.unsqueeze(0), True) if lr.dim() == 3 else (lr, False)


def upscale_tensor(
    generator: nn.Module,
    lr: torch.Tensor,
    tile: int | None = None,
    overlap: int | None = None,
    progress: bool = False,
) -> torch.Tensor:
    """Super-resolve ``lr`` ((3, h, w) or (B, 3, h, w) in [0, 1]) -> SR in [0, 1] at ``scale``.

    ``tile=None`` runs the image in one piece; ``tile=N`` runs N x N LR tiles with ``overlap`` LR
    pixels of margin each side (default :func:`receptive_radius`: same result as untiled, up to
    float rounding). The generator runs in eval mode on its own device (restored afterwards);
    the result is float32 on ``lr``'s device, generator output mapped [-1, 1] -> [0, 1], clamped.
    """
    x, single = _as_batch(lr, "upscale_tensor")
    _check_tiling(tile, overlap)
    scale = _scale_of(generator)
    if tile is not None and overlap is None:
        overlap = receptive_radius(generator)
    param = next(generator.parameters(), None)
    device = param.device if param is not None else x.device
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    layout = CPU_MEMORY_FORMAT if device.type == "cpu" else torch.contiguous_format

    def run(piece: torch.Tensor) -> torch.Tensor:
        # A channels-last input makes every convolution after it channels-last too. Always a
        # fresh copy: .contiguous() would keep odd strides that still count as channels-last (a
        # permuted (H, W, C) array's, batch stride 3), which oneDNN runs about 2x slower.
        piece = piece.to(device=device, dtype=dtype)
        piece = torch.empty_like(piece, memory_format=layout).copy_(piece)  # (B, 3, h, w)
        y = generator(piece)  # (B, 3, s*h, s*w) in [-1, 1]
        return signed_to_unit(y.float()).clamp(0.0, 1.0).to(x.device)

    was_training = generator.training
    generator.eval()
    try:
        with torch.inference_mode():
            sr = _tiled(run, x, scale, tile, overlap or 0, progress, "upscaling")
    finally:
        generator.train(was_training)
    return sr[0] if single else sr


def bicubic_tensor(x: torch.Tensor, scale: int, tile: int | None = None) -> torch.Tensor:
    """MATLAB-style bicubic upscaling (:func:`~srgan_edu.degrade.bicubic_up`) of any channels,
    tile by tile so that big images need little memory (same result as untiled)."""
    batch = x.unsqueeze(0) if x.dim() == 3 else x  # (B, C, h, w)
    _check_tiling(tile, None)
    with torch.inference_mode():
        y = _tiled(lambda t: bicubic_up(t, scale), batch, scale, tile, BICUBIC_RADIUS, False, "")
    return y[0] if x.dim() == 3 else y


# ----------------------------------------------------------------------------------------------
# Images and files
# ----------------------------------------------------------------------------------------------


def upscale_image(
    generator: nn.Module,
    image: ImageParts,
    tile: int | str | None = "auto",
    overlap: int | None = None,
    progress: bool = False,
    bicubic: bool = False,
) -> ImageParts:
    """Upscale an image read with :func:`~srgan_edu.imaging.load_image_parts`, keeping its kind.

    The colour goes through the generator (:func:`upscale_tensor`), or through bicubic
    interpolation with ``bicubic=True`` (the comparison image); an alpha channel is always
    upscaled with bicubic interpolation, then reattached. Grayscale-ness and bit depth are kept.
    ``tile="auto"``: :func:`auto_tile`; an int or None as in :func:`upscale_tensor`.
    """
    scale = _scale_of(generator)
    if isinstance(tile, str):
        if tile != "auto":
            raise ValueError(f"tile must be 'auto', a positive integer or None, got {tile!r}")
        tile = auto_tile(generator, *image.rgb.shape[-2:], overlap)
    if bicubic:
        rgb = bicubic_tensor(image.rgb, scale, tile)
    else:
        rgb = upscale_tensor(generator, image.rgb, tile, overlap, progress)
    alpha = None if image.alpha is None else bicubic_tensor(image.alpha, scale, tile)
    return replace(image, rgb=rgb, alpha=alpha)


def output_path(src: str | os.PathLike, out_dir: str | os.PathLike, scale: int) -> Path:
    """Default output name: ``<out_dir>/<stem>_x<scale>.png`` (PNG: lossless, keeps alpha)."""
    return Path(out_dir) / f"{Path(src).stem}_x{scale}{OUTPUT_SUFFIX}"


def bicubic_path(dst: str | os.PathLike) -> Path:
    """Where the bicubic comparison image of ``dst`` goes: ``<stem>_bicubic<suffix>`` beside it."""
    dst = Path(dst)
    return dst.with_name(f"{dst.stem}_bicubic{dst.suffix}")


def _format_of(path: Path) -> str:
    fmt = _FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise UpscaleError(
            f"cannot tell which image format to write for {path} from its suffix "
            f"{path.suffix or '(none)'!r}; end the name with .png (lossless, keeps alpha and "
            "16 bits), .jpg, .webp, .tif or .bmp"
        )
    return fmt


def save_image_parts(image: ImageParts, path: str | os.PathLike) -> Path:
    """Write ``image`` atomically (temp file + rename); the format comes from the suffix.

    PNG and TIFF keep everything; JPEG has no alpha, so the image is composited over white;
    16-bit grayscale becomes 8-bit in formats other than PNG/TIFF. Raises :class:`UpscaleError`
    for an unknown suffix and :class:`OSError` (the old file untouched) if writing fails.
    """
    path = Path(path)
    fmt = _format_of(path)
    rgb, alpha = image.rgb, image.alpha
    if alpha is not None and fmt == "JPEG":
        rgb, alpha = rgb * alpha + (1.0 - alpha), None  # over white, as a viewer shows it
    bit_depth = image.bit_depth if fmt in _SIXTEEN_BIT_FORMATS else 8
    pil = parts_to_pil(rgb, alpha, image.grayscale, bit_depth)
    if fmt == "BMP" and pil.mode == "LA":
        pil = pil.convert("RGBA")  # BMP stores no gray + alpha
    options: dict[str, Any] = {"quality": 95} if fmt in ("JPEG", "WEBP") else {}
    if image.icc_profile and fmt in ("PNG", "JPEG", "WEBP", "TIFF"):
        options["icc_profile"] = image.icc_profile  # keep the colour space the photo was in

    return atomic_write(path, lambda f: pil.save(f, format=fmt, **options))


def upscale_file(
    generator: nn.Module,
    src: str | os.PathLike,
    dst: str | os.PathLike | None = None,
    tile: int | str | None = "auto",
    overlap: int | None = None,
    bicubic: bool = False,
    progress: bool = False,
) -> list[Path]:
    """Upscale the image file ``src`` into ``dst`` (default: ``<stem>_x<scale>.png`` beside it).

    Keeps the input's kind: grayscale in -> grayscale out (the generator sees the gray repeated
    over RGB; the output is its BT.601 luma); RGBA (or gray + alpha, or a palette with
    transparency) -> the colour through the generator, the alpha upscaled with bicubic
    interpolation and reattached (straight colour, not composited); a 16-bit grayscale PNG/TIFF
    is computed in float32 from its full 16 bits and written as 16-bit PNG/TIFF (Pillow reads
    16-bit *colour* PNGs as 8-bit, so those come out 8-bit); EXIF-rotated photos come out
    upright (without the orientation tag); an ICC colour profile is copied. ``bicubic=True``
    also writes the bicubic upscaling as :func:`bicubic_path` ``(dst)``, to flip between the two
    in an image viewer. Returns the paths written. Files are written atomically.
    """
    src = Path(src)
    scale = _scale_of(generator)
    dst = output_path(src, src.parent, scale) if dst is None else Path(dst)
    _format_of(dst)  # refuse a bad output name before the work, not after
    image = load_image_parts(src)
    sr = upscale_image(generator, image, tile, overlap, progress)
    written = [save_image_parts(sr, dst)]
    if bicubic:
        bic = upscale_image(generator, image, tile, overlap, bicubic=True)
        written.append(save_image_parts(bic, bicubic_path(dst)))
    return written


# ----------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------


def collect_inputs(items: Sequence[str | os.PathLike]) -> tuple[list[Path], list[str]]:
    """Image files named on the command line (folders: every image in them), and error lines."""
    files: list[Path] = []
    errors: list[str] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            found = list_images(path)
            if not found:
                errors.append(
                    f"folder {path} holds no images (looked for {', '.join(IMAGE_SUFFIXES)})"
                )
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            errors.append(f"input {path} not found: expected an image file or a folder of images")
    return files, errors


def plan_outputs(
    sources: Sequence[Path], out: str | os.PathLike, scale: int
) -> tuple[list[tuple[Path, Path]], list[str]]:
    """(source, destination) pairs for ``-o out``, and error lines for clashing destinations.

    ``out`` is an output *file* if it has an image suffix or is an existing file (allowed for
    one input only), otherwise a folder (created) receiving ``<stem>_x<scale>.png`` files.
    """
    out = Path(out)
    image_suffix = out.suffix.lower() in Image.registered_extensions()  # .png, .gif, ...
    is_file = out.is_file() or (not out.is_dir() and image_suffix)
    if is_file:
        if len(sources) > 1:
            raise UpscaleError(
                f"-o {out} names a file, but there are {len(sources)} input images; pass a folder "
                "for -o (the outputs are named <name>_x<scale>.png inside it)"
            )
        return [(src, out) for src in sources], []
    if out.exists() and not out.is_dir():
        raise UpscaleError(f"-o {out} exists and is not a folder; choose another -o")
    pairs, errors, taken = [], [], {}
    for src in sources:
        dst = output_path(src, out, scale)
        if dst in taken:
            errors.append(
                f"{src} and {taken[dst]} would both be written to {dst}; skipping {src} "
                "(rename one of them or run them separately)"
            )
            continue
        taken[dst] = src
        pairs.append((src, dst))
    return pairs, errors


def _out_of_memory(err: BaseException) -> bool:
    text = str(err).lower()
    return isinstance(err, MemoryError) or (
        isinstance(err, RuntimeError)
        and ("out of memory" in text or "can't allocate memory" in text)
    )


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, then exit 2 (argparse's convention)
        self.exit(2, f"error: {message} (see python -m srgan_edu.upscale --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m srgan_edu.upscale",
        description=(
            "Make images bigger with a trained SRGAN/SRResNet generator (x4 for the paper's "
            "model; the scale comes from the checkpoint). Works on images of any size: big "
            "ones are processed in tiles, which gives the same result as one piece. Grayscale "
            "stays grayscale, transparency (alpha) is kept, 16-bit grayscale PNGs stay 16-bit, "
            "and phone photos come out upright. Outputs are PNG files named <name>_x4.png."
        ),
        epilog=(
            "examples:\n"
            "  python -m srgan_edu.upscale face.jpg -o out/ --checkpoint runs/laptop/srgan.pt\n"
            "  python -m srgan_edu.upscale photos/ more.png -o out/ --checkpoint srgan.pt "
            "--bicubic\n"
            "  python -m srgan_edu.upscale big.jpg -o big_x4.png --checkpoint srgan.pt "
            "--tile 128\n\n"
            "A checkpoint is a .pt file written by python -m srgan_edu.train (srresnet.pt, "
            "srgan.pt, best.pt or any step_*.pt)."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "inputs", nargs="+", metavar="IN", help="image files and/or folders of images to upscale"
    )
    parser.add_argument(
        "-o",
        "--out",
        required=True,
        metavar="OUT",
        help="output folder (created if needed); with a single input also a file name such as "
        "result.png (the suffix picks the format: .png, .jpg, .webp, .tif, .bmp)",
    )
    parser.add_argument(
        "--checkpoint",
        required=True,
        metavar="C",
        help="generator checkpoint (.pt file) or a pretrained model's name (srresnet_x4_celeba, "
        "srgan_vgg22_x4_celeba, srgan_mse_x4_celeba; python -m srgan_edu.pretrained lists them)",
    )
    parser.add_argument(
        "--tile",
        type=int,
        default=None,
        metavar="N",
        help=f"tile side in input pixels (default: {DEFAULT_TILE}, or one piece for images that "
        "need no more memory than one tile); lower it if you run out of memory, 0 = whole image "
        "in one piece",
    )
    parser.add_argument(
        "--tile-overlap",
        type=int,
        default=None,
        metavar="M",
        help="extra input pixels around each tile (default: the generator's receptive field, "
        "40 for the paper's model, which makes tiles seamless; smaller is faster)",
    )
    parser.add_argument(
        "--bicubic",
        action="store_true",
        help="also write the plain bicubic upscaling as <name>_x4_bicubic.png, for comparison",
    )
    parser.add_argument(
        "--device",
        default=None,
        metavar="D",
        help="cpu, cuda, cuda:1, mps (default: cuda if available, then mps, then cpu)",
    )
    return parser


def _fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)


def main(argv: Iterable[str] | None = None) -> int:
    """Entry point of ``python -m srgan_edu.upscale``; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(None if argv is None else list(argv))
    if args.tile is not None and args.tile < 0:
        parser.error(f"--tile must be >= 0 (0 = no tiling), got {args.tile}")
    if args.tile_overlap is not None and args.tile_overlap < 0:
        parser.error(f"--tile-overlap must be >= 0, got {args.tile_overlap}")
    tile = "auto" if args.tile is None else (args.tile or None)
    try:
        device = resolve_device(args.device)
        generator = load_network(resolve_checkpoint(args.checkpoint), map_location=device)
        scale = _scale_of(generator)
        sources, errors = collect_inputs(args.inputs)
        pairs, clashes = plan_outputs(sources, args.out, scale)
    except (CheckpointError, UpscaleError, DeviceError) as err:
        _fail(one_line(err))
        return 1
    for line in errors + clashes:
        _fail(line)
    failed = len(errors) + len(clashes)
    done = 0
    try:
        for src, dst in pairs:
            try:
                written = upscale_file(
                    generator, src, dst, tile, args.tile_overlap, args.bicubic, progress=True
                )
            except (FileNotFoundError, ImageReadError, UpscaleError) as err:
                _fail(str(err))
                failed += 1
                continue
            except OSError as err:  # e.g. disk full: atomic writes leave no partial file
                _fail(f"could not write {dst}: {err}; nothing was written for {src}")
                failed += 1
                continue
            except (RuntimeError, MemoryError) as err:
                if not _out_of_memory(err):
                    raise
                current = DEFAULT_TILE if tile == "auto" else tile
                smaller = max(16, (current or max(_longest_side(src), 32)) // 2)
                _fail(
                    f"ran out of memory on {device} upscaling {src}; try a smaller tile, e.g. "
                    f"--tile {smaller}"
                )
                failed += 1
                continue
            done += 1
            print(" ".join(f"wrote {p}" for p in written))
    except KeyboardInterrupt:
        _fail(f"interrupted after {done} image(s); the files written so far are complete")
        return 130
    if failed:
        print(f"{done} image(s) upscaled, {failed} failed (see the errors above)")
        return 1
    return 0


def _longest_side(src: Path) -> int:
    """The longer side of an image file in pixels (0 if unreadable); sizes the OOM hint."""
    try:
        with Image.open(src) as img:
            return max(img.size)
    except Exception:  # noqa: BLE001 - only a hint
        return 0


if __name__ == "__main__":
    sys.exit(main())
