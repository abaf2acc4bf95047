"""Discrete-time samplers: DDPM ancestral steps, DDIM steps, timestep sub-sequences, and `sample`.

Notation (Notation page; chapters 05 and 09). A "step" maps x_t to x_{t_prev}; a "sampler" runs
steps from x_T down to t = 0 and counts its network evaluations (NFE).

| symbol                     | code                        | diffusers                                    |
|----------------------------|-----------------------------|----------------------------------------------|
| eps_theta(x_t, t)          | eps_hat = model(x_t, t)     | model_output                                 |
| x0_hat                     | x0_hat                      | pred_original_sample                         |
| x_{t-1}, x_{t_prev}        | x_prev                      | prev_sample                                  |
| t, t_prev (1..T and 0..T-1)| t, t_prev                   | timestep = t - 1, prev_timestep = t_prev - 1 |
| alpha_bar_t, alpha_bar_0=1 | sched.alpha_bar[t]          | alphas_cumprod[t - 1], final_alpha_cumprod   |
| sigma_t^2 of DDPM          | sigma="beta_tilde" / "beta" | variance_type="fixed_small" / "fixed_large"  |
| sigma_t(eta) of DDIM       | ddim_sigma(t, t_prev, ...)  | eta * _get_variance(...) ** 0.5              |
| tau_S > ... > tau_1        | timesteps(T, S, spacing)    | set_timesteps(S), timestep_spacing           |

Equations: eq-ddpm-step, eq-ddpm-mean, eq-sigma-choices, eq-ddim-step, eq-ddim-sigma, eq-x0-from-eps.

All samplers share one calling convention (and `sample(..., method=...)` reaches each of them):
    sampler(model, sched, x_T or shape, steps, ..., generator=None, return_trajectory=False)
        -> SampleOutput(x0, nfe, trajectory)
model(x_t, t) takes x_t (B, ...) and t a (B,) long tensor and returns eps_hat shaped like x_t.
Steps follow diffusers' argument order (model output, timestep, sample) and are pure functions.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import torch
from torch import Tensor

from ._checks import check_float, check_generator, check_int, check_same, check_tensor, check_timesteps
from .elbo import SIGMAS, ddpm_mean
from .forward import _check_schedule
from .parameterization import eps_from_x0, x0_from_eps
from .schedules import Schedule

SPACINGS = ("trailing", "leading", "linspace", "quadratic")
Model = Callable[[Tensor, Tensor], Tensor]


class StepOutput(NamedTuple):
    """One reverse step: the new sample and the x0 prediction it was built from."""

    x_prev: Tensor  # x_{t_prev}
    x0_hat: Tensor  # prediction of x0 at step t


class SampleOutput(NamedTuple):
    """What every sampler returns."""

    x0: Tensor                 # the final samples, shaped like x_T
    nfe: int                   # number of model evaluations spent
    trajectory: Tensor | None  # (n_states, *x.shape): x_T, ..., x0 when return_trajectory=True


# --------------------------------------------------------------------------------- timesteps
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


def respace(sched: Schedule, ts: Tensor) -> Schedule:
    """The schedule seen by a sampler that only visits ts: alpha_bar'_i = alpha_bar_{tau_i},
    beta'_i = 1 - alpha_bar'_i / alpha_bar'_{i-1} (Nichol & Dhariwal 2021, Sec. 4)."""
    _check_schedule(sched)
    ts = _check_sequence(ts, sched, "ts").flip(0)  # ascending
    alpha_bar = torch.cat([sched.alpha_bar.new_ones(1), sched.alpha_bar[ts]])
    betas = torch.cat([sched.betas.new_zeros(1), 1.0 - alpha_bar[1:] / alpha_bar[:-1]])
    return Schedule(betas=betas, alphas=1.0 - betas, alpha_bar=alpha_bar, name=f"{sched.name}[{len(ts)} steps]")


