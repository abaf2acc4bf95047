"""Sampling a flow: Euler steps of dx/ds = v(x, s) from noise at s = 0 to data at s = 1 (rectified flow).

A rectified flow (Liu et al. 2023) moves along the straight line x_s = (1 - s) x_noise + s x_data, whose
velocity is x_data - x_noise (eq-rf-path). Its network v(x_s, s) is trained to that velocity
(training/rectified_flow.py) and sampled by integrating the ODE forward in s:

    x_{s + h} = x_s + h v(x_s, s),    h = 1 / steps                           (eq-rf-euler)

The time s is handed to the network as s * time_scale, so that a network built for integer diffusion
timesteps (the MLP's or U-Net's sinusoidal embedding, frequencies tuned for 0..1000) sees the same
range. One NFE per step. This is not the eps seam of sampling/base.py: v is a velocity, not a noise.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .._checks import check_float, check_int, check_tensor
from .base import SampleOutput, progress_bar, record, stack


def sample_flow(velocity, x_noise: Tensor, steps: int = 1, time_scale: float = 1000.0, *,
                return_trajectory: bool = False, progress: bool = False) -> SampleOutput:
    """Euler integration of dx/ds = velocity(x, s * time_scale) over s in [0, 1] (eq-rf-euler)."""
    if not callable(velocity):
        raise TypeError(f"velocity must be callable as velocity(x, s), got {type(velocity).__name__}")
    x = check_tensor("x_noise", x_noise)
    steps = check_int("steps", steps, low=1)
    time_scale = check_float("time_scale", time_scale, low=0.0, low_open=True)
    h = 1.0 / steps
    traj = [x] if return_trajectory else None
    for i in progress_bar(range(steps), steps, progress, "flow"):
        s = torch.full((x.shape[0],), i * h * time_scale, dtype=x.dtype, device=x.device)
        v = velocity(x, s)
        if not isinstance(v, Tensor) or v.shape != x.shape:
            raise ValueError(f"velocity(x, s) must return a tensor shaped like x {tuple(x.shape)}")
        x = x + h * v                                                          # eq-rf-euler
        record(traj, x)
    return SampleOutput(x, steps, stack(traj))
