"""Inpainting with an unconditional model: re-impose the known pixels at every step, optionally resampling.

With a mask m (1 = known pixel, 0 = to be generated) and the known image x0, every reverse step
combines two samples of x_{t-1} (Lugmayr et al. 2022, RePaint, Eq. 8; eq-inpaint-combine):

    x_{t-1}^known   = sqrt(alpha_bar_{t-1}) x0 + sqrt(1 - alpha_bar_{t-1}) eps     (eq-q-sample)
    x_{t-1}^unknown = one DDPM step from x_t                                      (eq-ddpm-step)
    x_{t-1}         = m * x_{t-1}^known + (1 - m) * x_{t-1}^unknown

That alone ("replacement") makes the generated region agree with a noisy version of the known one,
but only through the one step that sees both, so the two halves often disagree. RePaint resamples:
after going down `jump` steps it goes back up `jump` steps with the forward chain
x_t = sqrt(alpha_t) x_{t-1} + sqrt(beta_t) z (eq-q-step) and denoises again, `resample` times in
all, giving the network more steps in which to harmonise the two regions (RePaint, Alg. 1 and
Sec. 4.2). resample = 1 is plain replacement. The cost is about resample times the NFE.

The step is the DDPM step of ddpm.py on the respaced schedule (respace), so this sampler sits
above ddpm.py as dispatch.py does. An all-unknown mask draws no known-region noise: it then
returns exactly sample_ddpm's samples for the same generator; an all-known mask returns x0.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .._checks import check_int, check_tensor
from ..core.forward import q_sample, q_step
from ..core.reverse import VARIANCES
from ..core.schedules import Schedule
from .base import Model, SampleOutput, call_model, progress_bar, record, stack, start
from .ddpm import ddpm_step, respace


def check_mask(mask, x0: Tensor) -> Tensor:
    """A 0/1 mask shaped like x0 or broadcastable to it (dims equal or 1), as x0's dtype and device."""
    if not isinstance(mask, Tensor):
        raise TypeError(f"mask must be a torch.Tensor of 0s and 1s, got {type(mask).__name__}")
    if mask.dim() != x0.dim() or any(m not in (1, n) for m, n in zip(mask.shape, x0.shape)):
        raise ValueError(f"mask must have the shape of x0 {tuple(x0.shape)} or broadcast to it with 1s "
                         f"(e.g. (1, 1, H, W)), got {tuple(mask.shape)}")
    mask = mask.to(device=x0.device, dtype=x0.dtype)
    if not bool(((mask == 0) | (mask == 1)).all()):
        raise ValueError("mask must hold only 0 (generate) and 1 (known), got other values")
    return mask


def repaint_path(S: int, jump: int = 1, resample: int = 1) -> list[int]:
    """The states S, ..., 0 that RePaint visits (RePaint's schedule, Sec. 4.2 and its code).

    Going down one step at a time, at the states 1, 1 + jump, 1 + 2 jump, ... below S - jump + 1 it
    goes back up `jump` states, (resample - 1) times each; resample = 1 is the plain path S, ..., 0.
    """
    S = check_int("S", S, low=1)
    jump = check_int("jump", jump, low=1, high=S)
    resample = check_int("resample", resample, low=1)
    left = {j + 1: resample - 1 for j in range(0, S - jump, jump)}
    i, path = S, [S]
    while i >= 1:
        i -= 1
        path.append(i)
        if left.get(i, 0) > 0:
            left[i] -= 1
            for _ in range(jump):
                i += 1
                path.append(i)
    return path


def inpaint(model: Model, sched: Schedule, x0: Tensor, mask: Tensor, steps: int | Tensor | None = None,
            resample: int = 1, jump: int = 1, spacing: str = "trailing", variance: str = "beta_tilde", cond=None,
            generator: torch.Generator | None = None, return_trajectory: bool = False,
            progress: bool = False) -> SampleOutput:
    """Fill the pixels where mask == 0 with samples consistent with x0 where mask == 1 (see module docstring).

    x0: the known image (B, ...) in the model's space; mask: 0/1, shaped like x0 or broadcastable;
    steps: None for all T steps, else fewer steps on the respaced schedule (as sample_ddpm);
    resample, jump: RePaint's resampling count and jump length (resample=1: plain replacement).
    The result equals x0 exactly on the known pixels.
    """
    check_tensor("x0", x0)
    mask = check_mask(mask, x0)
    if variance not in VARIANCES:
        raise ValueError(f"variance must be one of {VARIANCES}, got {variance!r}")
    x, ts = start(model, sched, tuple(x0.shape), sched.T if steps is None else steps, spacing, generator)
    x = x.to(device=x0.device, dtype=x0.dtype)
    short = respace(sched, ts)  # short.alpha_bar[i] = sched.alpha_bar[ts[S - i]]
    S = len(ts)
    path = repaint_path(S, jump, resample)
    any_known = bool(mask.any())  # no known pixel: no known-region noise is drawn (= sample_ddpm)
    traj, nfe = [x] if return_trajectory else None, 0

    def noise() -> Tensor:
        return torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device)

    for i, j in progress_bar(zip(path[:-1], path[1:]), len(path) - 1, progress, "inpaint"):
        if j == i - 1:  # down: one DDPM step for the unknown part, a fresh q-sample for the known part
            eps_hat = call_model(model, x, int(ts[S - i]), cond)  # the network sees the original t
            nfe += 1
            x = ddpm_step(eps_hat, i, x, short, variance, generator).x_prev  # eq-ddpm-step
            if any_known:
                known = q_sample(x0, j, noise(), short)  # eq-q-sample; j = 0 gives x0 itself
                x = mask * known + (1 - mask) * x  # eq-inpaint-combine
        else:  # up: one forward step back to state j = i + 1 (eq-q-step)
            x = q_step(x, j, noise(), short)
        record(traj, x)
    return SampleOutput(x, nfe, stack(traj))
