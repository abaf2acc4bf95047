"""The posterior q(x_{t-1} | x_t, x0) and the conversions between eps, x0, v and the score.

Independent references: Monte Carlo (the posterior is a linear regression of x_{t-1} on x_t for
fixed x0), the precision form of the posterior that completing the square gives, diffusers'
DDPMScheduler, exact Gaussian scores by autograd, and the definitions x_t = a_t x0 + s_t eps,
v = a_t eps - s_t x0.
"""
import math

import pytest
import torch

import diffusion_lite as dl


def _posterior_by_precision(x0, x_t, t, sched):
    """Completing the square in log q(x_t | x_{t-1}) + log q(x_{t-1} | x0): precisions add."""
    alpha_t, beta_t, ab_prev = sched.alphas[t], sched.betas[t], sched.alpha_bar[t - 1]
    precision = alpha_t / beta_t + 1.0 / (1.0 - ab_prev)
    var = 1.0 / precision
    mean = var * (alpha_t.sqrt() / beta_t * x_t + ab_prev.sqrt() / (1.0 - ab_prev) * x0)
    return mean, var


@pytest.mark.parametrize("name,t", [("linear", 2), ("linear", 150), ("cosine", 10), ("cosine", 400)])
def test_posterior_matches_monte_carlo_regression(name, t):
    """With x0 fixed, (x_{t-1}, x_t) is jointly Gaussian: regressing x_{t-1} on x_t gives the
    posterior's slope (coefficient of x_t), intercept (coefficient of x0 times x0) and residual
    variance (beta_tilde_t). Tolerances are 5 standard errors of the least-squares estimates."""
    sched = dl.Schedule.named(name, T=400)
    g = torch.Generator().manual_seed(t)
    n, x0 = 100_000, 0.7
    x0s = torch.full((n, 1), x0, dtype=torch.float64)
    x_prev = dl.q_sample(x0s, t - 1, torch.randn(n, 1, generator=g, dtype=torch.float64), sched)
    x_t = dl.q_step(x_prev, t, torch.randn(n, 1, generator=g, dtype=torch.float64), sched)
    X, Y = x_t[:, 0], x_prev[:, 0]
    xc = X - X.mean()
    slope = (xc * (Y - Y.mean())).sum() / (xc ** 2).sum()
    intercept = Y.mean() - slope * X.mean()
    resid = Y - intercept - slope * X
    res_var = (resid ** 2).sum() / (n - 2)

    # the package: mean(x0, x_t) is affine in x_t, so read off its slope and intercept
    zero, one = torch.zeros(1, 1, dtype=torch.float64), torch.ones(1, 1, dtype=torch.float64)
    m0, var = dl.q_posterior(x0 * one, zero, t, sched)
    m1, _ = dl.q_posterior(x0 * one, one, t, sched)
    se_slope = (res_var / (xc ** 2).sum()).sqrt()
    se_intercept = (res_var * (1.0 / n + X.mean() ** 2 / (xc ** 2).sum())).sqrt()
    assert abs(float(slope - (m1 - m0))) < 5 * float(se_slope)
    assert abs(float(intercept - m0)) < 5 * float(se_intercept)
    assert abs(float(res_var / var) - 1.0) < 5 * math.sqrt(2.0 / (n - 2))  # sd of a sample variance


def test_posterior_matches_completing_the_square():
    sched = dl.Schedule.cosine(50)
    g = torch.Generator().manual_seed(0)
    t = torch.arange(2, 51)
    x0 = torch.randn(len(t), 3, generator=g, dtype=torch.float64)
    x_t = torch.randn(len(t), 3, generator=g, dtype=torch.float64)
    mean, var = dl.q_posterior(x0, x_t, t, sched)
    ref_mean, ref_var = _posterior_by_precision(x0, x_t, t[:, None], sched)
    torch.testing.assert_close(mean, ref_mean)
    torch.testing.assert_close(var, ref_var)
    torch.testing.assert_close(sched.beta_tilde[t], ref_var[:, 0])


def test_posterior_at_t_equal_1_is_the_data_point():
    """q(x_0 | x_1, x0) is a point mass at x0: beta_tilde_1 = 0 and mu_tilde_1 = x0."""
    sched = dl.Schedule.linear(100)
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(4, 5, generator=g, dtype=torch.float64)
    x_1 = torch.randn(4, 5, generator=g, dtype=torch.float64)
    mean, var = dl.q_posterior(x0, x_1, 1, sched)
    assert float(var) == 0.0
    torch.testing.assert_close(mean, x0)


