"""Chapters 12-13: the KL autoencoder and latent model, inpainting/RePaint, SDEdit, super-resolution, PSNR/SSIM."""
import math

import pytest
import torch

import diffusion_lite as dl

SCHED = dl.Schedule.linear(T=20, beta_1=1e-3, beta_T=0.2)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def tiny_unet(in_channels=1, out_channels=None, mults=(1, 2)):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return dl.UNet(dl.UNetConfig(in_channels=in_channels, out_channels=out_channels, base_channels=8,
                                     channel_mults=mults, attention_levels=(), attention_heads=2, groups=4))


def tiny_ae(c=3):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return dl.Autoencoder(dl.AutoencoderConfig(latent_channels=c, base_channels=8, groups=4))


# ------------------------------------------------------------------------------------ autoencoder
def test_encoder_decoder_shapes():
    ae = tiny_ae(3)
    x = torch.rand(5, 1, 28, 28) * 2 - 1
    mean, logvar = ae.encode(x)
    assert mean.shape == logvar.shape == (5, 3, 7, 7)
    assert ae.decode(mean).shape == (5, 1, 28, 28)
    x_hat, m2, _ = ae(x, generator=gen())
    assert x_hat.shape == x.shape
    torch.testing.assert_close(m2, mean)


def test_scale_factor_gives_unit_variance():
    ae = tiny_ae(2)
    x = torch.rand(64, 1, 28, 28, generator=gen(1)) * 2 - 1
    with torch.no_grad():
        raw_std = float(ae.encode(x)[0].std())
        scale = ae.measure_scale(x)
        z = ae.encode_latents(x)
    assert abs(scale - 1 / raw_std) < 1e-4 * scale
    assert abs(float(z.std()) - 1.0) < 1e-4
    assert abs(raw_std - 1.0) > 0.05  # the raw latents were not unit-variance: the scale did something
    with torch.no_grad():  # decode_latents undoes the scale
        torch.testing.assert_close(ae.decode_latents(z), ae.decode(z / scale))


def test_kl_term_matches_closed_form_and_monte_carlo():
    g = gen(2)
    mean, logvar = torch.randn(3, 2, 7, 7, generator=g), torch.randn(3, 2, 7, 7, generator=g) * 0.5
    kl = dl.gaussian_kl_standard(mean, logvar)
    var = logvar.exp()
    closed = (0.5 * (mean ** 2 + var - 1 - torch.log(var))).flatten(1).sum(1)  # per-dimension formula
    torch.testing.assert_close(kl, closed)
    # against torch.distributions' independent implementation
    q = torch.distributions.Normal(mean, var.sqrt())
    p = torch.distributions.Normal(torch.zeros_like(mean), torch.ones_like(mean))
    torch.testing.assert_close(kl, torch.distributions.kl_divergence(q, p).flatten(1).sum(1))
    assert float(dl.gaussian_kl_standard(torch.zeros(1, 4), torch.zeros(1, 4))) == 0.0


def test_autoencoder_training_lowers_the_loss_and_sets_the_scale():
    ae = tiny_ae(2)
    x = torch.rand(32, 1, 28, 28, generator=gen(3)) * 2 - 1
    hist = dl.train_autoencoder(ae, x, dl.AutoencoderTrainConfig(steps=30, batch_size=16, lr=3e-3), progress=False)
    assert sum(hist[-5:]) < sum(hist[:5])
    with torch.no_grad():
        assert abs(float(ae.encode_latents(x).std()) - 1.0) < 1e-3


def test_latent_model_is_the_unet_and_decodes():
    ae, unet = tiny_ae(3), tiny_unet(3, mults=(1,))
    lm = dl.LatentModel(unet, ae)
    z = torch.randn(2, 3, 7, 7, generator=gen())
    torch.testing.assert_close(lm(z, torch.tensor([3, 4])), unet(z, torch.tensor([3, 4])))
    assert lm.latent_shape == (3, 7, 7)
    with torch.no_grad():
        out = dl.sample_ddim(lm, SCHED, (2,) + lm.latent_shape, 4, generator=gen())
        assert lm.decode(out.x0).shape == (2, 1, 28, 28)


