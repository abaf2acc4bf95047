"""A small VAE: an encoder q(z | x), a decoder p(x | z), and sampling from the prior.

The model of Kingma & Welling (2014): encode x to the mean and log-variance of a Gaussian
q(z | x), draw z = mu + exp(logvar / 2) * eps, decode to the mean of a Gaussian p(x | z) with one
learned log-variance per data dimension. Sampling draws z ~ N(0, I) and decodes it; with
`noise=True` it also adds the decoder's Gaussian noise (the model's actual distribution; for images
the decoder mean is what is shown). The ELBO (eq-vae-elbo) is in training/vae.py.
- "points": MLP encoder and decoder for the 2-D toy data.
- "mnist": strided convolutions down to 7x7 and transposed convolutions back, outputs in [-1, 1].
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .._checks import check_generator, check_int, check_tensor

SHAPES = ("points", "mnist")


@dataclass(frozen=True)
class VAEConfig:
    """Sizes of a VAE."""

    data: str = "points"   # "points" (2-D MLPs) or "mnist" (convolutions, 1 x 28 x 28)
    z_dim: int = 2         # size of the latent z; prior N(0, I)
    width: int = 128       # points: hidden units per layer; mnist: channels at 7x7
    depth: int = 3         # points: hidden layers of encoder and decoder (ignored for mnist)

    def __post_init__(self):
        if self.data not in SHAPES:
            raise ValueError(f"data must be one of {SHAPES}, got {self.data!r}")
        check_int("z_dim", self.z_dim, low=1)
        check_int("width", self.width, low=4 if self.data == "mnist" else 1)
        check_int("depth", self.depth, low=1)

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return (2,) if self.data == "points" else (1, 28, 28)


def _mlp(d_in: int, width: int, depth: int, d_out: int) -> nn.Sequential:
    layers = []
    for _ in range(depth):
        layers += [nn.Linear(d_in, width), nn.SiLU()]
        d_in = width
    return nn.Sequential(*layers, nn.Linear(d_in, d_out))


class VAE(nn.Module):
    """encode(x) -> (mu, logvar) of q(z|x); decode(z) -> mean of p(x|z); forward(x) -> (x_mean, mu, logvar)."""

    def __init__(self, config: VAEConfig = VAEConfig()):
        super().__init__()
        if not isinstance(config, VAEConfig):
            raise TypeError(f"config must be a VAEConfig, got {type(config).__name__}")
        self.config = c = config
        if c.data == "points":
            self.encoder = _mlp(2, c.width, c.depth, 2 * c.z_dim)
            self.decoder = _mlp(c.z_dim, c.width, c.depth, 2)
        else:
            w = c.width
            self.encoder = nn.Sequential(
                nn.Conv2d(1, w // 2, 4, stride=2, padding=1), nn.SiLU(),          # (B, w/2, 14, 14)
                nn.Conv2d(w // 2, w, 4, stride=2, padding=1), nn.SiLU(),          # (B, w, 7, 7)
                nn.Flatten(), nn.Linear(w * 7 * 7, 2 * c.z_dim))
            self.decoder = nn.Sequential(
                nn.Linear(c.z_dim, w * 7 * 7), nn.SiLU(), nn.Unflatten(1, (w, 7, 7)),
                nn.ConvTranspose2d(w, w // 2, 4, stride=2, padding=1), nn.SiLU(),
                nn.ConvTranspose2d(w // 2, 1, 4, stride=2, padding=1), nn.Tanh())  # (B, 1, 28, 28)
        # log-variance of p(x | z), one per data dimension (images: one per pixel)
        self.log_var_x = nn.Parameter(torch.zeros(c.sample_shape))

    def _check_x(self, x: Tensor) -> None:
        check_tensor("x", x, min_dim=2)
        if tuple(x.shape[1:]) != self.config.sample_shape:
            shape = ", ".join(map(str, self.config.sample_shape))
            raise ValueError(f"x must have shape (B, {shape}) for this VAE, got {tuple(x.shape)}")

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        self._check_x(x)
        mu, logvar = self.encoder(x).chunk(2, dim=1)          # (B, z_dim) each
        return mu, logvar

    def decode(self, z: Tensor) -> Tensor:
        check_tensor("z", z, min_dim=2)
        if z.dim() != 2 or z.shape[1] != self.config.z_dim:
            raise ValueError(f"z must have shape (B, {self.config.z_dim}), got {tuple(z.shape)}")
        return self.decoder(z)

    def forward(self, x: Tensor, eps: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """(x_mean, mu, logvar): reconstruct x through z = mu + exp(logvar / 2) * eps."""
        mu, logvar = self.encode(x)
        eps = torch.randn_like(mu) if eps is None else eps
        return self.decode(mu + (0.5 * logvar).exp() * eps), mu, logvar

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, noise: bool = False) -> Tensor:
        """n samples: z ~ N(0, I), decoded; noise=True adds the decoder's N(0, exp(log_var_x))."""
        check_int("n", n, low=1)
        device = self.log_var_x.device
        check_generator("generator", generator, device)
        x = self.decode(torch.randn(n, self.config.z_dim, generator=generator, device=device))
        if noise:
            x = x + (0.5 * self.log_var_x).exp() * torch.randn(x.shape, generator=generator, device=device)
        return x
