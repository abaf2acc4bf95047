"""Walking the noise space: DDIM inversion (x0 -> x_T) and spherical interpolation between noises.

Deterministic DDIM (eta = 0) is a discretised ODE, so it can be run backwards: inversion finds
the x_T that sample_ddim maps (approximately) back to a given x0. Interpolating two such noises
along a great circle (slerp) and sampling from each point morphs one sample into another, while
keeping |x_T| near sqrt(D), where Gaussian noise concentrates (a straight line would pass through
low-norm points the model never saw).
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from .._checks import check_float, check_same, check_tensor
from ..core.schedules import Schedule
from .base import Model, call_model, coef, progress_bar, record, stack, start


class InversionOutput(NamedTuple):
    """What ddim_invert returns."""

    x_T: Tensor                # the noise that sample_ddim (eta = 0) maps back to x0
    nfe: int                   # number of model evaluations spent
    trajectory: Tensor | None  # (n_states, *x.shape): x0, ..., x_T when return_trajectory=True


def ddim_invert(model: Model, sched: Schedule, x0: Tensor, steps: int | Tensor = 50, spacing: str = "trailing",
                cond=None, return_trajectory: bool = False, progress: bool = False) -> InversionOutput:
    """Run deterministic DDIM backwards, x0 -> x_T, visiting the timesteps sample_ddim visits.

    From t_cur to the next larger t_next, with eps_hat = model(x_{t_cur}, t_next) (the noise at
    x_{t_next} is unknown; evaluating at t_next keeps the model inside t >= 1):
    x_{t_next} = sqrt(alpha_bar_next) x0_hat + sqrt(1 - alpha_bar_next) eps_hat   (eq-ddim-inversion)
    """
    check_tensor("x0", x0)
    x, ts = start(model, sched, x0, steps, spacing, None)
    ts = ts.flip(0).tolist()
    traj, nfe = [x] if return_trajectory else None, 0
    for t_cur, t_next in progress_bar(zip([0] + ts[:-1], ts), len(ts), progress, "DDIM inversion"):
        eps_hat = call_model(model, x, t_next, cond)
        nfe += 1
        ab_cur, ab_next = sched.alpha_bar[t_cur], sched.alpha_bar[t_next]
        x0_hat = (x - coef((1.0 - ab_cur).sqrt(), x) * eps_hat) / coef(ab_cur.sqrt(), x)  # eq-x0-from-eps
        x = coef(ab_next.sqrt(), x) * x0_hat + coef((1.0 - ab_next).sqrt(), x) * eps_hat
        record(traj, x)
    return InversionOutput(x, nfe, stack(traj))


def slerp(z0: Tensor, z1: Tensor, alpha: float) -> Tensor:
    """Spherical interpolation between noises (Shoemake 1985), per sample along dim 0 (eq-slerp):
    sin((1 - alpha) theta) / sin(theta) z0 + sin(alpha theta) / sin(theta) z1, cos(theta) = <z0, z1>/|z0||z1|.

    Unlike linear interpolation it keeps |z| near sqrt(D), where Gaussian noise lives."""
    check_tensor("z0", z0)
    check_tensor("z1", z1)
    check_same("z0", z0, "z1", z1)
    alpha = check_float("alpha", alpha, low=0.0, high=1.0)
    a, b = (z0.reshape(z0.shape[0], -1), z1.reshape(z1.shape[0], -1)) if z0.dim() > 1 else (z0[None], z1[None])
    cos = ((a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1))).clamp(-1.0, 1.0)
    theta = torch.acos(cos)[:, None]  # (B, 1)
    sin = torch.sin(theta)
    small = sin < 1e-6  # (nearly) parallel: fall back to linear interpolation
    w0 = torch.where(small, 1.0 - alpha, torch.sin((1.0 - alpha) * theta) / sin.clamp(min=1e-6))
    w1 = torch.where(small, alpha, torch.sin(alpha * theta) / sin.clamp(min=1e-6))
    return (w0 * a + w1 * b).reshape(z0.shape)