# --------------------------------------------------------------------------------- DDPM
def ddpm_step(eps_hat: Tensor, t, x_t: Tensor, sched: Schedule, sigma: str = "beta_tilde",
              generator: torch.Generator | None = None, clip_x0: float | None = None) -> StepOutput:
    """One ancestral step x_t -> x_{t-1} (Ho et al. 2020, Alg. 2), t an int or (B,) tensor in [1, T].

    x_{t-1} = 1/sqrt(alpha_t) (x_t - beta_t / sqrt(1 - alpha_bar_t) eps_hat) + sigma_t z   (eq-ddpm-step)
    sigma_t^2 = beta_tilde_t ("beta_tilde") or beta_t ("beta"); z = 0 at t = 1   (eq-sigma-choices)
    clip_x0: clamp x0_hat to [-clip_x0, clip_x0] and re-derive eps_hat from it (images in [-1, 1]).
    """
    t = _check_step(eps_hat, t, x_t, sched)
    if sigma not in SIGMAS:
        raise ValueError(f"sigma must be one of {SIGMAS}, got {sigma!r}")
    check_generator("generator", generator, x_t.device)
    # 1. predicted x0 (eq-x0-from-eps), optionally clipped; eps_hat then follows from it (eq-eps-from-x0)
    x0_hat = x0_from_eps(eps_hat, t, x_t, sched)
    if clip_x0 is not None:
        x0_hat = x0_hat.clamp(-check_float("clip_x0", clip_x0, low=0.0, low_open=True), clip_x0)
        eps_hat = eps_from_x0(x0_hat, t, x_t, sched)
    # 2. mean of p(x_{t-1} | x_t): 1/sqrt(alpha_t) (x_t - beta_t / sqrt(1 - alpha_bar_t) eps_hat) (eq-ddpm-mean)
    mean = ddpm_mean(eps_hat, t, x_t, sched)
    # 3. noise: variance table with sigma_1 = 0 (Alg. 2 sets z = 0 at t = 1; beta_tilde_1 is 0 already)
    var = sched.beta_tilde if sigma == "beta_tilde" else torch.cat([sched.betas.new_zeros(2), sched.betas[2:]])
    z = torch.randn(x_t.shape, generator=generator, dtype=x_t.dtype, device=x_t.device)
    return StepOutput(mean + _as(var[t].sqrt(), x_t) * z, x0_hat)


def sample_ddpm(model: Model, sched: Schedule, x_T, steps: int | Tensor | None = None,
                spacing: str = "trailing", sigma: str = "beta_tilde", generator: torch.Generator | None = None,
                return_trajectory: bool = False, progress: bool = False, clip_x0: float | None = None) -> SampleOutput:
    """Ancestral sampling (Ho et al. 2020, Alg. 2) from x_T (a tensor, or a shape to draw N(0, I)).

    steps=None visits all T steps; fewer steps run DDPM on the respaced schedule (see `respace`).
    """
    x, ts = _start(model, sched, x_T, sched.T if steps is None else steps, spacing, generator)
    short = respace(sched, ts)  # short.alpha_bar[i] = sched.alpha_bar[ts[S - i]]
    traj, nfe = [x] if return_trajectory else None, 0
    for i, t in _progress(zip(range(len(ts), 0, -1), ts.tolist()), len(ts), progress, "DDPM"):
        eps_hat = _eval(model, x, t)  # the network sees the original timestep t
        nfe += 1
        x = ddpm_step(eps_hat, i, x, short, sigma, generator, clip_x0).x_prev
        _record(traj, x)
    return SampleOutput(x, nfe, _stack(traj))


# --------------------------------------------------------------------------------- DDIM
def ddim_sigma(t, t_prev, sched: Schedule, eta: float) -> Tensor:
    """sigma_t(eta) = eta sqrt((1 - alpha_bar_prev)/(1 - alpha_bar_t)) sqrt(1 - alpha_bar_t/alpha_bar_prev)

    eq-ddim-sigma (Song et al. 2021 DDIM, Eq. 16); eta = 1 on consecutive steps gives beta_tilde_t.
    Returned in float64, shaped like t.
    """
    _check_schedule(sched)
    eta = check_float("eta", eta, low=0.0, high=1.0)
    t, t_prev = _check_pair(t, t_prev, sched)
    ab_t, ab_prev = sched.alpha_bar[t], sched.alpha_bar[t_prev]
    return eta * ((1.0 - ab_prev) / (1.0 - ab_t)).sqrt() * (1.0 - ab_t / ab_prev).sqrt()


