"""The empirical optimal denoiser: the exact E[x0 | x_t] when the data are the training set itself.

If the data distribution is the empirical one, p(x0) = (1/N) sum_i delta(x0 - x_i), the posterior
over which training image produced x_t = a_t x0 + s_t eps (a_t = sqrt(alpha_bar_t),
s_t = sqrt(1 - alpha_bar_t), eq-q-sample) is a softmax over the set:

    r_i(x_t)    = softmax_i( -|x_t - a_t x_i|^2 / (2 s_t^2) )                       (eq-empirical-weights)
    E[x0 | x_t] = sum_i r_i(x_t) x_i                                                (eq-empirical-x0)
    eps_hat     = (x_t - a_t E[x0 | x_t]) / s_t                                     (eq-eps-from-x0)

This is the minimiser of L_simple on the training set (Kadkhodaie et al. 2024, Sec. 2; Gu et al.
2023): a network that reaches the training loss's floor is this function, and every sampler driven
by it returns copies of training images. Chapter 16 uses it as the "perfect memoriser".

Numerics: |x_t - a x_i|^2 = |x_t|^2 - 2 a <x_t, x_i> + a^2 |x_i|^2, and |x_t|^2 is the same for
every i, so the logits are (2 a <x_t, x_i> - a^2 |x_i|^2) / (2 s^2). They are reduced with an
online log-sum-exp over chunks of the training set (running maximum, rescaled sums), in float64,
so that neither N x B memory nor exp overflow limits the set's size or the noise level.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from .._checks import check_int, check_tensor, check_timesteps
from ..core.schedules import Schedule, check_schedule


def _check_training_set(data) -> Tensor:
    """A float tensor (N, ...) with N >= 1 training examples; empty sets are refused by name."""
    if isinstance(data, Tensor) and data.dim() >= 1 and data.shape[0] == 0:
        raise ValueError(f"data must hold at least one training example, got shape {tuple(data.shape)} "
                         f"(an empty training set has no optimal denoiser)")
    return check_tensor("data", data)


def empirical_x0(x_t: Tensor, alpha_bar_t: Tensor, data: Tensor, chunk: int = 2048) -> Tensor:
    """E[x0 | x_t] under the empirical distribution of `data`: eq-empirical-x0 (softmax over the set).

    x_t (B, ...) with data (N, ...) of the same trailing shape; alpha_bar_t (B,) or a scalar in (0, 1).
    Returns (B, ...) in float64. Chunked over N: memory is O(B * chunk).
    """
    data = _check_training_set(data)
    check_tensor("x_t", x_t)
    chunk = check_int("chunk", chunk, low=1)
    if x_t.shape[1:] != data.shape[1:]:
        raise ValueError(f"x_t must have shape (B, {', '.join(map(str, data.shape[1:]))}) like the "
                         f"training images, got {tuple(x_t.shape)}")
    ab = torch.as_tensor(alpha_bar_t, dtype=torch.float64, device=x_t.device).reshape(-1)
    if ab.numel() == 1:
        ab = ab.expand(x_t.shape[0])
    if ab.shape != (x_t.shape[0],) or bool(((ab <= 0) | (ab >= 1)).any()):
        raise ValueError(f"alpha_bar_t must be a scalar or (B,) tensor of values in (0, 1), got {ab.tolist()}")
    B = x_t.shape[0]
    x = x_t.reshape(B, -1).to(torch.float64)          # (B, D)
    X = data.reshape(data.shape[0], -1).to(device=x.device, dtype=torch.float64)  # (N, D)
    a, s2 = ab.sqrt()[:, None], (1.0 - ab)[:, None]   # (B, 1) each
    run_max = torch.full((B, 1), -torch.inf, dtype=torch.float64, device=x.device)
    run_sum = torch.zeros(B, 1, dtype=torch.float64, device=x.device)
    run_acc = torch.zeros_like(x)                     # sum_i exp(logit_i - run_max) x_i, (B, D)
    for lo in range(0, X.shape[0], chunk):
        Xc = X[lo:lo + chunk]                          # (n, D)
        # eq-empirical-weights without the |x_t|^2 term, which cancels in the softmax
        logits = (2 * a * (x @ Xc.T) - a**2 * (Xc * Xc).sum(1)[None]) / (2 * s2)  # (B, n)
        new_max = torch.maximum(run_max, logits.max(1, keepdim=True).values)
        scale = torch.exp(run_max - new_max)          # rescale what was summed under the old maximum
        p = torch.exp(logits - new_max)               # (B, n), each <= 1
        run_sum = run_sum * scale + p.sum(1, keepdim=True)
        run_acc = run_acc * scale + p @ Xc
        run_max = new_max
    return (run_acc / run_sum).reshape(x_t.shape)     # eq-empirical-x0


@dataclass(frozen=True, eq=False)
class EmpiricalDenoiser:
    """The optimal eps-predictor of a training set: model(x_t, t) = (x_t - a_t E[x0 | x_t]) / s_t.

    A model in the samplers' sense (sampling/base.py): every sampler runs it. It is unconditional.
    """

    data: Tensor           # (N, ...) the training images x_i (any float dtype; used in float64)
    sched: Schedule        # the forward process that defines x_t
    chunk: int = 2048      # training images per chunk of the log-sum-exp (memory B * chunk)
    _flat: Tensor = field(init=False, repr=False)  # data as (N, D) float64, made once

    def __post_init__(self):
        data = _check_training_set(self.data)
        check_schedule(self.sched)
        check_int("chunk", self.chunk, low=1)
        object.__setattr__(self, "_flat", data.to(torch.float64))

    def __repr__(self) -> str:
        return f"EmpiricalDenoiser(N={self.data.shape[0]}, shape={tuple(self.data.shape[1:])}, T={self.sched.T})"

    def x0_hat(self, x_t: Tensor, t) -> Tensor:
        """E[x0 | x_t] at timestep t in [1, T] (eq-empirical-x0), in x_t's dtype."""
        t = check_timesteps("t", t, self.sched.T, low=1)
        ab = self.sched.alpha_bar[t.cpu()]
        return empirical_x0(x_t, ab, self._flat, self.chunk).to(x_t.dtype)

    def __call__(self, x_t: Tensor, t, cond=None) -> Tensor:
        """x_t (B, ...), t an int or (B,) long tensor in [1, T] -> eps_hat (B, ...) in x_t's dtype."""
        if cond is not None:
            raise ValueError("EmpiricalDenoiser is unconditional: cond must be None")
        t = check_timesteps("t", t, self.sched.T, low=1)
        ab = self.sched.alpha_bar[t.cpu()].reshape(-1)
        ab = ab.expand(x_t.shape[0]) if ab.numel() == 1 else ab
        x0_hat = empirical_x0(x_t, ab, self._flat, self.chunk)               # (B, ...) float64
        shape = (-1,) + (1,) * (x_t.dim() - 1)
        a, s = ab.sqrt().to(x_t.device).reshape(shape), (1 - ab).sqrt().to(x_t.device).reshape(shape)
        return ((x_t.to(torch.float64) - a * x0_hat) / s).to(x_t.dtype)     # eq-eps-from-x0
