"""A small GAN: a generator z -> x and a discriminator x -> logit, for 2-D points or 28x28 images.

Chapter 15 sets GANs beside diffusion. Two shapes of data, one config:
- "points": MLPs (ReLU in the generator, LeakyReLU in the discriminator) for the 2-D toy data.
- "mnist": DCGAN-style convolutions (Radford et al. 2016): the generator projects z to a 7x7 map
  and upsamples twice with transposed convolutions (BatchNorm + ReLU, tanh output in [-1, 1]); the
  discriminator mirrors it with strided convolutions and LeakyReLU(0.2), no BatchNorm (so a
  gradient penalty on its input is well defined per sample).
spectral_norm=True wraps every discriminator layer in spectral normalisation (Miyato et al. 2018),
one of the usual stabilisers; the losses (and the R1 penalty) live in training/gan.py.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .._checks import check_generator, check_int, check_tensor

SHAPES = ("points", "mnist")


@dataclass(frozen=True)
class GANConfig:
    """Sizes of a Generator / Discriminator pair."""

    data: str = "points"         # "points" (2-D MLPs) or "mnist" (DCGAN-style, 1 x 28 x 28)
    z_dim: int = 8               # size of the latent z ~ N(0, I) the generator maps to data
    width: int = 128             # points: hidden units per layer; mnist: channels of the widest conv
    depth: int = 3               # points: hidden layers of each MLP (ignored for mnist)
    spectral_norm: bool = False  # spectral normalisation on every discriminator layer (Miyato et al. 2018)

    def __post_init__(self):
        if self.data not in SHAPES:
            raise ValueError(f"data must be one of {SHAPES}, got {self.data!r}")
        check_int("z_dim", self.z_dim, low=1)
        check_int("width", self.width, low=4 if self.data == "mnist" else 1)
        check_int("depth", self.depth, low=1)
        if not isinstance(self.spectral_norm, bool):
            raise TypeError(f"spectral_norm must be a bool, got {type(self.spectral_norm).__name__}")

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """Shape of one data point: (2,) or (1, 28, 28)."""
        return (2,) if self.data == "points" else (1, 28, 28)


def _check_config(config) -> None:
    if not isinstance(config, GANConfig):
        raise TypeError(f"config must be a GANConfig, got {type(config).__name__}")


class GANGenerator(nn.Module):
    """forward(z (B, z_dim)) -> x (B, 2) or (B, 1, 28, 28) in [-1, 1]."""

    def __init__(self, config: GANConfig = GANConfig()):
        super().__init__()
        _check_config(config)
        self.config = c = config
        if c.data == "points":
            layers, d = [], c.z_dim
            for _ in range(c.depth):
                layers += [nn.Linear(d, c.width), nn.ReLU()]
                d = c.width
            self.net = nn.Sequential(*layers, nn.Linear(d, 2))
        else:
            w = c.width                                       # channels at 7x7; 14x14 gets w // 2
            self.net = nn.Sequential(
                nn.Linear(c.z_dim, w * 7 * 7), nn.Unflatten(1, (w, 7, 7)), nn.BatchNorm2d(w), nn.ReLU(),
                nn.ConvTranspose2d(w, w // 2, 4, stride=2, padding=1), nn.BatchNorm2d(w // 2), nn.ReLU(),
                nn.ConvTranspose2d(w // 2, 1, 4, stride=2, padding=1), nn.Tanh())   # (B, 1, 28, 28)

    def forward(self, z: Tensor) -> Tensor:
        check_tensor("z", z, min_dim=2)
        if z.dim() != 2 or z.shape[1] != self.config.z_dim:
            raise ValueError(f"z must have shape (B, {self.config.z_dim}), got {tuple(z.shape)}")
        return self.net(z)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n samples from z ~ N(0, I) drawn with `generator` (eval mode: BatchNorm running stats)."""
        check_int("n", n, low=1)
        device = next(self.parameters()).device
        check_generator("generator", generator, device)
        was_training = self.training
        self.eval()
        x = self(torch.randn(n, self.config.z_dim, generator=generator, device=device))
        self.train(was_training)
        return x


class GANDiscriminator(nn.Module):
    """forward(x (B, 2) or (B, 1, 28, 28)) -> logit (B,): large where x looks like data."""

    def __init__(self, config: GANConfig = GANConfig()):
        super().__init__()
        _check_config(config)
        self.config = c = config
        sn = nn.utils.parametrizations.spectral_norm if c.spectral_norm else (lambda m: m)
        if c.data == "points":
            layers, d = [], 2
            for _ in range(c.depth):
                layers += [sn(nn.Linear(d, c.width)), nn.LeakyReLU(0.2)]
                d = c.width
            self.net = nn.Sequential(*layers, sn(nn.Linear(d, 1)))
        else:
            w = c.width
            self.net = nn.Sequential(
                sn(nn.Conv2d(1, w // 2, 4, stride=2, padding=1)), nn.LeakyReLU(0.2),     # (B, w/2, 14, 14)
                sn(nn.Conv2d(w // 2, w, 4, stride=2, padding=1)), nn.LeakyReLU(0.2),     # (B, w, 7, 7)
                nn.Flatten(), sn(nn.Linear(w * 7 * 7, 1)))

    def forward(self, x: Tensor) -> Tensor:
        check_tensor("x", x, min_dim=2)
        shape = self.config.sample_shape
        if tuple(x.shape[1:]) != shape:
            raise ValueError(f"x must have shape (B, {', '.join(map(str, shape))}) for this discriminator, "
                             f"got {tuple(x.shape)}")
        return self.net(x).squeeze(1)