def test_posterior_is_accurate_in_float32():
    """Coefficients computed in float64 and then cast keep float32 data within float32 rounding."""
    sched = dl.Schedule.linear(1000)
    g = torch.Generator().manual_seed(0)
    x0, x_1 = torch.randn(4, 5, generator=g), torch.randn(4, 5, generator=g)
    mean, _ = dl.q_posterior(x0, x_1, 1, sched)
    torch.testing.assert_close(mean, x0)


def test_posterior_agrees_with_diffusers():
    """diffusers' DDPMScheduler.step (fixed_small) draws x_{t-1} ~ N(mu_tilde, beta_tilde) around
    its x0 prediction; feeding the true eps makes that prediction x0 itself. diffusers keeps the
    schedule in float32, so 1 - alpha_bar_t carries a relative error of about 2^-24 / (1 - alpha_bar_t):
    the tolerance is 50 times that."""
    diffusers = pytest.importorskip("diffusers")
    T = 1000
    ours = dl.Schedule.linear(T)
    theirs = diffusers.DDPMScheduler(num_train_timesteps=T, beta_schedule="linear", clip_sample=False,
                                     variance_type="fixed_small")
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(2, 3, 4, 4, generator=g, dtype=torch.float64)
    eps = torch.randn(2, 3, 4, 4, generator=g, dtype=torch.float64)
    for t in [2, 20, 300, 999]:
        x_t = dl.q_sample(x0, t, eps, ours)
        out = theirs.step(eps.float(), t - 1, x_t.float(),  # their index is our t - 1
                          generator=torch.Generator().manual_seed(t))
        noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(t))  # the noise they drew
        mean, var = dl.q_posterior(x0, x_t, t, ours)
        tol = 50 * 2.0 ** -24 / float(1 - ours.alpha_bar[t])
        expected = mean + var.sqrt() * noise.double()
        torch.testing.assert_close(out.prev_sample.double(), expected, atol=tol, rtol=tol)


def test_batched_timesteps_equal_one_at_a_time():
    sched = dl.Schedule.linear(30)
    g = torch.Generator().manual_seed(0)
    t = torch.tensor([1, 7, 30])
    x0, x_t = torch.randn(3, 2, 2, generator=g), torch.randn(3, 2, 2, generator=g)
    mean, var = dl.q_posterior(x0, x_t, t, sched)
    assert var.shape == (3, 1, 1) and mean.dtype == torch.float32
    for i, ti in enumerate(t.tolist()):
        m_i, v_i = dl.q_posterior(x0[i:i + 1], x_t[i:i + 1], ti, sched)
        torch.testing.assert_close(mean[i:i + 1], m_i)
        torch.testing.assert_close(var[i], v_i.reshape(1, 1))


# ----------------------------------------------------------------------------------- conversions
@pytest.fixture
def noised():
    """x0, eps, a random t in [1, T] per sample, x_t = a_t x0 + s_t eps, a_t and s_t (float64)."""
    sched = dl.Schedule.cosine(1000)
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(64, 3, generator=g, dtype=torch.float64)
    eps = torch.randn(64, 3, generator=g, dtype=torch.float64)
    t = torch.randint(1, 1001, (64,), generator=g)
    x_t = dl.q_sample(x0, t, eps, sched)
    ab = sched.alpha_bar[t][:, None]
    return sched, x0, eps, t, x_t, ab.sqrt(), (1 - ab).sqrt()


def test_conversions_recover_the_truth(noised):
    sched, x0, eps, t, x_t, a, s = noised
    v = a * eps - s * x0  # eq-v, the definition
    torch.testing.assert_close(dl.x0_from_eps(eps, t, x_t, sched), x0)
    torch.testing.assert_close(dl.eps_from_x0(x0, t, x_t, sched), eps)
    torch.testing.assert_close(dl.v_from_eps(eps, t, x_t, sched), v)
    torch.testing.assert_close(dl.x0_from_v(v, t, x_t, sched), x0)
    torch.testing.assert_close(dl.eps_from_v(v, t, x_t, sched), eps)