def ddim_step(eps_hat: Tensor, t, t_prev, x_t: Tensor, sched: Schedule, eta: float = 0.0,
              generator: torch.Generator | None = None, clip_x0: float | None = None) -> StepOutput:
    """One DDIM step x_t -> x_{t_prev}, 0 <= t_prev < t (Song et al. 2021 DDIM, Eq. 12).

    x_prev = sqrt(alpha_bar_prev) x0_hat + sqrt(1 - alpha_bar_prev - sigma_t^2) eps_hat + sigma_t z
                                                                                   (eq-ddim-step)
    eta = 0: deterministic (no noise is drawn); t_prev = 0 uses alpha_bar_0 = 1 and lands on x0_hat.
    clip_x0: clamp x0_hat and re-derive eps_hat from it, as GLIDE does (diffusers:
    clip_sample=True with use_clipped_model_output=True).
    """
    t = _check_step(eps_hat, t, x_t, sched)
    sigma_t = ddim_sigma(t, t_prev, sched, eta)  # eq-ddim-sigma; also validates eta and t_prev
    t_prev = _check_batch("t_prev", check_timesteps("t_prev", t_prev, sched.T), x_t)
    check_generator("generator", generator, x_t.device if eta > 0 else None)  # eta = 0 draws no noise
    # 1. predicted x0 (eq-x0-from-eps), optionally clipped; eps_hat then follows from it
    x0_hat = x0_from_eps(eps_hat, t, x_t, sched)
    if clip_x0 is not None:
        x0_hat = x0_hat.clamp(-check_float("clip_x0", clip_x0, low=0.0, low_open=True), clip_x0)
        eps_hat = eps_from_x0(x0_hat, t, x_t, sched)
    # 2. "direction pointing to x_t" and the jump to t_prev (eq-ddim-step)
    ab_prev = sched.alpha_bar[t_prev]
    x_prev = _as(ab_prev.sqrt(), x_t) * x0_hat + _as((1.0 - ab_prev - sigma_t**2).sqrt(), x_t) * eps_hat
    # 3. fresh noise only when it is used
    if eta > 0:
        z = torch.randn(x_t.shape, generator=generator, dtype=x_t.dtype, device=x_t.device)
        x_prev = x_prev + _as(sigma_t, x_t) * z
    return StepOutput(x_prev, x0_hat)


def sample_ddim(model: Model, sched: Schedule, x_T, steps: int | Tensor = 50, eta: float = 0.0,
                spacing: str = "trailing", generator: torch.Generator | None = None,
                return_trajectory: bool = False, progress: bool = False, clip_x0: float | None = None) -> SampleOutput:
    """DDIM sampling along timesteps(T, steps, spacing) then to t = 0: one model call per step."""
    eta = check_float("eta", eta, low=0.0, high=1.0)
    x, ts = _start(model, sched, x_T, steps, spacing, generator)
    t_prevs = torch.cat([ts[1:], ts.new_zeros(1)]).tolist()
    traj, nfe = [x] if return_trajectory else None, 0
    for t, t_prev in _progress(zip(ts.tolist(), t_prevs), len(ts), progress, "DDIM"):
        eps_hat = _eval(model, x, t)
        nfe += 1
        x = ddim_step(eps_hat, t, t_prev, x, sched, eta, generator, clip_x0).x_prev
        _record(traj, x)
    return SampleOutput(x, nfe, _stack(traj))


METHODS = ("ddpm", "ddim", "euler", "heun", "dpm_solver_pp_2m")


def sample(model: Model, sched: Schedule, x_T, steps: int | Tensor | None = None, method: str = "ddim",
           generator: torch.Generator | None = None, return_trajectory: bool = False, progress: bool = False,
           **options) -> SampleOutput:
    """One entry point for every sampler: sample(model, sched, (64, 1, 28, 28), 50, method="ddim").

    steps=None takes the sampler's own default (all T steps for DDPM); options go to the sampler
    (eta, spacing, sigma, clip_x0, ...).
    """
    from . import ode_samplers  # imported here: ode_samplers builds on this module

    samplers = {"ddpm": sample_ddpm, "ddim": sample_ddim, "euler": ode_samplers.sample_euler,
                "heun": ode_samplers.sample_heun, "dpm_solver_pp_2m": ode_samplers.sample_dpm_solver_pp_2m}
    if method not in samplers:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if steps is not None:
        options["steps"] = steps
    return samplers[method](model, sched, x_T, generator=generator, return_trajectory=return_trajectory,
                            progress=progress, **options)


