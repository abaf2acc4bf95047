"""Probability-flow ODE samplers: Euler, Heun (Karras et al. 2022) and DPM-Solver++(2M) (Lu et al. 2022).

Divide the VP sample by sqrt(alpha_bar_t) and the process becomes "variance exploding":

    y = x_t / sqrt(alpha_bar_t) = x0 + sigma_t eps,   sigma_t = sqrt((1 - alpha_bar_t) / alpha_bar_t)

and the probability-flow ODE (Song et al. 2021 SDE, Eq. 13) that moves y without changing any
marginal is (Karras et al. 2022, Eq. 4 with s(t) = 1; D(y; sigma) = x0_hat)

    dy/dsigma = (y - x0_hat) / sigma = eps_hat(sqrt(alpha_bar_t) y, t)                 (eq-pf-ode)

Each sampler integrates it from sigma_T down to sigma_0 = 0, where y = x0, evaluating the model
only at the schedule's own timesteps (no interpolation between them). Symbols:

| symbol                          | code                | diffusers (Euler/Heun/DPM-Solver)      |
|---------------------------------|---------------------|----------------------------------------|
| sigma_t = sqrt((1-ab_t)/ab_t)   | sigma[i]            | sigmas[i]                              |
| y = x_t / sqrt(alpha_bar_t)     | y                   | sample (before scale_model_input)      |
| x_t = y / sqrt(1 + sigma_t^2)   | model input         | scale_model_input(sample, t)           |
| lambda_t = -log sigma_t         | lam[i]              | lambda_t (= half of our sched.log_snr) |
| eps_hat, x0_hat = y - sigma eps | eps_hat, x0_hat     | model_output, denoised                 |

Euler in (sigma, y) is exactly DDIM with eta = 0 (Song et al. 2021 DDIM, Sec. 4.3).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from ..core.schedules import Schedule, check_schedule
from .base import Model, SampleOutput, call_model, check_sequence, progress_bar, record, stack, start


def ode_sigmas(sched: Schedule, ts: Tensor) -> Tensor:
    """sigma_t = exp(-log_snr_t / 2) at the descending timesteps ts, with sigma_0 = 0 appended: (S+1,)."""
    check_schedule(sched)
    ts = check_sequence(ts, sched, "ts")
    return torch.cat([torch.exp(-0.5 * sched.log_snr[ts]), sched.log_snr.new_zeros(1)])


def sample_euler(model: Model, sched: Schedule, x_T, steps: int | Tensor = 50, spacing: str = "trailing", cond=None,
                 generator: torch.Generator | None = None, return_trajectory: bool = False,
                 progress: bool = False) -> SampleOutput:
    """Euler's method on eq-pf-ode: y_{i+1} = y_i + (sigma_{i+1} - sigma_i) eps_hat_i. One NFE per step."""
    x, ts = start(model, sched, x_T, steps, spacing, generator)
    sigma = ode_sigmas(sched, ts).tolist()  # python floats: coefficients stay float64
    y = x * math.sqrt(1 + sigma[0] ** 2)  # x_T -> y_T
    traj, nfe = [x] if return_trajectory else None, 0
    for i, t in progress_bar(enumerate(ts.tolist()), len(ts), progress, "Euler"):
        eps_hat = call_model(model, y / math.sqrt(1 + sigma[i] ** 2), t, cond)  # dy/dsigma at (y_i, sigma_i)
        nfe += 1
        y = y + (sigma[i + 1] - sigma[i]) * eps_hat  # eq-pf-ode, Euler step
        record(traj, y / math.sqrt(1 + sigma[i + 1] ** 2))
    return SampleOutput(y, nfe, stack(traj))


