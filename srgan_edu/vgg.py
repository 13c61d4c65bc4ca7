"""VGG19 feature maps phi_{i,j} for the content loss, and where their weights come from.

SRGAN's VGG loss (Ledig et al. 2017, Sec. 2.2.1, eq. 5) compares feature maps of a pretrained
VGG19 (Simonyan & Zisserman 2015): phi_{i,j} is the map after the j-th convolution (and its
ReLU) before the i-th max-pool. ``relu2_2`` gives the paper's SRGAN-VGG22, ``relu5_4`` its
SRGAN-VGG54; ``conv5_4`` is the same map *before* the ReLU, the variant ESRGAN uses.

The network is written in plain torch (torchvision is not needed). Its ``features`` module has
exactly torchvision's layer indices, so the state-dict keys ``features.0.weight`` ...
``features.34.bias`` of torchvision's official ``vgg19-dcbe5ffd.pth`` load unchanged.

Input convention: :class:`VGGFeatures` takes RGB images **in [0, 1]** (the losses convert the
generator's [-1, 1] output with :func:`srgan_edu.imaging.signed_to_unit`) and normalises them
inside, as the weights expect. Two weight formats are supported:

``"torchvision"``
    torchvision's ImageNet VGG19: RGB in [0, 1], minus mean (0.485, 0.456, 0.406), divided by
    std (0.229, 0.224, 0.225).
``"caffe"``
    the original (Oxford/Caffe, also Keras) VGG19 converted to RGB input channels, e.g. the
    course's ``vgg19_caffe_rgb_conv1_1-conv3_4.pth``: RGB in 0..255 minus (123.68, 116.779,
    103.939), no std division. Its input is about 255 * 0.226 = 57.6 times torchvision's, so
    its feature maps are too; they are divided by :data:`CAFFE_TO_TORCHVISION` to put them on
    torchvision's scale. Without that, the paper's 1/12.75 rescaling gives a VGG22 loss of about
    240 for bicubic faces (pixel MSE 0.02) and the 1e-3 adversarial term vanishes next to it;
    with it, both conventions give losses of the order of the MSE, as Sec. 3.2 intends.

``preprocessing="auto"`` (the default) picks ``"caffe"`` when the weight file's name contains
"caffe" and ``"torchvision"`` otherwise (also for random weights); pass it explicitly for a file
named otherwise.

Weights (``weights=`` argument): ``"imagenet"`` loads the file named by the environment variable
``SRGAN_EDU_VGG19_WEIGHTS`` if it is set, else torchvision's official file through the torch hub
cache (``$TORCH_HOME/hub/checkpoints/``, downloaded once); a path loads a local file; ``None``
gives seeded random weights (tests, CI). Introduced in lesson 06 (perceptual losses).
"""

from __future__ import annotations

import contextlib
import difflib
import os
import re
import socket
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

VGG19_URL = "https://download.pytorch.org/models/vgg19-dcbe5ffd.pth"
"""torchvision's official ImageNet VGG19 weights (548 MB; sha256 starts with dcbe5ffd)."""

VGG19_FILENAME = "vgg19-dcbe5ffd.pth"
WEIGHTS_ENV = "SRGAN_EDU_VGG19_WEIGHTS"
"""Environment variable naming a local VGG19 state-dict file; used instead of downloading."""

PAPER_LAYERS = {"vgg22": "relu2_2", "vgg54": "relu5_4"}
"""The paper's names (Sec. 3.4: SRGAN-VGG22, SRGAN-VGG54) for the layers they use."""

TORCHVISION_MEAN = (0.485, 0.456, 0.406)
TORCHVISION_STD = (0.229, 0.224, 0.225)
CAFFE_MEAN_RGB = (123.68, 116.779, 103.939)
CAFFE_TO_TORCHVISION = 255.0 * sum(TORCHVISION_STD) / 3
"""How many times larger Caffe-convention inputs (0..255, no std) are than torchvision's (~57.6)."""
PREPROCESSINGS = ("torchvision", "caffe")

# VGG19 configuration "E": convolution widths per block; every block ends with a 2x2 max-pool.
_BLOCKS = ((64, 64), (128, 128), (256, 256, 256, 256), (512, 512, 512, 512), (512, 512, 512, 512))


class VGGWeightsError(RuntimeError):
    """A VGG19 weight file does not fit the network (missing layers, wrong keys or shapes)."""


class VGGWeightsUnavailable(VGGWeightsError):
    """The VGG19 weights are neither on disk nor downloadable; the message says what to do."""


