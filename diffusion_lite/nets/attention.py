"""Attention for the U-Net: self-attention over pixels and cross-attention to a context (prompts).

    Attention(q, k, v) = softmax(q k^T / sqrt(d)) v                     (eq-attention)

per head (Vaswani et al. 2017, Eq. 1). Self-attention takes q, k and v from the feature map, so
every position can look at every other one; it costs O((H W)^2), which is why the U-Net uses it
only at low resolution (chapter 06). Cross-attention takes q from the feature map and k, v from a
context sequence (B, L, cond_dim) such as the token states of a text encoder (chapter 11). Prompts
of different lengths are padded to one L; a padding mask (B, L), True for a real token, keeps the
padded positions out of the softmax:

    Attention(q, k, v; m) = softmax(q k^T / sqrt(d) + log m) v          (eq-masked-attention)

where log m is 0 for a real token and -inf for a padded one, so a padded token gets weight exactly 0
and its state cannot change the output.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._checks import check_int, check_tensor


def split_context(cond, batch: int, cond_dim: int) -> tuple[Tensor, Tensor | None]:
    """(context (B, L, cond_dim), mask (B, L) bool or None) from cond: a context (B, L, cond_dim), a
    single vector per sample (B, cond_dim), or a tuple (context, mask) with True = a real token."""
    mask = None
    if isinstance(cond, tuple):
        if len(cond) != 2:
            raise ValueError(f"cond as a tuple must be (context, mask), got {len(cond)} items")
        cond, mask = cond
    check_tensor("cond", cond)
    context = cond[:, None, :] if cond.dim() == 2 else cond  # (B, L, cond_dim)
    if context.dim() != 3 or context.shape[0] != batch or context.shape[2] != cond_dim:
        raise ValueError(f"cond must be a context of shape ({batch}, L, {cond_dim}) or ({batch}, {cond_dim}), "
                         f"got {tuple(cond.shape)}")
    if mask is not None:
        if not isinstance(mask, Tensor) or mask.dtype != torch.bool:
            raise TypeError(f"mask must be a bool tensor (True = a real token), got {mask!r:.80}")
        if mask.shape != context.shape[:2]:
            raise ValueError(f"mask must have shape {tuple(context.shape[:2])} (one entry per context token), "
                             f"got {tuple(mask.shape)}")
        if mask.device.type == "cpu" and not bool(mask.any(dim=1).all()):  # CPU only: no device sync
            raise ValueError("mask must keep at least one token of every sample (a row of False has no softmax)")
    return context, mask


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

    def attend(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None) -> Tensor:
        """softmax(q k^T / sqrt(d)) v per head (eq-attention; Vaswani et al. 2017, Eq. 1).
        q: (B, N, C), k and v: (B, L, C), mask: None or (B, L) bool, True = attend
        (eq-masked-attention) -> (B, N, C)."""
        B, N, C = q.shape
        q, k, v = (z.reshape(B, z.shape[1], self.heads, C // self.heads).transpose(1, 2)
                   for z in (q, k, v))  # (B, heads, N or L, C / heads)
        attn_mask = None if mask is None else mask[:, None, None, :]  # (B, 1, 1, L): same for heads, queries
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)  # (B, heads, N, C / heads)
        return out.transpose(1, 2).reshape(B, N, C)

    def forward(self, x: Tensor, context: Tensor | None = None, mask: Tensor | None = None) -> Tensor:
        """x (B, C, H, W); context (B, L, cond_dim) and its mask (B, L) bool (None: every token is real)."""
        B, C, H, W = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(B, 3, C, H * W).transpose(2, 3).unbind(1)  # (B, HW, C) each
        h = self.attend(q, k, v)  # (B, HW, C)
        x = x + self.proj(h.transpose(1, 2).reshape(B, C, H, W))
        if self.cross:
            q = self.q_cross(self.norm_cross(x).reshape(B, C, H * W).transpose(1, 2))  # (B, HW, C)
            k, v = self.kv_cross(context).chunk(2, dim=-1)  # (B, L, C) each
            h = self.proj_cross(self.attend(q, k, v, mask))  # (B, HW, C), padded tokens weigh 0
            x = x + h.transpose(1, 2).reshape(B, C, H, W)
        return x
