"""Judging class-conditional samples: fidelity to the requested class and diversity within each class.

- fidelity: the share of samples the judge confidently (p >= threshold) assigns to the class that
  was requested (a confident "3" asked to be a "7" counts as a miss, and so does "not a digit").
- diversity, per class: judge-feature KID (Bińkowski et al. 2018) and FID between the samples that
  requested class k and real digits of class k, averaged over the classes; and recall
  (Kynkäänniemi et al. 2019): the share of real digits of class k that fall inside the k-nearest-
  neighbour balls of the samples, i.e. how much of the real class the samples cover.
Guidance trades one for the other: fidelity rises with w, diversity (recall) falls (chapter 10).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .._checks import check_float, check_int, check_labels, check_tensor
from .judge import REJECT, judge
from .metrics import fid_from_features, judge_features, kid


def knn_recall(real_features: Tensor, gen_features: Tensor, k: int = 3) -> float:
    """Share of real feature vectors within the k-NN radius of at least one generated vector.

    Kynkäänniemi et al. 2019, Eq. 1-2 (recall): the generated manifold is the union of balls around
    each generated vector with radius its distance to its k-th nearest generated neighbour.
    """
    check_tensor("real_features", real_features, min_dim=2)
    check_tensor("gen_features", gen_features, min_dim=2)
    if real_features.shape[1] != gen_features.shape[1]:
        raise ValueError(f"real_features and gen_features must have the same width, got "
                         f"{real_features.shape[1]} and {gen_features.shape[1]}")
    k = check_int("k", k, low=1, high=len(gen_features) - 1)
    gen, real = gen_features.double(), real_features.double()
    radius = torch.cdist(gen, gen).kthvalue(k + 1, dim=1).values  # (G,), the 1st value is the point itself
    return float((torch.cdist(real, gen) <= radius[None, :]).any(dim=1).double().mean())


@dataclass(frozen=True, eq=False)
class ConditionalReport:
    fidelity: float          # share of samples confidently judged as their requested class
    per_class: Tensor        # (10,) that share within the samples that requested each class
    classes_present: tuple   # classes with at least one confident-and-correct sample
    reject_fraction: float   # share the judge calls "not a digit"
    kid: float               # mean over classes of the judge-feature KID (sample vs real, same class)
    fid: float               # mean over classes of the judge-feature FID (biased up for small N)
    recall: float            # mean over classes of the k-NN recall of real digits by the samples


def conditional_report(judge_model, x: Tensor, labels: Tensor, real_images: Tensor, real_labels: Tensor,
                       threshold: float = 0.9, k: int = 3, kid_subsets: int = 20,
                       generator: torch.Generator | None = None) -> ConditionalReport:
    """Fidelity and per-class diversity of samples x (N, 1, 28, 28) that requested `labels` (N,).

    Each class needs at least k + 1 samples and 2 real images (real_images, real_labels: a real set).
    """
    check_tensor("x", x, min_dim=4)
    labels = check_labels("labels", labels, REJECT, batch=x.shape[0])
    check_tensor("real_images", real_images, min_dim=4)
    real_labels = check_labels("real_labels", real_labels, REJECT, batch=real_images.shape[0])
    threshold = check_float("threshold", threshold, low=0.0, high=1.0)
    check_int("kid_subsets", kid_subsets, low=2)
    report = judge(judge_model, x, threshold=threshold)
    hit = (report.predicted == labels.cpu()) & (report.confidence >= threshold)  # (N,)
    f_gen, f_real = judge_features(judge_model, x), judge_features(judge_model, real_images)
    classes = sorted(set(labels.tolist()))
    per_class = torch.full((REJECT,), float("nan"))
    kids, fids, recalls = [], [], []
    for c in classes:
        g, r = f_gen[labels.cpu() == c], f_real[real_labels.cpu() == c]
        if len(g) < k + 1 or len(r) < 2:
            raise ValueError(f"class {c} has {len(g)} samples and {len(r)} real images; need at least "
                             f"k + 1 = {k + 1} and 2")
        per_class[c] = hit[labels.cpu() == c].double().mean()
        kids.append(kid(g, r, subsets=kid_subsets, subset_size=min(len(g), len(r)), generator=generator).mean)
        fids.append(fid_from_features(g, r))
        recalls.append(knn_recall(r, g, k))
    present = tuple(c for c in classes if bool(hit[labels.cpu() == c].any()))
    return ConditionalReport(fidelity=float(hit.double().mean()), per_class=per_class, classes_present=present,
                             reject_fraction=report.reject_fraction, kid=sum(kids) / len(kids),
                             fid=sum(fids) / len(fids), recall=sum(recalls) / len(recalls))
