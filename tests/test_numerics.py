"""Numerical safety at the edges: t = 0, t = T, T = 1, clipped cosine/sigmoid ends, three dtypes.

The hard places: cosine and sigmoid schedules clip beta_T at 0.999, so alpha_bar_T is tiny
(2.4e-9 for cosine with T = 1000) and x0_from_eps divides by sqrt(alpha_bar_T) ~ 5e-5; at t = 1
the posterior variance beta_tilde_1 is exactly 0; with T = 1 a sampler has a single step. Every
function must stay finite there, keep the input's dtype (float32, float64, bfloat16), and agree
with a float64 computation to within the input dtype's precision.

(A non-finite training loss that stops training with advice is tested in tests/test_train.py.)
"""
from __future__ import annotations

import math

import pytest
import torch

import diffusion_lite as dl
from diffusion_lite.core.schedules import MAX_BETA

KINDS = ("linear", "cosine", "sigmoid")
SCHEDULES = {(kind, T): dl.Schedule.named(kind, T=T) for kind in KINDS for T in (1, 2, 1000)}
DTYPES = (torch.float32, torch.float64, torch.bfloat16)
GMM = dl.GaussianMixture.isotropic([[-1.0, 0.5], [1.0, -0.5]], 0.3)



def data(dtype, seed: int, n: int = 4, d: int = 3) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).to(dtype)


def edge_timesteps(T: int, low: int) -> list:
    """The extremes low (0 or 1), 1 and T as ints, plus a (4,) batch mixing them (data() has 4 rows)."""
    return sorted({low, 1, T}) + [torch.tensor([low, T, 1, T])]


def assert_ok(out: torch.Tensor, dtype, what: str) -> None:
    assert out.dtype == dtype, f"{what}: dtype {out.dtype}, expected {dtype}"
    assert torch.isfinite(out).all(), f"{what}: non-finite values {out}"


# ------------------------------------------------------------------------------------ schedules
@pytest.mark.parametrize("key", list(SCHEDULES), ids=[f"{k}-T{T}" for k, T in SCHEDULES])
def test_schedule_tensors_are_finite_and_in_range(key):
    kind, T = key
    s = SCHEDULES[key]
    assert s.T == T and s.betas.dtype == torch.float64
    for name in ("betas", "alphas", "alpha_bar", "beta_tilde"):
        assert torch.isfinite(getattr(s, name)).all(), name
    b = s.betas[1:]
    assert bool((b > 0).all()) and bool((b <= MAX_BETA).all())
    assert bool((s.alpha_bar[1:] < s.alpha_bar[:-1]).all()) and float(s.alpha_bar[-1]) > 0  # tiny but positive
    assert torch.isfinite(s.snr[1:]).all() and torch.isfinite(s.log_snr[1:]).all()
    assert float(s.beta_tilde[1]) == 0.0 and bool((s.beta_tilde <= s.betas).all())
    if kind != "linear":  # the continuous alpha_bar reaches ~0 at tau = 1: the last beta is clipped
        assert float(s.betas[-1]) == MAX_BETA
        assert math.isclose(float(s.alpha_bar[-1]), float(s.alpha_bar[-2]) * (1 - MAX_BETA), rel_tol=1e-12)


