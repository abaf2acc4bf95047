"""Garbage for the judge's REJECT class: images that are not digits, or not finished ones.

A judge trained only on digits must call everything a digit. These makers produce what a failing
generator produces, so that the judge (classifier.py) learns an eleventh answer, "not a digit".
Every maker returns (n, 1, 28, 28) images in [-1, 1], drawn with an explicit torch.Generator:

| kind           | what it is                                                                 |
|----------------|----------------------------------------------------------------------------|
| `gaussian`     | pure Gaussian noise (sigma 0.5-1.5), clamped to [-1, 1]                    |
| `uniform`      | uniform noise in [-1, 1]                                                   |
| `blank`        | one flat grey level with faint noise: the model drew nothing               |
| `smooth_noise` | blurred noise stretched to [-1, 1]: blotchy texture                        |
| `blur`         | a real digit blurred beyond reading (sigma 2.5-4 px); half re-stretched    |
| `shuffle`      | a real digit cut into 16 patches of 7x7, put back in random order          |
| `mix`          | two different digits averaged, or overlaid (pixel-wise max)                |
| `blobs`        | 1-4 soft elliptical blobs                                                  |
| `strokes`      | 3-6 random straight strokes: a scribble                                    |
| `noisy_digit`  | a digit under strong noise (alpha_bar 0.02-0.3), like a half-finished sample |
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from .._checks import check_int, check_tensor

GARBAGE_KINDS = ("gaussian", "uniform", "blank", "smooth_noise", "blur", "shuffle", "mix",
                 "blobs", "strokes", "noisy_digit")


def _u(n: int, low: float, high: float, g: torch.Generator, device) -> Tensor:
    return low + (high - low) * torch.rand(n, generator=g, device=device)


def _pick(images: Tensor, n: int, g: torch.Generator) -> Tensor:
    return images[torch.randint(len(images), (n,), generator=g, device=images.device)]


def _to_range(x: Tensor) -> Tensor:
    """Stretch each image to span [-1, 1] (min-max per image)."""
    lo = x.amin(dim=(1, 2, 3), keepdim=True)
    hi = x.amax(dim=(1, 2, 3), keepdim=True)
    return 2 * (x - lo) / (hi - lo).clamp_min(1e-6) - 1


def _blur(x: Tensor, sigma: Tensor, pad_value: float) -> Tensor:
    """Gaussian blur with one sigma per image (separable, one grouped conv per axis)."""
    n, radius = len(x), int(math.ceil(3 * float(sigma.max())))
    r = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    k = torch.exp(-0.5 * (r[None] / sigma[:, None]) ** 2)
    k = (k / k.sum(1, keepdim=True))[:, None]                         # (n, 1, K)
    y = F.pad(x.reshape(1, n, 28, 28), (radius,) * 4, value=pad_value)
    y = F.conv2d(y, k[:, :, None, :], groups=n)                       # along W
    y = F.conv2d(y, k[:, :, :, None], groups=n)                       # along H
    return y.reshape(n, 1, 28, 28)


def _gaussian(n, real, g):      # pure Gaussian noise, sigma in [0.5, 1.5], clamped to [-1, 1]
    return (_u(n, 0.5, 1.5, g, real.device)[:, None, None, None]
            * torch.randn(n, 1, 28, 28, generator=g, device=real.device)).clamp(-1, 1)


def _uniform(n, real, g):       # uniform noise in [-1, 1]
    return torch.rand(n, 1, 28, 28, generator=g, device=real.device) * 2 - 1


def _blank(n, real, g):         # a flat grey level with faint noise: "the model output nothing"
    level = _u(n, -1, 1, g, real.device)[:, None, None, None]
    return (level + 0.05 * torch.randn(n, 1, 28, 28, generator=g, device=real.device)).clamp(-1, 1)


def _smooth_noise(n, real, g):  # blotchy texture: Gaussian noise blurred (sigma 1-2.5), stretched
    x = torch.randn(n, 1, 28, 28, generator=g, device=real.device)
    return _to_range(_blur(x, _u(n, 1.0, 2.5, g, real.device), 0.0))


def _blurred(n, real, g):       # a digit blurred beyond reading (sigma 2.5-4); half re-stretched
    x = _blur(_pick(real, n, g), _u(n, 2.5, 4.0, g, real.device), -1.0).clamp(-1, 1)
    stretch = torch.rand(n, 1, 1, 1, generator=g, device=real.device) < 0.5
    return torch.where(stretch, _to_range(x), x)


def _shuffled(n, real, g):      # a digit cut into 16 patches of 7x7, put back in random order
    x = _pick(real, n, g).unfold(2, 7, 7).unfold(3, 7, 7).reshape(n, 16, 7, 7)
    order = torch.rand(n, 16, generator=g, device=real.device).argsort(dim=1)
    x = x.gather(1, order[:, :, None, None].expand(-1, -1, 7, 7))     # (n, 16, 7, 7)
    return x.reshape(n, 4, 4, 7, 7).permute(0, 1, 3, 2, 4).reshape(n, 1, 28, 28)


def _mixed(n, real, g, labels=None):  # two different digits averaged, or overlaid (max)
    i = torch.randint(len(real), (n,), generator=g, device=real.device)
    j = torch.randint(len(real), (n,), generator=g, device=real.device)
    if labels is not None:          # redraw partners that share the first digit's class
        for _ in range(10):
            same = labels[i] == labels[j]
            if not bool(same.any()):
                break
            j[same] = torch.randint(len(real), (int(same.sum()),), generator=g, device=real.device)
    a, b = real[i], real[j]
    overlay = torch.rand(n, 1, 1, 1, generator=g, device=real.device) < 0.5
    return torch.where(overlay, torch.maximum(a, b), (a + b) / 2)


def _grid(device):
    r = torch.arange(28, device=device, dtype=torch.float32)
    return r[None, :].expand(28, 28), r[:, None].expand(28, 28)       # x (columns), y (rows)


def _blobs(n, real, g):         # 1-4 soft elliptical blobs
    d, (gx, gy) = real.device, _grid(real.device)
    k = 4
    cx, cy = _u(n * k, 5, 23, g, d).view(n, k, 1, 1), _u(n * k, 5, 23, g, d).view(n, k, 1, 1)
    sx, sy = _u(n * k, 1.5, 5, g, d).view(n, k, 1, 1), _u(n * k, 1.5, 5, g, d).view(n, k, 1, 1)
    on = torch.arange(k, device=d)[None] < torch.randint(1, k + 1, (n, 1), generator=g, device=d)
    bumps = torch.exp(-0.5 * (((gx - cx) / sx) ** 2 + ((gy - cy) / sy) ** 2))
    x = (bumps * on[:, :, None, None]).sum(1, keepdim=True).clamp(max=1)
    return 2 * x - 1


def _strokes(n, real, g):       # 3-6 random straight strokes, pen width 1-2.5 px: a scribble
    d, (gx, gy) = real.device, _grid(real.device)
    k = 6
    p = _u(n * k * 4, 3, 25, g, d).view(n, k, 4, 1, 1)
    x0, y0, x1, y1 = p.unbind(2)
    vx, vy = x1 - x0, y1 - y0
    s = (((gx - x0) * vx + (gy - y0) * vy) / (vx ** 2 + vy ** 2).clamp_min(1e-6)).clamp(0, 1)
    dist = torch.hypot(gx - x0 - s * vx, gy - y0 - s * vy)            # (n, k, 28, 28)
    width = _u(n, 1.0, 2.5, g, d).view(n, 1, 1, 1)
    on = torch.arange(k, device=d)[None] < torch.randint(3, k + 1, (n, 1), generator=g, device=d)
    ink = ((width - dist).clamp(0, 1) * on[:, :, None, None]).amax(1, keepdim=True)
    return 2 * ink - 1


def _noisy_digit(n, real, g):   # a digit under strong noise, like a half-finished sample:
    # x_t = sqrt(alpha_bar) x0 + sqrt(1 - alpha_bar) eps, alpha_bar in [0.02, 0.3]
    # eq-q-sample (Ho et al. 2020, Eq. 4)
    alpha_bar = _u(n, 0.02, 0.3, g, real.device)[:, None, None, None]
    eps = torch.randn(n, 1, 28, 28, generator=g, device=real.device)
    return (alpha_bar.sqrt() * _pick(real, n, g) + (1 - alpha_bar).sqrt() * eps).clamp(-1, 1)


_MAKERS = dict(zip(GARBAGE_KINDS, (_gaussian, _uniform, _blank, _smooth_noise, _blurred,
                                   _shuffled, _mixed, _blobs, _strokes, _noisy_digit)))


def garbage(n: int, real_images: Tensor, generator: torch.Generator, *, kinds=GARBAGE_KINDS,
            weights=None, labels: Tensor | None = None) -> Tensor:
    """n garbage images (n, 1, 28, 28) in [-1, 1], kinds drawn with the given weights.

    kinds: names from GARBAGE_KINDS (default: all); weights: one per kind (default: equal);
    real_images (N, 1, 28, 28) supply the digits that blur/shuffle/mix/noisy_digit destroy;
    labels (N,), if given, make "mix" always combine two different digits.
    """
    check_int("n", n, low=1)
    check_tensor("real_images", real_images, min_dim=4)
    if tuple(real_images.shape[1:]) != (1, 28, 28):
        raise ValueError(f"real_images must have shape (N, 1, 28, 28), got {tuple(real_images.shape)}")
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    if labels is not None and (not isinstance(labels, Tensor) or labels.shape != (len(real_images),)):
        raise ValueError(f"labels must be None or a tensor of shape ({len(real_images)},) matching "
                         f"real_images, got {tuple(getattr(labels, 'shape', ()))}")
    kinds = (kinds,) if isinstance(kinds, str) else tuple(kinds)
    unknown = [k for k in kinds if k not in _MAKERS]
    if not kinds or unknown:
        raise ValueError(f"kinds must be a non-empty selection of {GARBAGE_KINDS}, got {kinds}")
    w = torch.ones(len(kinds)) if weights is None else torch.as_tensor(weights, dtype=torch.float64)
    if w.shape != (len(kinds),) or bool((w < 0).any()) or float(w.sum()) <= 0:
        raise ValueError(f"weights must be {len(kinds)} non-negative numbers with a positive sum, "
                         f"got {weights}")
    return draw_garbage(n, real_images, generator, kinds, w, labels)


def draw_garbage(n, real_images, generator, kinds, w, labels):
    """garbage() without the argument checks, for a caller that checked them once (the judge's training loop)."""
    which = torch.multinomial(w.float().to(generator.device), n, replacement=True, generator=generator)
    out = torch.empty(n, 1, 28, 28, device=real_images.device, dtype=real_images.dtype)
    for k, name in enumerate(kinds):
        idx = (which == k).nonzero().flatten().to(real_images.device)
        if len(idx):
            extra = {"labels": labels} if name == "mix" else {}
            out[idx] = _MAKERS[name](len(idx), real_images, generator, **extra).to(out.dtype)
    return out
