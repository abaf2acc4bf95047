"""Conversions between what a network may predict: eps, x0, v and the score.

With a_t = sqrt(alpha_bar_t) and s_t = sqrt(1 - alpha_bar_t), so that x_t = a_t x0 + s_t eps:

    x0    = (x_t - s_t eps) / a_t                    (eq-x0-from-eps)
    eps   = (x_t - a_t x0) / s_t                     (eq-eps-from-x0)
    v     = a_t eps - s_t x0 = (eps - s_t x_t) / a_t (eq-v; Salimans & Ho 2022, Sec. 4)
    x0    = a_t x_t - s_t v                          (eq-x0-from-v)
    eps   = s_t x_t + a_t v                          (eq-eps-from-v)
    score = grad log q(x_t) = -E[eps | x_t] / s_t    (eq-score-eps; Song et al. 2021, Vincent 2011)

Argument order follows diffusers: (prediction, timestep, sample, schedule). Functions that divide
by s_t need t >= 1 (at t = 0 there is no noise to predict).
"""
from __future__ import annotations

from torch import Tensor

from .._checks import check_same, check_tensor, check_timesteps
from .schedules import Schedule, check_schedule, gather


def _coefs(pred_name: str, pred: Tensor, t, x_t: Tensor, sched: Schedule, low: int):
    check_schedule(sched)
    check_tensor(pred_name, pred)
    check_tensor("x_t", x_t)
    check_same(pred_name, pred, "x_t", x_t)
    check_timesteps("t", t, sched.T, low=low)
    # a_t, s_t from float64 vectors, cast last (1 - alpha_bar_t in float32 loses digits)
    return gather(sched.alpha_bar.sqrt(), t, x_t), gather((1.0 - sched.alpha_bar).sqrt(), t, x_t)


def x0_from_eps(eps: Tensor, t, x_t: Tensor, sched: Schedule) -> Tensor:
    """eq-x0-from-eps (Ho et al. 2020, Eq. 15)."""
    a_t, s_t = _coefs("eps", eps, t, x_t, sched, low=0)
    return (x_t - s_t * eps) / a_t


def eps_from_x0(x0: Tensor, t, x_t: Tensor, sched: Schedule) -> Tensor:
    """eq-eps-from-x0; t >= 1."""
    a_t, s_t = _coefs("x0", x0, t, x_t, sched, low=1)
    return (x_t - a_t * x0) / s_t


def v_from_eps(eps: Tensor, t, x_t: Tensor, sched: Schedule) -> Tensor:
    """eq-v (Salimans & Ho 2022): v = a_t eps - s_t x0 = (eps - s_t x_t) / a_t."""
    a_t, s_t = _coefs("eps", eps, t, x_t, sched, low=0)
    return (eps - s_t * x_t) / a_t


def x0_from_v(v: Tensor, t, x_t: Tensor, sched: Schedule) -> Tensor:
    """eq-x0-from-v: x0 = a_t x_t - s_t v."""
    a_t, s_t = _coefs("v", v, t, x_t, sched, low=0)
    return a_t * x_t - s_t * v


def eps_from_v(v: Tensor, t, x_t: Tensor, sched: Schedule) -> Tensor:
    """eq-eps-from-v: eps = s_t x_t + a_t v."""
    a_t, s_t = _coefs("v", v, t, x_t, sched, low=0)
    return s_t * x_t + a_t * v


def score_from_eps(eps: Tensor, t, x_t: Tensor, sched: Schedule) -> Tensor:
    """eq-score-eps: score = -eps / s_t; t >= 1."""
    _, s_t = _coefs("eps", eps, t, x_t, sched, low=1)
    return -eps / s_t


def eps_from_score(score: Tensor, t, x_t: Tensor, sched: Schedule) -> Tensor:
    """eq-score-eps inverted: eps = -s_t score; t >= 1."""
    _, s_t = _coefs("score", score, t, x_t, sched, low=1)
    return -s_t * score
