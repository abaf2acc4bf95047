"""A time-conditioned classifier p_phi(y | x_t, t) for noisy images: the classifier of classifier guidance.

Classifier guidance (Dhariwal & Nichol 2021, Sec. 4) needs grad_x log p(y | x_t) at every noise level
the sampler visits, so the classifier must read noisy x_t and know t. This one is a small CNN whose
conv blocks are shifted by the timestep features (FiLM: a per-channel scale and shift from the
embedding of t, as in the U-Net's ResBlocks), then pooled and read out to one logit per class.
It knows nothing about diffusion: training it on x_t ~ q(x_t | x0) lives in training/conditional.py.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor, nn

from .._checks import check_int, check_tensor
from .embeddings import TimeEmbedding, check_model_timesteps


@dataclass(frozen=True)
class NoisyClassifierConfig:
    in_channels: int = 1                 # image channels
    num_classes: int = 10                # classes y = 0 .. num_classes - 1
    widths: tuple[int, ...] = (32, 64, 64)  # channels of the conv blocks; each block but the last halves H, W
    emb_dim: int = 64                    # width of the time embedding fed to every block (FiLM)
    groups: int = 8                      # GroupNorm groups (divides every width)

    def __post_init__(self):
        check_int("in_channels", self.in_channels, low=1)
        check_int("num_classes", self.num_classes, low=2)
        check_int("emb_dim", self.emb_dim, low=2)
        check_int("groups", self.groups, low=1)
        if not isinstance(self.widths, tuple) or not 1 <= len(self.widths) <= 4:
            raise ValueError(f"widths must be a tuple of 1 to 4 channel counts, got {self.widths!r}")
        for w in self.widths:
            check_int("widths entries", w, low=1)
            if w % self.groups:
                raise ValueError(f"widths entries must be multiples of groups ({self.groups}), got {w}")


class _Block(nn.Module):
    """conv3x3 -> GroupNorm -> FiLM(t) -> SiLU."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int, groups: int):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.norm = nn.GroupNorm(groups, c_out)
        self.film = nn.Linear(emb_dim, 2 * c_out)

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        scale, shift = self.film(emb)[:, :, None, None].chunk(2, dim=1)  # (B, C, 1, 1) each
        return F.silu(self.norm(self.conv(x)) * (1 + scale) + shift)


class NoisyClassifier(nn.Module):
    """forward(x_t (B, C, H, W), t (B,) or int) -> logits (B, num_classes) of p_phi(y | x_t, t)."""

    def __init__(self, config: NoisyClassifierConfig = NoisyClassifierConfig()):
        super().__init__()
        if not isinstance(config, NoisyClassifierConfig):
            raise TypeError(f"config must be a NoisyClassifierConfig, got {type(config).__name__}")
        c = self.config = config
        self.time_embed = TimeEmbedding(c.emb_dim, c.emb_dim)
        chans = (c.in_channels,) + c.widths
        self.blocks = nn.ModuleList(_Block(a, b, c.emb_dim, c.groups) for a, b in zip(chans[:-1], chans[1:]))
        self.head = nn.Linear(c.widths[-1], c.num_classes)

    def forward(self, x_t: Tensor, t) -> Tensor:
        check_tensor("x_t", x_t, min_dim=4)
        if x_t.dim() != 4 or x_t.shape[1] != self.config.in_channels:
            raise ValueError(f"x_t must have shape (B, {self.config.in_channels}, H, W), got {tuple(x_t.shape)}")
        t = check_model_timesteps(t, x_t.shape[0], x_t)
        emb = self.time_embed(t)  # (B, emb_dim)
        h = x_t
        for i, block in enumerate(self.blocks):
            h = block(h, emb)
            if i < len(self.blocks) - 1:
                h = F.avg_pool2d(h, 2)  # (B, C, H/2, W/2): smooth in x, so the gradient is smooth too
        return self.head(h.mean(dim=(2, 3)))  # global average pool -> (B, num_classes)
