"""Classifier-free guidance as a model: every sampler guides without knowing it (chapter 10).

    eps_hat = eps_hat(x_t, t, null) + w * (eps_hat(x_t, t, c) - eps_hat(x_t, t, null))      (eq-cfg)

(Ho & Salimans 2022, Eq. 6, written with w = 1 + their w.) w = 0 is the unconditional model,
w = 1 the conditional one, w > 1 extrapolates away from the unconditional prediction. diffusers'
`guidance_scale` is this w. The conditional and null predictions come from one forward pass on a
batch of 2B. With `interval=(t_lo, t_hi)`, guidance acts only for t_lo <= t <= t_hi and the
conditional prediction is used elsewhere (Kynkäänniemi et al. 2024).

`classifier_free_guidance(model, w)` returns a model in the package's sense,
`guided(x_t, t, cond) -> eps_hat`, so it goes to any sampler with `cond=`.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .._checks import check_float, check_int, check_labels
from .base import Model


def concat_cond(a, b):
    """Two conditions stacked along the batch: tensors, or tuples of tensors (e.g. context and mask)."""
    if isinstance(a, Tensor) and isinstance(b, Tensor):
        return torch.cat([a, b])
    if isinstance(a, tuple) and isinstance(b, tuple) and len(a) == len(b):
        return tuple(concat_cond(x, y) for x, y in zip(a, b))
    raise TypeError(f"cond and null_cond must both be tensors or tuples of tensors, got {type(a).__name__} "
                    f"and {type(b).__name__}")


def null_like(model, cond):
    """The null condition shaped like cond, from a model that knows its own (the U-Net's drop_cond)."""
    drop_cond = getattr(model, "drop_cond", None)
    if drop_cond is None:
        raise TypeError(f"{type(model).__name__} has no drop_cond(cond, drop): pass null_cond explicitly")
    first = cond[0] if isinstance(cond, tuple) else cond
    return drop_cond(cond, torch.ones(first.shape[0], dtype=torch.bool, device=first.device))


def classifier_free_guidance(model: Model, w: float, null_cond=None,
                             interval: tuple[int, int] | None = None) -> Model:
    """A model that returns the guided prediction of eq-cfg for condition cond.

    null_cond: the "no condition" input, shaped like cond (default: the model's own, from drop_cond).
    interval: (t_lo, t_hi), guide only there; elsewhere the conditional prediction (one pass of B).
    """
    if not callable(model):
        raise TypeError(f"model must be callable as model(x_t, t, cond), got {type(model).__name__}")
    w = check_float("w", w)
    if interval is not None:
        if not (isinstance(interval, tuple) and len(interval) == 2):
            raise TypeError(f"interval must be a tuple (t_lo, t_hi) or None, got {interval!r}")
        t_lo, t_hi = (check_int(name, v, low=0) for name, v in zip(("interval[0]", "interval[1]"), interval))
        if t_lo > t_hi:
            raise ValueError(f"interval must have t_lo <= t_hi, got {interval}")

    def guided(x_t: Tensor, t: Tensor, cond=None) -> Tensor:
        if cond is None:
            raise ValueError("a guided model needs a condition: pass cond= to the sampler")
        num_classes = getattr(getattr(model, "config", None), "num_classes", None)
        if num_classes is not None:  # class labels: the null label is the guidance's own, not the caller's
            check_labels("cond", cond, num_classes, batch=x_t.shape[0])
        if interval is not None and not bool(((t >= t_lo) & (t <= t_hi)).any()):
            return model(x_t, t, cond)  # outside the interval: the conditional prediction alone
        null = null_like(model, cond) if null_cond is None else null_cond
        eps_c, eps_u = model(torch.cat([x_t, x_t]), torch.cat([t, t]), concat_cond(cond, null)).chunk(2)
        scale = torch.full_like(t, w, dtype=x_t.dtype) if interval is None else \
            torch.where((t >= t_lo) & (t <= t_hi), w, 1.0).to(x_t.dtype)
        return eps_u + scale.reshape(-1, *([1] * (x_t.dim() - 1))) * (eps_c - eps_u)  # eq-cfg

    return guided
