"""The variational bound (ELBO) of a diffusion model whose network predicts the noise eps.

For one data point x0 (book chapter 04, eq-elbo and eq-vlb-terms; Ho et al. 2020, Eq. 5;
Sohl-Dickstein et al. 2015):

    -log p_theta(x0) <= L = L_T + sum_{t=2}^{T} L_{t-1} + L_0
    L_T     = KL(q(x_T | x0) || N(0, I))                                    prior_kl
    L_{t-1} = E_q KL(q(x_{t-1} | x_t, x0) || p_theta(x_{t-1} | x_t)),  t >= 2   vlb_term
    L_0     = -E_q log p_theta(x0 | x_1)                                    decoder_nll

with p_theta(x_{t-1} | x_t) = N(mu_theta(x_t, t), Sigma_t I), mu_theta built from eps_hat
(eq-ddpm-mean) and Sigma_t = beta_t or beta_tilde_t (eq-sigma-choices). Every term is in nats
per sample (summed over all axes but the first, which is the batch). `bits_per_dim` adds them up.

The decoder p_theta(x0 | x_1) is the discretised Gaussian of Ho et al. 2020 (Eq. 13) for 8-bit
data scaled to [-1, 1] (bins=256), or a plain Gaussian density for continuous data (bins=None).
Its variance Sigma_1 is beta_tilde_2 for variance="beta_tilde", because beta_tilde_1 = 0 would make
the decoder a point mass (the "clipped" posterior variance of the reference code of Ho et al. 2020
and Nichol & Dhariwal 2021, which uses beta_tilde_2 at t = 1 for both choices). For variance="beta"
it is beta_1, which keeps the bound exact for x0 ~ N(0, I) (book chapter 04).

A model is called as model(x_t, t) -> eps_hat, with t a (B,) long tensor.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from .._checks import check_int, check_same, check_tensor, check_timesteps
from .forward import q_posterior, q_sample
from .reverse import VARIANCES, ddpm_mean, reverse_variance
from .schedules import Schedule, check_schedule, gather

def _per_sample(x: Tensor) -> Tensor:
    """Sum over every axis but the first: (B, ...) -> (B,)."""
    return x.reshape(x.shape[0], -1).sum(1)


def _check_broadcast(args: dict) -> None:
    """Elementwise arguments must share a device and broadcast together."""
    devices = {str(v.device) for v in args.values()}
    if len(devices) > 1:
        where = ", ".join(f"{k}={v.device}" for k, v in args.items())
        raise ValueError(f"{', '.join(args)} must be on the same device, got {where}")
    try:
        torch.broadcast_shapes(*(v.shape for v in args.values()))
    except RuntimeError:
        shapes = ", ".join(f"{k}={tuple(v.shape)}" for k, v in args.items())
        raise ValueError(f"{', '.join(args)} must broadcast together, got shapes {shapes}") from None


def gaussian_kl(mean1: Tensor, var1: Tensor, mean2: Tensor, var2: Tensor) -> Tensor:
    """Elementwise KL(N(mean1, var1) || N(mean2, var2)) in nats; arguments broadcast.

    eq-kl-gauss: 0.5 * (log(var2 / var1) + (var1 + (mean1 - mean2)^2) / var2 - 1).
    """
    args = {"mean1": mean1, "var1": var1, "mean2": mean2, "var2": var2}
    for name, value in args.items():
        check_tensor(name, value, min_dim=0)
    _check_broadcast(args)
    for name in ("var1", "var2"):
        if bool((args[name] <= 0).any()):
            raise ValueError(f"{name} must be > 0 everywhere, got min {float(args[name].min())}")
    return 0.5 * (torch.log(var2) - torch.log(var1) + (var1 + (mean1 - mean2) ** 2) / var2 - 1.0)


def prior_kl(x0: Tensor, sched: Schedule) -> Tensor:
    """L_T = KL(q(x_T | x0) || N(0, I)) per sample, in nats (no parameters, no sampling)."""
    check_schedule(sched)
    check_tensor("x0", x0)
    # coefficients in float64 before the cast: 1 - alpha_bar_T computed in bfloat16 can round to 0
    mean = gather(sched.alpha_bar.sqrt(), sched.T, x0) * x0  # eq-q-sample at t = T
    var = gather(1.0 - sched.alpha_bar, sched.T, x0).expand_as(x0)
    return _per_sample(gaussian_kl(mean, var, torch.zeros_like(x0), torch.ones_like(x0)))


def vlb_term(eps_hat: Tensor, x0: Tensor, x_t: Tensor, t, sched: Schedule,
             variance: str = "beta_tilde") -> Tensor:
    """L_{t-1} = KL(q(x_{t-1} | x_t, x0) || p_theta(x_{t-1} | x_t)) per sample, in nats; t in [2, T].

    eq-vlb-terms with eq-kl-gauss (Ho et al. 2020, Eq. 5). It equals the weighted noise error
    C_t + beta_t^2 / (2 Sigma_t alpha_t (1 - alpha_bar_t)) * ||eps - eps_hat||^2 (eq-vlb-eps),
    where C_t is the KL between the two variances. For t = 1 use decoder_nll.
    """
    check_schedule(sched)
    for name, value in (("eps_hat", eps_hat), ("x0", x0), ("x_t", x_t)):
        check_tensor(name, value)
    check_same("eps_hat", eps_hat, "x_t", x_t)
    check_same("x0", x0, "x_t", x_t)
    try:
        check_timesteps("t", t, sched.T, low=2)
    except ValueError as err:
        raise ValueError(f"{err}. vlb_term covers L_1..L_(T-1), i.e. t >= 2; "
                         "the t = 1 term L_0 is decoder_nll") from None
    mean_q, var_q = q_posterior(x0, x_t, t, sched)  # eq-posterior
    mean_p = ddpm_mean(eps_hat, t, x_t, sched)      # eq-ddpm-mean
    var_p = reverse_variance(variance, t, x_t, sched)      # eq-sigma-choices
    return _per_sample(gaussian_kl(mean_q, var_q.expand_as(x_t), mean_p, var_p.expand_as(x_t)))


def _log1mexp(a: Tensor) -> Tensor:
    """log(1 - exp(a)) for a <= 0, accurate at both ends (Maechler 2012)."""
    return torch.where(a > -math.log(2.0), torch.log(-torch.expm1(a)), torch.log1p(-torch.exp(a)))


def discretized_gaussian_log_prob(x0: Tensor, mean: Tensor, var: Tensor, bins: int = 256) -> Tensor:
    """Elementwise log P(x0) of N(mean, var) integrated over x0's bin (Ho et al. 2020, Eq. 13).

    x0 holds values of a `bins`-level grid scaled to [-1, 1]; each bin has half-width 1/(bins-1),
    and the two edge bins reach to -inf and +inf, so the probabilities of all bins sum to 1.
    Tail-safe: log Phi differences are taken on the side of the mean where they do not cancel.
    """
    check_tensor("x0", x0, min_dim=0)
    check_tensor("mean", mean, min_dim=0)
    check_tensor("var", var, min_dim=0)
    _check_broadcast({"x0": x0, "mean": mean, "var": var})
    bins = check_int("bins", bins, low=2)
    half = 1.0 / (bins - 1)
    if bool((x0 < -1.0 - half).any()) or bool((x0 > 1.0 + half).any()):
        raise ValueError(f"x0 must lie in [-1, 1] (data scaled from {bins} levels), "
                         f"got values from {float(x0.min())} to {float(x0.max())}")
    if bool((var <= 0).any()):
        raise ValueError(f"var must be > 0 everywhere, got min {float(var.min())}")
    std = var.sqrt()
    lo = torch.where(x0 < -1.0 + half, -math.inf, (x0 - half - mean) / std)  # lower bin edge, standardised
    hi = torch.where(x0 > 1.0 - half, math.inf, (x0 + half - mean) / std)    # upper bin edge, standardised
    # P = Phi(hi) - Phi(lo) = Phi(-lo) - Phi(-hi); use the form whose terms are small (no cancellation)
    flip = lo > 0
    lo, hi = torch.where(flip, -hi, lo), torch.where(flip, -lo, hi)
    log_hi, log_lo = torch.special.log_ndtr(hi), torch.special.log_ndtr(lo)
    return log_hi + _log1mexp((log_lo - log_hi).clamp(max=0.0))


def decoder_nll(eps_hat: Tensor, x0: Tensor, x_1: Tensor, sched: Schedule,
                variance: str = "beta_tilde", bins: int | None = 256) -> Tensor:
    """L_0 = -log p_theta(x0 | x_1) per sample, in nats, decoder N(mu_theta(x_1, 1), Sigma_1 I).

    Sigma_1 = beta_1 (variance="beta") or beta_tilde_2 (variance="beta_tilde": beta_tilde_1 = 0).
    bins=256: 8-bit data in [-1, 1], discretised decoder (eq-vlb-terms; Ho et al. 2020, Eq. 13);
    L_0 is then minus a log-probability, so L_0 >= 0. bins=None: continuous data, Gaussian density.
    """
    check_schedule(sched)
    for name, value in (("eps_hat", eps_hat), ("x0", x0), ("x_1", x_1)):
        check_tensor(name, value)
    check_same("eps_hat", eps_hat, "x_1", x_1)
    check_same("x0", x0, "x_1", x_1)
    if variance not in VARIANCES:
        raise ValueError(f"variance must be one of {VARIANCES}, got {variance!r}")
    if variance == "beta_tilde" and sched.T < 2:
        raise ValueError("variance='beta_tilde' sets the decoder variance to beta_tilde_2, which needs T >= 2; "
                         f"got T={sched.T}: use variance='beta'")
    mean = ddpm_mean(eps_hat, 1, x_1, sched)  # eq-ddpm-mean at t = 1: equals x0_hat
    var_1 = gather(sched.betas, 1, x_1) if variance == "beta" else gather(sched.beta_tilde, 2, x_1)
    var = var_1.expand_as(x_1)
    if bins is None:
        log_p = -0.5 * (math.log(2 * math.pi) + torch.log(var) + (x0 - mean) ** 2 / var)
    else:
        log_p = discretized_gaussian_log_prob(x0, mean, var, bins=bins)
    return -_per_sample(log_p)


def _check_model(model) -> None:
    if not callable(model):
        raise TypeError(f"model must be callable as model(x_t, t) -> eps_hat, got {type(model).__name__}")


def _terms_at(model, x0: Tensor, t: Tensor, sched: Schedule, variance: str, bins, generator) -> Tensor:
    """One-sample estimate of the term at t (per sample, t is (B,)): L_0 where t = 1, else L_{t-1}."""
    eps = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device)
    x_t = q_sample(x0, t, eps, sched)
    eps_hat = model(x_t, t)
    if not isinstance(eps_hat, Tensor) or eps_hat.shape != x0.shape:
        got = tuple(eps_hat.shape) if isinstance(eps_hat, Tensor) else type(eps_hat).__name__
        raise ValueError(f"model(x_t, t) must return eps_hat of shape {tuple(x0.shape)}, got {got}")
    out = x0.new_zeros(x0.shape[0])
    first = t == 1
    if bool(first.any()):
        out[first] = decoder_nll(eps_hat[first], x0[first], x_t[first], sched, variance=variance, bins=bins)
    rest = ~first
    if bool(rest.any()):
        out[rest] = vlb_term(eps_hat[rest], x0[rest], x_t[rest], t[rest], sched, variance=variance)
    return out


@torch.no_grad()
def vlb_terms(model, x0: Tensor, sched: Schedule, t=None, variance: str = "beta_tilde",
              bins: int | None = 256, generator: torch.Generator | None = None,
              max_elements: int = 2**20) -> Tensor:
    """The bound's terms for each sample, in nats: (B, n) for the n timesteps in t.

    Column j holds L_0 (decoder_nll) if t[j] = 1, else L_{t[j]-1} (vlb_term), each estimated
    with one draw x_t ~ q(x_t | x0). t=None means every t = 1..T, so `.sum(1) + prior_kl` is
    the whole negative ELBO (exact in t; one Monte Carlo draw of x_t per term). Several
    timesteps share one model call, up to max_elements input numbers per call (but at least the
    whole batch at one timestep); lower it if the model runs out of memory.
    """
    check_schedule(sched)
    _check_model(model)
    check_tensor("x0", x0)
    max_elements = check_int("max_elements", max_elements, low=1)
    t = torch.arange(1, sched.T + 1) if t is None else check_timesteps("t", t, sched.T, low=1)
    t = t.reshape(-1).to(x0.device)
    B = x0.shape[0]
    per_call = max(1, max_elements // x0.numel())  # timesteps per model call
    cols = []
    for block in t.split(per_call):
        rows_t = block.repeat_interleave(B)                     # (k*B,): t of each row
        rows_x0 = x0.repeat(len(block), *([1] * (x0.dim() - 1)))  # (k*B, ...): x0 once per timestep
        cols.append(_terms_at(model, rows_x0, rows_t, sched, variance, bins, generator).reshape(len(block), B))
    return torch.cat(cols, dim=0).T  # (B, n)


@torch.no_grad()
def bits_per_dim(model, x0: Tensor, sched: Schedule, n_t: int | None = None,
                 variance: str = "beta_tilde", bins: int | None = 256,
                 generator: torch.Generator | None = None) -> Tensor:
    """Negative ELBO per sample in bits per dimension, (B,): L / (D log 2), D = x0[0].numel().

    n_t=None: the full sum L_T + sum_{t=1}^{T} L_{t-1} (T model calls per batch; one x_t draw
    per term). n_t=k: the unbiased estimate L_T + T * mean_k L_{t_k - 1} with t_k ~ U{1..T}
    drawn independently for every sample (k model calls) -- no importance weights, so its
    variance is larger than the full sum's but its mean is the same.
    Continuous data (bins=None) give differential bits per dimension, which may be negative.
    """
    check_schedule(sched)
    _check_model(model)
    check_tensor("x0", x0)
    B, D = x0.shape[0], x0[0].numel()
    if n_t is None:
        total = vlb_terms(model, x0, sched, variance=variance, bins=bins, generator=generator).sum(1)
    else:
        n_t = check_int("n_t", n_t, low=1)
        est = x0.new_zeros(B)
        for _ in range(n_t):
            t = torch.randint(1, sched.T + 1, (B,), generator=generator, device=x0.device)
            est += _terms_at(model, x0, t, sched, variance, bins, generator)
        total = sched.T * est / n_t
    return (prior_kl(x0, sched) + total) / (D * math.log(2.0))
