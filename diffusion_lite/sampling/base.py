"""What every sampler shares: the model seam, the output types, timestep sequences and the loop helpers.

A model is anything callable as

    model(x_t, t, cond=None) -> eps_hat

with x_t (B, ...), t a (B,) long tensor in [1, T] and eps_hat shaped like x_t. A trained U-Net, the
exact oracle of a Gaussian mixture, a guided model, a latent model or a distilled student are all
models in this sense, and every sampler accepts each of them. Samplers call model(x_t, t) when no
condition is given, so a plain `lambda x, t: ...` is a model too.

Every sampler has the same calling convention (chapter 09 compares them at equal NFE):

    sample_xxx(model, sched, x_T or shape, steps, ..., cond=None, generator=None,
               return_trajectory=False, progress=False) -> SampleOutput(x0, nfe, trajectory)

and holds no state between calls: the randomness comes from the generator it is given.

Input checks run once per call, where the sampler starts (`start`); the loop does no checking that
would read a value back from an accelerator (a device sync per step).
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import torch
from torch import Tensor

from .._checks import check_generator, check_int, check_tensor, check_timesteps
from ..core.schedules import Schedule, check_schedule

SPACINGS = ("trailing", "leading", "linspace", "quadratic")
Model = Callable[..., Tensor]  # model(x_t, t, cond=None) -> eps_hat


class StepOutput(NamedTuple):
    """One reverse step: the new sample and the x0 prediction it was built from."""

    x_prev: Tensor  # x_{t_prev}
    x0_hat: Tensor  # prediction of x0 at step t


class SampleOutput(NamedTuple):
    """What every sampler returns."""

    x0: Tensor                 # the final samples, shaped like x_T
    nfe: int                   # number of model evaluations spent
    trajectory: Tensor | None  # (n_states, *x.shape): x_T, ..., x0 when return_trajectory=True


def timesteps(T: int, steps: int, spacing: str = "trailing") -> Tensor:
    """A descending sub-sequence tau_S > ... > tau_1 of {1..T} with `steps` elements.

    trailing:  round(i T / S)             starts at T, every step moves (Lin et al. 2024)
    leading:   (i - 1) floor(T / S) + 1    diffusers' default for DDIM/DDPM (+1 for our indexing)
    linspace:  round(linspace(0, T-1, S)) + 1   includes t = T and t = 1
    quadratic: ~ T (i / S)^2              dense near t = 0 (Song et al. 2021 DDIM, Sec. D.2)
    The sampler then steps from tau_1 to t = 0 (alpha_bar_0 = 1), so x0 is reached exactly.
    """
    T = check_int("T", T, low=1)
    steps = check_int("steps", steps, low=1, high=T)
    i = torch.arange(1, steps + 1, dtype=torch.float64)
    if spacing == "trailing":
        ts = torch.round(i * T / steps)
    elif spacing == "leading":
        ts = (i - 1) * (T // steps) + 1
    elif spacing == "linspace":
        ts = torch.round(torch.linspace(0, T - 1, steps, dtype=torch.float64)) + 1
    elif spacing == "quadratic":
        ts = torch.round(T * (i / steps) ** 2)
    else:
        raise ValueError(f"spacing must be one of {SPACINGS}, got {spacing!r}")
    ts = ts.long()
    for k in range(steps):  # make strictly increasing inside [1, T] where rounding merged values
        ts[k] = max(int(ts[k]), k + 1, int(ts[k - 1]) + 1 if k else 1)
    for k in reversed(range(steps)):
        ts[k] = min(int(ts[k]), T - (steps - 1 - k))
    return ts.flip(0)


def check_sequence(ts, sched: Schedule, name: str = "steps") -> Tensor:
    """An explicit timestep sequence: 1-D, strictly descending, inside [1, T]."""
    ts = check_timesteps(name, ts, sched.T, low=1)
    if ts.dim() != 1 or bool((ts[1:] >= ts[:-1]).any()):
        raise ValueError(f"{name}, a timestep sequence, must be 1-D and strictly descending, got {ts.tolist()}")
    return ts


def start(model, sched: Schedule, x_T, steps, spacing: str, generator) -> tuple[Tensor, Tensor]:
    """Validate a sampler's common arguments once; return the starting sample and the descending timesteps.

    x_T is a tensor (checked for NaN/inf here, once) or a shape, drawn as N(0, I) with the generator.
    steps is a number of steps (spread by `spacing`) or an explicit descending timestep tensor.
    """
    check_schedule(sched)
    if not callable(model):
        raise TypeError(f"model must be callable as model(x_t, t, cond=None), got {type(model).__name__}")
    check_generator("generator", generator)
    ts = check_sequence(steps, sched) if isinstance(steps, Tensor) else timesteps(sched.T, steps, spacing)
    if isinstance(x_T, Tensor):
        check_tensor("x_T", x_T)
        if not bool(torch.isfinite(x_T).all()):  # once per call, also on an accelerator
            raise ValueError("x_T contains NaN or infinite values")
        return x_T, ts
    if isinstance(x_T, (tuple, list, torch.Size)) and all(isinstance(n, int) and n > 0 for n in x_T):
        device = generator.device if generator is not None else "cpu"
        return torch.randn(tuple(x_T), generator=generator, device=device), ts
    raise TypeError(f"x_T must be a tensor or a shape (tuple of positive ints), got {x_T!r}")


def call_model(model: Model, x: Tensor, t: int, cond=None) -> Tensor:
    """eps_hat = model(x, t, cond) with t broadcast to a (B,) long tensor; checks the output's shape.

    Without a condition the model is called as model(x, t). The shape check reads no values, so it
    costs no device sync.
    """
    t_batch = torch.full((x.shape[0],), int(t), dtype=torch.long, device=x.device)
    out = model(x, t_batch) if cond is None else model(x, t_batch, cond)
    if not isinstance(out, Tensor) or out.shape != x.shape:
        got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise ValueError(f"model(x_t, t) must return a tensor shaped like x_t {tuple(x.shape)}, got {got}")
    return out


def batch_timesteps(name: str, t: Tensor, x_t: Tensor) -> Tensor:
    """A (B,) timestep tensor must match the batch; schedule tensors are indexed on the CPU."""
    if t.dim() == 1 and t.shape[0] != x_t.shape[0]:
        raise ValueError(f"{name} has {t.shape[0]} timesteps but x_t has batch size {x_t.shape[0]}")
    return t.cpu()


def coef(c: Tensor, like: Tensor) -> Tensor:
    """A float64 coefficient (shape () or (B,)) cast to like's dtype and device, shaped to broadcast over it."""
    c = c.to(device=like.device, dtype=like.dtype)
    return c.reshape(-1, *([1] * (like.dim() - 1))) if c.dim() == 1 else c


def progress_bar(iterable, total: int, enabled: bool, desc: str):
    """The iterable, wrapped in a tqdm progress bar when enabled."""
    if not enabled:
        return iterable
    from tqdm.auto import tqdm  # imported on use: importing the package stays light

    return tqdm(iterable, total=total, desc=desc, leave=False)


def record(trajectory: list | None, x: Tensor) -> None:
    """Append x to the trajectory being kept (None: none is kept)."""
    if trajectory is not None:
        trajectory.append(x)


def stack(trajectory: list | None) -> Tensor | None:
    """The kept trajectory as one (n_states, ...) tensor, or None."""
    return None if trajectory is None else torch.stack(trajectory)
