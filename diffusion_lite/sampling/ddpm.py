"""Ancestral (DDPM) sampling: one reverse step, the respaced schedule for fewer steps, and the sampler.

    x_{t-1} = mu_theta(x_t, t) + sqrt(Sigma_t) z,   z ~ N(0, I), z = 0 at t = 1      (eq-ddpm-step)

with mu_theta from eq-ddpm-mean and Sigma_t = beta_tilde_t or beta_t (eq-sigma-choices), both in
core/reverse.py (Ho et al. 2020, Alg. 2; book chapter 05).

| symbol                     | code                           | diffusers                                   |
|----------------------------|--------------------------------|---------------------------------------------|
| eps_theta(x_t, t)          | eps_hat = model(x_t, t)        | model_output                                |
| x0_hat                     | x0_hat                         | pred_original_sample                        |
| x_{t-1}                    | x_prev                         | prev_sample                                 |
| Sigma_t                    | variance="beta_tilde" / "beta" | variance_type="fixed_small" / "fixed_large" |
"""
from __future__ import annotations

import torch
from torch import Tensor

from .._checks import check_float, check_generator, check_same, check_tensor, check_timesteps
from ..core.parameterization import eps_from_x0, x0_from_eps
from ..core.reverse import VARIANCES, ddpm_mean
from ..core.schedules import Schedule, check_schedule
from .base import (Model, SampleOutput, StepOutput, batch_timesteps, call_model, check_sequence, coef, progress_bar,
                   record, stack, start)


def respace(sched: Schedule, ts: Tensor) -> Schedule:
    """The schedule seen by a sampler that only visits ts: alpha_bar'_i = alpha_bar_{tau_i},
    beta'_i = 1 - alpha_bar'_i / alpha_bar'_{i-1} (Nichol & Dhariwal 2021, Sec. 4)."""
    check_schedule(sched)
    ts = check_sequence(ts, sched, "ts").flip(0)  # ascending
    alpha_bar = torch.cat([sched.alpha_bar.new_ones(1), sched.alpha_bar[ts]])
    betas = torch.cat([sched.betas.new_zeros(1), 1.0 - alpha_bar[1:] / alpha_bar[:-1]])
    return Schedule(betas=betas, alphas=1.0 - betas, alpha_bar=alpha_bar, name=f"{sched.name}[{len(ts)} steps]")


def ddpm_step(eps_hat: Tensor, t, x_t: Tensor, sched: Schedule, variance: str = "beta_tilde",
              generator: torch.Generator | None = None, clip_x0: float | None = None) -> StepOutput:
    """One ancestral step x_t -> x_{t-1} (Ho et al. 2020, Alg. 2), t an int or (B,) tensor in [1, T].

    x_{t-1} = 1/sqrt(alpha_t) (x_t - beta_t / sqrt(1 - alpha_bar_t) eps_hat) + sqrt(Sigma_t) z  (eq-ddpm-step)
    Sigma_t = beta_tilde_t ("beta_tilde") or beta_t ("beta"); z = 0 at t = 1   (eq-sigma-choices)
    clip_x0: clamp x0_hat to [-clip_x0, clip_x0] and re-derive eps_hat from it (images in [-1, 1]).
    """
    check_schedule(sched)
    check_tensor("eps_hat", eps_hat)
    check_tensor("x_t", x_t)
    check_same("eps_hat", eps_hat, "x_t", x_t)
    t = batch_timesteps("t", check_timesteps("t", t, sched.T, low=1), x_t)
    if variance not in VARIANCES:
        raise ValueError(f"variance must be one of {VARIANCES}, got {variance!r}")
    check_generator("generator", generator, x_t.device)
    # 1. predicted x0 (eq-x0-from-eps), optionally clipped; eps_hat then follows from it (eq-eps-from-x0)
    x0_hat = x0_from_eps(eps_hat, t, x_t, sched)
    if clip_x0 is not None:
        x0_hat = x0_hat.clamp(-check_float("clip_x0", clip_x0, low=0.0, low_open=True), clip_x0)
        eps_hat = eps_from_x0(x0_hat, t, x_t, sched)
    # 2. mean of p(x_{t-1} | x_t): 1/sqrt(alpha_t) (x_t - beta_t / sqrt(1 - alpha_bar_t) eps_hat) (eq-ddpm-mean)
    mean = ddpm_mean(eps_hat, t, x_t, sched)
    # 3. noise: Sigma_t with Sigma_1 = 0 (Alg. 2 sets z = 0 at t = 1; beta_tilde_1 is 0 already)
    var = sched.beta_tilde if variance == "beta_tilde" else torch.cat([sched.betas.new_zeros(2), sched.betas[2:]])
    z = torch.randn(x_t.shape, generator=generator, dtype=x_t.dtype, device=x_t.device)
    return StepOutput(mean + coef(var[t].sqrt(), x_t) * z, x0_hat)


def sample_ddpm(model: Model, sched: Schedule, x_T, steps: int | Tensor | None = None,
                spacing: str = "trailing", variance: str = "beta_tilde", cond=None,
                generator: torch.Generator | None = None, return_trajectory: bool = False, progress: bool = False,
                clip_x0: float | None = None) -> SampleOutput:
    """Ancestral sampling (Ho et al. 2020, Alg. 2) from x_T (a tensor, or a shape to draw N(0, I)).

    steps=None visits all T steps (NFE = T); fewer steps run DDPM on the respaced schedule (see
    `respace`), one NFE per step. cond is passed to the model as model(x_t, t, cond).
    """
    x, ts = start(model, sched, x_T, sched.T if steps is None else steps, spacing, generator)
    short = respace(sched, ts)  # short.alpha_bar[i] = sched.alpha_bar[ts[S - i]]
    traj, nfe = [x] if return_trajectory else None, 0
    for i, t in progress_bar(zip(range(len(ts), 0, -1), ts.tolist()), len(ts), progress, "DDPM"):
        eps_hat = call_model(model, x, t, cond)  # the network sees the original timestep t
        nfe += 1
        x = ddpm_step(eps_hat, i, x, short, variance, generator, clip_x0).x_prev
        record(traj, x)
    return SampleOutput(x, nfe, stack(traj))

