"""Chapter 15's comparison models: GAN and VAE shapes, losses against their formulas, R1, training."""
import math

import pytest
import torch
import torch.nn.functional as F

import diffusion_lite as dl


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("data,shape", [("points", (2,)), ("mnist", (1, 28, 28))])
def test_gan_and_vae_shapes(data, shape):
    torch.manual_seed(0)
    g, d = dl.GANGenerator(dl.GANConfig(data=data, width=8)), dl.GANDiscriminator(dl.GANConfig(data=data, width=8))
    x = g.sample(5, _gen())
    assert x.shape == (5, *shape)
    if data == "mnist":
        assert float(x.abs().max()) <= 1.0                                    # tanh output
    assert d(x).shape == (5,)
    vae = dl.VAE(dl.VAEConfig(data=data, width=8, z_dim=3))
    x_mean, mu, logvar = vae(torch.zeros(4, *shape))
    assert x_mean.shape == (4, *shape) and mu.shape == logvar.shape == (4, 3)
    assert vae.sample(6, _gen()).shape == (6, *shape)
    torch.testing.assert_close(g.sample(3, _gen(1)), g.sample(3, _gen(1)))     # same seed, same samples


def test_gan_losses_match_the_log_sigmoid_formulas():
    a, b = torch.randn(10, generator=_gen(2)), torch.randn(10, generator=_gen(3))
    expected_d = -(torch.sigmoid(a).log().mean() + (1 - torch.sigmoid(b)).log().mean())
    torch.testing.assert_close(dl.discriminator_loss(a, b), expected_d)
    torch.testing.assert_close(dl.generator_loss(b, "minimax"), (1 - torch.sigmoid(b)).log().mean())
    torch.testing.assert_close(dl.generator_loss(b, "nonsaturating"), -torch.sigmoid(b).log().mean())
    # the saturating loss has a vanishing gradient where D confidently rejects the fakes
    low = torch.tensor([-8.0], requires_grad=True)
    dl.generator_loss(low, "minimax").backward()
    g_mm = float(low.grad.abs())
    low.grad = None
    dl.generator_loss(low, "nonsaturating").backward()
    assert g_mm < 1e-3 < float(low.grad.abs())


def test_r1_penalty_of_a_linear_discriminator_is_its_squared_weight_norm():
    d = dl.GANDiscriminator(dl.GANConfig(depth=1, width=3))
    with torch.no_grad():
        d.net[0].weight.copy_(torch.tensor([[1.0, 2.0], [0.5, -1.0], [3.0, 0.0]]))
        d.net[0].bias.fill_(5.0)                    # all units positive: LeakyReLU is the identity
        d.net[2].weight.copy_(torch.tensor([[1.0, -1.0, 0.5]]))
    x = torch.zeros(4, 2)
    w_eff = torch.tensor([1.0, -1.0, 0.5]) @ torch.tensor([[1.0, 2.0], [0.5, -1.0], [3.0, 0.0]])
    assert dl.r1_penalty(d, x).item() == pytest.approx(float(w_eff.square().sum()))


def test_negative_elbo_matches_a_hand_computation():
    torch.manual_seed(0)
    vae = dl.VAE(dl.VAEConfig(width=8, z_dim=2))
    x, eps = torch.randn(5, 2, generator=_gen(4)), torch.randn(5, 2, generator=_gen(5))
    mu, logvar = vae.encode(x)
    x_mean = vae.decode(mu + (0.5 * logvar).exp() * eps)
    lv = vae.log_var_x
    nll = 0.5 * ((x - x_mean) ** 2 / lv.exp() + lv + math.log(2 * math.pi)).sum(1)
    kl = torch.stack([torch.distributions.kl_divergence(
        torch.distributions.Normal(mu[i], (0.5 * logvar[i]).exp()), torch.distributions.Normal(0.0, 1.0)).sum()
        for i in range(5)])
    torch.testing.assert_close(dl.negative_elbo(vae, x, eps), (nll + kl).mean())


def test_short_training_lowers_the_losses_and_is_reproducible():
    data = dl.GaussianMixture.eight_gaussians().sample(2000, generator=_gen(6)).float()
    torch.manual_seed(0)
    vae = dl.VAE(dl.VAEConfig(width=32, depth=2))
    res = dl.train_vae(vae, data, dl.VAETrainConfig(steps=150, batch_size=128, lr=3e-3), progress=False)
    assert sum(res.loss[-20:]) / 20 < sum(res.loss[:20]) / 20
    runs = []
    for _ in range(2):
        torch.manual_seed(1)
        cfg = dl.GANConfig(width=16, depth=2)
        g, d = dl.GANGenerator(cfg), dl.GANDiscriminator(cfg)
        r = dl.train_gan(g, d, data, dl.GANTrainConfig(steps=30, batch_size=64, r1_gamma=1.0), progress=False)
        assert r.finite and len(r.d_loss) == 30
        runs.append(g.sample(4, _gen(7)))
    torch.testing.assert_close(runs[0], runs[1])


def test_ring_data_is_the_eight_gaussians_mixture():
    """dl.ring_data writes the mixture out (training may not import oracles): same distribution."""
    ring = dl.GaussianMixture.eight_gaussians()
    x = dl.ring_data()[:2000].double()
    g = _gen(8)
    floor = dl.distance_floor(dl.energy_distance, lambda n: ring.sample(n, generator=g), 2000, 10)
    assert abs(dl.energy_distance(x, ring.sample(2000, generator=g)) - floor.mean) < 4 * floor.std
    assert dl.mode_coverage(x, ring.means, std=0.1).modes_covered == 8
    torch.testing.assert_close(dl.ring_data(), dl.ring_data())
