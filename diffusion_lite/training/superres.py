"""The regression baseline of super-resolution: the same conditioned network trained by plain MSE.

Where the diffusion model learns to denoise x_t given the low-resolution image y (SR3; Saharia et
al. 2022), the baseline maps y straight to an image, minimising (eq-sr-regression)

    L = E || f(y) - x ||^2,    f(y) = SuperResModel(x_t = 0, t = 1, cond = y)

Its optimum is the posterior mean E[x | y]: the average of every high-resolution digit consistent
with y, which scores well on PSNR and SSIM but looks blurred (Blau & Michaeli 2018).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm

from .._checks import check_tensor
from ..nets.superres import SuperResModel
from .train import TrainConfig, learning_rate


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
