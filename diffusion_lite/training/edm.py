"""EDM preconditioning (Karras et al. 2022, Table 1 and Sec. 5) as a model of the book's VP schedule.

Karras et al. write every diffusion model as a denoiser of y = x0 + sigma n, n ~ N(0, I), and wrap
the raw network F_theta so that its input and its training target have unit variance at every
noise level:

    D(y; sigma) = c_skip(sigma) y + c_out(sigma) F_theta(c_in(sigma) y; c_noise(sigma))    (eq-edm-denoiser)

    c_skip = s_d^2 / (sigma^2 + s_d^2),   c_out = sigma s_d / sqrt(sigma^2 + s_d^2),
    c_in   = 1 / sqrt(sigma^2 + s_d^2),   c_noise = ln(sigma) / 4                          (eq-edm-precond)

with s_d = sigma_data = 0.5, the standard deviation of the data. Training draws ln(sigma) ~
N(P_mean, P_std^2) (P_mean = -1.2, P_std = 1.2; eq-edm-sigma) and minimises
lambda(sigma) ||D(y; sigma) - x0||^2 with lambda = (sigma^2 + s_d^2) / (sigma s_d)^2 (eq-edm-loss).
Since lambda c_out^2 = 1 that loss is the plain squared error of F_theta against the effective target

    F_target = (x0 - c_skip y) / c_out                                                     (eq-edm-target)

which has unit variance for data of standard deviation s_d (Karras et al., Eq. 8 and App. B.6).

The book's samplers take eps_hat(x_t, t) on the VP schedule. With sigma_t = sqrt((1 - alpha_bar_t) /
alpha_bar_t) and y = x_t / sqrt(alpha_bar_t) = x0 + sigma_t eps (the VE view of sampling/ode.py),
EDMPrecond.forward returns eps_hat = (y - D(y; sigma_t)) / sigma_t (eq-eps-from-x0 in y), so DDPM,
DDIM, Heun and DPM-Solver++ sample it unchanged; denoise(y, sigma) takes continuous sigma.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .._checks import check_float, check_int, check_tensor
from ..core.schedules import check_schedule

SIGMA_DATA = 0.5            # s_d of Karras et al. (Table 1)
P_MEAN, P_STD = -1.2, 1.2   # the log-normal training distribution of sigma (Table 1)
# The U-Net's sinusoidal time features were made for t in [0, 1000] and it rejects t < 0, while
# c_noise = ln(sigma)/4 spans about [-1.6, 1.3] for sigma in [0.002, 157]. The net is given the affine
# image t_net = NET_TIME_SCALE * (c_noise + NET_TIME_SHIFT): 0 at sigma = e^-8, ~820 at sigma_T of the
# linear schedule. Below sigma = e^-8 (never reached by the samplers; ln sigma < -8 has probability
# ~1e-8 in training) t_net is clamped at 0, where c_out < 4e-4 makes F's contribution negligible.
NET_TIME_SCALE, NET_TIME_SHIFT = 250.0, 2.0


def edm_coefficients(sigma: Tensor, sigma_data: float = SIGMA_DATA) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(c_skip, c_out, c_in, c_noise) at noise levels sigma > 0 (eq-edm-precond; Karras et al. 2022, Table 1)."""
    check_tensor("sigma", sigma)
    sigma_data = check_float("sigma_data", sigma_data, low=0.0, low_open=True)
    if sigma.device.type == "cpu" and bool((sigma <= 0).any()):  # read on the CPU only: no device sync
        raise ValueError(f"sigma must be > 0, got a minimum of {float(sigma.min())}")
    s2, d2 = sigma * sigma, sigma_data * sigma_data
    c_skip = d2 / (s2 + d2)
    c_out = sigma * sigma_data / (s2 + d2).sqrt()
    c_in = 1.0 / (s2 + d2).sqrt()
    c_noise = sigma.log() / 4
    return c_skip, c_out, c_in, c_noise


def edm_loss_weight(sigma: Tensor, sigma_data: float = SIGMA_DATA) -> Tensor:
    """lambda(sigma) = (sigma^2 + s_d^2) / (sigma s_d)^2 = 1 / c_out^2 (eq-edm-loss; Karras et al., Table 1)."""
    check_tensor("sigma", sigma)
    sigma_data = check_float("sigma_data", sigma_data, low=0.0, low_open=True)
    return (sigma * sigma + sigma_data ** 2) / (sigma * sigma_data) ** 2


