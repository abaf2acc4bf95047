"""Training a GAN (Goodfellow et al. 2014): the discriminator and the generator take turns.

Each step draws real x and z ~ N(0, I), updates the discriminator D on real against G(z), then the
generator G against the updated D. With s(.) the logistic sigmoid, the losses are

    L_D = -E log s(D(x)) - E log(1 - s(D(G(z))))                           (eq-gan-minimax)
    "minimax":       L_G =  E log(1 - s(D(G(z))))    the game as written; its gradient vanishes
                                                      when D confidently rejects the samples
    "nonsaturating": L_G = -E log s(D(G(z)))          same fixed point, strong gradient early on
                                                      (Goodfellow et al. 2014, Sec. 3; DCGAN's choice)

and the stabilised variant adds the R1 penalty on real data (Mescheder et al. 2018, Eq. 9),

    L_D += r1_gamma / 2 * E || grad_x D(x) ||^2                            (eq-r1)

which keeps D from growing steep around the data, where the plain game oscillates. Adam with
beta1 = 0.5 as in DCGAN (Radford et al. 2016). All randomness comes from one torch.Generator seeded
with config.seed; the caller seeds the networks' initialisation.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from .._checks import check_float, check_int, check_tensor
from ..checkpoint import cache_path, cached_model, load_checkpoint
from ..nets.gan import GANConfig, GANDiscriminator, GANGenerator

LOSSES = ("minimax", "nonsaturating")


@dataclass(frozen=True)
class GANTrainConfig:
    """How a GAN is trained."""

    steps: int = 2000               # steps, each one D update then one G update
    batch_size: int = 256           # real samples (and as many z) per step, drawn with replacement
    lr_g: float = 2e-4              # generator Adam learning rate (DCGAN: 2e-4)
    lr_d: float = 2e-4              # discriminator Adam learning rate
    beta1: float = 0.5              # Adam beta1 (DCGAN: 0.5; the default 0.9 oscillates more)
    loss: str = "nonsaturating"     # generator loss: "minimax" or "nonsaturating" (eq-gan-minimax)
    r1_gamma: float = 0.0           # weight of the R1 penalty on real data (eq-r1); 0: none
    seed: int = 0                   # seeds the batch and z generator

    def __post_init__(self):
        check_int("steps", self.steps, low=1)
        check_int("batch_size", self.batch_size, low=2)
        check_float("lr_g", self.lr_g, low=0.0, low_open=True)
        check_float("lr_d", self.lr_d, low=0.0, low_open=True)
        check_float("beta1", self.beta1, low=0.0, high=1.0, high_open=True)
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        check_float("r1_gamma", self.r1_gamma, low=0.0)
        check_int("seed", self.seed, low=0)


@dataclass
class GANResult:
    d_loss: list[float]   # L_D of every step (with the R1 term)
    g_loss: list[float]   # L_G of every step
    seconds: float        # wall-clock time of the run
    finite: bool          # False if a loss became NaN/inf (training stopped there)


def discriminator_loss(d_real: Tensor, d_fake: Tensor) -> Tensor:
    """L_D of eq-gan-minimax from logits: softplus(-D(x)) + softplus(D(G(z)))."""
    # eq-gan-minimax (Goodfellow et al. 2014, Eq. 1): -log s(a) = softplus(-a), -log(1 - s(a)) = softplus(a)
    check_tensor("d_real", d_real)
    check_tensor("d_fake", d_fake)
    return F.softplus(-d_real).mean() + F.softplus(d_fake).mean()


def generator_loss(d_fake: Tensor, loss: str = "nonsaturating") -> Tensor:
    """L_G from the logits D(G(z)): "minimax" E log(1 - s) = -E softplus(D); "nonsaturating" E softplus(-D)."""
    # eq-gan-minimax (Goodfellow et al. 2014, Sec. 3, the non-saturating alternative)
    check_tensor("d_fake", d_fake)
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    return -F.softplus(d_fake).mean() if loss == "minimax" else F.softplus(-d_fake).mean()


def r1_penalty(discriminator: nn.Module, x_real: Tensor) -> Tensor:
    """E ||grad_x D(x)||^2 on real data, differentiable w.r.t. D's weights."""
    # eq-r1 (Mescheder et al. 2018, Eq. 9)
    x = x_real.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(discriminator(x).sum(), x, create_graph=True)
    return grad.flatten(1).square().sum(1).mean()


