"""The forward process: closed form vs the iterated chain, moments, and argument checks."""
import pytest
import torch

import diffusion_lite as dl


def test_q_sample_moments_match_closed_form():
    """x_t | x0 has mean sqrt(alpha_bar_t) x0 and variance 1 - alpha_bar_t (eq-q-sample)."""
    g = torch.Generator().manual_seed(0)
    s = dl.Schedule.linear(1000)
    n, x0 = 200_000, torch.tensor([0.8, -0.3, 0.0])
    for t in [1, 10, 300, 1000]:
        eps = torch.randn(n, 3, generator=g, dtype=torch.float64)
        x_t = dl.q_sample(x0.double().expand(n, 3), t, eps, s)
        ab = s.alpha_bar[t]
        se_mean = (1 - ab).sqrt() / n ** 0.5  # standard error of the empirical mean
        assert (x_t.mean(0) - ab.sqrt() * x0).abs().max() < 5 * se_mean
        # variance of a sample variance of a Gaussian: 2 sigma^4 / (n - 1)
        assert (x_t.var(0) - (1 - ab)).abs().max() < 5 * (2 / (n - 1)) ** 0.5 * (1 - ab)


def test_closed_form_equals_iterated_chain():
    """Iterating q_step t times gives the same distribution as one q_sample jump."""
    g = torch.Generator().manual_seed(1)
    s = dl.Schedule.cosine(200)
    n, t_max = 100_000, 120
    x0 = torch.full((n, 1), 0.7, dtype=torch.float64)
    x = x0.clone()
    for t in range(1, t_max + 1):
        x = dl.q_step(x, t, torch.randn(n, 1, generator=g, dtype=torch.float64), s)
    ab = s.alpha_bar[t_max]
    assert abs(float(x.mean()) - float(ab.sqrt() * 0.7)) < 5 * float((1 - ab).sqrt()) / n ** 0.5
    assert abs(float(x.var()) - float(1 - ab)) < 5 * (2 / n) ** 0.5 * float(1 - ab)


def test_batched_timesteps_and_dtype_device_follow_data():
    s = dl.Schedule.linear(10)
    x0 = torch.ones(4, 2, 3, 3, dtype=torch.float32)
    t = torch.tensor([0, 1, 5, 10])
    x_t = dl.q_sample(x0, t, torch.zeros_like(x0), s)
    assert x_t.dtype == torch.float32 and x_t.shape == x0.shape
    torch.testing.assert_close(x_t[:, 0, 0, 0], s.alpha_bar[t].sqrt().float())
    torch.testing.assert_close(dl.q_sample(x0, 0, torch.randn_like(x0), s), x0)  # t = 0 is the data


def test_terminal_distribution_is_near_standard_normal():
    s = dl.Schedule.linear(1000)
    assert s.alpha_bar[-1] < 1e-3  # alpha_bar_T ~ 0: x_T forgets x0


@pytest.mark.parametrize("call,exc,match", [
    (lambda s: dl.q_sample(torch.ones(2, 3), 11, torch.ones(2, 3), s), ValueError, r"t must lie in \[0, 10\]"),
    (lambda s: dl.q_sample(torch.ones(2, 3), -1, torch.ones(2, 3), s), ValueError, r"t must lie in \[0, 10\]"),
    (lambda s: dl.q_sample(torch.ones(2, 3), 1, torch.ones(3, 3), s), ValueError, "same shape"),
    (lambda s: dl.q_sample(torch.ones(2, 3), 1.5, torch.ones(2, 3), s), TypeError, "t must be an int"),
    (lambda s: dl.q_sample(torch.ones(2, 3), torch.tensor([1, 2, 3]), torch.ones(2, 3), s), ValueError, "batch size 3"),
    (lambda s: dl.q_sample(torch.ones(2, 3, dtype=torch.long), 1, torch.ones(2, 3), s), TypeError, "floating-point"),
    (lambda s: dl.q_sample(torch.full((2, 3), float("nan")), 1, torch.ones(2, 3), s), ValueError, "NaN"),
    (lambda s: dl.q_sample(torch.ones(0, 3), 1, torch.ones(0, 3), s), ValueError, "empty"),
    (lambda s: dl.q_sample([1.0], 1, torch.ones(1), s), TypeError, "x0 must be a torch.Tensor"),
    (lambda s: dl.q_sample(torch.ones(2), 1, torch.ones(2), "linear"), TypeError, "sched must be"),
    (lambda s: dl.q_step(torch.ones(2), 0, torch.ones(2), s), ValueError, r"t must lie in \[1, 10\]"),
])
def test_bad_input_is_rejected_clearly(call, exc, match):
    with pytest.raises(exc, match=match):
        call(dl.Schedule.linear(10))
