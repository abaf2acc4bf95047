"""The models of chapter 10: a class-conditional MNIST U-Net (label dropout) and a noisy classifier.

- `mnist_cond_recipe(profile)`: chapter 07's MNIST recipe with `num_classes=10` and label dropout
  `p_uncond` (Ho & Salimans 2022): with that probability a training label is replaced by the null
  label, so one network learns eps(x_t, t, y) and eps(x_t, t, null) for classifier-free guidance.
  `load_or_train_mnist_cond` trains it through the shared cache (the labels are passed to `train`).
- `train_noisy_classifier`: fits p_phi(y | x_t, t) on x_t ~ q(x_t | x0) (eq-q-sample) at t drawn
  uniformly from 1..T, with cross-entropy, for classifier guidance (Dhariwal & Nichol 2021, Sec. 4).
  `load_or_train_noisy_classifier` caches it per profile with `cached_model`.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from .._checks import check_float, check_int, check_labels, check_tensor
from ..checkpoint import cached_model
from ..core.forward import q_sample
from ..core.schedules import Schedule, check_schedule
from ..eval.judge import describe_data
from ..nets.noisy_classifier import NoisyClassifier, NoisyClassifierConfig
from ..profiles import PROFILES, profile as active_profile
from .recipes import Recipe, load_or_train_mnist_ddpm, load_training_data, mnist_ddpm_recipe

P_UNCOND = 0.1  # label dropout of the book's conditional model (Ho & Salimans 2022 found 0.1-0.2 best)


def mnist_cond_recipe(profile: str | None = None) -> Recipe:
    """The class-conditional MNIST U-Net: chapter 07's recipe of `profile` + 10 labels + label dropout."""
    base = mnist_ddpm_recipe(profile)  # checks the profile name
    return dataclasses.replace(base, kind="cddpm-mnist",
                               unet=dataclasses.replace(base.unet, num_classes=10),
                               train=dataclasses.replace(base.train, p_uncond=P_UNCOND))


def load_or_train_mnist_cond(profile: str | None = None, progress: bool = True, device=None):
    """(model, result, recipe) of mnist_cond_recipe(profile): from the cache, or trained now (EMA weights)."""
    return load_or_train_mnist_ddpm(mnist_cond_recipe(profile), progress=progress, device=device)


@dataclass(frozen=True)
class ClassifierTrainConfig:
    """How to train a noisy classifier."""

    steps: int = 2000         # optimiser steps
    batch_size: int = 128     # images per step (each at its own random t)
    lr: float = 2e-3          # peak AdamW learning rate (one-cycle schedule)
    weight_decay: float = 1e-4  # AdamW weight decay
    seed: int = 0             # seeds the weights, batches, t and eps (the global RNG is left alone)

    def __post_init__(self):
        check_int("steps", self.steps, low=1)
        check_int("batch_size", self.batch_size, low=1)
        check_float("lr", self.lr, low=0.0, low_open=True)
        check_float("weight_decay", self.weight_decay, low=0.0)
        check_int("seed", self.seed, low=0)


def train_noisy_classifier(model: nn.Module, images: Tensor, labels: Tensor, sched: Schedule,
                           config: ClassifierTrainConfig = ClassifierTrainConfig(),
                           progress: bool = True) -> list[float]:
    """Train `model(x_t, t) -> logits` in place on noised images; returns the loss of every step.

    Each step: x0, y from the data, t ~ Uniform{1..T}, x_t = q_sample(x0, t, eps) (eq-q-sample),
    loss = cross-entropy(model(x_t, t), y) (Dhariwal & Nichol 2021, Sec. 4).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(config, ClassifierTrainConfig):
        raise TypeError(f"config must be a ClassifierTrainConfig, got {type(config).__name__}")
    sched = check_schedule(sched)
    check_tensor("images", images, min_dim=2)
    num_classes = getattr(getattr(model, "config", None), "num_classes", None)
    labels = check_labels("labels", labels, num_classes if num_classes else 2 ** 31, batch=images.shape[0])
    device = next(model.parameters()).device
    g = torch.Generator().manual_seed(config.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    lr_sched = torch.optim.lr_scheduler.OneCycleLR(opt, config.lr, total_steps=config.steps)
    history, was_training = [], model.training
    model.train()
    for step in tqdm(range(config.steps), desc="noisy classifier", disable=not progress):
        idx = torch.randint(len(images), (config.batch_size,), generator=g)
        x0, y = images[idx].to(device), labels[idx].to(device)
        t = torch.randint(1, sched.T + 1, (config.batch_size,), generator=g).to(device)  # t ~ Uniform{1..T}
        eps = torch.randn(x0.shape, generator=g, dtype=x0.dtype).to(device)
        loss = F.cross_entropy(model(q_sample(x0, t, eps, sched), t), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        lr_sched.step()
        history.append(loss.item())
    model.train(was_training)
    return history


def noisy_classifier_setup(profile: str | None = None) -> tuple[NoisyClassifierConfig, ClassifierTrainConfig]:
    """The noisy classifier's network and training sizes for `profile` (default: the active one)."""
    profile = active_profile() if profile is None else profile
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES} or None, got {profile!r}")
    if profile == "smoke":
        return NoisyClassifierConfig(widths=(8, 16, 16), emb_dim=16, groups=4), \
            ClassifierTrainConfig(steps=60, batch_size=64, lr=5e-3)
    if profile == "cpu":
        return NoisyClassifierConfig(), ClassifierTrainConfig(steps=2000, batch_size=128)
    return NoisyClassifierConfig(widths=(64, 128, 128), emb_dim=128), ClassifierTrainConfig(steps=6000, batch_size=256)


def load_or_train_noisy_classifier(profile: str | None = None, progress: bool = True) -> NoisyClassifier:
    """The noisy classifier of `profile`, trained on the conditional recipe's data and schedule (cached)."""
    net_config, train_config = noisy_classifier_setup(profile)
    recipe = mnist_cond_recipe(profile)
    data, recipe = load_training_data(recipe, progress=progress)
    sched = recipe.make_schedule()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(train_config.seed)
        model = NoisyClassifier(net_config)
    describe = {"dataset": data.name, "split": data.split, **describe_data(data.images, data.labels),
                "schedule": recipe.schedule, "T": recipe.T}

    def fit(m: nn.Module) -> None:
        train_noisy_classifier(m, data.images, data.labels, sched, train_config, progress=progress)

    return cached_model("noisy-classifier-mnist", model, [net_config, train_config, describe], fit)