def edm_sigmas(n: int, generator: torch.Generator, p_mean: float = P_MEAN, p_std: float = P_STD) -> Tensor:
    """n training noise levels, ln(sigma) ~ N(p_mean, p_std^2) (eq-edm-sigma; Karras et al., Sec. 5), float32."""
    n = check_int("n", n, low=1)
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    p_mean = check_float("p_mean", p_mean)
    p_std = check_float("p_std", p_std, low=0.0)
    return (p_mean + p_std * torch.randn(n, generator=generator)).exp()


def _per_sample(name: str, sigma, x: Tensor) -> Tensor:
    """sigma as a float tensor shaped (B, 1, ..., 1) to broadcast over x (B, ...)."""
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float, Tensor)):
        raise TypeError(f"{name} must be a float or a tensor of noise levels, got {type(sigma).__name__}")
    sigma = torch.as_tensor(sigma, dtype=torch.float32, device=x.device)
    if sigma.dim() == 0:
        sigma = sigma.expand(x.shape[0])
    if sigma.shape != (x.shape[0],):
        raise ValueError(f"{name} must be a number or have shape ({x.shape[0]},), got {tuple(sigma.shape)}")
    return sigma.reshape(-1, *([1] * (x.dim() - 1)))  # (B, 1, ..., 1)


class EDMPrecond(nn.Module):
    """Karras et al.'s preconditioned denoiser around `net`, read as an eps model of the VP schedule `sched`.

    forward(x_t (B, ...), t (B,) or int in [1, T], cond=None) -> eps_hat, like every model of the book;
    denoise(y, sigma, cond=None) -> D(y; sigma) for continuous sigma > 0; net_output and target give the
    training pair of eq-edm-target. net: any model net(x, t, cond=None) -> tensor shaped like x.
    """

    def __init__(self, net: nn.Module, sched, sigma_data: float = SIGMA_DATA):
        super().__init__()
        if not isinstance(net, nn.Module):
            raise TypeError(f"net must be a torch.nn.Module, got {type(net).__name__}")
        sched = check_schedule(sched)
        self.net = net
        self.sigma_data = check_float("sigma_data", sigma_data, low=0.0, low_open=True)
        self.T = sched.T
        ab = sched.alpha_bar.double()
        # per-step tables in float64 (1 - alpha_bar loses digits in float32); index 0 (sigma = 0) is unused.
        # Not saved: they follow from the schedule, so the state dict holds the network alone.
        self.register_buffer("sigma_t", ((1 - ab) / ab).sqrt(), persistent=False)   # (T+1,)
        self.register_buffer("sqrt_alpha_bar", ab.sqrt(), persistent=False)         # (T+1,)

    def _apply(self, fn, recurse=True):
        # keep the schedule tables in float64 when the module is cast (e.g. .to(torch.bfloat16))
        tables = {k: getattr(self, k) for k in ("sigma_t", "sqrt_alpha_bar")}
        out = super()._apply(fn, recurse)
        for k, v in tables.items():
            moved = getattr(self, k)
            self._buffers[k] = v.to(moved.device, torch.float64)
        return out

    def net_time(self, c_noise: Tensor) -> Tensor:
        """The net's time input: the affine image of c_noise described at NET_TIME_SCALE, (B,)."""
        return (NET_TIME_SCALE * (c_noise + NET_TIME_SHIFT)).clamp(min=0.0)

    def net_output(self, y: Tensor, sigma, cond=None) -> Tensor:
        """F_theta(c_in y; c_noise), the raw network output that eq-edm-target trains."""
        check_tensor("y", y, min_dim=2)
        s = _per_sample("sigma", sigma, y)
        _, _, c_in, c_noise = edm_coefficients(s, self.sigma_data)
        t_net = self.net_time(c_noise.flatten())
        x_in = (c_in * y).to(y.dtype)
        return self.net(x_in, t_net) if cond is None else self.net(x_in, t_net, cond)

    def denoise(self, y: Tensor, sigma, cond=None) -> Tensor:
        """D(y; sigma) = c_skip y + c_out F_theta(c_in y; c_noise), an estimate of x0 (eq-edm-denoiser)."""
        check_tensor("y", y, min_dim=2)
        s = _per_sample("sigma", sigma, y)
        c_skip, c_out, _, _ = edm_coefficients(s, self.sigma_data)
        return (c_skip * y + c_out * self.net_output(y, s.flatten(), cond).float()).to(y.dtype)

    def target(self, x0: Tensor, y: Tensor, sigma) -> Tensor:
        """The effective training target (x0 - c_skip y) / c_out of F_theta (eq-edm-target)."""
        check_tensor("x0", x0, min_dim=2)
        check_tensor("y", y, min_dim=2)
        if x0.shape != y.shape:
            raise ValueError(f"x0 and y must have the same shape, got {tuple(x0.shape)} and {tuple(y.shape)}")
        s = _per_sample("sigma", sigma, y)
        c_skip, c_out, _, _ = edm_coefficients(s, self.sigma_data)
        return (x0 - c_skip * y) / c_out

    def forward(self, x_t: Tensor, t, cond=None) -> Tensor:
        """eps_hat(x_t, t) = (y - D(y; sigma_t)) / sigma_t with y = x_t / sqrt(alpha_bar_t) (eq-eps-from-x0)."""
        check_tensor("x_t", x_t, min_dim=2)
        if isinstance(t, bool) or not isinstance(t, (int, Tensor)):
            raise TypeError(f"t must be an int or an integer tensor of timesteps, got {type(t).__name__}")
        t = torch.as_tensor(t, device=x_t.device)
        if t.is_floating_point() or t.dtype == torch.bool or t.is_complex():
            raise TypeError(f"t must hold integer timesteps of the schedule, got dtype {t.dtype}; "
                            "for a continuous noise level call denoise(y, sigma)")
        if t.dim() == 0:
            t = t.expand(x_t.shape[0])
        if t.shape != (x_t.shape[0],):
            raise ValueError(f"t must be an int or have shape ({x_t.shape[0]},), got {tuple(t.shape)}")
        if t.device.type == "cpu" and bool(((t < 1) | (t > self.T)).any()):  # read on the CPU only: no sync
            raise ValueError(f"t must be in [1, {self.T}], got values in [{int(t.min())}, {int(t.max())}]")
        shape = (-1,) + (1,) * (x_t.dim() - 1)
        sigma = self.sigma_t[t].reshape(shape)                        # (B, 1, ..., 1), float64
        y = (x_t.double() / self.sqrt_alpha_bar[t].reshape(shape)).float()
        x0_hat = self.denoise(y, sigma.flatten().float(), cond).float()
        return ((y - x0_hat) / sigma.float()).to(x_t.dtype)           # eq-eps-from-x0 in y = x0 + sigma eps


