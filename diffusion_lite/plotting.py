"""Figures for the book: image grids, animations and schedule plots (the only matplotlib user)."""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib import animation
from torch import Tensor

from ._checks import check_tensor
from .data.images import to_uint8


def image_grid(x: Tensor, nrow: int | None = None, pad: int = 1) -> np.ndarray:
    """(B, C, H, W) in [-1, 1] -> one uint8 image (rows x cols grid), channels last."""
    check_tensor("x", x, min_dim=4)
    imgs = to_uint8(x)  # (B, H, W, C)
    B, H, W, C = imgs.shape
    nrow = nrow or math.ceil(math.sqrt(B))
    ncol = math.ceil(B / nrow)
    grid = np.full((ncol * (H + pad) + pad, nrow * (W + pad) + pad, C), 255, dtype=np.uint8)
    for i in range(B):
        r, c = divmod(i, nrow)
        grid[pad + r * (H + pad): pad + r * (H + pad) + H, pad + c * (W + pad): pad + c * (W + pad) + W] = imgs[i]
    return grid


def show_images(x: Tensor, nrow: int | None = None, title: str | None = None, ax=None):
    """Show a batch (B, C, H, W) or one image (C, H, W) in [-1, 1]; returns the axes."""
    if x.dim() == 3:
        x = x.unsqueeze(0)
    grid = image_grid(x, nrow)
    if ax is None:
        size = min(8.0, 1.0 + 0.6 * grid.shape[1] / 30)
        _, ax = plt.subplots(figsize=(size, size * grid.shape[0] / grid.shape[1]))
    ax.imshow(grid.squeeze(-1) if grid.shape[-1] == 1 else grid, cmap="gray", vmin=0, vmax=255)
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return ax


def animate(frames, titles=None, interval: int = 150, figsize=(4, 4), scatter: bool = False,
            lim: float | None = None) -> animation.FuncAnimation:
    """An animation over frames: image batches (B, C, H, W) or point clouds (N, 2) if scatter.

    In the book, display it with IPython.display.HTML(anim.to_jshtml()): a self-contained JS
    player that works in static HTML without a kernel.
    """
    frames = list(frames)
    if not frames:
        raise ValueError("frames is empty; pass at least one frame")
    fig, ax = plt.subplots(figsize=figsize)
    ax.set_axis_off()
    if scatter:
        pts = frames[0].detach().cpu().numpy()
        art = ax.scatter(pts[:, 0], pts[:, 1], s=2, alpha=0.5)
        if lim:
            ax.set_xlim(-lim, lim)
            ax.set_ylim(-lim, lim)
        ax.set_aspect("equal")
    else:
        first = image_grid(frames[0] if frames[0].dim() == 4 else frames[0].unsqueeze(0))
        art = ax.imshow(first.squeeze(-1) if first.shape[-1] == 1 else first, cmap="gray", vmin=0, vmax=255)
    title = ax.set_title(titles[0] if titles else "")

    def update(i):
        if scatter:
            art.set_offsets(frames[i].detach().cpu().numpy())
        else:
            g = image_grid(frames[i] if frames[i].dim() == 4 else frames[i].unsqueeze(0))
            art.set_data(g.squeeze(-1) if g.shape[-1] == 1 else g)
        if titles:
            title.set_text(titles[i])
        return art, title

    anim = animation.FuncAnimation(fig, update, frames=len(frames), interval=interval, blit=False)
    plt.close(fig)  # the animation is shown through its JS player, not as a static figure
    return anim


def plot_schedules(schedules, axes=None):
    """alpha_bar_t, betas and log-SNR(t) of several schedules side by side."""
    if axes is None:
        _, axes = plt.subplots(1, 3, figsize=(13, 3.4))
    for sched in schedules:
        tau = torch.arange(sched.T + 1) / sched.T
        axes[0].plot(tau, sched.alpha_bar, label=sched.name)
        axes[1].plot(tau[1:], sched.betas[1:], label=sched.name)
        axes[2].plot(tau[1:], sched.log_snr[1:], label=sched.name)
    for ax, name in zip(axes, [r"$\bar\alpha_t$", r"$\beta_t$", r"$\log \mathrm{SNR}(t)$"]):
        ax.set_xlabel("t / T")
        ax.set_title(name)
        ax.grid(alpha=0.3)
    axes[1].set_yscale("log")
    axes[0].legend()
    return axes
