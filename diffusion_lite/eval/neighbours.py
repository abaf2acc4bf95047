"""Nearest training neighbours: how far samples lie from the training set, relative to its own spacing.

Chapter 16 asks whether a model copies its training data. Two numbers answer it:

    d(x)      = min_i |x - x_i|                   distance of a sample x to the training set
    d_train_j = min_{i != j} |x_j - x_i|          each training image's distance to the others

A copy has d(x) = 0; a sample that is "as new as a fresh image from the data distribution" has d(x)
about as large as the training set's own spacing, so the ratio d(x) / median_j d_train_j reads the
same at every set size (Kadkhodaie et al. 2024 compare the same two quantities; Somepalli et al.
2023 look at the nearest neighbours of samples of large models). Euclidean distance, float64, chunked.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from .._checks import check_int, check_tensor


class Neighbours(NamedTuple):
    """For each query: the distance to its nearest training example and that example's index."""

    dist: Tensor   # (B,) float64
    index: Tensor  # (B,) long


def nearest_neighbours(x: Tensor, data: Tensor, chunk: int = 4096, exclude_self: bool = False) -> Neighbours:
    """min_i |x_b - data_i| for each row of x (B, ...) over data (N, ...), with the argmin.

    exclude_self: x is the training set itself (B = N) and x_j may not be its own neighbour
    (needs N >= 2); this gives the training set's spacing d_train.
    """
    check_tensor("x", x)
    check_tensor("data", data)
    chunk = check_int("chunk", chunk, low=1)
    if x.shape[1:] != data.shape[1:]:
        raise ValueError(f"x and data must share their trailing shape, got {tuple(x.shape)} and {tuple(data.shape)}")
    if exclude_self and (x.shape[0] != data.shape[0] or data.shape[0] < 2):
        raise ValueError(f"exclude_self needs x to be data itself with at least 2 rows, got {x.shape[0]} "
                         f"and {data.shape[0]} rows")
    q = x.reshape(x.shape[0], -1).to(torch.float64)                       # (B, D)
    X = data.reshape(data.shape[0], -1).to(device=q.device, dtype=torch.float64)  # (N, D)
    best = torch.full((q.shape[0],), torch.inf, dtype=torch.float64, device=q.device)
    index = torch.zeros(q.shape[0], dtype=torch.long, device=q.device)
    for lo in range(0, X.shape[0], chunk):
        d2 = torch.cdist(q, X[lo:lo + chunk]).square()                    # (B, n)
        if exclude_self:
            rows = torch.arange(q.shape[0], device=q.device)
            cols = rows - lo
            inside = (cols >= 0) & (cols < d2.shape[1])
            d2[rows[inside], cols[inside]] = torch.inf
        value, arg = d2.min(1)
        better = value < best
        best = torch.where(better, value, best)
        index = torch.where(better, arg + lo, index)
    return Neighbours(best.sqrt(), index)


def training_spacing(data: Tensor, chunk: int = 4096) -> Tensor:
    """d_train_j = min_{i != j} |x_j - x_i| for every training example, (N,) float64 (N >= 2)."""
    data = check_tensor("data", data)
    if data.shape[0] < 2:
        raise ValueError(f"data must hold at least 2 examples to have a spacing, got {data.shape[0]}")
    return nearest_neighbours(data, data, chunk, exclude_self=True).dist
