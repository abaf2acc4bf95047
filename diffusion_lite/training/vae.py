"""Training a VAE (Kingma & Welling 2014): maximise the evidence lower bound.

For one x, with q(z | x) = N(mu, diag(exp(logvar))) and the decoder's Gaussian
p(x | z) = N(x_mean(z), diag(exp(log_var_x))),

    -ELBO(x) = E_q [ -log p(x | z) ] + KL( q(z | x) || N(0, I) )                  (eq-vae-elbo)
    -log p(x | z) = 1/2 sum_d [ (x_d - x_mean_d)^2 / exp(log_var_x_d) + log_var_x_d + log 2 pi ]
    KL            = 1/2 sum_j [ exp(logvar_j) + mu_j^2 - 1 - logvar_j ]

estimated with one z per x by the reparameterisation z = mu + exp(logvar / 2) eps. Adam; all
randomness from one torch.Generator seeded with config.seed.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
from torch import Tensor
from tqdm.auto import tqdm

from .._checks import check_float, check_int, check_tensor
from ..checkpoint import cache_path, cached_model, load_checkpoint
from ..nets.vae import VAE, VAEConfig


@dataclass(frozen=True)
class VAETrainConfig:
    """How a VAE is trained."""

    steps: int = 2000        # Adam steps
    batch_size: int = 256    # samples per step, drawn with replacement
    lr: float = 1e-3         # Adam learning rate
    seed: int = 0            # seeds the batch and eps generator (and, in load_or_train_vae, the init)

    def __post_init__(self):
        check_int("steps", self.steps, low=1)
        check_int("batch_size", self.batch_size, low=1)
        check_float("lr", self.lr, low=0.0, low_open=True)
        check_int("seed", self.seed, low=0)


@dataclass
class VAEResult:
    loss: list[float]   # -ELBO per data point, every step
    seconds: float      # wall-clock time of the run


def negative_elbo(vae: VAE, x: Tensor, eps: Tensor) -> Tensor:
    """Mean over the batch of -ELBO(x) with z = mu + exp(logvar / 2) eps (nats per data point)."""
    # eq-vae-gauss-loss, a one-sample estimate of eq-vae-elbo (Kingma & Welling 2014, Eq. 10: Gaussian
    # encoder, analytic KL)
    x_mean, mu, logvar = vae(x, eps)
    lv = vae.log_var_x
    nll = 0.5 * (((x - x_mean) ** 2) / lv.exp() + lv + math.log(2 * math.pi)).flatten(1).sum(1)
    kl = 0.5 * (logvar.exp() + mu ** 2 - 1 - logvar).sum(1)
    return (nll + kl).mean()


def train_vae(vae: VAE, data: Tensor, config: VAETrainConfig = VAETrainConfig(), progress: bool = True) -> VAEResult:
    """Train `vae` in place on data (N, 2) or (N, 1, 28, 28)."""
    if not isinstance(vae, VAE):
        raise TypeError(f"vae must be a VAE, got {type(vae).__name__}")
    if not isinstance(config, VAETrainConfig):
        raise TypeError(f"config must be a VAETrainConfig, got {type(config).__name__}")
    check_tensor("data", data, min_dim=2)
    if tuple(data.shape[1:]) != vae.config.sample_shape:
        raise ValueError(f"data must have shape (N, {', '.join(map(str, vae.config.sample_shape))}) for this "
                         f"VAE, got {tuple(data.shape)}")
    device = vae.log_var_x.device
    opt = torch.optim.Adam(vae.parameters(), lr=config.lr)
    g = torch.Generator().manual_seed(config.seed)
    result = VAEResult([], 0.0)
    vae.train()
    start = time.perf_counter()
    bar = tqdm(range(config.steps), desc="VAE", disable=not progress, leave=False)
    for step in bar:
        x = data[torch.randint(len(data), (config.batch_size,), generator=g)].to(device).float()
        eps = torch.randn(config.batch_size, vae.config.z_dim, generator=g).to(device)
        loss = negative_elbo(vae, x, eps)
        if not bool(torch.isfinite(loss)):
            raise FloatingPointError(f"-ELBO became {float(loss)} at step {step}; lower config.lr")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        result.loss.append(loss.item())
        if step % 100 == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}")
    result.seconds = time.perf_counter() - start
    vae.eval()
    return result


def load_or_train_vae(config: VAEConfig, train_config: VAETrainConfig, data: Tensor, data_id: str,
                      progress: bool = True) -> tuple[VAE, float]:
    """(vae, training seconds): from the cache, or trained now (init seeded with train_config.seed)."""
    if not isinstance(data_id, str) or not data_id:
        raise ValueError(f"data_id must be a non-empty string naming the data, got {data_id!r}")
    if not isinstance(config, VAEConfig) or not isinstance(train_config, VAETrainConfig):
        raise TypeError("config and train_config must be a VAEConfig and a VAETrainConfig")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(train_config.seed)
        vae = VAE(config)
    parts = [config, train_config, {"data": data_id}]
    vae = cached_model("vae", vae, parts, lambda m: train_vae(m, data, train_config, progress) and None)
    _, meta = load_checkpoint(cache_path("vae", type(vae).__name__, *parts))
    return vae, float(meta["train_seconds"])
