"""A GAN in one dimension: generator, discriminator, losses, training loop, checkpoints (lesson 01).

The seed experiment: the observed data are 1000 draws from N(0, 1); the generator turns uniform
noise u ~ U(0, 1) into samples G(u); the discriminator D(x) is the probability that x is real.
Goodfellow et al. (2014) write the game as

    min_G max_D V(G, D) = E_x[log D(x)] + E_u[log(1 - D(G(u)))]          (eq. 1)

D is trained by minimising the binary cross-entropy -V; G is trained with the *non-saturating*
loss -E_u[log D(G(u))], which has the same fixed point but strong gradients when D is winning.
The training recipe (an exponential moving average of G's weights, ReLU units, big batches) is what
makes the result reliable over seeds; `bench/toy_gan_convergence.py` measures it.
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

LOSSES = ("nonsaturating", "saturating")


@dataclass
class GANConfig:
    """Everything that defines one training run. The defaults are the reliable recipe.

    What made it reliable (measured over 10 seeds, `bench/toy_gan_convergence.py`): an exponential
    moving average of G's weights (``ema``) halves the KS distance between G and the data and
    removes the bad seeds; ReLU hidden units in G reach the tails of N(0, 1) that tanh units
    flatten; batches of 256; a constant learning rate (cosine decay to zero was worse).
    """

    n_data: int = 1000  # size of the observed sample from N(0, 1)
    g_hidden: int = 50  # generator: 1 -> 50 -> 1
    g_activation: str = "relu"  # hidden units of G: "relu", "leaky_relu", "elu" or "tanh"
    d_hidden: int = 128  # discriminator: 1 -> 128 -> 128 -> 1
    steps: int = 1500  # alternating updates (one D step, then one G step)
    batch_size: int = 256
    lr_g: float = 2e-3
    lr_d: float = 2e-3
    beta1: float = 0.5  # Adam momentum; 0.5 is the usual GAN choice (Radford et al. 2016)
    lr_decay: bool = False  # cosine decay of both learning rates to zero over `steps`
    ema: float = 0.99  # decay of the moving average of G's weights; 0 turns it off
    loss: str = "nonsaturating"  # generator loss: "nonsaturating" -log D(G(u)) or "saturating"
    d_steps: int = 1  # discriminator updates per generator update
    seed: int = 0

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        for name in ("n_data", "g_hidden", "d_hidden", "steps", "batch_size", "d_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)}")
        if not 0.0 <= self.ema < 1.0:
            raise ValueError(f"ema must be in [0, 1), got {self.ema}")


ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "leaky_relu": nn.LeakyReLU, "elu": nn.ELU}


class Generator(nn.Module):
    """G: u ~ U(0, 1) -> x. One hidden layer of 50 units (the seed experiment's MLP)."""

    def __init__(self, hidden: int = 50, activation: str = "relu") -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        self.hidden = hidden
        self.activation = activation
        self.net = nn.Sequential(
            nn.Linear(1, hidden), ACTIVATIONS[activation](), nn.Linear(hidden, 1)
        )

    def activations(self, u: torch.Tensor) -> torch.Tensor:  # (N, 1) -> (N, hidden)
        """The hidden units' outputs for noise ``u`` (lesson 01 counts the dead ones)."""
        # Centre the noise on 0 so the units start where they respond to it.
        return self.net[1](self.net[0](2.0 * u - 1.0))

    def forward(self, u: torch.Tensor) -> torch.Tensor:  # (N, 1) -> (N, 1)
        return self.net[2](self.activations(u))


class Discriminator(nn.Module):
    """D: x -> logit of "x is real". Two hidden layers of 128 LeakyReLU units.

    Returns logits; the sigmoid lives in the loss (`binary_cross_entropy_with_logits`), which is
    numerically stable where D is very sure.
    """

    def __init__(self, hidden: int = 128) -> None:
        super().__init__()
        self.hidden = hidden
        self.net = nn.Sequential(
            nn.Linear(1, hidden),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden, hidden),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, 1) -> (N, 1) logits
        return self.net(x)


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """-V(G, D): BCE with label 1 for real and 0 for generated samples (eq. 1, negated)."""
    real = F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
    fake = F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
    return real + fake


