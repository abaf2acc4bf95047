"""The Gaussian-mixture oracle: exact densities, scores, optimal denoisers and the Bayes floor."""
import math

import pytest
import torch
from scipy.stats import multivariate_normal

import diffusion_lite as dl
from diffusion_lite.oracles.gmm import GaussianMixture

SCHED = dl.Schedule.linear()



def _mixture() -> GaussianMixture:
    """Three components with unequal weights and full, different covariances."""
    return GaussianMixture(
        weights=torch.tensor([0.2, 0.5, 0.3]),
        means=torch.tensor([[1.0, 0.0], [-1.0, 0.5], [0.0, -1.5]]),
        covs=torch.tensor([[[0.3, 0.1], [0.1, 0.2]], [[0.1, 0.0], [0.0, 0.4]], [[0.5, -0.2], [-0.2, 0.3]]]),
    )


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_rejects_bad_parameters():
    eye = torch.eye(2)[None]
    with pytest.raises(ValueError, match="weights"):
        GaussianMixture(torch.tensor([0.5]), torch.zeros(1, 2), eye)
    with pytest.raises(ValueError, match="positive definite"):
        GaussianMixture(torch.ones(1), torch.zeros(1, 2), torch.tensor([[[1.0, 2.0], [2.0, 1.0]]]))
    with pytest.raises(ValueError, match="symmetric"):
        GaussianMixture(torch.ones(1), torch.zeros(1, 2), torch.tensor([[[1.0, 0.5], [0.0, 1.0]]]))
    with pytest.raises(ValueError, match=r"means \(K, D\)"):
        GaussianMixture(torch.ones(1), torch.zeros(1, 3), eye)
    with pytest.raises(ValueError, match="x must have shape"):
        _mixture().log_prob(torch.zeros(4, 3))
    with pytest.raises(ValueError, match="alpha_bar_t"):
        _mixture().posterior(torch.zeros(4, 2), 1.5)


def test_constructors_have_the_stated_moments():
    g = GaussianMixture.eight_gaussians(radius=2.0, std=0.1)
    assert (g.K, g.D) == (8, 2)
    torch.testing.assert_close(g.means.norm(dim=1), torch.full((8,), 2.0, dtype=torch.float64))
    # symmetric ring: mean 0, Cov = (r^2 / 2 + std^2) I
    torch.testing.assert_close(g.mean, torch.zeros(2, dtype=torch.float64), atol=1e-12, rtol=0)
    torch.testing.assert_close(g.cov, (2.0 + 0.01) * torch.eye(2, dtype=torch.float64))
    grid = GaussianMixture.grid(n=5, spacing=1.0, std=0.05)
    assert grid.K == 25 and float(grid.means.abs().max()) == 2.0
    one = GaussianMixture.single([1.0, 2.0], [[2.0, 0.3], [0.3, 1.0]])
    torch.testing.assert_close(one.cov, one.covs[0])


def test_samples_match_mean_and_covariance():
    g, n = _mixture(), 40_000
    x = g.sample(n, _gen(0))
    se_mean = (g.cov.diagonal() / n).sqrt()
    assert bool(((x.mean(0) - g.mean).abs() < 4 * se_mean).all())
    centred = x - g.mean
    prods = centred[:, :, None] * centred[:, None, :]  # (n, D, D)
    se_cov = prods.std(0) / math.sqrt(n)
    assert bool(((prods.mean(0) - g.cov).abs() < 4 * se_cov).all())


