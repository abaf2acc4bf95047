"""Samplers driven by the exact Gaussian-mixture oracle, so only discretisation error remains.

On a single Gaussian every deterministic sampler is an affine map of x_T (the oracle is linear in
x_t), so the exact mean and covariance of its output follow from pushing q(x_T)'s moments
through the map: no Monte Carlo noise in the convergence tests.
"""
import math

import pytest
import torch

import diffusion_lite as dl
from diffusion_lite.oracles.gmm import GaussianMixture
from diffusion_lite.sampling.inversion import ddim_invert, slerp
from diffusion_lite.sampling.langevin import annealed_langevin, langevin
from diffusion_lite.sampling.ode import sample_dpm_solver_pp_2m, sample_euler, sample_heun
from diffusion_lite import (ddim_step, ddim_variance, ddpm_step, respace, sample_ddim, sample_ddpm,
                            timesteps)

SCHED = dl.Schedule.linear()  # Ho et al.: T = 1000, beta from 1e-4 to 0.02
SHORT = dl.Schedule.linear(T=100, beta_1=1e-3, beta_T=0.2)  # a cheap schedule for Monte Carlo tests
GAUSS = GaussianMixture.single([1.0, -0.5], [[0.5, 0.2], [0.2, 0.3]])



def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _exact_moments(sampler, steps: int):
    """Mean and covariance of sampler(x_T) for x_T ~ q(x_T), when sampler is affine in x_T."""
    basis = torch.cat([torch.zeros(1, 2), torch.eye(2)]).double()  # 0, e_1, e_2
    out = sampler(GAUSS.oracle(SCHED), SCHED, basis, steps).x0
    b, A = out[0], (out[1:] - out[0]).T  # sampler(x) = A x + b
    prior = GAUSS.noised(SCHED.alpha_bar[-1])
    return A @ prior.mean + b, A @ prior.cov @ A.T


def _mc_close(x: torch.Tensor, mean: torch.Tensor, cov: torch.Tensor, k: float = 4.0) -> bool:
    """Sample mean and covariance within k standard errors (estimated from the sample) of the truth."""
    n = x.shape[0]
    c = x - mean
    prods = c[:, :, None] * c[:, None, :]
    ok_mean = ((x.mean(0) - mean).abs() < k * x.std(0) / math.sqrt(n)).all()
    ok_cov = ((prods.mean(0) - cov).abs() < k * prods.std(0) / math.sqrt(n)).all()
    return bool(ok_mean and ok_cov)


# ------------------------------------------------------------------------------------ timesteps
@pytest.mark.parametrize("spacing", ["leading", "trailing", "linspace"])
def test_timesteps_match_diffusers(spacing):
    diffusers = pytest.importorskip("diffusers", reason="diffusers is the independent reference")
    ref = diffusers.DDIMScheduler(num_train_timesteps=1000, timestep_spacing=spacing)
    for steps in (1, 3, 7, 10, 16, 50, 333, 999, 1000):
        ref.set_timesteps(steps)
        assert torch.equal(timesteps(1000, steps, spacing), ref.timesteps + 1), (spacing, steps)  # our t = i + 1


@pytest.mark.parametrize("spacing", ["leading", "trailing", "linspace", "quadratic"])
@pytest.mark.parametrize("T,steps", [(1000, 1), (1000, 10), (1000, 999), (10, 10), (50, 37)])
def test_timesteps_are_a_descending_subsequence(spacing, T, steps):
    ts = timesteps(T, steps, spacing)
    assert ts.dtype == torch.long and ts.shape == (steps,)
    assert bool((ts[1:] < ts[:-1]).all()) and int(ts.min()) >= 1 and int(ts.max()) <= T


def test_timesteps_reject_bad_arguments():
    with pytest.raises(ValueError, match=r"steps must be in \[1, 1000\], got 1001"):
        timesteps(1000, 1001)
    with pytest.raises(ValueError, match="steps"):
        sample_ddim(GAUSS.oracle(SCHED), SCHED, (4, 2), steps=0)
    with pytest.raises(ValueError, match="spacing must be one of"):
        timesteps(1000, 10, "cubic")
    with pytest.raises(ValueError, match="strictly descending"):
        sample_ddim(GAUSS.oracle(SCHED), SCHED, (4, 2), steps=torch.tensor([10, 20]))