def sample_heun(model: Model, sched: Schedule, x_T, steps: int | Tensor = 25, spacing: str = "trailing", cond=None,
                generator: torch.Generator | None = None, return_trajectory: bool = False,
                progress: bool = False) -> SampleOutput:
    """Heun's 2nd-order method on eq-pf-ode (Karras et al. 2022, Alg. 1 with S_churn = 0).

    `steps` counts steps (intervals between noise levels), not NFE: each step costs two NFE except
    the last, to sigma = 0, which is an Euler step, so NFE = 2 steps - 1 (steps=25: 49 NFE). To
    compare with a one-NFE-per-step sampler at a budget of N NFE, pass steps = (N + 1) // 2.
    """
    x, ts = start(model, sched, x_T, steps, spacing, generator)
    sigma = ode_sigmas(sched, ts).tolist()  # python floats: coefficients stay float64
    t_next = ts.tolist()[1:] + [0]
    y = x * math.sqrt(1 + sigma[0] ** 2)
    traj, nfe = [x] if return_trajectory else None, 0
    for i, t in progress_bar(enumerate(ts.tolist()), len(ts), progress, "Heun"):
        # 1. Euler predictor
        d = call_model(model, y / math.sqrt(1 + sigma[i] ** 2), t, cond)
        y_next = y + (sigma[i + 1] - sigma[i]) * d
        nfe += 1
        # 2. trapezoidal corrector with the slope at the predicted point (skipped at sigma = 0)
        if sigma[i + 1] > 0:
            d_next = call_model(model, y_next / math.sqrt(1 + sigma[i + 1] ** 2), t_next[i], cond)
            y_next = y + (sigma[i + 1] - sigma[i]) * (d + d_next) / 2  # eq-heun
            nfe += 1
        y = y_next
        record(traj, y / math.sqrt(1 + sigma[i + 1] ** 2))
    return SampleOutput(y, nfe, stack(traj))


def sample_dpm_solver_pp_2m(model: Model, sched: Schedule, x_T, steps: int | Tensor = 20,
                            spacing: str = "trailing", cond=None, generator: torch.Generator | None = None,
                            return_trajectory: bool = False, progress: bool = False) -> SampleOutput:
    """DPM-Solver++(2M): multistep, data prediction, in lambda = -log sigma (Lu et al. 2022, Alg. 2).

    With h_i = lambda_{i+1} - lambda_i and r_i = h_{i-1} / h_i:
        D_i = (1 + 1/(2 r_i)) x0_hat_i - 1/(2 r_i) x0_hat_{i-1}      (first step: D_0 = x0_hat_0)
        y_{i+1} = (sigma_{i+1} / sigma_i) y_i - (e^{-h_i} - 1) D_i                 (eq-dpm-solver-pp)
    In VP form this is Lu et al.'s x_{i+1} = (s_{i+1}/s_i) x_i - a_{i+1} (e^{-h_i} - 1) D_i with
    a = sqrt(alpha_bar), s = sqrt(1 - alpha_bar). The last step to sigma = 0 (h = inf) is first
    order, y = D = x0_hat, as in diffusers' final_sigmas_type="zero". One NFE per step.
    """
    x, ts = start(model, sched, x_T, steps, spacing, generator)
    sigma = ode_sigmas(sched, ts).tolist()  # python floats: coefficients stay float64
    lam = [-math.log(s) if s > 0 else math.inf for s in sigma]  # lambda_i; +inf at sigma = 0
    y = x * math.sqrt(1 + sigma[0] ** 2)
    x0_hat_old, h_old = None, None
    traj, nfe = [x] if return_trajectory else None, 0
    for i, t in progress_bar(enumerate(ts.tolist()), len(ts), progress, "DPM-Solver++(2M)"):
        eps_hat = call_model(model, y / math.sqrt(1 + sigma[i] ** 2), t, cond)
        nfe += 1
        x0_hat = y - sigma[i] * eps_hat  # eq-x0-from-eps in y = x0 + sigma eps
        h = lam[i + 1] - lam[i]
        if x0_hat_old is None or sigma[i + 1] == 0:
            D = x0_hat  # 1st order (this step alone is DDIM)
        else:
            r = h_old / h
            D = (1 + 1 / (2 * r)) * x0_hat - 1 / (2 * r) * x0_hat_old
        y = (sigma[i + 1] / sigma[i]) * y - math.expm1(-h) * D  # eq-dpm-solver-pp
        x0_hat_old, h_old = x0_hat, h
        record(traj, y / math.sqrt(1 + sigma[i + 1] ** 2))
    return SampleOutput(y, nfe, stack(traj))
