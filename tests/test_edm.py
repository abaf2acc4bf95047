"""EDM preconditioning (Karras et al. 2022): the identities of Table 1, the VP seam, training, bad input."""
import math

import pytest
import torch
from torch import nn

import diffusion_lite as dl
from diffusion_lite.training.edm import EDMPrecond, edm_coefficients, edm_loss, edm_loss_weight, edm_sigmas

SCHED = dl.Schedule.linear(T=1000)


class Fixed(nn.Module):
    """A 'network' that returns a preset output, to check the wrapper's algebra exactly."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1))
        self.out, self.seen = None, None

    def forward(self, x, t):
        self.seen = (x, t)
        return self.out if self.out is not None else torch.zeros_like(x)


def tiny_edm(seed=0) -> EDMPrecond:
    torch.manual_seed(seed)
    net = dl.UNet(dl.UNetConfig(base_channels=8, channel_mults=(1, 2), attention_levels=(), attention_heads=2))
    return EDMPrecond(net, dl.Schedule.linear(T=100, beta_1=1e-3, beta_T=0.2))


def test_coefficients_match_table_1_and_their_identities():
    sigma, s_d = torch.logspace(-3, 2, 50, dtype=torch.float64), 0.5
    c_skip, c_out, c_in, c_noise = edm_coefficients(sigma, s_d)
    torch.testing.assert_close(c_skip, s_d ** 2 / (sigma ** 2 + s_d ** 2))
    torch.testing.assert_close(c_noise, sigma.log() / 4)
    # the denoiser's output has unit-variance error scale: c_skip^2 sigma^2 + (1 - c_skip)^2 s_d^2 = c_out^2
    torch.testing.assert_close(c_skip ** 2 * sigma ** 2 + (1 - c_skip) ** 2 * s_d ** 2, c_out ** 2)
    # the network input c_in y has unit variance for Var(y) = s_d^2 + sigma^2
    torch.testing.assert_close(c_in ** 2 * (s_d ** 2 + sigma ** 2), torch.ones_like(sigma))
    # lambda(sigma) c_out^2 = 1: the weighted loss is the plain squared error of F (eq-edm-loss)
    torch.testing.assert_close(edm_loss_weight(sigma, s_d) * c_out ** 2, torch.ones_like(sigma))


def test_denoiser_returns_its_input_as_sigma_goes_to_zero():
    model = EDMPrecond(Fixed(), SCHED)
    y = torch.randn(3, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    model.net.out = torch.randn(3, 1, 4, 4)  # any network output: c_out -> 0 removes it
    torch.testing.assert_close(model.denoise(y, 1e-6), y, atol=1e-5, rtol=0)
    # and at large sigma the skip path vanishes: D -> s_d * F
    out = model.denoise(y * 1e4, 1e4)
    torch.testing.assert_close(out, 0.5 * model.net.out, atol=2e-4, rtol=1e-4)


def test_effective_target_has_unit_variance_for_data_of_std_sigma_data():
    g = torch.Generator().manual_seed(0)
    x0 = 0.5 * torch.randn(20000, 1, 2, 2, generator=g)  # std = sigma_data
    model = EDMPrecond(Fixed(), SCHED)
    for sigma in (0.02, 0.5, 3.0, 80.0):
        y = x0 + sigma * torch.randn(x0.shape, generator=g)
        target = model.target(x0, y, sigma)
        assert abs(float(target.var()) - 1.0) < 0.03, (sigma, float(target.var()))


def test_eps_hat_round_trips_with_x0_hat_on_the_vp_schedule():
    """A net that outputs the exact target makes D = x0, so forward must return the true eps."""
    g = torch.Generator().manual_seed(1)
    x0 = torch.rand(64, 1, 4, 4, generator=g) * 2 - 1
    t = torch.randint(1, SCHED.T + 1, (64,), generator=g)
    eps = torch.randn(x0.shape, generator=g)
    x_t = dl.q_sample(x0, t, eps, SCHED)
    model = EDMPrecond(Fixed(), SCHED)
    y = x_t / SCHED.alpha_bar[t].sqrt().float().view(-1, 1, 1, 1)
    sigma = ((1 - SCHED.alpha_bar[t]) / SCHED.alpha_bar[t]).sqrt().float()
    model.net.out = model.target(x0, y, sigma).float()
    eps_hat = model(x_t, t)
    torch.testing.assert_close(eps_hat, eps, atol=1e-4, rtol=1e-4)
    x0_hat = dl.x0_from_eps(eps_hat, t, x_t, SCHED)  # the book's conversion gives x0 back
    torch.testing.assert_close(x0_hat, x0, atol=1e-4, rtol=1e-4)
    # the net saw c_in y and a non-negative time (the U-Net rejects t < 0)
    assert bool((model.net.seen[1] >= 0).all())


def test_every_sampler_runs_it_unchanged():
    model = tiny_edm().eval()
    x_T = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    for method, steps in (("ddpm", 5), ("ddim", 5), ("heun", 3), ("dpm_solver_pp_2m", 5)):
        with torch.no_grad():
            out = dl.sample(model, model_sched(model), x_T, method=method, steps=steps,
                            generator=torch.Generator().manual_seed(0))
        assert out.x0.shape == x_T.shape and bool(torch.isfinite(out.x0).all()), method


def model_sched(model):
    return dl.Schedule.linear(T=model.T, beta_1=1e-3, beta_T=0.2)


def test_lognormal_sigmas():
    s = edm_sigmas(100000, torch.Generator().manual_seed(0))
    assert abs(float(s.log().mean()) + 1.2) < 0.02 and abs(float(s.log().std()) - 1.2) < 0.02


def test_training_with_edm_learns_and_resumes(tmp_path):
    data = torch.rand(16, 1, 8, 8) * 2 - 1
    sched = model_sched(tiny_edm())
    config = dl.TrainConfig(steps=30, batch_size=8, lr=2e-3, warmup_steps=2, prediction="edm",
                            lr_decay="cosine", log_every=7)
    full = dl.train(tiny_edm(), data, sched, config, progress=False)
    assert len(full.history) == 30 and all(math.isfinite(v) for v in full.history)
    assert sum(full.history[-10:]) < sum(full.history[:10])  # it learns
    path = tmp_path / "edm.pt"
    part = dl.train(tiny_edm(), data, sched, config, checkpoint_path=path, stop_at=12, progress=False)
    assert part.history == full.history[:12]  # stop_at keeps the full run's cosine schedule
    rest = dl.train(tiny_edm(seed=3), data, sched, config, checkpoint_path=path, progress=False)
    assert rest.resumed_from == 12 and rest.history == full.history
    # the loss is lambda-weighted ||D - x0||^2, i.e. ||F - F_target||^2
    model, g = tiny_edm(), torch.Generator().manual_seed(0)
    x0, sigma = data[:4], edm_sigmas(4, g)
    noise = torch.randn(x0.shape, generator=g)
    y = x0 + sigma.view(-1, 1, 1, 1) * noise
    weighted = edm_loss_weight(sigma).view(-1, 1, 1, 1) * (model.denoise(y, sigma) - x0) ** 2
    torch.testing.assert_close(edm_loss(model, x0, sigma, noise), weighted.flatten(1).mean(1), rtol=1e-4, atol=1e-5)


def test_recipe_wraps_the_unet():
    recipe = dl.mnist_ddpm_recipe("smoke")
    edm = type(recipe)(**{**recipe.__dict__, "train": dl.TrainConfig(**{**recipe.train.__dict__,
                                                                           "prediction": "edm",
                                                                           "min_snr_gamma": None})})
    assert isinstance(edm.make_model(), EDMPrecond) and isinstance(recipe.make_model(), dl.UNet)


def test_bad_input():
    model = EDMPrecond(Fixed(), SCHED)
    with pytest.raises(TypeError, match="^net must be a torch.nn.Module"):
        EDMPrecond("unet", SCHED)
    with pytest.raises(ValueError, match=r"^sigma_data must be a finite number in \(0.0, inf\]"):
        EDMPrecond(Fixed(), SCHED, sigma_data=0.0)
    with pytest.raises(ValueError, match=r"^t must be in \[1, 1000\]"):
        model(torch.zeros(2, 1, 4, 4), torch.tensor([0, 5]))
    with pytest.raises(TypeError, match="^t must hold integer timesteps.*denoise"):
        model(torch.zeros(2, 1, 4, 4), torch.tensor([0.5, 5.0]))
    with pytest.raises(ValueError, match="^sigma must be > 0"):
        edm_coefficients(torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"^sigma must be a number or have shape \(2,\)"):
        model.denoise(torch.zeros(2, 1, 4, 4), torch.ones(3))
    with pytest.raises(TypeError, match="^prediction='edm' trains an EDMPrecond"):
        dl.train(Fixed(), torch.zeros(4, 2), SCHED, dl.TrainConfig(steps=2, prediction="edm"), progress=False)
    with pytest.raises(ValueError, match="^min_snr_gamma weights eps/v losses"):
        dl.TrainConfig(prediction="edm", min_snr_gamma=5.0)
    with pytest.raises(ValueError, match="^sched must be the schedule the EDMPrecond was built with"):
        dl.edm_check_schedule(model, dl.Schedule.linear(T=10))
