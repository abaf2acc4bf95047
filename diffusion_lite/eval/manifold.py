"""Fidelity and diversity as two numbers: k-NN precision/recall and density/coverage.

A single distance (FID, KID) mixes two failures: samples that look wrong (low fidelity) and real
modes that no sample reaches (low diversity, e.g. mode collapse). These metrics separate them by
estimating each set's support with balls around its points (features or 2-D points alike):

- precision / recall (Kynkäänniemi et al. 2019): the manifold of a set is the union of balls
  around its points, each with the radius of its k-th nearest neighbour in the same set.
  precision = share of generated points inside the real manifold; recall = share of real points
  inside the generated manifold.
- density / coverage (Naeem et al. 2020): only real balls are used (generated outliers cannot
  inflate them). density = mean number of real balls holding a generated point, divided by k
  (about 1 for equal distributions, and it can exceed 1); coverage = share of real balls that
  hold at least one generated point.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from .._checks import check_int, check_tensor


class PrecisionRecall(NamedTuple):
    precision: float  # share of generated points inside the real k-NN manifold (fidelity)
    recall: float     # share of real points inside the generated k-NN manifold (diversity)


class DensityCoverage(NamedTuple):
    density: float    # mean count of real k-NN balls around each generated point, / k (~1 if equal)
    coverage: float   # share of real k-NN balls that hold at least one generated point


def _point_sets(real, fake, k: int) -> tuple[Tensor, Tensor]:
    check_tensor("real", real, min_dim=2)
    check_tensor("fake", fake, min_dim=2)
    if real.dim() != 2 or fake.dim() != 2:
        raise ValueError(f"real and fake must have shape (N, F), got {tuple(real.shape)} and {tuple(fake.shape)}")
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f"real and fake must have the same feature dimension, got {real.shape[1]} and "
                         f"{fake.shape[1]}")
    check_int("k", k, low=1, high=min(len(real), len(fake)) - 1)
    return real.double(), fake.double()


def knn_radii(x: Tensor, k: int) -> Tensor:
    """Distance (N,) from each row of x (N, F) to its k-th nearest other row (itself excluded)."""
    check_tensor("x", x, min_dim=2)
    check_int("k", k, low=1, high=len(x) - 1)
    d = torch.cdist(x.double(), x.double())                      # (N, N), 0 on the diagonal
    return d.kthvalue(k + 1, dim=1).values                        # k + 1: skip the point itself


def precision_recall(real: Tensor, fake: Tensor, k: int = 3) -> PrecisionRecall:
    """Improved precision and recall of fake (M, F) against real (N, F) with k-NN balls."""
    # eq-precision-recall (Kynkäänniemi et al. 2019, Eqs. 1-2)
    real, fake = _point_sets(real, fake, k)
    d = torch.cdist(fake, real)                                   # (M, N)
    in_real = (d <= knn_radii(real, k)[None, :]).any(dim=1)       # fake j inside some real ball
    in_fake = (d <= knn_radii(fake, k)[:, None]).any(dim=0)       # real i inside some fake ball
    return PrecisionRecall(float(in_real.double().mean()), float(in_fake.double().mean()))


def density_coverage(real: Tensor, fake: Tensor, k: int = 5) -> DensityCoverage:
    """Density and coverage of fake (M, F) against real (N, F), balls around real points only."""
    # eq-density-coverage (Naeem et al. 2020, Eqs. 3-4)
    real, fake = _point_sets(real, fake, k)
    inside = torch.cdist(fake, real) <= knn_radii(real, k)[None, :]     # (M, N)
    density = float(inside.double().sum()) / (k * len(fake))
    coverage = float(inside.any(dim=0).double().mean())
    return DensityCoverage(density, coverage)
