"""Distances for 2-D point clouds, their noise floor, and mode coverage on a Gaussian mixture.

A distance between two finite samples is never exactly 0, even when both come from the same
distribution: the floor is what two independent true samples of the same size score. A model is
indistinguishable from the data, at that sample size, when its distance is within the floor's
spread.

- sliced Wasserstein-2: the average over random directions of the 1-D Wasserstein-2 distance
  between the projected samples (sorted projections; Bonneel et al. 2015). Biased upward at
  finite N, so its floor is above 0.
- energy distance (Székely & Rizzo 2013): 2 E|X-Y| - E|X-X'| - E|Y-Y'|, here the unbiased
  U-statistic form (i == j pairs left out), so its floor is centred on 0.
- mode coverage: on a mixture with well separated components, a sample belongs to the mode it is
  nearest to if it lies within a few standard deviations of it; a mode is covered when it holds a
  given share of the samples it would hold under the true weights.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import torch
from torch import Tensor

from .._checks import check_float, check_generator, check_int, check_tensor


def _pair(x, y) -> tuple[Tensor, Tensor]:
    check_tensor("x", x, min_dim=2)
    check_tensor("y", y, min_dim=2)
    if x.dim() != 2 or y.dim() != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must be point sets (N, D) and (M, D) of one dimension D, got "
                         f"{tuple(x.shape)} and {tuple(y.shape)}")
    return x.double(), y.double()


def sliced_wasserstein(x: Tensor, y: Tensor, projections: int = 256,
                       generator: torch.Generator | None = None) -> float:
    """Sliced Wasserstein-2 distance between equal-size point sets x, y (N, D)."""
    # eq-sliced-w2 (Bonneel et al. 2015, Eq. 1): SW2^2 = E_theta W2^2(theta.x, theta.y)
    x, y = _pair(x, y)
    if len(x) != len(y):
        raise ValueError(f"x and y must have the same number of points, got {len(x)} and {len(y)}")
    check_int("projections", projections, low=1)
    check_generator("generator", generator)
    theta = torch.randn(x.shape[1], projections, generator=generator, dtype=torch.float64)
    theta = theta / theta.norm(dim=0, keepdim=True)                        # (D, P) unit directions
    px, py = (x @ theta).sort(dim=0).values, (y @ theta).sort(dim=0).values  # (N, P)
    return float((px - py).square().mean().sqrt())


def energy_distance(x: Tensor, y: Tensor) -> float:
    """Unbiased energy distance 2 E|X-Y| - E|X-X'| - E|Y-Y'| between point sets x (N, D), y (M, D)."""
    # eq-energy-distance (Székely & Rizzo 2013, Eq. 2), within-set means without the i == j terms
    x, y = _pair(x, y)
    if len(x) < 2 or len(y) < 2:
        raise ValueError(f"x and y need at least 2 points each, got {len(x)} and {len(y)}")
    n, m = len(x), len(y)
    xx = torch.cdist(x, x).sum() / (n * (n - 1))
    yy = torch.cdist(y, y).sum() / (m * (m - 1))
    return float(2 * torch.cdist(x, y).mean() - xx - yy)


class Floor(NamedTuple):
    mean: float  # mean distance between two independent true samples of size n
    std: float   # its spread over the repeats (a model within mean + 2 std is at the floor)


def distance_floor(distance: Callable[[Tensor, Tensor], float], draw: Callable[[int], Tensor],
                   n: int, repeats: int = 10) -> Floor:
    """Noise floor of `distance` at sample size n: distance(draw(n), draw(n)) over `repeats` pairs.

    draw(n) must return n fresh independent points of the true distribution each call."""
    if not callable(distance) or not callable(draw):
        raise TypeError("distance and draw must be callables: distance(x, y) -> float, draw(n) -> (n, D)")
    check_int("n", n, low=2)
    check_int("repeats", repeats, low=2)
    values = torch.tensor([float(distance(draw(n), draw(n))) for _ in range(repeats)], dtype=torch.float64)
    return Floor(float(values.mean()), float(values.std()))


class ModeCoverage(NamedTuple):
    modes_covered: int   # modes holding at least min_share of their expected samples
    shares: tuple        # share of all samples near each mode (within `radius` stds of its mean)
    off_mode: float      # share of samples near no mode ("low quality" samples)


def mode_coverage(x: Tensor, means: Tensor, std: float, radius: float = 3.0,
                  weights: Tensor | None = None, min_share: float = 0.1) -> ModeCoverage:
    """Which mixture modes the samples x (N, D) reach: modes with means (K, D) and isotropic std.

    A sample belongs to its nearest mode if it lies within radius * std of it; a mode counts as
    covered when its share of samples is at least min_share times its weight (default: 1/K)."""
    x = check_tensor("x", x, min_dim=2).double()
    means = check_tensor("means", means, min_dim=2).double()
    if x.dim() != 2 or means.dim() != 2 or x.shape[1] != means.shape[1]:
        raise ValueError(f"x (N, D) and means (K, D) must share D, got {tuple(x.shape)} and {tuple(means.shape)}")
    std = check_float("std", std, low=0.0, low_open=True)
    radius = check_float("radius", radius, low=0.0, low_open=True)
    min_share = check_float("min_share", min_share, low=0.0, high=1.0)
    K = len(means)
    w = torch.full((K,), 1.0 / K, dtype=torch.float64) if weights is None else weights.double()
    if w.shape != (K,):
        raise ValueError(f"weights must have shape ({K},) to match means, got {tuple(w.shape)}")
    d, nearest = torch.cdist(x, means).min(dim=1)                        # (N,), (N,)
    near = d <= radius * std
    shares = torch.stack([(near & (nearest == k)).double().mean() for k in range(K)])
    covered = int((shares >= min_share * w).sum())
    return ModeCoverage(covered, tuple(float(s) for s in shares), float(1 - near.double().mean()))
