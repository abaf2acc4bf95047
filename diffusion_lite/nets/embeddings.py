"""Sinusoidal timestep embeddings: how a denoiser is told which noise level t it is looking at.

    freq_k = max_period ** (-k / half),  k = 0 .. half-1,  half = dim // 2
    emb(t) = [cos(t * freq_0), ..., cos(t * freq_{half-1}), sin(t * freq_0), ..., sin(t * freq_{half-1})]

(eq-timestep-embedding; the positional encoding of Vaswani et al. 2017, Sec. 3.5, used for the
diffusion step by Ho et al. 2020, Appendix B). Low k gives fast-turning features that tell close
steps apart; high k gives slow ones that vary smoothly over the whole range 0..T. The MLP and the
U-Net both use this one function, followed by a small learned MLP (`TimeEmbedding`).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .._checks import check_float, check_int


def check_model_timesteps(t, batch: int, like: Tensor) -> Tensor:
    """Timesteps for a network: an int or a (B,) / () tensor of non-negative steps -> (B,) on like's device.

    Integer steps are the normal case; real-valued t (continuous-time samplers) are accepted too.
    """
    if isinstance(t, bool) or not isinstance(t, (int, float, Tensor)):
        raise TypeError(f"t must be an int or a tensor of timesteps, got {type(t).__name__}")
    t = torch.as_tensor(t, device=like.device)
    if t.dtype == torch.bool or t.is_complex():
        raise TypeError(f"t must hold integer (or real) timesteps, got dtype {t.dtype}")
    if t.dim() == 0:
        t = t.expand(batch)  # one step for the whole batch
    if t.dim() != 1 or t.shape[0] != batch:
        raise ValueError(f"t must be an int or have shape ({batch},) to match the batch, got shape {tuple(t.shape)}")
    if t.device.type != "cpu":  # meta: no values; an accelerator: reading them would sync every call
        return t
    if t.is_floating_point() and not bool(torch.isfinite(t).all()):
        raise ValueError("t contains NaN or infinite values")
    if bool((t < 0).any()):
        raise ValueError(f"t must be >= 0, got a minimum of {t.min().item()}")
    return t


def timestep_embedding(t: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """(B,) timesteps -> (B, dim) float32 sinusoidal features [cos | sin] (eq-timestep-embedding).

    Vaswani et al. 2017, Sec. 3.5; Ho et al. 2020, Appendix B. An odd dim gets one zero column.
    """
    dim = check_int("dim", dim, low=1)
    max_period = check_float("max_period", max_period, low=1.0, low_open=True)
    if not isinstance(t, Tensor) or t.dim() != 1:
        raise ValueError(f"t must be a 1-D tensor of timesteps, got {t!r:.60}")
    if t.dtype == torch.bool or t.is_complex():
        raise TypeError(f"t must hold integer (or real) timesteps, got dtype {t.dtype}")
    if t.is_floating_point() and t.device.type == "cpu" and not bool(torch.isfinite(t).all()):  # no sync
        raise ValueError("t contains NaN or infinite values")
    half = dim // 2
    k = torch.arange(half, dtype=torch.float32, device=t.device)
    freqs = torch.exp(-math.log(max_period) * k / max(half, 1))  # (half,)
    args = t.float()[:, None] * freqs[None, :]  # (B, half)
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=1)  # (B, 2 * half)
    if dim % 2:
        emb = torch.cat([emb, emb.new_zeros(emb.shape[0], 1)], dim=1)  # (B, dim)
    return emb


class TimeEmbedding(nn.Module):
    """Sinusoidal features of t followed by a 2-layer MLP: (B,) -> (B, out_dim)."""

    def __init__(self, sinusoid_dim: int, out_dim: int):
        super().__init__()
        check_int("sinusoid_dim", sinusoid_dim, low=2)
        if sinusoid_dim % 2:
            raise ValueError(f"sinusoid_dim must be even (sine and cosine pairs), got {sinusoid_dim}")
        check_int("out_dim", out_dim, low=1)
        self.sinusoid_dim = sinusoid_dim
        self.mlp = nn.Sequential(nn.Linear(sinusoid_dim, out_dim), nn.SiLU(), nn.Linear(out_dim, out_dim))

    def forward(self, t: Tensor) -> Tensor:
        emb = timestep_embedding(t, self.sinusoid_dim)  # float32 features ...
        return self.mlp(emb.to(self.mlp[0].weight.dtype))  # ... in the weights' dtype (float64, bfloat16 models)
