"""The regression baseline of super-resolution: the same conditioned network trained by plain MSE.

Where the diffusion model learns to denoise x_t given the low-resolution image y (SR3; Saharia et
al. 2022), the baseline maps y straight to an image, minimising (eq-sr-regression)

    L = E || f(y) - x ||^2,    f(y) = SuperResModel(x_t = 0, t = 1, cond = y)

Its optimum is the posterior mean E[x | y]: the average of every high-resolution digit consistent
with y, which scores well on PSNR and SSIM but tends to blur where several answers fit y (Blau & Michaeli 2018).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm

from .._checks import check_tensor
from ..checkpoint import cached_model
from ..core.schedules import Schedule, check_schedule
from ..nets.superres import SuperResModel, downsample
from ..nets.unet import UNet, UNetConfig
from ..profiles import PROFILES, profile as active_profile
from .train import TrainConfig, learning_rate, train


def regress(model: SuperResModel, y: Tensor) -> Tensor:
    """The regression network's output f(y) (B, C, H, W): the model at x_t = 0, t = 1."""
    if not isinstance(model, SuperResModel):
        raise TypeError(f"model must be a SuperResModel, got {type(model).__name__}")
    check_tensor("y", y, min_dim=4)
    x_t = y.new_zeros(y.shape[0], model.channels, model.size, model.size)
    return model(x_t, 1, y)


def train_regression(model: SuperResModel, images: Tensor, low: Tensor, config: TrainConfig = TrainConfig(),
                     progress: bool = True) -> list[float]:
    """Fit f(low) to images by MSE (eq-sr-regression), in place, with config's steps, batch, lr and seed."""
    if not isinstance(model, SuperResModel):
        raise TypeError(f"model must be a SuperResModel, got {type(model).__name__}")
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    check_tensor("images", images, min_dim=4)
    check_tensor("low", low, min_dim=4)
    if len(low) != len(images):
        raise ValueError(f"low must hold one low-resolution image per image ({len(images)}), got {len(low)}")
    g = torch.Generator().manual_seed(config.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    history = []
    model.train()
    for step in tqdm(range(1, config.steps + 1), desc="train regression", disable=not progress):
        idx = torch.randint(len(images), (config.batch_size,), generator=g)
        for group in opt.param_groups:
            group["lr"] = learning_rate(config, step)
        loss = F.mse_loss(regress(model, low[idx]), images[idx])  # eq-sr-regression
        if not math.isfinite(loss.item()):
            raise RuntimeError(f"regression training stopped: the loss is {loss.item()} at step {step}; try a lower lr")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if config.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        opt.step()
        history.append(loss.item())
    model.eval()
    return history


SR_KINDS = ("diffusion", "regression")


def superres_recipe(profile: str | None = None) -> tuple[UNetConfig, TrainConfig]:
    """(UNetConfig, TrainConfig) of the super-resolution networks (2 input channels: x_t and up(y))."""
    profile = active_profile() if profile is None else profile
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES} or None, got {profile!r}")
    base = {"smoke": 8, "cpu": 16, "gpu": 64}[profile]
    unet = UNetConfig(in_channels=2, out_channels=1, base_channels=base, channel_mults=(1, 2, 2),
                      attention_levels=(), attention_heads=2 if profile == "smoke" else 4,
                      groups=4 if profile == "smoke" else 8)
    config = {"smoke": TrainConfig(steps=40, batch_size=32, lr=2e-3, warmup_steps=5, ema_decay=0.99),
              "cpu": TrainConfig(steps=2500, batch_size=32, lr=2e-3, warmup_steps=100, lr_decay="cosine"),
              "gpu": TrainConfig(steps=20_000, batch_size=128, lr=3e-4, warmup_steps=500)}[profile]
    return unet, config


def load_or_train_superres(images: Tensor, low_size: int, kind: str = "diffusion", sched=None,
                           profile: str | None = None, progress: bool = True) -> SuperResModel:
    """A SuperResModel for low_size -> 28 trained on images (N, 1, 28, 28), from the cache or trained now.

    kind "diffusion": dl.train with cond = downsample(images, low_size) (eq-sr-concat; SR3);
    kind "regression": train_regression on the same pairs (eq-sr-regression). EMA weights are kept
    for the diffusion model; the regression model keeps its last weights.
    """
    check_tensor("images", images, min_dim=4)
    if kind not in SR_KINDS:
        raise ValueError(f"kind must be one of {SR_KINDS}, got {kind!r}")
    sched = Schedule.linear(1000) if sched is None else check_schedule(sched)
    unet_config, train_config = superres_recipe(profile)
    low = downsample(images, low_size)  # also checks low_size against the image size
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(train_config.seed)
        model = SuperResModel(UNet(unet_config), low_size=low_size, size=images.shape[-1])

    def fit(m: SuperResModel):
        if kind == "regression":
            train_regression(m, images, low, train_config, progress=progress)
            return None
        return train(m, images, sched, train_config, cond=low, progress=progress).ema_model

    parts = (unet_config, train_config, {"kind": kind, "low_size": low_size, "images": images,
                                         "schedule": sched.alpha_bar if kind == "diffusion" else None})
    return cached_model(f"superres-{kind}", model, parts, fit)