# ------------------------------------------------------------------------------------ forward process, conversions
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("key", list(SCHEDULES), ids=[f"{k}-T{T}" for k, T in SCHEDULES])
def test_forward_process_is_finite_and_accurate_at_the_extremes(key, dtype):
    s = SCHEDULES[key]
    x0, eps = data(dtype, 0), data(dtype, 1)
    tol = 4 * torch.finfo(dtype).eps  # a few roundings of the coefficients, the products and the sum
    for t in edge_timesteps(s.T, low=0):
        x_t = dl.q_sample(x0, t, eps, s)
        assert_ok(x_t, dtype, f"q_sample t={t}")
        a, sd = dl.gather(s.alpha_bar.sqrt(), t, x0.double()), dl.gather((1 - s.alpha_bar).sqrt(), t, x0.double())
        ref = a * x0.double() + sd * eps.double()  # float64 reference from the same (rounded) inputs
        assert bool(((x_t.double() - ref).abs() <= tol * (a * x0.double().abs() + sd * eps.double().abs())).all())
    assert torch.equal(dl.q_sample(x0, 0, eps, s), x0)  # t = 0: no noise at all

    for t in edge_timesteps(s.T, low=1):
        x_t = dl.q_sample(x0, t, eps, s)
        mean, var = dl.q_posterior(x0, x_t, t, s)
        assert_ok(mean, dtype, f"q_posterior mean t={t}")
        assert_ok(var, dtype, f"q_posterior var t={t}")
        assert bool((var >= 0).all())
    mean, var = dl.q_posterior(x0, dl.q_sample(x0, 1, eps, s), 1, s)
    assert float(var) == 0.0  # beta_tilde_1 = 0: q(x_0 | x_1, x0) is a point mass at x0 ...
    # ... and its mean is x0, up to the float64 cancellation in 1 - alpha_bar_1 = beta_1 inside the coefficient
    rtol = tol + 4 * torch.finfo(torch.float64).eps / float(1 - s.alpha_bar[1])
    torch.testing.assert_close(mean, x0, rtol=rtol, atol=0.0)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("key", list(SCHEDULES), ids=[f"{k}-T{T}" for k, T in SCHEDULES])
def test_conversions_are_finite_at_the_extremes(key, dtype):
    s = SCHEDULES[key]
    x_t, pred = data(dtype, 2), data(dtype, 3)  # arbitrary (not matching) inputs: the worst case for 1/a_t
    for t in edge_timesteps(s.T, low=0):
        for fn in (dl.x0_from_eps, dl.v_from_eps, dl.x0_from_v, dl.eps_from_v):
            assert_ok(fn(pred, t, x_t, s), dtype, f"{fn.__name__} t={t}")
    for t in edge_timesteps(s.T, low=1):
        for fn in (dl.eps_from_x0, dl.score_from_eps, dl.eps_from_score, dl.ddpm_mean):
            assert_ok(fn(pred, t, x_t, s), dtype, f"{fn.__name__} t={t}")
    assert torch.isfinite(dl.prior_kl(x_t, s)).all()


@pytest.mark.parametrize("kind", KINDS)
def test_x0_from_eps_inverts_q_sample_at_t_equal_T_in_float64(kind):
    """At t = T, 1/sqrt(alpha_bar_T) is ~2e4 (cosine): the round trip loses at most that factor times
    a few float64 roundings of x_t, and v <-> eps round-trips as well."""
    s = SCHEDULES[(kind, 1000)]
    x0, eps = data(torch.float64, 4), data(torch.float64, 5)
    T = s.T
    x_t = dl.q_sample(x0, T, eps, s)
    a_T = math.sqrt(float(s.alpha_bar[T]))
    bound = 8 * torch.finfo(torch.float64).eps * (x_t.abs() + eps.abs()) / a_T
    assert bool(((dl.x0_from_eps(eps, T, x_t, s) - x0).abs() <= bound).all())
    v = dl.v_from_eps(eps, T, x_t, s)
    torch.testing.assert_close(dl.eps_from_v(v, T, x_t, s), eps, rtol=0, atol=float(bound.max()))


# ------------------------------------------------------------------------------------ single steps
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("key", list(SCHEDULES), ids=[f"{k}-T{T}" for k, T in SCHEDULES])
def test_steps_are_finite_over_every_timestep(key, dtype):
    """ddpm_step at every t (one batch row per t) and ddim_step for t -> t-1 and t -> 0, eta in {0, 0.5, 1}."""
    s = SCHEDULES[key]
    T, g = s.T, torch.Generator().manual_seed(0)
    t = torch.arange(1, T + 1)
    x_t, eps_hat = data(dtype, 6, n=T, d=2), data(dtype, 7, n=T, d=2)
    for sigma in ("beta_tilde", "beta"):
        out = dl.ddpm_step(eps_hat, t, x_t, s, variance=sigma, generator=g)
        assert_ok(out.x_prev, dtype, f"ddpm_step sigma={sigma}")
        assert_ok(out.x0_hat, dtype, "ddpm_step x0_hat")
    for eta in (0.0, 0.5, 1.0):
        for t_prev in (t - 1, torch.zeros_like(t)):
            out = dl.ddim_step(eps_hat, t, t_prev, x_t, s, eta=eta, generator=g)
            assert_ok(out.x_prev, dtype, f"ddim_step eta={eta}")
        assert torch.isfinite(dl.ddim_variance(t, t - 1, s, eta)).all()
    # landing on t = 0: DDIM returns x0_hat itself, DDPM's last step (t = 1) adds no noise
    last = dl.ddim_step(eps_hat, t, torch.zeros_like(t), x_t, s, eta=1.0, generator=g)
    torch.testing.assert_close(last.x_prev, last.x0_hat)
    first = dl.ddpm_step(eps_hat[:1], 1, x_t[:1], s, generator=g)
    torch.testing.assert_close(first.x_prev, first.x0_hat)


