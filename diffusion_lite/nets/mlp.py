"""A small MLP denoiser for 2-D (or any flat, low-dimensional) data: eps_hat = net(x_t, t).

Each hidden layer is h <- SiLU(W h + b + U emb(t)): the time embedding enters every layer as a
learned, step-dependent bias, so the network can behave differently at each noise level.
Input and output have the same size D, because the network predicts the noise eps that was
added to x0 (eq-l-simple; Ho et al. 2020, Eq. 14).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .._checks import check_int, check_on_device, check_tensor
from .embeddings import TimeEmbedding, check_model_timesteps


@dataclass(frozen=True)
class MLPConfig:
    """Sizes of an MLPDenoiser."""

    dim: int = 2              # D, size of one data point x0 (2 for the toy data sets)
    hidden: int = 128         # width of every hidden layer
    depth: int = 4            # number of hidden layers
    time_embed_dim: int = 64  # size of the sinusoidal features of t (eq-timestep-embedding)

    def __post_init__(self):
        check_int("dim", self.dim, low=1)
        check_int("hidden", self.hidden, low=1)
        check_int("depth", self.depth, low=1)
        check_int("time_embed_dim", self.time_embed_dim, low=2)


class MLPDenoiser(nn.Module):
    """forward(x_t (B, D), t (B,) or int) -> eps_hat (B, D)."""

    def __init__(self, config: MLPConfig = MLPConfig()):
        super().__init__()
        if not isinstance(config, MLPConfig):
            raise TypeError(f"config must be an MLPConfig, got {type(config).__name__}")
        self.config = c = config
        self.time_embed = TimeEmbedding(c.time_embed_dim, c.hidden)
        self.layers = nn.ModuleList(
            [nn.Linear(c.dim if i == 0 else c.hidden, c.hidden) for i in range(c.depth)])
        self.time_proj = nn.ModuleList([nn.Linear(c.hidden, c.hidden) for _ in range(c.depth)])
        self.act = nn.SiLU()
        self.out = nn.Linear(c.hidden, c.dim)

    def forward(self, x_t: Tensor, t, cond=None) -> Tensor:
        D = self.config.dim
        check_tensor("x_t", x_t)
        if x_t.dim() != 2 or x_t.shape[1] != D:
            raise ValueError(f"x_t must have shape (B, {D}) for this MLPDenoiser, got {tuple(x_t.shape)}")
        check_on_device("x_t", x_t, self.out.weight, "MLPDenoiser")
        dtype = self.out.weight.dtype
        if x_t.dtype != dtype and not torch.is_autocast_enabled(x_t.device.type):
            raise TypeError(f"x_t has dtype {x_t.dtype} but the MLPDenoiser's weights are {dtype}; "
                            f"pass x_t.to({dtype})")
        if cond is not None:
            raise ValueError("MLPDenoiser is unconditional: cond must be None")
        t = check_model_timesteps(t, x_t.shape[0], x_t)
        emb = self.act(self.time_embed(t))  # (B, hidden)
        h = x_t
        for layer, proj in zip(self.layers, self.time_proj):
            h = self.act(layer(h) + proj(emb))  # (B, hidden)
        return self.out(h)  # (B, D)
