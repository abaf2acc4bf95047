"""Rectified flow (Liu et al. 2023): learn the velocity of straight noise-to-data paths, then straighten them by reflow.

Given pairs (x_noise, x_data) from some coupling, the path x_u = (1 - u) x_noise + u x_data (u in [0, 1])
moves at constant velocity x_data - x_noise (eq-rf-path). A network trained by

    loss = E_{u ~ U(0,1)} |velocity(x_u, u) - (x_data - x_noise)|^2                  (eq-rf-loss; Liu et al. 2023, Eq. 1)

learns the conditional mean velocity E[x_data - x_noise | x_u], whose ODE (sampling/flow.py) carries
the noise distribution to the data distribution. With independent pairs (1-rectified flow) the
paths cross and the learned ODE curves, so few Euler steps are inaccurate. *Reflow* draws new pairs
(x_noise, ODE(x_noise)) from the trained flow itself and trains again: those pairs do not cross, the
new flow is straighter, and one or two Euler steps suffice (Liu et al. 2023, Sec. 2.2, Thm. 3.6).
"""
from __future__ import annotations

import math
import time

import torch
from torch import Tensor, nn

from .._checks import check_float, check_same, check_tensor
from .distill import DistillConfig, DistillResult


def train_rectified_flow(velocity: nn.Module, x_noise: Tensor, x_data: Tensor, config: DistillConfig = DistillConfig(),
                         time_scale: float = 1000.0, *, progress: bool = True) -> DistillResult:
    """Train `velocity` in place on the pairs (x_noise[i], x_data[i]) with eq-rf-loss.

    Pass independent draws for 1-rectified flow, or (x_noise, sample_flow(previous, x_noise).x0) to
    reflow. The network sees u * time_scale (as in sample_flow). Returns a DistillResult with
    teacher_steps = student_steps = 0 (no step grid) and the loss history.
    """
    if not isinstance(velocity, nn.Module):
        raise TypeError(f"velocity must be a torch.nn.Module, got {type(velocity).__name__}")
    check_tensor("x_noise", x_noise)
    check_tensor("x_data", x_data)
    check_same("x_noise", x_noise, "x_data", x_data)
    time_scale = check_float("time_scale", time_scale, low=0.0, low_open=True)
    if not isinstance(config, DistillConfig):
        raise TypeError(f"config must be a DistillConfig, got {type(config).__name__}")
    param = next(velocity.parameters())
    gen = torch.Generator().manual_seed(config.seed)
    opt = torch.optim.Adam(velocity.parameters(), lr=config.lr)
    history: list[float] = []
    bar = None
    if progress:
        from tqdm.auto import tqdm  # imported on use: importing the package stays light
        bar = tqdm(total=config.steps, desc="rectified flow", leave=False)
    start = time.perf_counter()
    velocity.train()
    for step in range(config.steps):
        for group in opt.param_groups:  # linear decay to 0, as in distill
            group["lr"] = config.lr * (1 - step / config.steps)
        i = torch.randint(len(x_data), (config.batch_size,), generator=gen)
        x0, x1 = x_noise[i].to(param.device, param.dtype), x_data[i].to(param.device, param.dtype)
        u = torch.rand(config.batch_size, generator=gen, dtype=param.dtype).to(param.device)
        u_b = u.reshape(-1, *([1] * (x0.dim() - 1)))
        x_u = (1 - u_b) * x0 + u_b * x1                                             # eq-rf-path
        loss = (velocity(x_u, u * time_scale) - (x1 - x0)).pow(2).flatten(1).mean(1).mean()  # eq-rf-loss
        if not math.isfinite(loss.item()):
            raise FloatingPointError(f"rectified-flow loss is {loss.item()} at step {step}; lower config.lr")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if config.grad_clip is not None:
            nn.utils.clip_grad_norm_(velocity.parameters(), config.grad_clip)
        opt.step()
        history.append(loss.item())
        if bar is not None and (step + 1) % config.log_every == 0:
            bar.update(config.log_every)
            bar.set_postfix(loss=f"{sum(history[-config.log_every:]) / config.log_every:.4g}")
    if bar is not None:
        bar.close()
    velocity.eval()
    return DistillResult(velocity, 0, 0, history, time.perf_counter() - start)
