"""Super-resolution as a conditional model: a U-Net that sees x_t beside the upsampled low-res image.

SR3 (Saharia et al. 2022) conditions a denoiser on a low-resolution image y by upsampling y to the
output size and concatenating it to x_t along the channels (eq-sr-concat):

    eps_hat = UNet([x_t, up(y)], t),   up = bicubic interpolation to H x W

so the U-Net has in_channels = 2 C and out_channels = C. `SuperResModel` wraps such a U-Net in the
model seam model(x_t, t, cond=y): the samplers pass y as cond. The same wrapper serves the plain
regression baseline, trained to output x0 directly (training/superres.py). `downsample` makes the
low-resolution inputs (area averaging, which is also the consistency check's operator).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._checks import check_int, check_tensor
from .unet import UNet


def downsample(x: Tensor, size: int) -> Tensor:
    """Average-pool images (B, C, H, W) to (B, C, size, size); H must be a multiple of size."""
    check_tensor("x", x, min_dim=4)
    size = check_int("size", size, low=1)
    if x.dim() != 4 or x.shape[2] != x.shape[3] or x.shape[2] % size:
        raise ValueError(f"x must be square images (B, C, H, H) with H a multiple of size={size}, "
                         f"got {tuple(x.shape)}")
    return F.adaptive_avg_pool2d(x, size)


def upsample(y: Tensor, size: int) -> Tensor:
    """Bicubic upsampling of y (B, C, h, h) to (B, C, size, size), clamped to [-1, 1]."""
    check_tensor("y", y, min_dim=4)
    size = check_int("size", size, low=1)
    return F.interpolate(y, size=(size, size), mode="bicubic", align_corners=False).clamp(-1.0, 1.0)


class SuperResModel(nn.Module):
    """model(x_t (B, C, H, H), t, cond=y (B, C, low_size, low_size)) = unet([x_t, up(y)], t)."""

    def __init__(self, unet: UNet, low_size: int, size: int = 28):
        super().__init__()
        if not isinstance(unet, UNet):
            raise TypeError(f"unet must be a UNet, got {type(unet).__name__}")
        self.low_size = check_int("low_size", low_size, low=1)
        self.size = check_int("size", size, low=low_size)
        u = unet.config
        out = u.out_channels or u.in_channels
        if u.in_channels != 2 * out:
            raise ValueError(f"unet must read x_t and the upsampled image side by side: in_channels = 2 * "
                             f"out_channels, got in_channels={u.in_channels}, out_channels={out}")
        self.unet, self.channels = unet, out

    def forward(self, x_t: Tensor, t, cond: Tensor | None = None) -> Tensor:
        if cond is None:
            raise ValueError("cond (the low-resolution image) is required: SuperResModel has no unconditional mode")
        check_tensor("x_t", x_t, min_dim=4)
        if x_t.dim() != 4 or tuple(x_t.shape[1:]) != (self.channels, self.size, self.size):
            raise ValueError(f"x_t must have shape (B, {self.channels}, {self.size}, {self.size}), got {tuple(x_t.shape)}")
        check_tensor("cond", cond, min_dim=4)
        want = (x_t.shape[0], self.channels, self.low_size, self.low_size)
        if tuple(cond.shape) != want:
            raise ValueError(f"cond, the low-resolution image, must have shape {want}, got {tuple(cond.shape)}")
        return self.unet(torch.cat([x_t, upsample(cond, self.size).to(x_t.dtype)], dim=1), t)  # eq-sr-concat