def generator_loss(fake_logits: torch.Tensor, kind: str = "nonsaturating") -> torch.Tensor:
    """The generator's loss.

    ``"nonsaturating"``: -E[log D(G(u))] (Goodfellow et al. 2014, Sec. 3): strong gradients when
    D rejects G's samples. ``"saturating"``: E[log(1 - D(G(u)))], the minimax term itself, whose
    gradient vanishes exactly when D is winning (lesson 01 shows the failure).
    """
    if kind == "nonsaturating":
        # -log sigmoid(l) = softplus(-l)
        return F.softplus(-fake_logits).mean()
    if kind == "saturating":
        # log(1 - sigmoid(l)) = -softplus(l)
        return -F.softplus(fake_logits).mean()
    raise ValueError(f"kind must be one of {LOSSES}, got {kind!r}")


def value_function(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """V(G, D) = E[log D(x)] + E[log(1 - D(G(u)))] (eq. 1). Equals -log 4 at the equilibrium."""
    return -(F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean())


def discriminator_step(
    D: Discriminator, optimizer: torch.optim.Optimizer, real: torch.Tensor, fake: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One update of D on a real and a generated batch: minimise -V(G, D) with G fixed.

    Returns the loss and D's logits on the real and the fake batch (for logging).
    """
    # One forward pass over [real; fake] (same result as two, half the overhead).
    real_logits, fake_logits = D(torch.cat([real, fake])).chunk(2)
    loss = discriminator_loss(real_logits, fake_logits)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss, real_logits, fake_logits


def sample_data(n: int, seed: int) -> torch.Tensor:
    """The observed sample: ``n`` draws from N(0, 1) as an (n, 1) tensor."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, generator=g)


@dataclass
class History:
    """What training records every step (plain lists, easy to plot)."""

    step: list[int] = field(default_factory=list)
    loss_d: list[float] = field(default_factory=list)
    loss_g: list[float] = field(default_factory=list)
    value: list[float] = field(default_factory=list)  # V(G, D) on the step's batch
    d_real: list[float] = field(default_factory=list)  # mean D(x) on real samples
    d_fake: list[float] = field(default_factory=list)  # mean D(G(u))


@dataclass
class TrainResult:
    """A trained GAN: the (averaged) generator, the discriminator, the data and the history."""

    config: GANConfig
    generator: Generator
    discriminator: Discriminator
    data: torch.Tensor
    history: History

    def sample(self, n: int, seed: int | None = None) -> np.ndarray:
        """``n`` generated samples from fresh uniform noise, as a numpy array."""
        return generate(self.generator, n, seed=seed)


def generate(
    generator: Generator, n: int, seed: int | None = None, noise: torch.Tensor | None = None
) -> np.ndarray:
    """Push ``n`` uniform draws (or the given ``noise`` in [0, 1]) through G; returns shape (n,)."""
    if noise is None:
        g = torch.Generator().manual_seed(seed) if seed is not None else None
        noise = torch.rand(n, 1, generator=g)
    noise = torch.as_tensor(noise, dtype=torch.float32).reshape(-1, 1)
    with torch.no_grad():
        return generator(noise).squeeze(1).numpy()


def _cosine(step: int, total: int) -> float:
    return 0.5 * (1.0 + math.cos(math.pi * step / total))


def train_gan(
    config: GANConfig | None = None,
    callback: Callable[[int, TrainResult], None] | None = None,
    callback_every: int = 100,
    progress: bool = False,
    **overrides,
) -> TrainResult:
    """Train the 1-D GAN with alternating updates: fix G and update D, then fix D and update G.

    ``overrides`` replace fields of ``config`` (``train_gan(steps=500, lr_g=1e-2)``). Seeded and
    deterministic on CPU. ``callback(step, result)`` runs every ``callback_every`` steps (and at
    the end) for live plots; ``result.generator`` is then the current averaged generator.
    """
    config = _replace(config or GANConfig(), overrides)
    torch.manual_seed(config.seed)
    rng = torch.Generator().manual_seed(config.seed)
    data = sample_data(config.n_data, seed=config.seed)
    G, D = Generator(config.g_hidden, config.g_activation), Discriminator(config.d_hidden)
    G_avg = copy.deepcopy(G).requires_grad_(False) if config.ema > 0 else G
    opt_g = torch.optim.Adam(G.parameters(), lr=config.lr_g, betas=(config.beta1, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=config.lr_d, betas=(config.beta1, 0.999))
    history = History()
    result = TrainResult(config, G_avg, D, data, history)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=config.steps, desc="training GAN", leave=False)

    for step in range(1, config.steps + 1):
        if config.lr_decay:
            scale = _cosine(step - 1, config.steps)
            for opt, lr in ((opt_g, config.lr_g), (opt_d, config.lr_d)):
                for group in opt.param_groups:
                    group["lr"] = lr * scale

        # 1) Fix G, update D: minimise -V(G, D) on a real and a generated batch.
        for _ in range(config.d_steps):
            idx = torch.randint(config.n_data, (config.batch_size,), generator=rng)
            u = torch.rand(config.batch_size, 1, generator=rng)
            with torch.no_grad():
                fake = G(u)
            loss_d, real_logits, fake_logits = discriminator_step(D, opt_d, data[idx], fake)

        # 2) Fix D, update G: only G's parameters are stepped.
        u = torch.rand(config.batch_size, 1, generator=rng)
        fake_logits = D(G(u))
        loss_g = generator_loss(fake_logits, config.loss)
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()

        if config.ema > 0:
            with torch.no_grad():  # G_avg <- ema * G_avg + (1 - ema) * G
                for p_avg, p in zip(G_avg.parameters(), G.parameters(), strict=True):
                    p_avg.lerp_(p, 1.0 - config.ema)

        with torch.no_grad():
            history.step.append(step)
            history.loss_d.append(loss_d.item())
            history.loss_g.append(loss_g.item())
            history.value.append(value_function(real_logits, fake_logits.detach()).item())
            history.d_real.append(torch.sigmoid(real_logits).mean().item())
            history.d_fake.append(torch.sigmoid(fake_logits).mean().item())
        if bar is not None:
            bar.update(1)
            if step % 50 == 0:
                bar.set_postfix(loss_d=f"{loss_d.item():.3f}", loss_g=f"{loss_g.item():.3f}")
        if callback is not None and (step % callback_every == 0 or step == config.steps):
            callback(step, result)
    if bar is not None:
        bar.close()
    return result


def _replace(config: GANConfig, overrides: dict) -> GANConfig:
    """``dataclasses.replace`` that names the valid fields when given an unknown one."""
    names = {f.name for f in fields(GANConfig)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise TypeError(f"unknown GANConfig field(s) {unknown}; valid fields: {sorted(names)}")
    return GANConfig(**{**asdict(config), **overrides})


# --- checkpoints -------------------------------------------------------------------------------

CHECKPOINT_KIND = "toy_gan.generator"


class CheckpointError(ValueError):
    """A file that is not a readable toy-GAN generator checkpoint."""


def save_generator(
    generator: Generator, path: str | os.PathLike, config: GANConfig | None = None
) -> Path:
    """Save G as a small dict of tensors and plain values (a few kB), written atomically."""
    from srgan_edu.checkpoint import atomic_write
    from toy_gan import __version__

    payload = {
        "kind": CHECKPOINT_KIND,
        "version": __version__,
        "hidden": generator.hidden,
        "activation": generator.activation,
        "state_dict": {k: v.detach().cpu().clone() for k, v in generator.state_dict().items()},
        "config": asdict(config) if config is not None else None,
    }
    return atomic_write(path, lambda f: torch.save(payload, f))


def load_generator(path: str | os.PathLike) -> Generator:
    """Load a generator saved by :func:`save_generator` (``torch.load(weights_only=True)``).

    Raises :class:`CheckpointError` naming the file when it is missing, unreadable or not a
    toy-GAN generator.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle, zip and torch errors all mean "not a checkpoint"
        raise CheckpointError(
            f"cannot read checkpoint {path}: not a file saved by torch.save "
            f"({type(err).__name__}: {err})"
        ) from err
    if not isinstance(payload, dict) or payload.get("kind") != CHECKPOINT_KIND:
        raise CheckpointError(
            f"{path} is not a toy-GAN generator checkpoint (save one with "
            "toy_gan.gan.save_generator or `python -m toy_gan.anomaly --save-checkpoint PATH`)"
        )
    generator = Generator(int(payload["hidden"]), str(payload.get("activation", "relu")))
    try:
        generator.load_state_dict(payload["state_dict"])
    except (RuntimeError, KeyError, TypeError) as err:
        raise CheckpointError(f"{path}: generator weights do not fit: {err}") from err
    return generator.eval()
