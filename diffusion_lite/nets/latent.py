"""A latent diffusion model as a model: a denoiser of 7x7xc latents plus the decoder back to pixels.

Latent diffusion (Rombach et al. 2022) trains and samples an ordinary diffusion model on
z = scale * E(x), the scaled latents of a frozen autoencoder (eq-latent-scale), and decodes once at
the end: x = D(z_0 / scale). `LatentModel` keeps the model seam of every sampler,

    model(z_t, t, cond=None) -> eps_hat        (z_t of shape (B, c, 7, 7))

so samplers, guidance and editing run on latents unchanged; `decode` maps the sampler's output to
images, `encode` maps images to the sampler's space (for editing and inpainting in latent space).
"""
from __future__ import annotations

from torch import Tensor, nn

from .autoencoder import Autoencoder
from .unet import UNet


class LatentModel(nn.Module):
    """A UNet on the autoencoder's scaled latents; forward is the UNet, decode/encode cross to pixels."""

    def __init__(self, unet: UNet, autoencoder: Autoencoder):
        super().__init__()
        if not isinstance(unet, UNet):
            raise TypeError(f"unet must be a UNet, got {type(unet).__name__}")
        if not isinstance(autoencoder, Autoencoder):
            raise TypeError(f"autoencoder must be an Autoencoder, got {type(autoencoder).__name__}")
        c, u = autoencoder.config.latent_channels, unet.config
        if u.in_channels != c or (u.out_channels or u.in_channels) != c:
            raise ValueError(f"unet must read and predict the autoencoder's {c} latent channels "
                             f"(latent shape {autoencoder.config.latent_shape}), got in_channels={u.in_channels}, "
                             f"out_channels={u.out_channels or u.in_channels}")
        factor = u.patch_size * 2 ** (len(u.channel_mults) - 1)
        if 7 % factor:
            raise ValueError(f"unet must run on 7x7 latents: it halves its input {len(u.channel_mults) - 1} times "
                             f"(channel_mults={u.channel_mults}, patch_size={u.patch_size}); use channel_mults "
                             "with one level, e.g. (1,)")
        self.unet, self.autoencoder = unet, autoencoder.requires_grad_(False)

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        """(c, 7, 7): the shape of one sample in the sampler's space."""
        return self.autoencoder.config.latent_shape

    def forward(self, z_t: Tensor, t, cond=None) -> Tensor:
        """eps_hat for scaled latents z_t (B, c, 7, 7)."""
        return self.unet(z_t, t) if cond is None else self.unet(z_t, t, cond)

    def decode(self, z0: Tensor) -> Tensor:
        """Images (B, 1, 28, 28) from sampled scaled latents z0 (B, c, 7, 7)."""
        return self.autoencoder.decode_latents(z0)

    def encode(self, x: Tensor) -> Tensor:
        """Scaled latents (B, c, 7, 7) of images x (B, 1, 28, 28)."""
        return self.autoencoder.encode_latents(x)