@dataclass(frozen=True)
class VGGLayer:
    """One module of VGG19 ``features``: its name, index, kind and output channels.

    ``stride`` is how much smaller the output is than the input image (1, 2, 4, 8, 16 or 32).
    """

    name: str
    index: int
    kind: str  # "conv", "relu" or "pool"
    channels: int
    stride: int


def vgg19_layers() -> list[VGGLayer]:
    """All 37 modules of VGG19 ``features`` in order, with torchvision's indices (for lessons).

    >>> [(layer.name, layer.index) for layer in vgg19_layers()][:5]
    [('conv1_1', 0), ('relu1_1', 1), ('conv1_2', 2), ('relu1_2', 3), ('pool1', 4)]
    """
    layers: list[VGGLayer] = []
    index, stride = 0, 1
    for block, widths in enumerate(_BLOCKS, start=1):
        for j, width in enumerate(widths, start=1):
            layers.append(VGGLayer(f"conv{block}_{j}", index, "conv", width, stride))
            layers.append(VGGLayer(f"relu{block}_{j}", index + 1, "relu", width, stride))
            index += 2
        stride *= 2
        layers.append(VGGLayer(f"pool{block}", index, "pool", widths[-1], stride))
        index += 1
    return layers


_LAYERS = {layer.name: layer for layer in vgg19_layers()}
_CONV_NAMES = {layer.index: layer.name for layer in _LAYERS.values() if layer.kind == "conv"}