def test_log_prob_matches_scipy():
    g = _mixture()
    x = g.sample(50, _gen(1))
    expected = torch.tensor(sum(
        float(w) * multivariate_normal(m.numpy(), c.numpy()).pdf(x.numpy())
        for w, m, c in zip(g.weights, g.means, g.covs))).log()
    torch.testing.assert_close(g.log_prob(x), expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("alpha_bar_t", [1.0, 0.9, 0.3, 0.01])
def test_noisy_score_is_the_gradient_of_the_noisy_log_density(alpha_bar_t):
    g = _mixture()
    x_t = (g.noised(alpha_bar_t).sample(64, _gen(2))).requires_grad_(True)
    logp = g.noised(alpha_bar_t).log_prob(x_t).sum()
    (autograd_score,) = torch.autograd.grad(logp, x_t)
    exact = g.posterior(x_t.detach(), alpha_bar_t).score
    torch.testing.assert_close(exact, autograd_score, rtol=1e-9, atol=1e-9)
    if alpha_bar_t == 1.0:
        torch.testing.assert_close(g.score(x_t.detach()), autograd_score, rtol=1e-9, atol=1e-9)


def test_noised_is_the_law_of_q_sample():
    """eq-gmm-noised: the moments of q_sample(x0) equal those of the noised mixture."""
    g, n, ab = _mixture(), 40_000, 0.4
    x0 = g.sample(n, _gen(3))
    x_t = dl.q_sample(x0, 1, torch.randn(x0.shape, generator=_gen(4), dtype=torch.float64),
                      dl.Schedule.from_betas(torch.tensor([1 - ab], dtype=torch.float64)))
    noisy = g.noised(ab)
    torch.testing.assert_close(noisy.mean, math.sqrt(ab) * g.mean)
    torch.testing.assert_close(noisy.cov, ab * g.cov + (1 - ab) * torch.eye(2, dtype=torch.float64))
    assert bool(((x_t.mean(0) - noisy.mean).abs() < 4 * (noisy.cov.diagonal() / n).sqrt()).all())
    # smoothed = VE form: y = x0 + sigma eps with sigma^2 = (1 - ab) / ab is x_t / sqrt(ab)
    sigma = math.sqrt((1 - ab) / ab)
    y = x_t[:5] / math.sqrt(ab)
    torch.testing.assert_close(g.smoothed(sigma).log_prob(y), noisy.log_prob(x_t[:5]) + math.log(ab))


def test_posterior_of_a_single_gaussian_is_the_linear_formula():
    """E[x0 | x_t] = mu + a Sigma (a^2 Sigma + s^2 I)^{-1} (x_t - a mu), solved directly."""
    mu = torch.tensor([1.0, -0.5], dtype=torch.float64)
    cov = torch.tensor([[0.5, 0.2], [0.2, 0.3]], dtype=torch.float64)
    g = GaussianMixture.single(mu, cov)
    ab = 0.35
    a, s = math.sqrt(ab), math.sqrt(1 - ab)
    x_t = torch.randn(10, 2, generator=_gen(5), dtype=torch.float64)
    C = ab * cov + (1 - ab) * torch.eye(2, dtype=torch.float64)
    resid = torch.linalg.solve(C, (x_t - a * mu).T).T  # C^{-1} (x_t - a mu)
    post = g.posterior(x_t, ab)
    torch.testing.assert_close(post.x0_hat, mu + a * resid @ cov.T)
    torch.testing.assert_close(post.eps_hat, s * resid)


def test_posterior_mean_matches_importance_sampling():
    """E[x0 | x_t] by self-normalised importance sampling over prior draws, an independent estimate."""
    g, n, ab = _mixture(), 200_000, 0.5
    x0 = g.sample(n, _gen(6))
    x_t = torch.tensor([[0.3, -0.2], [-0.9, 0.6], [0.1, -1.2]], dtype=torch.float64)
    post = g.posterior(x_t, ab)
    for b in range(x_t.shape[0]):
        logw = -0.5 * ((x_t[b] - math.sqrt(ab) * x0) ** 2).sum(1) / (1 - ab)  # log N(x_t; a x0, s^2 I) + c
        w = torch.softmax(logw, 0)
        est = (w[:, None] * x0).sum(0)
        se = ((w[:, None] ** 2) * (x0 - est) ** 2).sum(0).sqrt()  # delta-method standard error
        assert bool(((est - post.x0_hat[b]).abs() < 5 * se).all()), (est, post.x0_hat[b], se)


def test_tweedie_and_consistency_of_the_predictors():
    """eq-tweedie: E[x0 | x_t] = (x_t + (1 - ab) score) / sqrt(ab); and x_t = a x0_hat + s eps_hat."""
    g = _mixture()
    ab = torch.tensor([0.999, 0.7, 0.2, 0.01], dtype=torch.float64)
    x_t = torch.randn(4, 2, generator=_gen(7), dtype=torch.float64)
    post = g.posterior(x_t, ab)
    a, s2 = ab.sqrt()[:, None], (1 - ab)[:, None]
    torch.testing.assert_close(post.x0_hat, (x_t + s2 * post.score) / a)
    torch.testing.assert_close(x_t, a * post.x0_hat + s2.sqrt() * post.eps_hat)
    torch.testing.assert_close(post.resp.sum(1), torch.ones(4, dtype=torch.float64))
    # per-sample alpha_bar gives what one-at-a-time calls give
    for b in range(4):
        torch.testing.assert_close(post.x0_hat[b], g.posterior(x_t[b:b + 1], float(ab[b])).x0_hat[0])


def test_posterior_at_t0_and_far_from_the_data():
    g = _mixture()
    x = torch.tensor([[0.2, 0.1], [40.0, -35.0]], dtype=torch.float64)  # the second is far in the tail
    post = g.posterior(x, 1.0)
    torch.testing.assert_close(post.x0_hat, x)
    torch.testing.assert_close(post.eps_hat, torch.zeros_like(x))
    assert bool(torch.isfinite(g.posterior(x, 0.5).x0_hat).all())  # log-sum-exp: no 0/0


def test_rotating_the_data_rotates_the_denoiser():
    """Equivariance: rotate an axis-aligned mixture (diagonal fast path) by R and the general path's
    E[x0 | R x_t] equals R E[x0 | x_t]."""
    g = GaussianMixture(torch.tensor([0.4, 0.6]), torch.tensor([[1.0, 0.0], [-1.0, 0.5]]),
                        torch.diag_embed(torch.tensor([[0.2, 0.5], [0.3, 0.1]])))
    angle = torch.tensor(0.7, dtype=torch.float64)
    R = torch.stack([torch.stack([angle.cos(), -angle.sin()]), torch.stack([angle.sin(), angle.cos()])])
    rotated = GaussianMixture(g.weights, g.means @ R.T, R @ g.covs @ R.T)
    assert g.diagonal and not rotated.diagonal
    x_t = torch.randn(6, 2, generator=_gen(12), dtype=torch.float64)
    ab = torch.linspace(0.05, 1.0, 6, dtype=torch.float64)
    torch.testing.assert_close(rotated.posterior(x_t @ R.T, ab).x0_hat, g.posterior(x_t, ab).x0_hat @ R.T)
    torch.testing.assert_close(rotated.log_prob(x_t @ R.T), g.log_prob(x_t))


def test_oracle_is_the_optimal_eps_at_integer_t():
    g = _mixture()
    oracle = g.oracle(SCHED)
    x_t = torch.randn(3, 2, generator=_gen(8), dtype=torch.float64)
    t = torch.tensor([0, 10, 1000])
    out = oracle(x_t, t)
    for b in range(3):
        torch.testing.assert_close(out[b], g.posterior(x_t[b:b + 1], SCHED.alpha_bar[t[b]]).eps_hat[0])
        torch.testing.assert_close(out[b:b + 1], oracle(x_t[b:b + 1], int(t[b])))
    assert oracle(x_t.float(), 5).dtype == torch.float32
    with pytest.raises(ValueError, match="t must lie"):
        oracle(x_t, 1001)


def test_bayes_floor_of_a_gaussian_matches_its_closed_form():
    """For one Gaussian, tr Cov[eps | x_t] = sum_j (1 - s^2 / (a^2 lam_j + s^2)) exactly."""
    sched = dl.Schedule.linear(T=200, beta_1=1e-3, beta_T=0.1)
    g = GaussianMixture.single([1.0, -0.5], [[0.5, 0.2], [0.2, 0.3]])
    ab = sched.alpha_bar[1:, None]
    exact = (1 - (1 - ab) / (ab * g.lam[0] + 1 - ab)).sum(1).mean() / g.D  # average over t = 1..T
    est = g.bayes_floor(sched, 20_000, _gen(9))
    assert abs(est.value - float(exact)) < 4 * est.stderr


def test_bayes_floor_equals_the_plain_monte_carlo_error_of_the_oracle():
    """The Rao-Blackwellised floor and E||eps - oracle(x_t, t)||^2 / D estimate the same number."""
    sched = dl.Schedule.linear(T=200, beta_1=1e-3, beta_T=0.1)
    g, n = _mixture(), 40_000
    gen = _gen(10)
    t = torch.randint(1, sched.T + 1, (n,), generator=gen)
    x0 = g.sample(n, gen)
    eps = torch.randn(n, 2, generator=gen, dtype=torch.float64)
    x_t = dl.q_sample(x0, t, eps, sched)
    err = ((eps - g.oracle(sched)(x_t, t)) ** 2).mean(1)
    floor = g.bayes_floor(sched, n, _gen(11))
    assert abs(float(err.mean()) - floor.value) < 4 * math.hypot(float(err.std()) / math.sqrt(n), floor.stderr)
    assert floor.stderr < float(err.std()) / math.sqrt(n)  # the conditional expectation has lower variance
    summed = g.bayes_floor(sched, n, _gen(11), reduction="sum")
    assert summed.value == pytest.approx(2 * floor.value)