def test_conversions_round_trip_for_any_prediction(noised):
    """Round trips hold for any eps_hat, not only the true eps (each map is invertible)."""
    sched, _, _, t, x_t, _, _ = noised
    eps_hat = torch.randn(x_t.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    x0_hat = dl.x0_from_eps(eps_hat, t, x_t, sched)
    torch.testing.assert_close(dl.eps_from_x0(x0_hat, t, x_t, sched), eps_hat)
    v_hat = dl.v_from_eps(eps_hat, t, x_t, sched)
    torch.testing.assert_close(dl.eps_from_v(v_hat, t, x_t, sched), eps_hat)
    torch.testing.assert_close(dl.x0_from_v(v_hat, t, x_t, sched), x0_hat)
    score = dl.score_from_eps(eps_hat, t, x_t, sched)
    torch.testing.assert_close(dl.eps_from_score(score, t, x_t, sched), eps_hat)


def test_errors_scale_with_snr(noised):
    """x0_hat - x0 = -(eps_hat - eps) / sqrt(SNR_t); v_hat - v = (eps_hat - eps) / a_t."""
    sched, x0, eps, t, x_t, a, s = noised
    eps_hat = eps + 0.1 * torch.randn(eps.shape, generator=torch.Generator().manual_seed(2), dtype=eps.dtype)
    snr = sched.snr[t][:, None]
    torch.testing.assert_close(dl.x0_from_eps(eps_hat, t, x_t, sched) - x0, -(eps_hat - eps) / snr.sqrt())
    torch.testing.assert_close(dl.v_from_eps(eps_hat, t, x_t, sched) - (a * eps - s * x0), (eps_hat - eps) / a)


def test_score_from_optimal_eps_is_the_exact_score():
    """For x0 ~ N(m, c^2): E[eps | x_t] = s_t (x_t - a_t m) / (a_t^2 c^2 + s_t^2), and
    -E[eps | x_t] / s_t must equal grad log N(x_t; a_t m, a_t^2 c^2 + s_t^2) (eq-score-eps)."""
    sched = dl.Schedule.linear(1000)
    m, c = torch.tensor([0.3, -0.5], dtype=torch.float64), torch.tensor([0.2, 1.5], dtype=torch.float64)
    t = torch.tensor([1, 10, 500, 1000, 77])
    x_t = torch.randn(5, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64).requires_grad_()
    ab = sched.alpha_bar[t][:, None]
    var_t = ab * c ** 2 + 1 - ab
    log_q = (-0.5 * (x_t - ab.sqrt() * m) ** 2 / var_t).sum()
    (score,) = torch.autograd.grad(log_q, x_t)
    eps_opt = (1 - ab).sqrt() * (x_t.detach() - ab.sqrt() * m) / var_t
    torch.testing.assert_close(dl.score_from_eps(eps_opt, t, x_t.detach(), sched), score)


@pytest.mark.parametrize("call,exc,match", [
    (lambda s, x: dl.q_posterior(x, x, 0, s), ValueError, r"t must lie in \[1, 10\]"),
    (lambda s, x: dl.q_posterior(x, x, 11, s), ValueError, r"t must lie in \[1, 10\]"),
    (lambda s, x: dl.q_posterior(x, x[:1], 3, s), ValueError, "x0 and x_t must have the same shape"),
    (lambda s, x: dl.q_posterior(x, x, torch.tensor([1, 2, 3]), s), ValueError, "batch size 3"),
    (lambda s, x: dl.q_posterior(x, x, 2.0, s), TypeError, "t must be an int"),
    (lambda s, x: dl.q_posterior(x, x, 2, "cosine"), TypeError, "sched must be"),
    (lambda s, x: dl.eps_from_x0(x, 0, x, s), ValueError, r"t must lie in \[1, 10\]"),
    (lambda s, x: dl.score_from_eps(x, 0, x, s), ValueError, r"t must lie in \[1, 10\]"),
    (lambda s, x: dl.v_from_eps(x, 1, x[:, :1], s), ValueError, "eps and x_t must have the same shape"),
    (lambda s, x: dl.x0_from_v(x.long(), 1, x, s), TypeError, "v must be a floating-point tensor"),
])
def test_bad_input_is_rejected_clearly(call, exc, match):
    with pytest.raises(exc, match=match):
        call(dl.Schedule.linear(10), torch.ones(2, 3))