def train_gan(generator: GANGenerator, discriminator: GANDiscriminator, data: Tensor,
              config: GANTrainConfig = GANTrainConfig(), progress: bool = True) -> GANResult:
    """Train both networks in place on data (N, 2) or (N, 1, 28, 28) in [-1, 1]."""
    if not isinstance(generator, GANGenerator) or not isinstance(discriminator, GANDiscriminator):
        raise TypeError(f"generator and discriminator must be a GANGenerator and a GANDiscriminator, got "
                        f"{type(generator).__name__} and {type(discriminator).__name__}")
    if not isinstance(config, GANTrainConfig):
        raise TypeError(f"config must be a GANTrainConfig, got {type(config).__name__}")
    check_tensor("data", data, min_dim=2)
    if tuple(data.shape[1:]) != generator.config.sample_shape:
        raise ValueError(f"data must have shape (N, {', '.join(map(str, generator.config.sample_shape))}) "
                         f"for this GAN, got {tuple(data.shape)}")
    device = next(generator.parameters()).device
    opt_g = torch.optim.Adam(generator.parameters(), lr=config.lr_g, betas=(config.beta1, 0.999))
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=config.lr_d, betas=(config.beta1, 0.999))
    g = torch.Generator().manual_seed(config.seed)
    result = GANResult([], [], 0.0, True)
    generator.train(), discriminator.train()
    start = time.perf_counter()
    bar = tqdm(range(config.steps), desc="GAN", disable=not progress, leave=False)
    for step in bar:
        x = data[torch.randint(len(data), (config.batch_size,), generator=g)].to(device).float()
        z = torch.randn(config.batch_size, generator.config.z_dim, generator=g).to(device)
        # 1. discriminator: real against the current fakes (no gradient into G)
        loss_d = discriminator_loss(discriminator(x), discriminator(generator(z).detach()))
        if config.r1_gamma > 0:
            loss_d = loss_d + config.r1_gamma / 2 * r1_penalty(discriminator, x)
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        # 2. generator: fool the updated discriminator
        loss_g = generator_loss(discriminator(generator(z)), config.loss)
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        ld, lg = loss_d.item(), loss_g.item()
        result.d_loss.append(ld), result.g_loss.append(lg)
        if not (torch.isfinite(torch.tensor([ld, lg])).all()):
            result.finite = False
            break
        if step % 100 == 0:
            bar.set_postfix(d=f"{ld:.3f}", g=f"{lg:.3f}")
    result.seconds = time.perf_counter() - start
    generator.eval(), discriminator.eval()
    return result


def load_or_train_gan(config: GANConfig, train_config: GANTrainConfig, data: Tensor, data_id: str,
                      progress: bool = True) -> tuple[GANGenerator, float]:
    """(generator, training seconds): from the cache, or trained now (the network seeded with
    train_config.seed). data_id names the data in the cache key (e.g. "eight_gaussians-n20000")."""
    if not isinstance(data_id, str) or not data_id:
        raise ValueError(f"data_id must be a non-empty string naming the data, got {data_id!r}")
    if not isinstance(config, GANConfig) or not isinstance(train_config, GANTrainConfig):
        raise TypeError("config and train_config must be a GANConfig and a GANTrainConfig")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(train_config.seed)
        gen, disc = GANGenerator(config), GANDiscriminator(config)
    parts = [config, train_config, {"data": data_id}]
    gen = cached_model("gan", gen, parts, lambda G: train_gan(G, disc, data, train_config, progress) and None)
    _, meta = load_checkpoint(cache_path("gan", type(gen).__name__, *parts))
    return gen, float(meta["train_seconds"])