# --------------------------------------------------------------------------------- shared plumbing
def _as(c: Tensor, like: Tensor) -> Tensor:
    """A float64 coefficient (shape () or (B,)) cast to like's dtype/device, shaped to broadcast."""
    c = c.to(device=like.device, dtype=like.dtype)
    return c.reshape(-1, *([1] * (like.dim() - 1))) if c.dim() == 1 else c


def _check_step(eps_hat: Tensor, t, x_t: Tensor, sched: Schedule) -> Tensor:
    _check_schedule(sched)
    check_tensor("eps_hat", eps_hat)
    check_tensor("x_t", x_t)
    check_same("eps_hat", eps_hat, "x_t", x_t)
    return _check_batch("t", check_timesteps("t", t, sched.T, low=1), x_t)


def _check_batch(name: str, t: Tensor, x_t: Tensor) -> Tensor:
    """A (B,) timestep tensor must match the batch; schedule tensors are indexed on the CPU."""
    if t.dim() == 1 and t.shape[0] != x_t.shape[0]:
        raise ValueError(f"{name} has {t.shape[0]} timesteps but x_t has batch size {x_t.shape[0]}")
    return t.cpu()


def _check_pair(t, t_prev, sched: Schedule) -> tuple[Tensor, Tensor]:
    t = check_timesteps("t", t, sched.T, low=1)
    t_prev = check_timesteps("t_prev", t_prev, sched.T)
    if bool((t_prev >= t).any()):
        raise ValueError(f"t_prev must be smaller than t, got t={t.tolist()}, t_prev={t_prev.tolist()}")
    return t.cpu(), t_prev.cpu()


def _check_sequence(ts, sched: Schedule, name: str = "steps") -> Tensor:
    """An explicit timestep sequence: 1-D, strictly descending, inside [1, T]."""
    ts = check_timesteps(name, ts, sched.T, low=1)
    if ts.dim() != 1 or bool((ts[1:] >= ts[:-1]).any()):
        raise ValueError(f"{name}, a timestep sequence, must be 1-D and strictly descending, got {ts.tolist()}")
    return ts


def _start(model, sched: Schedule, x_T, steps, spacing: str, generator) -> tuple[Tensor, Tensor]:
    """Validate the common arguments; return the starting sample and the descending timesteps."""
    _check_schedule(sched)
    if not callable(model):
        raise TypeError(f"model must be callable as model(x_t, t), got {type(model).__name__}")
    check_generator("generator", generator)
    if isinstance(steps, Tensor):
        ts = _check_sequence(steps, sched)
    else:
        ts = timesteps(sched.T, steps, spacing)
    if isinstance(x_T, Tensor):
        return check_tensor("x_T", x_T), ts
    if isinstance(x_T, (tuple, list, torch.Size)) and all(isinstance(n, int) and n > 0 for n in x_T):
        device = generator.device if generator is not None else "cpu"
        return torch.randn(tuple(x_T), generator=generator, device=device), ts
    raise TypeError(f"x_T must be a tensor or a shape (tuple of positive ints), got {x_T!r}")


def _eval(model: Model, x: Tensor, t: int) -> Tensor:
    """eps_hat = model(x, t) with t broadcast to a (B,) long tensor; checks the output shape."""
    out = model(x, torch.full((x.shape[0],), int(t), dtype=torch.long, device=x.device))
    if not isinstance(out, Tensor) or out.shape != x.shape:
        got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise ValueError(f"model(x_t, t) must return a tensor shaped like x_t {tuple(x.shape)}, got {got}")
    return out


def _progress(iterable, total: int, enabled: bool, desc: str):
    if not enabled:
        return iterable
    from tqdm.auto import tqdm  # imported on use: no import-time cost

    return tqdm(iterable, total=total, desc=desc, leave=False)


def _record(traj: list | None, x: Tensor) -> None:
    if traj is not None:
        traj.append(x)


def _stack(traj: list | None) -> Tensor | None:
    return None if traj is None else torch.stack(traj)
