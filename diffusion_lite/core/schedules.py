"""Noise schedules: the betas of the forward process and everything derived from them.

Notation (book chapter 03, Notation page):

    betas[t]     = beta_t           variance added at step t            (eq-q-step)
    alphas[t]    = alpha_t = 1 - beta_t
    alpha_bar[t] = prod_{s<=t} alpha_s                                  (eq-alpha-bar)
    snr(t)       = alpha_bar_t / (1 - alpha_bar_t)                      (eq-snr)
    beta_tilde[t]= (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) * beta_t   (eq-posterior-var)

Every tensor has length T + 1 and index t is the paper's t: betas[0] = 0 and alpha_bar[0] = 1
stand for "no noise yet", so no formula needs a special case at t = 0. Tensors are float64 and
are cast to the dtype and device of the data where they are used (see `gather`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

from .._checks import check_float, check_int, check_tensor, check_timesteps

MAX_BETA = 0.999  # Nichol & Dhariwal 2021, Sec. 3.2: clip betas so the last steps stay invertible


@dataclass(frozen=True, eq=False)
class Schedule:
    """A discrete variance schedule for t = 0..T (index t is the paper's t)."""

    betas: Tensor      # (T+1,) float64, beta_t; betas[0] = 0
    alphas: Tensor     # (T+1,) float64, alpha_t = 1 - beta_t; alphas[0] = 1
    alpha_bar: Tensor  # (T+1,) float64, cumulative product of alphas; alpha_bar[0] = 1
    name: str = "custom"  # how it was made, for plots and error messages

    def __post_init__(self):
        for field in ("betas", "alphas", "alpha_bar"):
            value = getattr(self, field)
            check_tensor(field, value)
            if value.dim() != 1 or value.shape[0] < 2:
                raise ValueError(f"{field} must be 1-D of length T+1 >= 2, got shape {tuple(value.shape)}")
        if not (self.betas.shape == self.alphas.shape == self.alpha_bar.shape):
            raise ValueError("betas, alphas and alpha_bar must have the same length T+1")
        if float(self.betas[0]) != 0.0 or float(self.alpha_bar[0]) != 1.0:
            raise ValueError("index 0 means 'no noise': betas[0] must be 0 and alpha_bar[0] must be 1")
        b = self.betas[1:]
        if bool((b <= 0).any()) or bool((b >= 1).any()):
            raise ValueError(f"betas[1:] must lie in (0, 1), got min {float(b.min())}, max {float(b.max())}")

    # ----------------------------------------------------------------------------- constructors
    @classmethod
    def from_betas(cls, betas: Tensor, name: str = "custom") -> "Schedule":
        """Build from beta_1..beta_T (length T); index 0 is prepended."""
        try:
            betas = torch.as_tensor(betas, dtype=torch.float64)
        except (TypeError, ValueError, RuntimeError):
            raise TypeError(f"betas must be a tensor or a sequence of numbers, got {type(betas).__name__}") from None
        betas = check_tensor("betas", betas)
        if betas.dim() != 1:
            raise ValueError(f"betas must be 1-D (beta_1..beta_T), got shape {tuple(betas.shape)}")
        betas = torch.cat([betas.new_zeros(1), betas])  # (T+1,), betas[0] = 0
        alphas = 1.0 - betas
        return cls(betas=betas, alphas=alphas, alpha_bar=torch.cumprod(alphas, 0), name=name)

    @classmethod
    def from_alpha_bar(cls, alpha_bar_fn: Callable[[Tensor], Tensor], T: int = 1000,
                       max_beta: float = MAX_BETA, name: str = "custom") -> "Schedule":
        """Build from a continuous alpha_bar(tau), tau in [0, 1], as Nichol & Dhariwal do.

        beta_t = min(1 - alpha_bar(t/T) / alpha_bar((t-1)/T), max_beta)   (eq-beta-from-alpha-bar)
        alpha_bar is then recomputed from the clipped betas, so the three tensors agree exactly.
        """
        if not callable(alpha_bar_fn):
            raise TypeError(f"alpha_bar_fn must be callable as alpha_bar_fn(tau), got {type(alpha_bar_fn).__name__}")
        T = check_int("T", T, low=1)
        max_beta = check_float("max_beta", max_beta, low=0.0, high=1.0, low_open=True, high_open=True)
        tau = torch.arange(T + 1, dtype=torch.float64) / T
        f = alpha_bar_fn(tau)
        if not isinstance(f, Tensor) or f.shape != tau.shape:
            raise ValueError("alpha_bar_fn must map a (T+1,) tensor of tau in [0, 1] to a (T+1,) tensor")
        if not bool(torch.isfinite(f).all()) or bool((f[:-1] <= 0).any()) or float(f[-1]) < 0:
            raise ValueError("alpha_bar_fn must return finite values, > 0 on [0, 1) and >= 0 at 1, "
                             f"got values from {float(f.min())} to {float(f.max())}")
        betas = (1.0 - f[1:] / f[:-1]).clamp(min=0.0, max=max_beta)
        if bool((betas <= 0).any()):
            raise ValueError("alpha_bar_fn must be strictly decreasing on [0, 1]")
        return cls.from_betas(betas, name=name)

    @classmethod
    def linear(cls, T: int = 1000, beta_1: float = 1e-4, beta_T: float = 0.02) -> "Schedule":
        """Ho et al. 2020, Sec. 4: betas linear from beta_1 to beta_T (eq-linear-schedule)."""
        T = check_int("T", T, low=1)
        beta_1 = check_float("beta_1", beta_1, low=0.0, high=1.0, low_open=True, high_open=True)
        beta_T = check_float("beta_T", beta_T, low=0.0, high=1.0, low_open=True, high_open=True)
        return cls.from_betas(torch.linspace(beta_1, beta_T, T, dtype=torch.float64), name="linear")

    @classmethod
    def cosine(cls, T: int = 1000, s: float = 0.008, max_beta: float = MAX_BETA) -> "Schedule":
        """Nichol & Dhariwal 2021, Eq. 17: alpha_bar(tau) = f(tau)/f(0),
        f(tau) = cos^2(pi/2 * (tau + s)/(1 + s))  (eq-cosine-schedule)."""
        s = check_float("s", s, low=0.0, high=1.0, high_open=True)

        def f(tau: Tensor) -> Tensor:
            return torch.cos((tau + s) / (1 + s) * math.pi / 2) ** 2

        return cls.from_alpha_bar(lambda tau: f(tau) / f(tau.new_zeros(())), T, max_beta, name="cosine")

    @classmethod
    def sigmoid(cls, T: int = 1000, start: float = -3.0, end: float = 3.0, tau: float = 1.0,
                max_beta: float = MAX_BETA) -> "Schedule":
        """Chen 2023 ("On the importance of noise scheduling"), Alg. 1 (eq-sigmoid-schedule):
        alpha_bar(u) = (sig(end/tau) - sig((u(end-start)+start)/tau)) / (sig(end/tau) - sig(start/tau))."""
        start = check_float("start", start)
        end = check_float("end", end)
        tau = check_float("tau", tau, low=0.0, low_open=True)
        if not start < end:
            raise ValueError(f"start must be smaller than end, got start={start}, end={end}")
        v_start = torch.sigmoid(torch.tensor(start / tau, dtype=torch.float64))
        v_end = torch.sigmoid(torch.tensor(end / tau, dtype=torch.float64))

        def alpha_bar(u: Tensor) -> Tensor:
            return (v_end - torch.sigmoid((u * (end - start) + start) / tau)) / (v_end - v_start)

        return cls.from_alpha_bar(alpha_bar, T, max_beta, name="sigmoid")

    @classmethod
    def named(cls, name: str, T: int = 1000, **kwargs) -> "Schedule":
        """One of the built-in schedules by name: 'linear', 'cosine' or 'sigmoid'."""
        makers = {"linear": cls.linear, "cosine": cls.cosine, "sigmoid": cls.sigmoid}
        if name not in makers:
            raise ValueError(f"unknown schedule {name!r}; choose one of {sorted(makers)}")
        return makers[name](T=T, **kwargs)

    # ----------------------------------------------------------------------------- derived quantities
    @property
    def T(self) -> int:
        """Number of noising steps."""
        return self.betas.shape[0] - 1

    @property
    def snr(self) -> Tensor:
        """SNR(t) = alpha_bar_t / (1 - alpha_bar_t) (eq-snr; Kingma et al. 2021); snr[0] = inf."""
        return self.alpha_bar / (1.0 - self.alpha_bar)

    @property
    def log_snr(self) -> Tensor:
        """lambda_t = log SNR(t) (eq-log-snr); log_snr[0] = inf."""
        return torch.log(self.alpha_bar) - torch.log1p(-self.alpha_bar)

    @property
    def beta_tilde(self) -> Tensor:
        """Posterior variance of q(x_{t-1} | x_t, x0) (eq-posterior-var); beta_tilde[0] = 0."""
        ab_prev = torch.cat([self.alpha_bar.new_ones(1), self.alpha_bar[:-1]])  # alpha_bar_{t-1}
        out = (1.0 - ab_prev) / (1.0 - self.alpha_bar) * self.betas
        out[0] = 0.0  # 0/0 at t = 0: no step to invert
        return out

    def __repr__(self) -> str:
        return (f"Schedule(name={self.name!r}, T={self.T}, beta_1={float(self.betas[1]):.3g}, "
                f"beta_T={float(self.betas[-1]):.3g}, alpha_bar_T={float(self.alpha_bar[-1]):.3g})")


def check_schedule(sched) -> Schedule:
    """The argument every diffusion function takes as `sched` must be a Schedule."""
    if not isinstance(sched, Schedule):
        raise TypeError(f"sched must be a diffusion_lite.Schedule, got {type(sched).__name__}")
    return sched


def gather(values: Tensor, t, like: Tensor, sched: Schedule | None = None) -> Tensor:
    """values[t] cast to like's dtype and device, shaped to broadcast over like.

    t is an int or a (B,) long tensor; the result has shape (B, 1, ..., 1) with like.dim() axes
    (or () for a scalar t), so `gather(sched.alpha_bar, t, x) * x` works for any data shape.
    """
    for name, value in (("values", values), ("like", like)):
        if not isinstance(value, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if sched is not None and not isinstance(sched, Schedule):
        raise TypeError(f"sched must be a diffusion_lite.Schedule or None, got {type(sched).__name__}")
    T = values.shape[0] - 1
    t = check_timesteps("t", t, T if sched is None else sched.T)
    if t.device.type == "cpu" and values.device.type == "cpu" and like.device.type == "cuda":
        # index on the host, then one small pinned, non-blocking copy: no stream sync per step
        out = values[t].to(like.dtype).pin_memory().to(like.device, non_blocking=True)
    else:
        out = values.to(like.device)[t.to(like.device)].to(like.dtype)
    if t.dim() == 1:
        if like.dim() == 0 or like.shape[0] != t.shape[0]:
            raise ValueError(
                f"t has batch size {t.shape[0]} but the data has shape {tuple(like.shape)}; "
                "pass one timestep per sample or a single int"
            )
        out = out.reshape(-1, *([1] * (like.dim() - 1)))  # (B, 1, ..., 1)
    return out
