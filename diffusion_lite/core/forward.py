"""The forward (noising) process q and its posterior q(x_{t-1} | x_t, x0).

    q(x_t | x_{t-1}) = N(sqrt(alpha_t) x_{t-1}, beta_t I)                       (eq-q-step)
    q(x_t | x0)      = N(sqrt(alpha_bar_t) x0, (1 - alpha_bar_t) I)              (eq-q-sample)
    q(x_{t-1} | x_t, x0) = N(mu_tilde_t(x_t, x0), beta_tilde_t I)                (eq-posterior)

All functions take the noise eps explicitly, so the caller owns the randomness.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .._checks import check_same, check_tensor, check_timesteps
from .schedules import Schedule, check_schedule, gather


def q_step(x_prev: Tensor, t, eps: Tensor, sched: Schedule) -> Tensor:
    """One step of the chain: x_t = sqrt(alpha_t) x_{t-1} + sqrt(beta_t) eps.

    eq-q-step (Ho et al. 2020, Eq. 2). t in [1, T].
    """
    check_schedule(sched)
    check_tensor("x_prev", x_prev)
    check_tensor("eps", eps)
    check_same("x_prev", x_prev, "eps", eps)
    check_timesteps("t", t, sched.T, low=1)
    return gather(sched.alphas, t, x_prev).sqrt() * x_prev + gather(sched.betas, t, x_prev).sqrt() * eps


def q_sample(x0: Tensor, t, eps: Tensor, sched: Schedule) -> Tensor:
    """Jump straight to step t: x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps.

    eq-q-sample (Ho et al. 2020, Eq. 4). t in [0, T]; t = 0 returns x0.
    """
    check_schedule(sched)
    check_tensor("x0", x0)
    check_tensor("eps", eps)
    check_same("x0", x0, "eps", eps)
    # coefficients computed in float64, then cast: 1 - alpha_bar_t loses digits in float32
    return gather(sched.alpha_bar.sqrt(), t, x0) * x0 + gather((1.0 - sched.alpha_bar).sqrt(), t, x0) * eps


def q_posterior(x0: Tensor, x_t: Tensor, t, sched: Schedule) -> tuple[Tensor, Tensor]:
    """Mean and variance of q(x_{t-1} | x_t, x0) for t in [1, T].

    mu_tilde_t = sqrt(alpha_bar_{t-1}) beta_t / (1 - alpha_bar_t) * x0
               + sqrt(alpha_t) (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) * x_t     (eq-posterior-mean)
    beta_tilde_t = (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) * beta_t               (eq-posterior-var)
    (Ho et al. 2020, Eqs. 6-7). The variance is returned shaped to broadcast over x_t.
    """
    check_schedule(sched)
    check_tensor("x0", x0)
    check_tensor("x_t", x_t)
    check_same("x0", x0, "x_t", x_t)
    t = check_timesteps("t", t, sched.T, low=1)
    # the coefficients as float64 vectors over t (index 0 is never used), gathered and cast last:
    # 1 - alpha_bar_t computed in float32 would lose digits at small t
    alpha_bar, alpha_bar_prev = sched.alpha_bar[1:], sched.alpha_bar[:-1]
    coef_x0 = alpha_bar_prev.sqrt() * sched.betas[1:] / (1.0 - alpha_bar)
    coef_xt = sched.alphas[1:].sqrt() * (1.0 - alpha_bar_prev) / (1.0 - alpha_bar)
    pad = sched.betas.new_zeros(1)
    mean = gather(torch.cat([pad, coef_x0]), t, x_t) * x0 + gather(torch.cat([pad, coef_xt]), t, x_t) * x_t
    var = gather(sched.beta_tilde, t, x_t)
    return mean, var
