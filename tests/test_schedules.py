"""Schedules: structure, monotonicity, closed forms and agreement with diffusers."""
import math

import pytest
import torch

import diffusion_lite as dl

ALL = ["linear", "cosine", "sigmoid"]


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("T", [1, 2, 10, 1000])
def test_structure(name, T):
    s = dl.Schedule.named(name, T)
    assert s.T == T and s.betas.shape == (T + 1,)
    assert s.betas.dtype == s.alphas.dtype == s.alpha_bar.dtype == torch.float64
    assert s.betas[0] == 0 and s.alpha_bar[0] == 1  # index 0 = no noise
    torch.testing.assert_close(s.alphas, 1 - s.betas)
    torch.testing.assert_close(s.alpha_bar, torch.cumprod(s.alphas, 0))  # eq-alpha-bar
    assert torch.isfinite(s.betas).all() and torch.isfinite(s.alpha_bar).all()


@pytest.mark.parametrize("name", ALL)
def test_alpha_bar_strictly_decreasing_and_betas_bounded(name):
    s = dl.Schedule.named(name, 1000)
    assert (s.alpha_bar[1:] < s.alpha_bar[:-1]).all()
    assert (s.betas[1:] > 0).all() and (s.betas <= dl.core.schedules.MAX_BETA).all()
    assert (s.log_snr[2:] < s.log_snr[1:-1]).all()  # log-SNR decreases with t


def test_cosine_matches_its_definition():
    """alpha_bar_t = f(t/T)/f(0) wherever no beta was clipped (eq-cosine-schedule)."""
    T, s_ = 1000, 0.008
    s = dl.Schedule.cosine(T, s=s_)
    tau = torch.arange(T + 1, dtype=torch.float64) / T
    f = torch.cos((tau + s_) / (1 + s_) * math.pi / 2) ** 2
    unclipped = torch.cumprod(torch.cat([torch.tensor([True]), s.betas[1:] < 0.999]), 0).bool()
    torch.testing.assert_close(s.alpha_bar[unclipped], (f / f[0])[unclipped])
    assert s.betas[-1] == pytest.approx(0.999)  # the last beta is the clipped one


def test_snr_and_beta_tilde_formulas():
    s = dl.Schedule.linear(100)
    torch.testing.assert_close(s.snr[1:], s.alpha_bar[1:] / (1 - s.alpha_bar[1:]))  # eq-snr
    torch.testing.assert_close(s.log_snr[1:], torch.log(s.snr[1:]))
    ab_prev = s.alpha_bar[:-1]
    torch.testing.assert_close(s.beta_tilde[1:], (1 - ab_prev) / (1 - s.alpha_bar[1:]) * s.betas[1:])
    assert s.beta_tilde[1] == 0 and (s.beta_tilde[1:] <= s.betas[1:]).all()


def test_from_alpha_bar_roundtrip():
    """A schedule built from a continuous alpha_bar reproduces it at the grid points."""
    T = 50
    s = dl.Schedule.from_alpha_bar(lambda tau: 1 - 0.9 * tau, T)
    torch.testing.assert_close(s.alpha_bar, 1 - 0.9 * torch.arange(T + 1, dtype=torch.float64) / T)


@pytest.mark.parametrize("ours,theirs", [("linear", "linear"), ("cosine", "squaredcos_cap_v2")])
def test_agrees_with_diffusers(ours, theirs):
    """An independent implementation: diffusers' DDPMScheduler (its index i is our t = i + 1)."""
    diffusers = pytest.importorskip("diffusers")
    d = diffusers.DDPMScheduler(num_train_timesteps=1000, beta_schedule=theirs)
    s = dl.Schedule.named(ours, 1000)
    torch.testing.assert_close(s.betas[1:].float(), d.betas, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(s.alpha_bar[1:].float(), d.alphas_cumprod, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("call,match", [
    (lambda: dl.Schedule.named("quadratic"), "unknown schedule 'quadratic'"),
    (lambda: dl.Schedule.linear(T=0), r"T must be in \[1"),
    (lambda: dl.Schedule.linear(T=10.0), "T must be an int"),
    (lambda: dl.Schedule.linear(beta_T=1.5), "beta_T must be"),
    (lambda: dl.Schedule.cosine(s=-0.1), "s must be"),
    (lambda: dl.Schedule.sigmoid(start=3, end=-3), "start must be smaller than end"),
    (lambda: dl.Schedule.from_betas(torch.tensor([0.1, float("nan")])), "NaN"),
    (lambda: dl.Schedule.from_betas(torch.tensor([0.1, 1.0])), r"betas\[1:\] must lie in \(0, 1\)"),
    (lambda: dl.Schedule.from_alpha_bar(lambda tau: 0.5 + 0 * tau, 10), "strictly decreasing"),
])
def test_bad_input_is_rejected_clearly(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()