def vgg19_layer(name: str) -> VGGLayer:
    """The layer called ``name`` (``"relu2_2"``, ``"conv5_4"``, ``"pool3"``, or ``"vgg22"``)."""
    key = str(name).lower()
    key = PAPER_LAYERS.get(key, key)
    if key not in _LAYERS:
        close = difflib.get_close_matches(str(name), list(_LAYERS) + list(PAPER_LAYERS), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ValueError(
            f"unknown VGG19 layer {name!r}: expected one of conv1_1 .. conv5_4, relu1_1 .. "
            f"relu5_4, pool1 .. pool5, or the paper's vgg22 / vgg54.{hint}"
        )
    return _LAYERS[key]


def build_vgg19_features(last: int = 36) -> nn.Sequential:
    """VGG19 ``features`` up to and including module ``last``, with torchvision's indices.

    ReLUs are not in-place, so any intermediate output can be kept (lessons look at several).
    """
    modules: list[nn.Module] = []
    in_channels = 3
    for layer in vgg19_layers()[: last + 1]:
        if layer.kind == "conv":
            modules.append(nn.Conv2d(in_channels, layer.channels, kernel_size=3, padding=1))
            in_channels = layer.channels
        elif layer.kind == "relu":
            modules.append(nn.ReLU())
        else:
            modules.append(nn.MaxPool2d(kernel_size=2, stride=2))
    return nn.Sequential(*modules)


def imagenet_weights_path() -> Path:
    """Where torch.hub keeps the official file: ``torch.hub.get_dir()/checkpoints/vgg19-...pth``.

    ``torch.hub.get_dir()`` is ``$TORCH_HOME/hub`` (default ``~/.cache/torch/hub``).
    """
    return Path(torch.hub.get_dir()) / "checkpoints" / VGG19_FILENAME


def _how_to_get_weights(cache: Path) -> str:
    return (
        f"Download {VGG19_URL} (548 MB) on a machine with internet access and put it at\n"
        f"  {cache}\n"
        f"(that is torch.hub's cache, $TORCH_HOME/hub/checkpoints/), or set the environment "
        f"variable {WEIGHTS_ENV} to the path of a local copy. For a quick run without "
        f"pretrained features, pass weights=None (random VGG weights)."
    )


@contextlib.contextmanager
def _socket_timeout(seconds: float) -> Iterator[None]:
    """Make the download give up after ``seconds`` without data instead of hanging offline."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def load_weights_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a VGG19 state dict from ``path`` (``torch.load(weights_only=True)``, on CPU)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise VGGWeightsUnavailable(
            f"VGG19 weight file not found: {path}\n" + _how_to_get_weights(imagenet_weights_path())
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # unpickling errors come in several types; all mean "unreadable"
        raise VGGWeightsError(
            f"cannot read VGG19 weights from {path}: {err}. Expected a state dict saved with "
            f"torch.save (e.g. torchvision's {VGG19_FILENAME}); if the file is a partial "
            f"download, delete it and fetch it again."
        ) from err
    if not isinstance(state, Mapping):
        raise VGGWeightsError(
            f"{path} holds a {type(state).__name__}, not a state dict (a mapping of parameter "
            f"names such as 'features.0.weight' to tensors)."
        )
    return dict(state)


def load_imagenet_weights(
    progress: bool = True, timeout: float = 20.0
) -> tuple[dict[str, torch.Tensor], Path]:
    """The ImageNet VGG19 state dict and the file it came from.

    Order: the file named by ``$SRGAN_EDU_VGG19_WEIGHTS`` if set; else torchvision's file in
    torch.hub's cache (never downloaded again once there); else a download through
    ``torch.hub.load_state_dict_from_url`` that gives up after ``timeout`` seconds without a
    connection and raises :class:`VGGWeightsUnavailable` saying what to download and where.
    """
    env = os.environ.get(WEIGHTS_ENV, "").strip()
    if env:
        return load_weights_file(env), Path(env).expanduser()
    cache = imagenet_weights_path()
    was_cached = cache.is_file()
    try:
        with _socket_timeout(timeout):
            state = torch.hub.load_state_dict_from_url(
                VGG19_URL,
                map_location="cpu",
                progress=progress,
                check_hash=True,  # the download must match the "dcbe5ffd" sha256 prefix
                weights_only=True,
            )
    except Exception as err:
        if was_cached:
            raise VGGWeightsError(
                f"cannot read the cached VGG19 weights {cache}: {err}. Delete the file and run "
                f"again to download it afresh."
            ) from err
        raise VGGWeightsUnavailable(
            f"Could not download the VGG19 ImageNet weights ({type(err).__name__}: {err}).\n"
            + _how_to_get_weights(cache)
        ) from err
    return dict(state), cache


def select_vgg19_weights(
    state_dict: Mapping[str, torch.Tensor], last: int, source: str = "the state dict"
) -> dict[str, torch.Tensor]:
    """The ``features.N.weight/bias`` entries a network truncated after module ``last`` needs.

    Accepts a full torchvision VGG19 state dict (``classifier.*`` and deeper layers are ignored)
    or a truncated one that covers the needed convolutions. Raises :class:`VGGWeightsError`
    naming missing layers, unexpected keys or wrong shapes.
    """
    pattern = re.compile(r"features\.(\d+)\.(weight|bias)")
    unexpected = []
    for key in state_dict:
        match = pattern.fullmatch(key)
        if key.startswith("classifier."):
            continue
        if match is None or int(match.group(1)) not in _CONV_NAMES:
            unexpected.append(key)
    if unexpected:
        raise VGGWeightsError(
            f"{source} has keys that are not VGG19 layers: {unexpected[:5]}"
            f"{' ...' if len(unexpected) > 5 else ''}. Expected torchvision's vgg19 keys "
            f"'features.N.weight' / 'features.N.bias' (N = 0, 2, 5, ..., 34), optionally "
            f"'classifier.*'."
        )
    needed = [i for i in sorted(_CONV_NAMES) if i <= last]
    missing = [
        _CONV_NAMES[i]
        for i in needed
        if f"features.{i}.weight" not in state_dict or f"features.{i}.bias" not in state_dict
    ]
    if missing:
        target = vgg19_layers()[last].name
        raise VGGWeightsError(
            f"{source} lacks the VGG19 layers {', '.join(missing)}, which the features up to "
            f"{target} need. It is enough only for layers before {missing[0]}. For deeper "
            f"features (e.g. relu5_4 = VGG54) use the full torchvision weights: weights="
            f"'imagenet' loads them from {imagenet_weights_path()} or downloads {VGG19_URL} "
            f"there (or set {WEIGHTS_ENV} to a local copy)."
        )
    widths = {layer.index: layer.channels for layer in vgg19_layers() if layer.kind == "conv"}
    selected: dict[str, torch.Tensor] = {}
    in_channels = 3
    for i in needed:
        expected = {"weight": (widths[i], in_channels, 3, 3), "bias": (widths[i],)}
        for part, shape in expected.items():
            tensor = state_dict[f"features.{i}.{part}"]
            if tuple(tensor.shape) != shape:
                raise VGGWeightsError(
                    f"{source}: features.{i}.{part} ({_CONV_NAMES[i]}) has shape "
                    f"{tuple(tensor.shape)}, expected {shape}. Is this a VGG19 state dict?"
                )
            selected[f"features.{i}.{part}"] = tensor
        in_channels = widths[i]
    return selected


def detect_preprocessing(weights: str | os.PathLike | None) -> str:
    """The input convention of ``weights``: ``"caffe"`` if its file name says so, else torchvision.

    ``"imagenet"`` means the file in ``$SRGAN_EDU_VGG19_WEIGHTS`` if set (judged by its name),
    else torchvision's own file; random weights (``None``) use the torchvision convention.
    """
    if weights is None:
        return "torchvision"
    name = str(weights)
    if name == "imagenet":
        name = os.environ.get(WEIGHTS_ENV, "").strip() or VGG19_FILENAME
    return "caffe" if "caffe" in Path(name).name.lower() else "torchvision"


class VGGFeatures(nn.Module):
    """Frozen VGG19 cut after ``layer``: images in [0, 1] -> phi_{i,j} maps (eq. 5's phi).

    ``rescale`` multiplies the output maps (the paper uses 1/12.75, Sec. 3.2); Caffe-convention
    maps are first divided by :data:`CAFFE_TO_TORCHVISION` (see the module docstring). The module is
    always in eval mode and its parameters never require gradients, but gradients do flow
    through it to its input. Output (B, C, H / stride, W / stride), see :func:`vgg19_layers`.
    """

    def __init__(
        self,
        layer: str = "relu5_4",
        weights: str | os.PathLike | None = "imagenet",
        *,
        preprocessing: str = "auto",
        rescale: float = 1.0,
        seed: int = 0,
        progress: bool = True,
    ) -> None:
        super().__init__()
        info = vgg19_layer(layer)
        if preprocessing == "auto":
            preprocessing = detect_preprocessing(weights)
        if preprocessing not in PREPROCESSINGS:
            raise ValueError(
                f"preprocessing must be 'auto', 'torchvision' or 'caffe', got {preprocessing!r}"
            )
        self.layer = info.name
        self.index = info.index
        self.out_channels = info.channels  # C of the output maps
        self.stride = info.stride  # output is (H / stride, W / stride)
        self.preprocessing = preprocessing
        self.rescale = float(rescale)
        with torch.device("meta"):  # shapes only: the values come just below
            self.features = build_vgg19_features(info.index)

        if weights is None:
            self.features.to_empty(device="cpu")
            self._random_init(seed)
            self.source = f"random (seed {seed})"
        else:
            if str(weights) == "imagenet":
                state, path = load_imagenet_weights(progress=progress)
            else:
                path = Path(weights).expanduser()
                state = load_weights_file(path)
            selected = select_vgg19_weights(state, info.index, source=str(path))
            selected = {k: v.detach().to(torch.float32).contiguous() for k, v in selected.items()}
            self.load_state_dict(selected, assign=True)
            self.source = str(path)
        self.requires_grad_(False)
        super().train(False)

        if preprocessing == "torchvision":
            scale, mean, std = 1.0, TORCHVISION_MEAN, TORCHVISION_STD
            self.output_scale = self.rescale
        else:
            scale, mean, std = 255.0, CAFFE_MEAN_RGB, (1.0, 1.0, 1.0)
            self.output_scale = self.rescale / CAFFE_TO_TORCHVISION
        self.input_scale = scale
        # Non-persistent buffers: they follow .to(device) but stay out of the state dict,
        # whose keys are exactly torchvision's features.N.weight / features.N.bias.
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    def _random_init(self, seed: int) -> None:
        """He-normal weights, std sqrt(2 / fan_out) as in torchvision's VGG init; zero biases."""
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for module in self.features:
                if isinstance(module, nn.Conv2d):
                    fan_out = module.out_channels * 3 * 3
                    std = (2.0 / fan_out) ** 0.5
                    module.weight.copy_(torch.randn(module.weight.shape, generator=generator) * std)
                    module.bias.zero_()

    def train(self, mode: bool = True) -> VGGFeatures:
        """Stay in eval mode whatever the caller asks: the loss network is fixed."""
        return super().train(False)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1] -> the network's input convention (torchvision or Caffe)."""
        return (x * self.input_scale - self.mean) / self.std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] -> (B, C, H // stride, W // stride) feature maps."""
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(
                f"VGGFeatures expects RGB images of shape (B, 3, H, W) in [0, 1], got shape "
                f"{tuple(x.shape)}"
            )
        phi = self.features(self.normalize(x))  # (B, C, H / stride, W / stride)
        return phi * self.output_scale if self.output_scale != 1.0 else phi

    def extra_repr(self) -> str:
        return (
            f"layer={self.layer}, preprocessing={self.preprocessing}, rescale={self.rescale:g}, "
            f"weights={self.source}"
        )