# ------------------------------------------------------------------------------------ single steps
def test_ddim_variance_with_eta_one_is_beta_tilde():
    """eq-ddim-sigma: eta = 1 on consecutive steps gives the DDPM posterior variance exactly."""
    for sched in (SCHED, dl.Schedule.cosine()):
        t = torch.arange(1, sched.T + 1)
        torch.testing.assert_close(ddim_variance(t, t - 1, sched, 1.0), sched.beta_tilde[1:], rtol=1e-12, atol=0)
        assert float(ddim_variance(t, t - 1, sched, 0.0).abs().max()) == 0.0


def test_step_argument_checks():
    x = torch.zeros(4, 2)
    with pytest.raises(ValueError, match="eta must be"):
        ddim_step(x, 10, 5, x, SCHED, eta=-0.1)
    with pytest.raises(ValueError, match="t_prev must be smaller than t"):
        ddim_step(x, 10, 10, x, SCHED)
    with pytest.raises(ValueError, match="eps_hat and x_t must have the same shape"):
        ddim_step(torch.zeros(4, 3), 10, 5, x, SCHED)
    with pytest.raises(ValueError, match="t has 3 timesteps but x_t has batch size 4"):
        ddpm_step(x, torch.tensor([5, 6, 7]), x, SCHED)
    with pytest.raises(ValueError, match="variance must be one of"):
        ddpm_step(x, 5, x, SCHED, variance="learned")
    with pytest.raises(ValueError, match=r"t must lie in \[1, 1000\]"):
        ddpm_step(x, 0, x, SCHED)
    with pytest.raises(ValueError, match="must return a tensor shaped like x_t"):
        sample_ddim(lambda x_t, t: x_t[:, :1], SCHED, x, steps=5)
    with pytest.raises(TypeError, match="x_T must be a tensor or a shape"):
        sample_ddim(GAUSS.oracle(SCHED), SCHED, "noise", steps=5)


def _diffusers_kwargs():
    return dict(num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02, beta_schedule="linear",
                prediction_type="epsilon")


def _float64(ref):
    """diffusers keeps alphas_cumprod in float32: its cumprod drifts (~1e-5 relative by t = 1000) and
    1 - alpha_bar_t / alpha_bar_{t-1} loses digits at small t. Give it our float64 schedule and
    float64 inputs, so the tests compare the step formulas at float64 precision."""
    ref.alphas_cumprod = SCHED.alpha_bar[1:].clone()
    ref.one = ref.final_alpha_cumprod = torch.tensor(1.0, dtype=torch.float64)
    return ref


