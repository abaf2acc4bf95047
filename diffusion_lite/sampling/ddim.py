"""DDIM (Song et al. 2021): steps that may skip timesteps, deterministic at eta = 0, and the sampler.

    x_prev = sqrt(alpha_bar_prev) x0_hat + sqrt(1 - alpha_bar_prev - Sigma_t(eta)) eps_hat
             + sqrt(Sigma_t(eta)) z                                                 (eq-ddim-step)
    Sigma_t(eta) = eta^2 (1 - alpha_bar_prev) / (1 - alpha_bar_t) (1 - alpha_bar_t / alpha_bar_prev)
                                                                                    (eq-ddim-sigma)
Sigma_t(eta) is the variance the step adds, the same quantity as DDPM's Sigma_t (core/reverse.py):
eta = 1 on consecutive steps gives beta_tilde_t. Book chapter 09; inversion.py runs eta = 0 backwards.

| symbol                     | code                             | diffusers                                   |
|----------------------------|----------------------------------|---------------------------------------------|
| Sigma_t(eta)               | ddim_variance(t, t_prev, ...)    | eta**2 * _get_variance(timestep, prev_t)    |
| t, t_prev (1..T and 0..T-1)| t, t_prev                        | timestep = t - 1, prev_timestep = t_prev - 1|
| alpha_bar_0 = 1            | sched.alpha_bar[0]               | final_alpha_cumprod (set_alpha_to_one=True) |
"""
from __future__ import annotations

import torch
from torch import Tensor

from .._checks import check_float, check_generator, check_same, check_tensor, check_timesteps
from ..core.parameterization import eps_from_x0, x0_from_eps
from ..core.schedules import Schedule, check_schedule
from .base import Model, SampleOutput, StepOutput, batch_timesteps, call_model, coef, progress_bar, record, stack, start


def ddim_variance(t, t_prev, sched: Schedule, eta: float) -> Tensor:
    """Sigma_t(eta) = eta^2 (1 - alpha_bar_prev)/(1 - alpha_bar_t) (1 - alpha_bar_t/alpha_bar_prev).

    eq-ddim-sigma (Song et al. 2021 DDIM, Eq. 16, where it is sigma_t^2); eta = 1 on consecutive
    steps gives beta_tilde_t. Returned in float64, shaped like t.
    """
    check_schedule(sched)
    eta = check_float("eta", eta, low=0.0, high=1.0)
    t = check_timesteps("t", t, sched.T, low=1).cpu()
    t_prev = check_timesteps("t_prev", t_prev, sched.T).cpu()
    if bool((t_prev >= t).any()):
        raise ValueError(f"t_prev must be smaller than t, got t={t.tolist()}, t_prev={t_prev.tolist()}")
    ab_t, ab_prev = sched.alpha_bar[t], sched.alpha_bar[t_prev]
    return eta**2 * (1.0 - ab_prev) / (1.0 - ab_t) * (1.0 - ab_t / ab_prev)


def ddim_step(eps_hat: Tensor, t, t_prev, x_t: Tensor, sched: Schedule, eta: float = 0.0,
              generator: torch.Generator | None = None, clip_x0: float | None = None) -> StepOutput:
    """One DDIM step x_t -> x_{t_prev}, 0 <= t_prev < t (Song et al. 2021 DDIM, Eq. 12; eq-ddim-step).

    eta = 0: deterministic (no noise is drawn); t_prev = 0 uses alpha_bar_0 = 1 and lands on x0_hat.
    clip_x0: clamp x0_hat and re-derive eps_hat from it, as GLIDE does (diffusers:
    clip_sample=True with use_clipped_model_output=True).
    """
    check_schedule(sched)
    check_tensor("eps_hat", eps_hat)
    check_tensor("x_t", x_t)
    check_same("eps_hat", eps_hat, "x_t", x_t)
    t = batch_timesteps("t", check_timesteps("t", t, sched.T, low=1), x_t)
    var_t = ddim_variance(t, t_prev, sched, eta)  # eq-ddim-sigma; also validates eta and t_prev
    t_prev = batch_timesteps("t_prev", check_timesteps("t_prev", t_prev, sched.T), x_t)
    check_generator("generator", generator, x_t.device if eta > 0 else None)  # eta = 0 draws no noise
    # 1. predicted x0 (eq-x0-from-eps), optionally clipped; eps_hat then follows from it
    x0_hat = x0_from_eps(eps_hat, t, x_t, sched)
    if clip_x0 is not None:
        x0_hat = x0_hat.clamp(-check_float("clip_x0", clip_x0, low=0.0, low_open=True), clip_x0)
        eps_hat = eps_from_x0(x0_hat, t, x_t, sched)
    # 2. "direction pointing to x_t" and the jump to t_prev (eq-ddim-step)
    ab_prev = sched.alpha_bar[t_prev]
    x_prev = coef(ab_prev.sqrt(), x_t) * x0_hat + coef((1.0 - ab_prev - var_t).sqrt(), x_t) * eps_hat
    # 3. fresh noise only when it is used
    if eta > 0:
        z = torch.randn(x_t.shape, generator=generator, dtype=x_t.dtype, device=x_t.device)
        x_prev = x_prev + coef(var_t.sqrt(), x_t) * z
    return StepOutput(x_prev, x0_hat)


def sample_ddim(model: Model, sched: Schedule, x_T, steps: int | Tensor = 50, eta: float = 0.0,
                spacing: str = "trailing", cond=None, generator: torch.Generator | None = None,
                return_trajectory: bool = False, progress: bool = False, clip_x0: float | None = None) -> SampleOutput:
    """DDIM sampling along timesteps(T, steps, spacing) then to t = 0: one NFE per step (NFE = steps)."""
    eta = check_float("eta", eta, low=0.0, high=1.0)
    x, ts = start(model, sched, x_T, steps, spacing, generator)
    t_prevs = torch.cat([ts[1:], ts.new_zeros(1)]).tolist()
    traj, nfe = [x] if return_trajectory else None, 0
    for t, t_prev in progress_bar(zip(ts.tolist(), t_prevs), len(ts), progress, "DDIM"):
        eps_hat = call_model(model, x, t, cond)
        nfe += 1
        x = ddim_step(eps_hat, t, t_prev, x, sched, eta, generator, clip_x0).x_prev
        record(traj, x)
    return SampleOutput(x, nfe, stack(traj))
