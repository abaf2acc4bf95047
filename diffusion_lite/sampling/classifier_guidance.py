"""Classifier guidance as a model: an unconditional eps-model steered by a noisy classifier (chapter 10).

Bayes' rule gives the score of the class-conditional marginal as the unconditional score plus the
gradient of the classifier's log-probability, grad log p(x_t | y) = grad log p(x_t) + grad log p(y | x_t).
With score = -eps / sqrt(1 - alpha_bar_t) (eq-score-eps) and the classifier term scaled by s:

    eps_hat_s = eps_hat(x_t, t) - s * sqrt(1 - alpha_bar_t) * grad_x log p_phi(y | x_t, t)   (eq-cg)

(Dhariwal & Nichol 2021, Algorithm 2 and Eq. 14). s = 0 is the unconditional model, s = 1 the exact
conditional score when both the model and the classifier are exact. `classifier_guidance(...)`
returns a model `guided(x_t, t, cond) -> eps_hat` with cond the (B,) requested labels, so every
sampler (DDPM, DDIM, the ODE solvers) guides through `cond=` without knowing it. The gradient is
taken with autograd even inside a sampler's torch.no_grad().
"""
from __future__ import annotations

import torch
from torch import Tensor

from .._checks import check_float, check_labels
from ..core.schedules import check_schedule, gather
from .base import Model


def classifier_log_prob_grad(classifier, x_t: Tensor, t: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """(log p(y | x_t, t) per sample (B,), its gradient with respect to x_t, shaped like x_t)."""
    with torch.enable_grad():
        x = x_t.detach().requires_grad_(True)
        logits = classifier(x, t)
        if not isinstance(logits, Tensor) or logits.dim() != 2 or logits.shape[0] != x_t.shape[0]:
            raise ValueError(f"classifier(x_t, t) must return logits (B, num_classes), got "
                             f"{tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__}")
        y = check_labels("cond", y, logits.shape[1], batch=x_t.shape[0])
        logits = logits.to(torch.promote_types(logits.dtype, torch.float32))  # bf16 -> float32, float64 stays
        log_p = logits.log_softmax(dim=1).gather(1, y.to(logits.device)[:, None]).squeeze(1)  # (B,)
        (grad,) = torch.autograd.grad(log_p.sum(), x)  # samples are independent: the sum's gradient is per-sample
    return log_p.detach(), grad.to(x_t.dtype)


def classifier_guidance(model: Model, classifier, sched, s: float) -> Model:
    """A model returning eq-cg's guided eps for the labels passed as cond.

    model: an unconditional eps-model, called as model(x_t, t). classifier: classifier(x_t, t) ->
    logits (B, num_classes) of p(y | x_t) (e.g. a NoisyClassifier). s: the guidance scale (>= 0).
    """
    if not callable(model):
        raise TypeError(f"model must be callable as model(x_t, t), got {type(model).__name__}")
    if not callable(classifier):
        raise TypeError(f"classifier must be callable as classifier(x_t, t) -> logits, got {type(classifier).__name__}")
    sched = check_schedule(sched)
    s = check_float("s", s, low=0.0)

    def guided(x_t: Tensor, t: Tensor, cond=None) -> Tensor:
        if cond is None:
            raise ValueError("a classifier-guided model needs the requested labels: pass cond= to the sampler")
        eps_hat = model(x_t, t)
        _, grad = classifier_log_prob_grad(classifier, x_t, t, cond)
        scale = gather(sched.alpha_bar, t, x_t).to(x_t.dtype)  # (B, 1, ..., 1)
        return eps_hat - s * (1 - scale).sqrt() * grad  # eq-cg (Dhariwal & Nichol 2021, Eq. 14)

    return guided