@pytest.mark.parametrize("spacing,steps", [("leading", 10), ("trailing", 10), ("trailing", 1000)])
@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("clip", [False, True])
def test_ddim_step_matches_diffusers(spacing, steps, eta, clip):
    diffusers = pytest.importorskip("diffusers", reason="diffusers is the independent reference")
    ref = _float64(diffusers.DDIMScheduler(**_diffusers_kwargs(), clip_sample=clip, set_alpha_to_one=True,
                                                  timestep_spacing=spacing))
    ref.set_timesteps(steps)
    ts = timesteps(1000, steps, spacing)
    t_prevs = torch.cat([ts[1:], ts.new_zeros(1)])
    for k in sorted({0, 1, steps // 2, steps - 1}):  # first, second, middle and the last step (t_prev = 0)
        x_t, eps_hat = torch.randn(2, 3, 8, generator=_gen(k), dtype=torch.float64)
        want = ref.step(eps_hat, int(ts[k]) - 1, x_t, eta=eta, generator=_gen(100 + k),
                        use_clipped_model_output=True)  # with clipping, eps_hat follows the clipped x0_hat
        got = ddim_step(eps_hat, int(ts[k]), int(t_prevs[k]), x_t, SCHED, eta, _gen(100 + k),
                        clip_x0=1.0 if clip else None)
        torch.testing.assert_close(got.x0_hat, want.pred_original_sample, rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(got.x_prev, want.prev_sample, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("sigma,variance_type", [("beta_tilde", "fixed_small"), ("beta", "fixed_large")])
@pytest.mark.parametrize("clip", [False, True])
def test_ddpm_step_matches_diffusers(sigma, variance_type, clip):
    diffusers = pytest.importorskip("diffusers", reason="diffusers is the independent reference")
    ref = _float64(diffusers.DDPMScheduler(**_diffusers_kwargs(), variance_type=variance_type, clip_sample=clip))
    for t in (1000, 500, 2, 1):  # t = 1 (diffusers 0): no noise is added in either
        x_t, eps_hat = torch.randn(2, 3, 8, generator=_gen(t), dtype=torch.float64)
        want = ref.step(eps_hat, t - 1, x_t, generator=_gen(200 + t))
        got = ddpm_step(eps_hat, t, x_t, SCHED, sigma, _gen(200 + t), clip_x0=1.0 if clip else None)
        torch.testing.assert_close(got.x0_hat, want.pred_original_sample, rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(got.x_prev, want.prev_sample, rtol=1e-10, atol=1e-10)


def test_ddpm_step_uses_the_correct_noise_factor():
    """eq-ddpm-step: x_{t-1} mean = (x_t - beta_t / sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_t), and it
    equals the posterior mean with x0 = x0_hat (eq-posterior-mean)."""
    x_t, eps_hat = torch.randn(2, 5, 2, generator=_gen(1), dtype=torch.float64)
    t = torch.tensor([1, 2, 300, 999, 1000])
    out = ddpm_step(eps_hat, t, x_t, SCHED, "beta_tilde", _gen(2))
    noise = torch.randn(5, 2, generator=_gen(2), dtype=torch.float64) * SCHED.beta_tilde[t, None].sqrt()
    mean = (x_t - (SCHED.betas[t] / (1 - SCHED.alpha_bar[t]).sqrt())[:, None] * eps_hat) / SCHED.alphas[t, None].sqrt()
    torch.testing.assert_close(out.x_prev, mean + noise)
    torch.testing.assert_close(mean, dl.q_posterior(out.x0_hat, x_t, t, SCHED)[0])


def test_respace_keeps_the_visited_alpha_bars():
    ts = timesteps(SCHED.T, 10)
    short = respace(SCHED, ts)
    assert short.T == 10
    torch.testing.assert_close(short.alpha_bar[1:], SCHED.alpha_bar[ts.flip(0)])
    torch.testing.assert_close(respace(SCHED, torch.arange(SCHED.T, 0, -1)).betas, SCHED.betas)


# ------------------------------------------------------------------------------------ whole samplers
DETERMINISTIC = {"ddim": sample_ddim, "euler": sample_euler, "heun": sample_heun,
                 "dpm_solver_pp_2m": sample_dpm_solver_pp_2m}


@pytest.mark.parametrize("name", ["ddim", "heun", "dpm_solver_pp_2m"])  # euler == ddim: tested below
def test_deterministic_samplers_converge_to_the_gaussian(name):
    """Exact output moments: the error shrinks as steps grow, and at the most steps it is below the
    standard error a 10,000-sample experiment would have (nothing left to see)."""
    sampler = DETERMINISTIC[name]
    second_order = name in ("heun", "dpm_solver_pp_2m")
    steps = (5, 20, 100) if second_order else (5, 20, 100, 1000)  # first order needs ~1000 steps
    errors = []
    for s in steps:
        mean, cov = _exact_moments(sampler, s)
        errors.append(max(float((mean - GAUSS.mean).abs().max()), float((cov - GAUSS.cov).abs().max())))
    assert all(b < a for a, b in zip(errors, errors[1:])), errors
    var = GAUSS.cov.diagonal()
    se_10k = float(torch.sqrt(var.min() ** 2 / 10_000))  # smallest SE of a covariance entry, n = 10k
    assert errors[-1] < se_10k, (errors, se_10k)


def test_second_order_solvers_beat_first_order_at_equal_nfe():
    for nfe in (20, 50):
        err = {}
        for name, steps in (("ddim", nfe), ("heun", (nfe + 1) // 2), ("dpm_solver_pp_2m", nfe)):
            _, cov = _exact_moments(DETERMINISTIC[name], steps)
            err[name] = float((cov - GAUSS.cov).abs().max())
        assert err["heun"] < err["ddim"] and err["dpm_solver_pp_2m"] < err["ddim"], (nfe, err)


def test_samples_from_noise_match_the_gaussian():
    """Monte Carlo from x_T ~ N(0, I), as in practice: mean and covariance within 4 standard errors."""
    oracle = GAUSS.oracle(SCHED)
    out = sample_dpm_solver_pp_2m(oracle, SCHED, torch.randn(10_000, 2, generator=_gen(3), dtype=torch.float64), 50)
    assert out.nfe == 50 and out.x0.dtype == torch.float64
    assert _mc_close(out.x0, GAUSS.mean, GAUSS.cov)


def test_euler_is_ddim_with_eta_zero_and_nfe_is_counted():
    x_T = torch.randn(6, 2, generator=_gen(4), dtype=torch.float64)
    oracle = GaussianMixture.eight_gaussians().oracle(SCHED)
    ddim = sample_ddim(oracle, SCHED, x_T, 20, return_trajectory=True)
    euler = sample_euler(oracle, SCHED, x_T, 20, return_trajectory=True)
    torch.testing.assert_close(euler.x0, ddim.x0, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(euler.trajectory, ddim.trajectory, rtol=1e-10, atol=1e-10)
    assert ddim.trajectory.shape == (21, 6, 2) and ddim.nfe == euler.nfe == 20
    calls = []
    sample_heun(lambda x, t: calls.append(t) or oracle(x, t), SCHED, x_T, 10)
    assert len(calls) == sample_heun(oracle, SCHED, x_T, 10).nfe == 19  # 2 per step, the last is Euler


def test_sample_reaches_every_sampler():
    oracle = GAUSS.oracle(SCHED)
    x_T = torch.randn(4, 2, generator=_gen(20), dtype=torch.float64)
    for method, fn in [("ddim", sample_ddim), ("euler", sample_euler), ("heun", sample_heun),
                       ("dpm_solver_pp_2m", sample_dpm_solver_pp_2m)]:
        torch.testing.assert_close(dl.sample(oracle, SCHED, x_T, 10, method=method).x0, fn(oracle, SCHED, x_T, 10).x0)
    out = dl.sample(GAUSS.oracle(SHORT), SHORT, (3, 2), method="ddpm", generator=_gen(21))  # a shape: x_T ~ N(0, I)
    assert out.nfe == SHORT.T and out.x0.shape == (3, 2) and out.x0.dtype == torch.float32
    with pytest.raises(ValueError, match="method must be one of"):
        dl.sample(oracle, SCHED, x_T, 10, method="plms")


def test_ddim_eta_zero_is_deterministic():
    x_T = torch.randn(5, 2, generator=_gen(5), dtype=torch.float64)
    oracle = GAUSS.oracle(SCHED)
    a = sample_ddim(oracle, SCHED, x_T, 10, eta=0.0, generator=_gen(1)).x0
    b = sample_ddim(oracle, SCHED, x_T, 10, eta=0.0, generator=_gen(2)).x0
    assert torch.equal(a, b)
    c = sample_ddim(oracle, SCHED, x_T, 10, eta=1.0, generator=_gen(1)).x0
    assert not torch.equal(a, c)


def _ddpm_chain_moments(sched, sigma: str):
    """Exact mean and covariance of DDPM's output from x_T ~ N(0, I): with the Gaussian oracle each
    step is x_{t-1} = A_t x_t + b_t + sigma_t z, so Cov <- A Cov A^T + sigma_t^2 I."""
    oracle = GAUSS.oracle(sched)
    var = sched.beta_tilde if sigma == "beta_tilde" else torch.cat([torch.zeros(2).double(), sched.betas[2:]])
    mean, cov = torch.zeros(2).double(), torch.eye(2).double()
    for t in range(sched.T, 0, -1):
        x = torch.cat([mean[None], mean[None] + torch.eye(2).double()])  # m, m + e_1, m + e_2
        out = dl.ddpm_mean(oracle(x, t), t, x, sched)  # eq-ddpm-mean
        A = (out[1:] - out[0]).T
        mean, cov = out[0], A @ cov @ A.T + var[t] * torch.eye(2).double()
    return mean, cov


@pytest.mark.parametrize("sigma", ["beta_tilde", "beta"])
def test_ddpm_chain_converges_to_the_gaussian_as_T_grows(sigma):
    """Discretisation error of the ancestral chain shrinks ~1/T. (sigma^2 = beta_tilde is slightly
    too small for spread-out data: the chain's variance ends up low, by ~1% at T = 1000.)"""
    err = {}
    for T in (100, 400):  # Ho et al.'s linear schedule at T steps: beta_t * T fixed
        sched = dl.Schedule.linear(T=T, beta_1=0.1 / T, beta_T=20.0 / T)
        mean, cov = _ddpm_chain_moments(sched, sigma)
        err[T] = float((cov - GAUSS.cov).abs().max())
        torch.testing.assert_close(mean, GAUSS.mean, rtol=0, atol=1e-3)
    assert err[400] < err[100] / 2, err  # 4x more steps, first-order error: ~4x smaller


def test_ddim_eta_one_on_the_full_schedule_is_ddpm():
    """Same noise, same path: DDIM(eta=1) over every step is DDPM with sigma^2 = beta_tilde; and the
    samples have the chain's exact moments (Monte Carlo, 4 standard errors)."""
    oracle = GAUSS.oracle(SHORT)
    x_T = torch.randn(6_000, 2, generator=_gen(6), dtype=torch.float64)
    ddpm = sample_ddpm(oracle, SHORT, x_T, generator=_gen(7))
    ddim = sample_ddim(oracle, SHORT, x_T, SHORT.T, eta=1.0, generator=_gen(7))
    torch.testing.assert_close(ddim.x0, ddpm.x0, rtol=1e-9, atol=1e-9)
    assert ddpm.nfe == ddim.nfe == SHORT.T
    assert _mc_close(ddpm.x0, *_ddpm_chain_moments(SHORT, "beta_tilde"))
    fewer = sample_ddpm(oracle, SHORT, x_T[:4000], steps=25, variance="beta", generator=_gen(8))
    assert fewer.nfe == 25 and bool(torch.isfinite(fewer.x0).all())


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")  # diffusers vs numpy 2
def test_dpm_solver_and_ode_samplers_match_diffusers():
    """Driven by the same oracle on the same timesteps, our ODE solvers equal diffusers' schedulers."""
    diffusers = pytest.importorskip("diffusers", reason="diffusers is the independent reference")
    oracle = GaussianMixture.eight_gaussians().oracle(SCHED)
    x_T = torch.randn(16, 2, generator=_gen(9))
    pairs = [(diffusers.DPMSolverMultistepScheduler, sample_dpm_solver_pp_2m),
             (diffusers.EulerDiscreteScheduler, sample_euler), (diffusers.HeunDiscreteScheduler, sample_heun)]
    for cls, ours in pairs:
        ref = cls(num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02, beta_schedule="linear",
                  timestep_spacing="trailing")
        ref.set_timesteps(8)
        x, calls = x_T * ref.init_noise_sigma, 0
        for tau in ref.timesteps:  # integer-valued here: our t = tau + 1
            eps_hat = oracle(ref.scale_model_input(x, tau).double(), int(tau) + 1).float()
            x, calls = ref.step(eps_hat, tau, x).prev_sample, calls + 1
        ts = ref.timesteps.long().unique_consecutive() + 1  # Heun lists each timestep twice
        out = ours(oracle, SCHED, x_T.double(), ts)
        assert out.nfe == calls, cls.__name__
        torch.testing.assert_close(out.x0.float(), x, rtol=1e-4, atol=1e-4)  # diffusers' sigmas are float32


# ------------------------------------------------------------------------------------ inversion, slerp
def test_ddim_inversion_reconstructs():
    """Invert then sample with the same steps: the error is first order in the step, and small."""
    g = GaussianMixture.eight_gaussians(std=0.3)
    oracle = g.oracle(SCHED)
    x0 = g.sample(200, _gen(10))
    err = {}
    for steps in (25, 200):
        inv = ddim_invert(oracle, SCHED, x0, steps)
        assert inv.nfe == steps
        err[steps] = float((sample_ddim(oracle, SCHED, inv.x_T, steps).x0 - x0).norm(dim=1).mean())
    assert err[200] < err[25] / 4  # 8x more steps, first-order error: about 8x smaller
    assert err[200] < 0.05 * math.sqrt(float(g.cov.trace()) / 2)  # under 5% of the data's spread


def test_slerp_keeps_the_norm_of_gaussian_noise():
    z0, z1 = torch.randn(2, 4, 512, generator=_gen(11))
    torch.testing.assert_close(slerp(z0, z1, 0.0), z0)
    torch.testing.assert_close(slerp(z0, z1, 1.0), z1, rtol=1e-5, atol=1e-5)
    lo, hi = torch.minimum(z0.norm(dim=1), z1.norm(dim=1)), torch.maximum(z0.norm(dim=1), z1.norm(dim=1))
    for alpha in (0.25, 0.5, 0.75):
        norm = slerp(z0, z1, alpha).norm(dim=1)
        # nearly orthogonal (|cos| ~ 1/sqrt(512)): the norm stays between the end points' norms
        assert bool(((norm > 0.97 * lo) & (norm < 1.03 * hi)).all())
    assert bool((((z0 + z1) / 2).norm(dim=1) < 0.8 * lo).all())  # whereas the straight line shrinks by ~1/sqrt(2)
    torch.testing.assert_close(slerp(z0, z0, 0.3), z0)  # parallel: no 0/0


# ------------------------------------------------------------------------------------ Langevin
def test_langevin_with_the_exact_score_samples_the_mixture():
    """Overlapping components, so the chain mixes. The step's bias on a variance is about delta / 4
    (exact for a Gaussian): 0.005 here, well inside the Monte Carlo tolerance (~0.03)."""
    g = GaussianMixture(torch.tensor([0.3, 0.7]), torch.tensor([[-0.6, 0.0], [0.5, 0.3]]),
                        torch.tensor([[[0.3, 0.1], [0.1, 0.2]], [[0.2, 0.0], [0.0, 0.3]]]))
    out = langevin(g.score, torch.randn(2_000, 2, generator=_gen(12), dtype=torch.float64), 0.02, 400, _gen(13))
    assert out.nfe == 400
    assert _mc_close(out.x0, g.mean, g.cov)


def test_annealed_langevin_recovers_the_mode_weights():
    """Separated modes with weights 0.2 / 0.8: annealing from sigma_1 above the modes' distance down
    to sigma_L (Song & Ermon 2019, Alg. 1) gets the share right within 4 binomial standard errors,
    where plain Langevin from the same start stays near the starting 50/50 split."""
    g = GaussianMixture.isotropic(torch.tensor([[-2.0, 0.0], [2.0, 0.0]]), 0.3, torch.tensor([0.2, 0.8]))
    sigmas = torch.logspace(math.log10(5.0), math.log10(0.05), 10).tolist()
    smoothed = {s: g.smoothed(s) for s in sigmas}  # p * N(0, sigma^2 I), exact
    n = 1_000
    x = torch.rand(n, 2, generator=_gen(14)).double() * 8 - 4  # uniform on [-4, 4]^2: half on each side
    out = annealed_langevin(lambda x, s: smoothed[s].score(x), x, sigmas, 50, eps_step=0.2 * 0.05**2,
                            generator=_gen(15), denoise=True)
    assert out.nfe == 10 * 50 + 1
    share = float((out.x0[:, 0] < 0).double().mean())
    assert abs(share - 0.2) < 4 * math.sqrt(0.2 * 0.8 / n), share
    plain = float((langevin(g.score, x, 0.01, 300, _gen(16)).x0[:, 0] < 0).double().mean())
    assert abs(plain - 0.2) > 8 * math.sqrt(0.2 * 0.8 / n), plain
    with pytest.raises(ValueError, match="strictly decreasing"):
        annealed_langevin(lambda x, s: x, torch.zeros(2, 2), [0.1, 1.0], 5, 0.01)
