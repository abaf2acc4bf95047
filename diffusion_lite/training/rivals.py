"""Chapter 15's recipes: a GAN, a stabilised GAN, a VAE and a diffusion model on the same data.

One place defines what chapter 15 and benchmarks/gan_vae_2d.py train, per profile, so the two
share cached models. The data: the ring of eight Gaussians (GaussianMixture.eight_gaussians,
radius 2, std 0.1), a fixed training set of RING_N points drawn with seed 0, and MNIST (the split
of the shared DDPM's recipe). The rivals:
- "GAN": MLP generator and discriminator, the non-saturating loss, Adam(2e-4, beta1 = 0.5): the
  DCGAN recipe (Radford et al. 2016) with MLPs for points and its convolutions for MNIST.
- "GAN + R1": the same with the R1 penalty on real data (Mescheder et al. 2018), gamma as below.
- "VAE": Gaussian encoder and decoder with a learned decoder variance (Kingma & Welling 2014).
- "diffusion": the MLP denoiser of chapter 05 trained with dl.train (L_simple, EMA).
Each training seed also seeds the network's initialisation, so seeds differ in everything.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .._checks import check_int
from ..checkpoint import cache_path, cached_model, load_checkpoint
from ..core.schedules import Schedule
from ..nets.gan import GANConfig
from ..nets.mlp import MLPConfig, MLPDenoiser
from ..nets.vae import VAEConfig
from ..profiles import PROFILES, profile as active_profile
from .gan import GANTrainConfig
from .train import TrainConfig, train
from .vae import VAETrainConfig

RING_N = 20_000                  # training points of the ring
RING_ID = f"eight_gaussians-r2-s0.1-n{RING_N}-seed0"
MODELS = ("GAN", "GAN + R1", "VAE", "diffusion")


def ring_data() -> torch.Tensor:
    """The fixed training set (RING_N, 2), float32: equal-weight components at radius 2, std 0.1,
    the distribution of GaussianMixture.eight_gaussians() (written out: training does not import oracles)."""
    g = torch.Generator().manual_seed(0)
    k = torch.randint(8, (RING_N,), generator=g, dtype=torch.float64)
    angle = k * (2 * math.pi / 8)
    means = 2.0 * torch.stack([angle.cos(), angle.sin()], 1)                  # (N, 2)
    return (means + 0.1 * torch.randn(RING_N, 2, generator=g, dtype=torch.float64)).float()


def _profile(profile: str | None) -> str:
    profile = active_profile() if profile is None else profile
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES} or None, got {profile!r}")
    return profile


def ring_configs(name: str, seed: int, profile: str | None = None):
    """(network config, training config) of rival `name` on the ring for training seed `seed`."""
    if name not in MODELS:
        raise ValueError(f"name must be one of {MODELS}, got {name!r}")
    check_int("seed", seed, low=0)
    steps = {"smoke": 300, "cpu": 3000, "gpu": 10_000}[_profile(profile)]
    if name in ("GAN", "GAN + R1"):
        return GANConfig(data="points", z_dim=8, width=128, depth=3), GANTrainConfig(
            steps=steps, batch_size=256, r1_gamma=0.0 if name == "GAN" else 1.0, seed=seed)
    if name == "VAE":
        return VAEConfig(data="points", z_dim=2, width=128, depth=3), VAETrainConfig(
            steps=steps, batch_size=256, lr=1e-3, seed=seed)
    return MLPConfig(), TrainConfig(steps=steps, batch_size=1024, lr=2e-3, warmup_steps=100,
                                    ema_decay=0.995, seed=seed, log_every=100)


def load_or_train_ring_diffusion(seed: int, profile: str | None = None,
                                 progress: bool = True) -> tuple[nn.Module, float]:
    """(EMA denoiser, training seconds) of the ring's diffusion model (linear schedule, T = 1000)."""
    net_config, train_config = ring_configs("diffusion", seed, profile)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = MLPDenoiser(net_config)
    sched = Schedule.linear(1000)
    parts = [net_config, train_config, {"schedule": "linear", "T": 1000, "data": RING_ID}]
    model = cached_model("ring-diffusion", model, parts,
                         lambda m: train(m, ring_data(), sched, train_config, progress=progress).ema_model)
    _, meta = load_checkpoint(cache_path("ring-diffusion", type(model).__name__, *parts))
    return model, float(meta["train_seconds"])
