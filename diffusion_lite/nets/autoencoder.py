"""A small convolutional KL autoencoder: 28x28x1 images <-> 7x7xc latents (latent diffusion, chapter 12).

    encoder:  x (B, 1, 28, 28) -> conv -> down -> down -> (mean, logvar), each (B, c, 7, 7)
    sample:   z = mean + exp(logvar / 2) * n,  n ~ N(0, I)              (eq-vae-reparam)
    decoder:  z (B, c, 7, 7) -> conv -> up -> up -> x_hat (B, 1, 28, 28)

It is trained (training/autoencoder.py) on reconstruction error plus a small KL term towards
N(0, I) (eq-vae-kl), which keeps the latent space smooth without forcing it to be a unit Gaussian
(Rombach et al. 2022, Sec. 3 and App. G). The KL weight is small, so the latents do not have unit
variance by themselves: `scale` (a buffer, saved with the weights) is measured from data after
training so that scale * z has unit variance, as Stable Diffusion's 0.18215 (Rombach et al. 2022,
Sec. 4.3.2). `encode_latents` and `decode_latents` work in that scaled space, the one the latent
diffusion model is trained and sampled in.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .._checks import check_generator, check_int, check_on_device, check_tensor


@dataclass(frozen=True)
class AutoencoderConfig:
    """Sizes of an Autoencoder for 1 x 28 x 28 images."""

    latent_channels: int = 4    # c of the 7x7xc latent (2 to 4: 98 to 196 numbers for 784 pixels)
    base_channels: int = 32     # channels at 28x28; 14x14 and 7x7 use 2x this
    groups: int = 8             # GroupNorm groups; must divide base_channels
    image_channels: int = 1     # channels of the images (1 for MNIST)

    def __post_init__(self):
        check_int("latent_channels", self.latent_channels, low=1)
        check_int("base_channels", self.base_channels, low=1)
        check_int("groups", self.groups, low=1)
        check_int("image_channels", self.image_channels, low=1)
        if self.base_channels % self.groups:
            raise ValueError(f"groups ({self.groups}) must divide base_channels ({self.base_channels})")

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        """(c, 7, 7): the shape of one latent."""
        return (self.latent_channels, 7, 7)


def _block(ch_in: int, ch_out: int, groups: int) -> nn.Sequential:
    """conv3x3 -> GroupNorm -> SiLU."""
    return nn.Sequential(nn.Conv2d(ch_in, ch_out, 3, padding=1), nn.GroupNorm(groups, ch_out), nn.SiLU())


def gaussian_kl_standard(mean: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mean, exp(logvar)) || N(0, I)) per sample, summed over the latent dimensions.

    eq-vae-kl (Kingma & Welling 2014, App. B): 1/2 sum(mean^2 + exp(logvar) - 1 - logvar).
    """
    check_tensor("mean", mean, min_dim=2)
    check_tensor("logvar", logvar, min_dim=2)
    if mean.shape != logvar.shape:
        raise ValueError(f"mean and logvar must have the same shape, got {tuple(mean.shape)} and "
                         f"{tuple(logvar.shape)}")
    return 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).flatten(1).sum(1)  # (B,)


class Autoencoder(nn.Module):
    """encode(x) -> (mean, logvar); decode(z) -> x_hat; encode_latents / decode_latents use `scale`."""

    def __init__(self, config: AutoencoderConfig = AutoencoderConfig()):
        super().__init__()
        if not isinstance(config, AutoencoderConfig):
            raise TypeError(f"config must be an AutoencoderConfig, got {type(config).__name__}")
        self.config = c = config
        b, g = c.base_channels, c.groups
        self.encoder = nn.Sequential(
            _block(c.image_channels, b, g),                                   # (B, b, 28, 28)
            nn.Conv2d(b, 2 * b, 3, stride=2, padding=1), _block(2 * b, 2 * b, g),  # (B, 2b, 14, 14)
            nn.Conv2d(2 * b, 2 * b, 3, stride=2, padding=1), _block(2 * b, 2 * b, g),  # (B, 2b, 7, 7)
            nn.Conv2d(2 * b, 2 * c.latent_channels, 1))                      # (B, 2c, 7, 7)
        self.decoder = nn.Sequential(
            _block(c.latent_channels, 2 * b, g), _block(2 * b, 2 * b, g),    # (B, 2b, 7, 7)
            nn.Upsample(scale_factor=2.0, mode="nearest"), _block(2 * b, b, g),  # (B, b, 14, 14)
            nn.Upsample(scale_factor=2.0, mode="nearest"), _block(b, b, g),  # (B, b, 28, 28)
            nn.Conv2d(b, c.image_channels, 3, padding=1))                    # (B, 1, 28, 28)
        # scale * z has unit variance on the training data; 1 until measured (training/autoencoder.py)
        self.register_buffer("scale", torch.ones(()))

    def _check(self, name: str, x: Tensor, shape: tuple[int, ...]) -> None:
        check_tensor(name, x)
        if x.dim() != 4 or tuple(x.shape[1:]) != shape:
            raise ValueError(f"{name} must have shape (B, {', '.join(map(str, shape))}) for this autoencoder, "
                             f"got {tuple(x.shape)}")
        check_on_device(name, x, self.scale, "Autoencoder")

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(mean, logvar) of q(z | x), each (B, c, 7, 7), for images x (B, 1, 28, 28) in [-1, 1]."""
        self._check("x", x, (self.config.image_channels, 28, 28))
        mean, logvar = self.encoder(x).chunk(2, dim=1)
        return mean, logvar.clamp(-30.0, 20.0)  # keeps exp(logvar) finite early in training

    def decode(self, z: Tensor) -> Tensor:
        """x_hat (B, 1, 28, 28) for unscaled latents z (B, c, 7, 7)."""
        self._check("z", z, self.config.latent_shape)
        return self.decoder(z)

    def forward(self, x: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """(x_hat, mean, logvar): reconstruct x through a sampled latent (eq-vae-reparam)."""
        check_generator("generator", generator, x.device)
        mean, logvar = self.encode(x)
        n = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        z = mean + (0.5 * logvar).exp() * n  # eq-vae-reparam (Kingma & Welling 2014, Eq. 10)
        return self.decoder(z), mean, logvar

    def encode_latents(self, x: Tensor) -> Tensor:
        """scale * mean(z | x), (B, c, 7, 7): the unit-variance latents latent diffusion works on."""
        return self.encode(x)[0] * self.scale

    def decode_latents(self, z: Tensor) -> Tensor:
        """Images (B, 1, 28, 28) from scaled latents: decode(z / scale)."""
        self._check("z", z, self.config.latent_shape)
        return self.decoder(z / self.scale)

    @torch.no_grad()
    def measure_scale(self, x: Tensor, batch: int = 1000) -> float:
        """Set `scale` = 1 / std of the latent means over images x and return it (eq-latent-scale)."""
        check_int("batch", batch, low=1)
        self._check("x", x, (self.config.image_channels, 28, 28))
        means = torch.cat([self.encode(x[i:i + batch])[0] for i in range(0, len(x), batch)])
        std = float(means.float().std())
        if not std > 0:
            raise ValueError("the latents have zero spread on these images; train the autoencoder first")
        self.scale.fill_(1.0 / std)
        return 1.0 / std