# ------------------------------------------------------------------------------------ inpainting
def test_inpainting_keeps_known_pixels_exactly():
    unet = tiny_unet()
    x0 = torch.rand(3, 1, 8, 8, generator=gen(4)) * 2 - 1
    mask = (torch.rand(3, 1, 8, 8, generator=gen(5)) > 0.5).float()
    with torch.no_grad():
        for resample, jump in ((1, 1), (3, 2)):
            out = dl.inpaint(unet, SCHED, x0, mask, steps=10, resample=resample, jump=jump, generator=gen())
            assert torch.equal(out.x0[mask == 1], x0[mask == 1])
            assert not torch.equal(out.x0[mask == 0], x0[mask == 0])
    assert out.nfe > 10  # resampling spends more network evaluations


def test_all_known_mask_returns_the_input():
    x0 = torch.rand(2, 1, 8, 8, generator=gen(6)) * 2 - 1
    with torch.no_grad():
        out = dl.inpaint(tiny_unet(), SCHED, x0, torch.ones(1, 1, 8, 8), steps=5, resample=2, generator=gen())
    assert torch.equal(out.x0, x0)


def test_all_unknown_mask_is_unconditional_sampling():
    unet = tiny_unet()
    x0 = torch.rand(2, 1, 8, 8, generator=gen(7)) * 2 - 1
    with torch.no_grad():
        for steps in (None, 7):
            a = dl.inpaint(unet, SCHED, x0, torch.zeros_like(x0), steps=steps, generator=gen(11)).x0
            b = dl.sample_ddpm(unet, SCHED, (2, 1, 8, 8), steps=steps, generator=gen(11)).x0
            torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_repaint_path_visits_every_level_resample_times():
    path = dl.repaint_path(12, jump=3, resample=4)
    assert path[0] == 12 and path[-1] == 0
    assert all(abs(a - b) == 1 for a, b in zip(path, path[1:]))
    downs = [a for a, b in zip(path, path[1:]) if b == a - 1]
    # states above S - jump are left once; the others are denoised `resample` times
    assert downs.count(12) == 1 and downs.count(2) == 4
    assert len(downs) == 12 + 3 * 3 * 3  # 12 plain steps + (resample-1) jumps of 3 at 3 states (1, 4, 7)
    assert dl.repaint_path(12, 1, 1) == list(range(12, -1, -1))


def test_repaint_agrees_with_an_oracle_posterior():
    """With the exact denoiser of a two-point data set, inpainting one coordinate picks the right point."""
    sched = dl.Schedule.linear(T=100)
    gmm = dl.GaussianMixture.isotropic([[-1.0, -1.0], [1.0, 1.0]], 0.05)
    oracle = gmm.oracle(sched)
    known = torch.tensor([[1.0, 0.0]]).repeat(200, 1)  # first coordinate known = +1; second to fill
    mask = torch.tensor([[1.0, 0.0]])
    for resample in (1, 4):
        out = dl.inpaint(oracle, sched, known, mask, steps=50, resample=resample, jump=5, generator=gen(9)).x0
        agree = float((out[:, 1] > 0).float().mean())
        assert agree > (0.6 if resample == 1 else 0.9), (resample, agree)


