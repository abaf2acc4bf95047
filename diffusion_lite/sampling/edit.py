"""SDEdit: edit an image by noising it part of the way and denoising it back (Meng et al. 2022).

A rough input x (strokes, a corrupted or half-erased digit) is taken to the noise level t0 with the
forward process and then denoised from t0 to 0 with an ordinary sampler (eq-sdedit):

    x_t0 = sqrt(alpha_bar_t0) x + sqrt(1 - alpha_bar_t0) eps,   eps ~ N(0, I)     (eq-q-sample)
    x_edit = sampler(model, x_t0, timesteps from t0 down to 0)

Small t0 keeps the input (faithful, but its flaws stay); t0 = T forgets it (realistic, but any
digit). Between them the noise washes out the details that make the input unrealistic while its
coarse layout survives: the realism-faithfulness trade-off of chapter 13. This module sits above
ddim.py and ddpm.py, as dispatch.py does.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .._checks import check_generator, check_int, check_tensor
from ..core.forward import q_sample
from ..core.schedules import Schedule, check_schedule
from .base import Model, SampleOutput, timesteps
from .ddim import sample_ddim
from .ddpm import sample_ddpm

EDIT_METHODS = ("ddim", "ddpm")


def sdedit(model: Model, sched: Schedule, x: Tensor, t0: int, steps: int = 50, method: str = "ddim",
           eta: float = 0.0, cond=None, generator: torch.Generator | None = None,
           progress: bool = False) -> SampleOutput:
    """Noise x (B, ...) to t0 in (0, T] and denoise it with `steps` steps of `method` (eq-sdedit).

    steps are spread over [1, t0] (at most t0 of them); NFE = steps. method "ddim" (eta as in
    sample_ddim) or "ddpm" (ancestral, respaced). The noise comes from `generator`.
    """
    check_schedule(sched)
    check_tensor("x", x)
    if isinstance(t0, bool) or not isinstance(t0, int) or not 0 < t0 <= sched.T:
        raise ValueError(f"t0 must be an int in (0, {sched.T}] (the schedule's T), got {t0!r}")
    steps = check_int("steps", steps, low=1, high=t0)
    if method not in EDIT_METHODS:
        raise ValueError(f"method must be one of {EDIT_METHODS}, got {method!r}")
    check_generator("generator", generator, x.device)
    eps = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    x_t0 = q_sample(x, t0, eps, sched)  # eq-q-sample
    ts = timesteps(t0, steps)  # descending, starts at t0
    if method == "ddim":
        return sample_ddim(model, sched, x_t0, ts, eta=eta, cond=cond, generator=generator, progress=progress)
    return sample_ddpm(model, sched, x_t0, ts, cond=cond, generator=generator, progress=progress)
