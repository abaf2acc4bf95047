"""The reverse step p_theta(x_{t-1} | x_t) = N(mu_theta(x_t, t), Sigma_t I): its mean and its variance.

Chapter 04 derives both; the DDPM sampler (chapter 05) draws from this Gaussian and the ELBO
(chapter 04) compares it with the true posterior q(x_{t-1} | x_t, x0):

    mu_theta(x_t, t) = (x_t - beta_t / sqrt(1 - alpha_bar_t) eps_hat) / sqrt(alpha_t)   (eq-ddpm-mean)
    Sigma_t = beta_tilde_t ("beta_tilde") or beta_t ("beta")                          (eq-sigma-choices)

Sigma_t is the variance of the noise a reverse step adds. DDIM's Sigma_t(eta) (chapter 09) is the
same quantity for a step that may skip timesteps; it equals beta_tilde_t at eta = 1 on consecutive
steps. The Greek sigma without a subscript step is kept for the noise level of chapter 08.
"""
from __future__ import annotations

from torch import Tensor

from .._checks import check_same, check_tensor, check_timesteps
from .schedules import Schedule, check_schedule, gather

VARIANCES = ("beta_tilde", "beta")  # the two fixed choices of Sigma_t (eq-sigma-choices)


def ddpm_mean(eps_hat: Tensor, t, x_t: Tensor, sched: Schedule) -> Tensor:
    """Mean of p_theta(x_{t-1} | x_t) from a noise prediction; t in [1, T].

    eq-ddpm-mean (Ho et al. 2020, Eq. 11):
        mu_theta = (x_t - beta_t / sqrt(1 - alpha_bar_t) * eps_hat) / sqrt(alpha_t)
    It is the posterior mean (eq-posterior-mean) with x0 replaced by x0_hat (eq-x0-from-eps).
    """
    check_schedule(sched)
    check_tensor("eps_hat", eps_hat)
    check_tensor("x_t", x_t)
    check_same("eps_hat", eps_hat, "x_t", x_t)
    check_timesteps("t", t, sched.T, low=1)
    # coefficients in float64 before the cast: 1 - alpha_bar_t ~ 1e-4 at t = 1 would lose digits in float32
    coef_eps = (sched.betas / (1.0 - sched.alpha_bar).sqrt()).nan_to_num(0.0)  # index 0 is 0/0: no step
    return (x_t - gather(coef_eps, t, x_t) * eps_hat) / gather(sched.alphas, t, x_t).sqrt()


def reverse_variance(variance: str, t, like: Tensor, sched: Schedule) -> Tensor:
    """Sigma_t of p_theta(x_{t-1} | x_t), beta_t or beta_tilde_t (eq-sigma-choices), shaped to broadcast over like."""
    check_schedule(sched)
    if variance not in VARIANCES:
        raise ValueError(f"variance must be one of {VARIANCES}, got {variance!r}")
    return gather(sched.betas if variance == "beta" else sched.beta_tilde, t, like)
