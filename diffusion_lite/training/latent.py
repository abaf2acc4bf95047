"""The book's latent diffusion model: a U-Net trained with the usual trainer on autoencoder latents (chapter 12).

Latent diffusion (Rombach et al. 2022) changes nothing in the diffusion model itself: the data are
the scaled latents z = scale * E(x) (N, c, 7, 7) of a frozen autoencoder instead of pixels, and
`train` (Algorithm 1) and every sampler run on them unchanged. The U-Net works at 7x7 only: one
level (channel_mults=(1,)) with self-attention over the 49 positions, since 7 cannot be halved.

Sizes per profile (cpu: chosen so that autoencoder + latent U-Net train in about the wall time of
the pixel recipe of chapter 07 on 2 cores; benchmarks/latent_cpu.py measures the comparison).
"""
from __future__ import annotations

import torch

from .._checks import check_tensor
from ..checkpoint import cached_model
from ..core.schedules import Schedule, check_schedule
from ..nets.autoencoder import Autoencoder
from ..nets.latent import LatentModel
from ..nets.unet import UNet, UNetConfig
from ..profiles import PROFILES, profile as active_profile
from .train import TrainConfig, train


def latent_ddpm_recipe(latent_channels: int = 4, profile: str | None = None) -> tuple[UNetConfig, TrainConfig]:
    """(UNetConfig, TrainConfig) of the latent U-Net at the sizes of `profile` (default: the active one)."""
    profile = active_profile() if profile is None else profile
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES} or None, got {profile!r}")
    base = {"smoke": 16, "cpu": 48, "gpu": 128}[profile]
    unet = UNetConfig(in_channels=latent_channels, base_channels=base, channel_mults=(1,),
                      num_res_blocks={"smoke": 1, "cpu": 1, "gpu": 2}[profile], attention_levels=(0,),
                      attention_heads=4, groups=8)
    if profile == "smoke":
        config = TrainConfig(steps=60, batch_size=32, lr=2e-3, warmup_steps=5, ema_decay=0.99, log_every=10)
    elif profile == "cpu":    # ~0.021 s per step on 2 cores: 10,000 steps ~ 3.5 minutes
        config = TrainConfig(steps=10_000, batch_size=32, lr=2e-3, warmup_steps=100, lr_decay="cosine",
                             ema_decay=0.999)
    else:
        config = TrainConfig(steps=20_000, batch_size=128, lr=3e-4, warmup_steps=500, ema_decay=0.9995,
                             log_every=100)
    return unet, config


def load_or_train_latent_ddpm(autoencoder: Autoencoder, images: torch.Tensor, unet_config: UNetConfig | None = None,
                              train_config: TrainConfig | None = None, sched=None, progress: bool = True) -> LatentModel:
    """A LatentModel: the U-Net trained on autoencoder.encode_latents(images), from the cache or trained now.

    Defaults: latent_ddpm_recipe(c) of the active profile and the linear schedule with T = 1000. The
    cache key holds both configs, the schedule and a SHA-256 of the latents (so it follows the
    autoencoder's weights and the images). The EMA weights are kept.
    """
    if not isinstance(autoencoder, Autoencoder):
        raise TypeError(f"autoencoder must be an Autoencoder, got {type(autoencoder).__name__}")
    check_tensor("images", images, min_dim=4)
    sched = Schedule.linear(1000) if sched is None else check_schedule(sched)
    default_unet, default_train = latent_ddpm_recipe(autoencoder.config.latent_channels)
    unet_config = default_unet if unet_config is None else unet_config
    train_config = default_train if train_config is None else train_config
    with torch.no_grad():
        z = torch.cat([autoencoder.encode_latents(images[i:i + 1000]) for i in range(0, len(images), 1000)])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(train_config.seed)
        unet = UNet(unet_config)
    model = LatentModel(unet, autoencoder)  # checks that the U-Net fits the autoencoder's latents
    schedule = {"name": sched.name, "alpha_bar": sched.alpha_bar}
    cached_model("ldm-mnist", unet, (unet_config, train_config, schedule, {"latents": z}),
                 lambda m: train(m, z, sched, train_config, progress=progress).ema_model)
    return model.eval()