# ------------------------------------------------------------------------------------ SDEdit
def test_sdedit_endpoints():
    x = torch.rand(2, 1, 8, 8, generator=gen(8)) * 2 - 1
    unet = tiny_unet()
    with torch.no_grad():
        out = dl.sdedit(unet, SCHED, x, t0=SCHED.T, steps=5, generator=gen(1))
        # t0 = T with DDIM: the same as sampling from the noised input's x_T
        eps = torch.randn(x.shape, generator=gen(1))
        x_T = dl.q_sample(x, SCHED.T, eps, SCHED)
        ref = dl.sample_ddim(unet, SCHED, x_T, dl.timesteps(SCHED.T, 5))
        torch.testing.assert_close(out.x0, ref.x0)
        assert out.nfe == 5
    # with the exact optimal denoiser of a single point, a tiny t0 returns (almost) the input
    sched = dl.Schedule.linear(T=100)
    gmm = dl.GaussianMixture.isotropic([[0.5, -0.5]], 0.3)
    pts = torch.tensor([[0.2, 0.1]]).repeat(50, 1)
    near = dl.sdedit(gmm.oracle(sched), sched, pts, t0=1, steps=1, generator=gen()).x0
    far = dl.sdedit(gmm.oracle(sched), sched, pts, t0=100, steps=20, generator=gen()).x0
    assert float((near - pts).norm(dim=1).mean()) < float((far - pts).norm(dim=1).mean())


# ------------------------------------------------------------------------------------ super-resolution
def test_superres_output_shape_and_conditioning_is_used():
    unet = tiny_unet(in_channels=2, out_channels=1)
    sr = dl.SuperResModel(unet, low_size=4, size=8)
    x_t = torch.randn(3, 1, 8, 8, generator=gen())
    y1, y2 = torch.rand(2, 3, 1, 4, 4, generator=gen(1)) * 2 - 1
    with torch.no_grad():
        a, b = sr(x_t, torch.tensor([1, 5, 9]), y1), sr(x_t, torch.tensor([1, 5, 9]), y2)
        assert a.shape == x_t.shape
        assert not torch.allclose(a, b)
        out = dl.sample_ddim(sr, SCHED, (3, 1, 8, 8), 4, cond=y1, generator=gen())
        assert out.x0.shape == (3, 1, 8, 8)
        assert dl.regress(sr, y1).shape == (3, 1, 8, 8)


def test_down_and_upsample():
    x = torch.rand(2, 1, 28, 28, generator=gen()) * 2 - 1
    y = dl.downsample(x, 7)
    torch.testing.assert_close(y[0, 0, 0, 0], x[0, 0, :4, :4].mean())
    up = dl.upsample(torch.full((1, 1, 7, 7), 0.3), 28)
    torch.testing.assert_close(up, torch.full((1, 1, 28, 28), 0.3))


def test_regression_training_lowers_the_loss():
    unet = tiny_unet(in_channels=2, out_channels=1)
    sr = dl.SuperResModel(unet, low_size=4, size=8)
    x = torch.rand(32, 1, 8, 8, generator=gen(2)) * 2 - 1
    hist = dl.train_regression(sr, x, dl.downsample(x, 4), dl.TrainConfig(steps=40, batch_size=16, lr=3e-3,
                                                                           warmup_steps=2), progress=False)
    assert sum(hist[-5:]) < sum(hist[:5])


# ------------------------------------------------------------------------------------ metrics
def test_psnr_and_ssim():
    x = torch.rand(2, 1, 28, 28, generator=gen(3)) * 2 - 1
    noise = torch.randn(x.shape, generator=gen(4)) * 0.1
    assert float(dl.ssim(x, x).min()) > 0.9999
    mse = float(noise[0].pow(2).mean())
    torch.testing.assert_close(dl.psnr(x + noise, x)[0], torch.tensor(10 * math.log10(4 / mse)))
    assert float(dl.ssim(x + noise, x).mean()) > float(dl.ssim(x + 5 * noise, x).mean())
    # agreement with an independent implementation (scikit-image), where installed
    skm = pytest.importorskip("skimage.metrics")
    a, b = x[0, 0].double().numpy(), (x + noise)[0, 0].clamp(-1, 1).double().numpy()
    ref = skm.structural_similarity(a, b, data_range=2.0, gaussian_weights=True, sigma=1.5,
                                    use_sample_covariance=False)
    got = float(dl.ssim((x + noise)[:1].clamp(-1, 1), x[:1]))
    assert abs(got - ref) < 0.02, (got, ref)
