"""Training the KL autoencoder of latent diffusion, and the book's cached MNIST autoencoder (chapter 12).

The loss per image is the reconstruction error plus a small multiple of the KL term (eq-vae-loss):

    L = mean_pixels (x - x_hat)^2 + kl_weight * KL(q(z | x) || N(0, I)) / n_pixels

A full VAE (kl_weight = 1 with a Gaussian decoder of matched variance) would blur the digits; with a
small weight the KL term only stops the latents from drifting to huge values and keeps nearby
latents decoding to similar images (Rombach et al. 2022, Sec. 3). After training, `scale` is
measured on the training images so that the latents seen by the diffusion model have unit
variance (eq-latent-scale).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm

from .._checks import check_float, check_int, check_tensor
from ..checkpoint import cached_model
from ..data.datasets import load_dataset
from ..nets.autoencoder import Autoencoder, AutoencoderConfig, gaussian_kl_standard
from ..profiles import PROFILES, profile as active_profile


@dataclass(frozen=True)
class AutoencoderTrainConfig:
    """How to train an Autoencoder."""

    steps: int = 2000          # AdamW steps
    batch_size: int = 64       # images per step, drawn with replacement
    lr: float = 2e-3           # peak learning rate (linear warm-up over 50 steps, then cosine to 0)
    kl_weight: float = 1e-2    # weight of KL / n_pixels beside the per-pixel squared error (eq-vae-loss)
    seed: int = 0              # seeds the weights, the batches and the latent noise

    def __post_init__(self):
        check_int("steps", self.steps, low=1)
        check_int("batch_size", self.batch_size, low=1)
        check_float("lr", self.lr, low=0.0, low_open=True)
        check_float("kl_weight", self.kl_weight, low=0.0)
        check_int("seed", self.seed, low=0)


def autoencoder_loss(x: Tensor, x_hat: Tensor, mean: Tensor, logvar: Tensor, kl_weight: float) -> Tensor:
    """eq-vae-loss: per-pixel squared error + kl_weight * KL / n_pixels, averaged over the batch."""
    n_pixels = x[0].numel()
    return F.mse_loss(x_hat, x) + kl_weight * gaussian_kl_standard(mean, logvar).mean() / n_pixels


def train_autoencoder(model: Autoencoder, images: Tensor, config: AutoencoderTrainConfig = AutoencoderTrainConfig(),
                      progress: bool = True) -> list[float]:
    """Train `model` in place on images (N, 1, 28, 28) in [-1, 1]; measure its scale; return the losses."""
    if not isinstance(model, Autoencoder):
        raise TypeError(f"model must be an Autoencoder, got {type(model).__name__}")
    if not isinstance(config, AutoencoderTrainConfig):
        raise TypeError(f"config must be an AutoencoderTrainConfig, got {type(config).__name__}")
    check_tensor("images", images, min_dim=4)
    g = torch.Generator().manual_seed(config.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr)
    warm = min(50, config.steps)
    lr_at = torch.optim.lr_scheduler.LambdaLR(  # linear warm-up, then cosine decay (Loshchilov & Hutter 2017)
        opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * s / config.steps)))
    history = []
    model.train()
    for _ in tqdm(range(config.steps), desc="train Autoencoder", disable=not progress):
        x = images[torch.randint(len(images), (config.batch_size,), generator=g)]
        x_hat, mean, logvar = model(x, generator=g)
        loss = autoencoder_loss(x, x_hat, mean, logvar, config.kl_weight)
        if not bool(torch.isfinite(loss)):
            raise RuntimeError(f"autoencoder training stopped: the loss is {loss.item()}; try a lower lr "
                               f"(lr={config.lr}) or check that images lie in [-1, 1]")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        lr_at.step()
        history.append(loss.item())
    model.eval()
    model.measure_scale(images)  # eq-latent-scale
    return history


def mnist_autoencoder_recipe(profile: str | None = None) -> tuple[AutoencoderConfig, AutoencoderTrainConfig]:
    """The book's MNIST autoencoder (network, training) at the sizes of `profile`."""
    profile = active_profile() if profile is None else profile
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES} or None, got {profile!r}")
    steps = {"smoke": 150, "cpu": 2000, "gpu": 8000}[profile]
    base = {"smoke": 8, "cpu": 32, "gpu": 64}[profile]
    return (AutoencoderConfig(latent_channels=4, base_channels=base, groups=8),
            AutoencoderTrainConfig(steps=steps, batch_size=64, lr=2e-3))


def load_or_train_mnist_autoencoder(profile: str | None = None, n_train: int = 9000,
                                    progress: bool = True) -> Autoencoder:
    """The recipe's autoencoder trained on the first n_train MNIST test-split digits (the rest are held out).

    Cached with cached_model: the key holds both configs and n_train, so each profile trains once.
    """
    n_train = check_int("n_train", n_train, low=1, high=10_000)
    ae_config, train_config = mnist_autoencoder_recipe(profile)
    images = load_dataset("mnist", split="test", progress=progress).images[:n_train]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(train_config.seed)
        model = Autoencoder(ae_config)
    data = {"dataset": "mnist", "split": "test", "n": n_train}

    def fit(m: Autoencoder) -> None:
        train_autoencoder(m, images, train_config, progress=progress)

    return cached_model("autoencoder-mnist", model, (ae_config, train_config, data), fit)
