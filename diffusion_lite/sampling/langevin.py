"""Langevin dynamics: sampling with nothing but a score, plain and annealed (NCSN).

Unadjusted Langevin with step size delta (Song & Ermon 2019, Eq. 4; Welling & Teh 2011):

    x <- x + (delta / 2) grad log p(x) + sqrt(delta) z,   z ~ N(0, I)                   (eq-langevin)

As delta -> 0 and the number of steps grows, x is distributed as p. It mixes slowly between
separated modes and gets their weights wrong; annealing through the smoothed densities
p_sigma = p * N(0, sigma^2 I) for sigma_1 > ... > sigma_L, with delta_i = eps_step sigma_i^2 / sigma_L^2,
fixes both (Song & Ermon 2019, Alg. 1)                                              (eq-annealed-langevin)

| symbol                  | code              |
|-------------------------|-------------------|
| delta (step size)       | step_size         |
| grad log p(x)           | score_fn(x)       |
| sigma_1 > ... > sigma_L | sigmas            |
| epsilon (Alg. 1)        | eps_step          |
| T (steps per level)     | steps_per_level   |
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor

from .._checks import check_float, check_generator, check_int, check_tensor
from .base import SampleOutput, progress_bar, record, stack


def _score(score_fn: Callable, x: Tensor, *args) -> Tensor:
    out = score_fn(x, *args)
    if not isinstance(out, Tensor) or out.shape != x.shape:
        got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise ValueError(f"score_fn must return a tensor shaped like x {tuple(x.shape)}, got {got}")
    return out


def langevin(score_fn: Callable[[Tensor], Tensor], x: Tensor, step_size: float, n_steps: int,
             generator: torch.Generator | None = None, return_trajectory: bool = False,
             progress: bool = False) -> SampleOutput:
    """n_steps of unadjusted Langevin dynamics from x with a fixed step size (eq-langevin).

    score_fn(x) -> grad log p(x), shaped like x. NFE = n_steps score evaluations.
    """
    if not callable(score_fn):
        raise TypeError(f"score_fn must be callable as score_fn(x), got {type(score_fn).__name__}")
    check_tensor("x", x)
    step_size = check_float("step_size", step_size, low=0.0, low_open=True)
    n_steps = check_int("n_steps", n_steps, low=1)
    check_generator("generator", generator, x.device)
    traj = [x] if return_trajectory else None
    for _ in progress_bar(range(n_steps), n_steps, progress, "Langevin"):
        z = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
        x = x + 0.5 * step_size * _score(score_fn, x) + math.sqrt(step_size) * z  # eq-langevin
        record(traj, x)
    return SampleOutput(x, n_steps, stack(traj))


def annealed_langevin(score_fn: Callable[[Tensor, float], Tensor], x: Tensor, sigmas, steps_per_level: int,
                      eps_step: float, generator: torch.Generator | None = None, denoise: bool = False,
                      return_trajectory: bool = False, progress: bool = False) -> SampleOutput:
    """Annealed Langevin dynamics (Song & Ermon 2019, Alg. 1; eq-annealed-langevin).

    score_fn(x, sigma) -> grad log p_sigma(x), the score of the data smoothed by N(0, sigma^2 I).
    sigmas: strictly decreasing noise levels sigma_1 > ... > sigma_L > 0.
    For each level: delta_i = eps_step sigma_i^2 / sigma_L^2, then steps_per_level Langevin steps.
    denoise=True adds the final Tweedie step x + sigma_L^2 score(x, sigma_L) (eq-tweedie;
    Song & Ermon 2020, Sec. 4.3), which removes the sigma_L noise left by the chain (one more NFE).
    """
    if not callable(score_fn):
        raise TypeError(f"score_fn must be callable as score_fn(x, sigma), got {type(score_fn).__name__}")
    check_tensor("x", x)
    try:
        sigmas = [float(s) for s in torch.as_tensor(sigmas, dtype=torch.float64).flatten()]
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(f"sigmas must be a sequence or tensor of numbers, got {type(sigmas).__name__}") from None
    if not sigmas or any(s <= 0 or not math.isfinite(s) for s in sigmas) or any(
            b >= a for a, b in zip(sigmas, sigmas[1:])):
        raise ValueError(f"sigmas must be positive and strictly decreasing, got {sigmas}")
    steps_per_level = check_int("steps_per_level", steps_per_level, low=1)
    eps_step = check_float("eps_step", eps_step, low=0.0, low_open=True)
    check_generator("generator", generator, x.device)
    traj, nfe = [x] if return_trajectory else None, 0
    for sigma in progress_bar(sigmas, len(sigmas), progress, "annealed Langevin"):
        delta = eps_step * sigma**2 / sigmas[-1] ** 2  # step size for this level
        for _ in range(steps_per_level):
            z = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
            x = x + 0.5 * delta * _score(score_fn, x, sigma) + math.sqrt(delta) * z  # eq-langevin
            nfe += 1
            record(traj, x)
    if denoise:
        x = x + sigmas[-1] ** 2 * _score(score_fn, x, sigmas[-1])  # eq-tweedie
        nfe += 1
        record(traj, x)
    return SampleOutput(x, nfe, stack(traj))
