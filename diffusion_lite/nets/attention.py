"""Attention for the U-Net: self-attention over pixels and cross-attention to a context (prompts).

    Attention(q, k, v) = softmax(q k^T / sqrt(d)) v                     (eq-attention)

per head (Vaswani et al. 2017, Eq. 1). Self-attention takes q, k and v from the feature map, so
every position can look at every other one; it costs O((H W)^2), which is why the U-Net uses it
only at low resolution (chapter 06). Cross-attention takes q from the feature map and k, v from a
context sequence (B, L, cond_dim) such as the token states of a text encoder (chapter 11).
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from .._checks import check_int


class AttentionBlock(nn.Module):
    """Self-attention over the H*W positions, then (if cond_dim) cross-attention to a context."""

    def __init__(self, channels: int, heads: int, groups: int, cond_dim: int | None = None):
        super().__init__()
        for name, value in (("channels", channels), ("heads", heads), ("groups", groups)):
            check_int(name, value, low=1)
        if channels % heads or channels % groups:
            raise ValueError(f"channels ({channels}) must be a multiple of heads ({heads}) and of groups ({groups})")
        if cond_dim is not None:
            check_int("cond_dim", cond_dim, low=1)
        self.heads = heads
        self.norm = nn.GroupNorm(groups, channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)
        self.cross = cond_dim is not None
        if self.cross:
            self.norm_cross = nn.GroupNorm(groups, channels)
            self.q_cross = nn.Linear(channels, channels)
            self.kv_cross = nn.Linear(cond_dim, 2 * channels)  # keys and values come from the context
            self.proj_cross = nn.Linear(channels, channels)

    def attend(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        """softmax(q k^T / sqrt(d)) v per head (eq-attention; Vaswani et al. 2017, Eq. 1).
        q: (B, N, C), k and v: (B, L, C) -> (B, N, C)."""
        B, N, C = q.shape
        q, k, v = (z.reshape(B, z.shape[1], self.heads, C // self.heads).transpose(1, 2)
                   for z in (q, k, v))  # (B, heads, N or L, C / heads)
        out = F.scaled_dot_product_attention(q, k, v)  # (B, heads, N, C / heads)
        return out.transpose(1, 2).reshape(B, N, C)

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        B, C, H, W = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(B, 3, C, H * W).transpose(2, 3).unbind(1)  # (B, HW, C) each
        h = self.attend(q, k, v)  # (B, HW, C)
        x = x + self.proj(h.transpose(1, 2).reshape(B, C, H, W))
        if self.cross:
            q = self.q_cross(self.norm_cross(x).reshape(B, C, H * W).transpose(1, 2))  # (B, HW, C)
            k, v = self.kv_cross(context).chunk(2, dim=-1)  # (B, L, C) each
            h = self.proj_cross(self.attend(q, k, v))  # (B, HW, C)
            x = x + h.transpose(1, 2).reshape(B, C, H, W)
        return x
