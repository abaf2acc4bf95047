"""Sampling a flow: Euler steps of dx/du = velocity(x, u) from noise at u = 0 to data at u = 1 (rectified flow).

A rectified flow (Liu et al. 2023) moves along the straight line x_u = (1 - u) x_noise + u x_data, whose
velocity is x_data - x_noise (eq-rf-path). Its network velocity(x_u, u) is trained to that velocity
(training/rectified_flow.py) and sampled by integrating the ODE forward in u:

    x_{u + h} = x_u + h velocity(x_u, u),    h = 1 / steps                           (eq-rf-euler)

The time u is handed to the network as u * time_scale, so that a network built for integer diffusion
timesteps (the MLP's or U-Net's sinusoidal embedding, frequencies tuned for 0..1000) sees the same
range. One NFE per step. This is not the eps seam of sampling/base.py: the network predicts a velocity, not a noise
(and not the v-prediction of eq-v).
"""
from __future__ import annotations

import torch
from torch import Tensor

from .._checks import check_float, check_int, check_tensor
from .base import SampleOutput, progress_bar, record, stack


def sample_flow(velocity, x_noise: Tensor, steps: int = 1, time_scale: float = 1000.0, *,
                return_trajectory: bool = False, progress: bool = False) -> SampleOutput:
    """Euler integration of dx/du = velocity(x, u * time_scale) over u in [0, 1] (eq-rf-euler)."""
    if not callable(velocity):
        raise TypeError(f"velocity must be callable as velocity(x, u), got {type(velocity).__name__}")
    x = check_tensor("x_noise", x_noise)
    steps = check_int("steps", steps, low=1)
    time_scale = check_float("time_scale", time_scale, low=0.0, low_open=True)
    h = 1.0 / steps
    traj = [x] if return_trajectory else None
    for i in progress_bar(range(steps), steps, progress, "flow"):
        u = torch.full((x.shape[0],), i * h * time_scale, dtype=x.dtype, device=x.device)
        v = velocity(x, u)
        if not isinstance(v, Tensor) or v.shape != x.shape:
            raise ValueError(f"velocity(x, u) must return a tensor shaped like x {tuple(x.shape)}")
        x = x + h * v                                                          # eq-rf-euler
        record(traj, x)
    return SampleOutput(x, steps, stack(traj))