# ------------------------------------------------------------------------------------ whole samplers, T = 1 and 2
SAMPLERS = {
    "ddpm": lambda m, s, x: dl.sample_ddpm(m, s, x, generator=torch.Generator().manual_seed(0)),
    "ddpm_beta": lambda m, s, x: dl.sample_ddpm(m, s, x, variance="beta", generator=torch.Generator().manual_seed(0)),
    "ddim": lambda m, s, x: dl.sample_ddim(m, s, x, s.T),
    "ddim_eta_1": lambda m, s, x: dl.sample_ddim(m, s, x, s.T, eta=1.0, generator=torch.Generator().manual_seed(0)),
    "euler": lambda m, s, x: dl.sample_euler(m, s, x, s.T),
    "heun": lambda m, s, x: dl.sample_heun(m, s, x, s.T),
    "dpm_solver_pp_2m": lambda m, s, x: dl.sample_dpm_solver_pp_2m(m, s, x, s.T),
    "ddim_invert": lambda m, s, x: dl.ddim_invert(m, s, x, s.T),
}


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("T", (1, 2))
@pytest.mark.parametrize("kind", KINDS)
def test_samplers_with_one_or_two_steps_are_finite(kind, T, dtype):
    s = SCHEDULES[(kind, T)]
    x_T = data(dtype, 8, n=5, d=2)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        mlp = dl.MLPDenoiser(dl.MLPConfig(dim=2, hidden=16, depth=2, time_embed_dim=8)).to(dtype).eval()
    with torch.no_grad():
        for name, sampler in SAMPLERS.items():
            for model_name, model in (("oracle", GMM.oracle(s)), ("mlp", mlp)):
                out = sampler(model, s, x_T)
                assert_ok(out[0], dtype, f"{name} with the {model_name}, {kind} T={T}")
                assert out[0].shape == x_T.shape


@pytest.mark.parametrize("kind", KINDS)
def test_one_step_ddim_with_the_oracle_returns_the_posterior_mean(kind):
    """T = 1, t = 1 -> 0: DDIM lands on x0_hat = E[x0 | x_1], which the mixture gives exactly."""
    s = SCHEDULES[(kind, 1)]
    x_1 = data(torch.float64, 9, n=5, d=2)
    out = dl.sample_ddim(GMM.oracle(s), s, x_1, 1)
    assert out.nfe == 1
    torch.testing.assert_close(out.x0, GMM.posterior(x_1, float(s.alpha_bar[1])).x0_hat)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_ode_samplers_start_finite_from_the_cosine_end(dtype):
    """sigma_T = sqrt((1 - alpha_bar_T) / alpha_bar_T) ~ 2e4 for cosine, T = 1000: y_T = x_T sqrt(1 + sigma_T^2)
    is large but finite in every dtype, and so are the samples."""
    s = SCHEDULES[("cosine", 1000)]
    sig = dl.ode_sigmas(s, dl.timesteps(s.T, 10))
    assert torch.isfinite(sig).all() and float(sig[-1]) == 0.0 and 1e4 < float(sig[0]) < 1e5
    x_T = data(dtype, 10, n=5, d=2)
    for sampler in (dl.sample_euler, dl.sample_heun, dl.sample_dpm_solver_pp_2m):
        assert_ok(sampler(GMM.oracle(s), s, x_T, 10).x0, dtype, sampler.__name__)