def edm_loss(model: EDMPrecond, x0: Tensor, sigma: Tensor, noise: Tensor, cond=None, forward=None) -> Tensor:
    """Per-sample lambda(sigma) ||D(x0 + sigma noise; sigma) - x0||^2 / dim = ||F - F_target||^2 / dim (eq-edm-loss).

    forward: the callable that computes model.net_output (e.g. a torch.compile of it); default the method.
    Returns (B,) float32 losses; their mean is the training loss.
    """
    if not isinstance(model, EDMPrecond):
        raise TypeError(f"model must be an EDMPrecond, got {type(model).__name__}")
    check_tensor("x0", x0, min_dim=2)
    check_tensor("noise", noise, min_dim=2)
    if noise.shape != x0.shape:
        raise ValueError(f"noise must have x0's shape {tuple(x0.shape)}, got {tuple(noise.shape)}")
    s = _per_sample("sigma", sigma, x0)
    y = x0 + s.to(x0.dtype) * noise                                    # y = x0 + sigma n (eq-edm-denoiser)
    out = (forward or model.net_output)(y, s.flatten(), cond)
    target = model.target(x0.float(), y.float(), s.flatten())
    return (out.float() - target).pow(2).flatten(1).mean(1)          # lambda c_out^2 = 1


def edm_check_schedule(model: EDMPrecond, sched) -> None:
    """model's schedule tables must be those of `sched` (the one a sampler will use)."""
    sched = check_schedule(sched)
    if model.T != sched.T or not math.isclose(float(model.sqrt_alpha_bar[-1].cpu()),
                                              float(sched.alpha_bar[-1].double().sqrt()), rel_tol=1e-9):
        raise ValueError(f"sched must be the schedule the EDMPrecond was built with (T={model.T}), got T={sched.T}")
