"""The empirical optimal denoiser (oracles/empirical.py) and nearest training neighbours (eval/neighbours.py)."""
import math

import pytest
import torch

import diffusion_lite as dl

SCHED = dl.Schedule.linear()


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _brute_posterior_mean(x_t, ab, data):
    """E[x0 | x_t] from Bayes' rule written out: p(i | x_t) ~ N(x_t; sqrt(ab) x_i, (1 - ab) I), one by one."""
    out = []
    for b in range(x_t.shape[0]):
        dens = torch.stack([torch.exp(-((x_t[b] - math.sqrt(ab) * x_i) ** 2).sum() / (2 * (1 - ab)))
                            for x_i in data])  # unnormalised Gaussian densities (N,)
        w = dens / dens.sum()
        out.append((w[:, None] * data.reshape(len(data), -1)).sum(0).reshape(data.shape[1:]))
    return torch.stack(out)


@pytest.mark.parametrize("t", [50, 300, 700, 1000])
def test_matches_brute_force_posterior_mean(t):
    data = torch.randn(6, 2, 3, generator=_gen(0), dtype=torch.float64) * 0.5
    x_t = torch.randn(5, 2, 3, generator=_gen(1), dtype=torch.float64)
    ab = float(SCHED.alpha_bar[t])
    expected = _brute_posterior_mean(x_t, ab, data)
    for chunk in (1, 4, 100):  # the online log-sum-exp must not depend on how the set is cut
        got = dl.empirical_x0(x_t, SCHED.alpha_bar[t], data, chunk=chunk)
        torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)
    model = dl.EmpiricalDenoiser(data, SCHED, chunk=4)
    torch.testing.assert_close(model.x0_hat(x_t, t), expected, rtol=1e-10, atol=1e-12)
    # the model's eps_hat is eq-eps-from-x0 of that mean: converting back gives the mean again
    eps_hat = model(x_t, torch.full((5,), t))
    torch.testing.assert_close(dl.x0_from_eps(eps_hat, t, x_t, SCHED), expected, rtol=1e-8, atol=1e-10)


def test_stable_where_the_naive_softmax_overflows():
    """Far-apart images at t = 1: exp of the raw logits is 0/0 in float64, the log-sum-exp is one-hot."""
    data = torch.randn(10, 50, generator=_gen(2), dtype=torch.float64) * 30
    x_t = math.sqrt(SCHED.alpha_bar[1]) * data[3:5] + 0.1 * torch.randn(2, 50, generator=_gen(3), dtype=torch.float64)
    logits = -((x_t[:, None] - math.sqrt(SCHED.alpha_bar[1]) * data[None]) ** 2).sum(-1) / (2 * (1 - SCHED.alpha_bar[1]))
    assert torch.isnan(logits.exp() / logits.exp().sum(1, keepdim=True)).any()  # the naive form fails
    got = dl.empirical_x0(x_t, SCHED.alpha_bar[1], data, chunk=3)
    torch.testing.assert_close(got, data[3:5], rtol=0, atol=1e-9)


def test_equals_the_mean_of_the_set_at_pure_noise():
    """As alpha_bar -> 0 every weight tends to 1/N: E[x0 | x_t] -> the mean training image."""
    data = torch.rand(7, 1, 4, 4, generator=_gen(4), dtype=torch.float64)
    x_t = torch.randn(3, 1, 4, 4, generator=_gen(5), dtype=torch.float64)
    got = dl.empirical_x0(x_t, torch.tensor(1e-12), data)
    torch.testing.assert_close(got, data.mean(0, keepdim=True).expand_as(got), rtol=0, atol=1e-5)


@pytest.mark.parametrize("sampler", ["ddim", "ddpm", "heun"])
def test_samples_are_training_images(sampler):
    """Every sample lands on a training image: per-pixel RMS distance < 1e-3 to its nearest one."""
    data = torch.rand(8, 1, 6, 6, generator=_gen(6)) * 2 - 1   # 8 float32 "images" in [-1, 1]
    model = dl.EmpiricalDenoiser(data, SCHED)
    x_T = torch.randn(32, 1, 6, 6, generator=_gen(7))
    if sampler == "ddim":
        x0 = dl.sample_ddim(model, SCHED, x_T, steps=25).x0
    elif sampler == "ddpm":
        x0 = dl.sample_ddpm(model, SCHED, x_T, generator=_gen(8)).x0
    else:
        x0 = dl.sample_heun(model, SCHED, x_T, steps=15).x0
    nn = dl.nearest_neighbours(x0, data)
    rms = nn.dist / math.sqrt(data[0].numel())
    assert float(rms.max()) < 1e-3, f"largest per-pixel RMS to a training image {float(rms.max()):.2e}"
    assert len(set(nn.index.tolist())) >= 4  # not one image for every noise: the noise picks the image
    spacing = dl.training_spacing(data) / math.sqrt(data[0].numel())
    assert float(spacing.min()) > 0.1  # the set's own spacing is large: landing "near" means copying


def test_eps_hat_has_the_shape_and_dtype_of_x_t():
    data = torch.randn(4, 3, 5, generator=_gen(9))
    model = dl.EmpiricalDenoiser(data, SCHED)
    x_t = torch.randn(2, 3, 5, generator=_gen(10))
    eps_hat = model(x_t, 10)
    assert eps_hat.shape == x_t.shape and eps_hat.dtype == torch.float32


def test_bad_inputs():
    with pytest.raises(ValueError, match=r"^data must hold at least one training example"):
        dl.EmpiricalDenoiser(torch.zeros(0, 1, 4, 4), SCHED)
    with pytest.raises(ValueError, match=r"^data must hold at least one training example"):
        dl.empirical_x0(torch.zeros(2, 3), torch.tensor(0.5), torch.zeros(0, 3))
    model = dl.EmpiricalDenoiser(torch.zeros(3, 4), SCHED)
    with pytest.raises(ValueError, match=r"^x_t must have shape \(B, 4\)"):
        model(torch.zeros(2, 5), 3)
    with pytest.raises(ValueError, match=r"^t must lie in \[1, 1000\]"):
        model(torch.zeros(2, 4), 0)
    with pytest.raises(ValueError, match=r"cond must be None"):
        model(torch.zeros(2, 4), 3, torch.zeros(2))


def test_nearest_neighbours_match_brute_force():
    data = torch.randn(50, 7, generator=_gen(11))
    x = torch.randn(9, 7, generator=_gen(12))
    d = torch.cdist(x.double(), data.double())
    nn = dl.nearest_neighbours(x, data, chunk=8)
    torch.testing.assert_close(nn.dist, d.min(1).values)
    assert torch.equal(nn.index, d.argmin(1))
    d_self = torch.cdist(data.double(), data.double()) + torch.diag(torch.full((50,), math.inf))
    torch.testing.assert_close(dl.training_spacing(data, chunk=8), d_self.min(1).values)
    with pytest.raises(ValueError, match=r"^data must hold at least 2 examples"):
        dl.training_spacing(data[:1])
