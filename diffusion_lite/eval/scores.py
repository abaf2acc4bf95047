"""Inception Score on the book's judge: are the samples confidently classified, and varied?

IS = exp( E_x KL( p(y|x) || p(y) ) ) with p(y) the mean of p(y|x) over the samples (Salimans et
al. 2016). It is 1 when every sample gets the same prediction and at most the number of classes C
when each sample is confidently one class and the classes are equally used. Computed here on the
in-book MNIST judge (11 classes: ten digits and "not a digit"), NOT on Inception-v3: compare only
numbers from the same judge. It never looks at real data, so it cannot see a model that copies
its training set, nor digits drawn in the wrong style.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor, nn

from .._checks import check_int, check_tensor


class InceptionScore(NamedTuple):
    mean: float  # mean of exp(E KL) over the splits
    std: float   # its standard deviation over the splits (Salimans et al. report this)


def inception_score(probs: Tensor, splits: int = 10) -> InceptionScore:
    """IS of class probabilities probs (N, C) (rows sum to 1), mean ± std over `splits` chunks."""
    # eq-inception-score (Salimans et al. 2016, Sec. 4)
    check_tensor("probs", probs, min_dim=2)
    if probs.dim() != 2:
        raise ValueError(f"probs must have shape (N, C), got {tuple(probs.shape)}")
    p = probs.double()
    if bool((p < 0).any()) or float((p.sum(dim=1) - 1).abs().max()) > 1e-4:
        raise ValueError("probs must be probabilities: rows of non-negative numbers that sum to 1")
    check_int("splits", splits, low=1, high=len(p))
    scores = []
    for chunk in p.chunk(splits):
        p_y = chunk.mean(dim=0, keepdim=True)                              # (1, C) marginal
        kl = (chunk * (chunk.clamp_min(1e-30).log() - p_y.clamp_min(1e-30).log())).sum(dim=1)
        scores.append(math.exp(float(kl.mean())))
    scores = torch.tensor(scores, dtype=torch.float64)
    return InceptionScore(float(scores.mean()), float(scores.std()) if splits > 1 else 0.0)


@torch.no_grad()
def judge_inception_score(judge: nn.Module, x: Tensor, splits: int = 10, batch: int = 512) -> InceptionScore:
    """Inception Score of images x (N, 1, 28, 28) in [-1, 1] on the judge's 11 classes."""
    if not isinstance(judge, nn.Module):
        raise TypeError(f"judge must be an MNISTJudge (an nn.Module), got {type(judge).__name__}")
    check_tensor("x", x, min_dim=4)
    check_int("batch", batch, low=1)
    was_training = judge.training
    judge.eval()
    device = next(judge.parameters()).device
    probs = torch.cat([judge(x[i:i + batch].to(device)).softmax(dim=1).cpu() for i in range(0, len(x), batch)])
    judge.train(was_training)
    return inception_score(probs, splits)
