"""Seeded 2-D toy distributions: point clouds small enough to train on in seconds and to plot whole.

Each function draws `n` points as an (n, 2) float32 tensor on the CPU, from an explicit
torch.Generator (same seed -> identical points). Every cloud fits roughly in [-2, 2]^2, so one
noise schedule suits them all. Where a function takes `noise`, the clean points are drawn first
and isotropic Gaussian noise N(0, noise^2 I) is added last: the same seed with and without noise
gives the same clean points. Gaussian mixtures, whose score is known exactly, live in gmm.py.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from .._checks import check_float, check_int


def _check_generator(generator) -> None:
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    if generator is not None and generator.device.type != "cpu":
        raise ValueError(f"generator must be a CPU torch.Generator (toy data is drawn on the CPU), "
                         f"got one on {generator.device}")


def _uniform(shape: tuple[int, ...], generator) -> Tensor:
    """U[0, 1) in float32 whatever torch's default dtype is."""
    return torch.rand(shape, generator=generator, dtype=torch.float32)


def _add_noise(x: Tensor, noise: float, generator) -> Tensor:
    """x + noise * N(0, I), drawn after the clean points."""
    if noise == 0.0:
        return x
    return x + noise * torch.randn(x.shape, generator=generator, dtype=torch.float32)


def swiss_roll(n: int, generator: torch.Generator | None = None, noise: float = 0.0) -> Tensor:
    """A 2-D Swiss roll: a spiral whose radius grows in proportion to its angle.

    Density: the angle theta is uniform on [1.5 pi, 4.5 pi] (one and a half turns) and the point is
    r(theta) * (cos theta, sin theta) with radius r = theta / (2.25 pi), from 2/3 to 2; then
    N(0, noise^2 I) is added. Without noise all mass lies on the spiral, uniform in angle (so
    denser per unit length on the inner turn, where the spiral is shorter).
    """
    n = check_int("n", n, low=1)
    _check_generator(generator)
    noise = check_float("noise", noise, low=0.0)
    theta = 1.5 * math.pi + 3.0 * math.pi * _uniform((n,), generator)
    r = theta / (2.25 * math.pi)
    x = torch.stack([r * torch.cos(theta), r * torch.sin(theta)], dim=1)  # (n, 2)
    return _add_noise(x, noise, generator)


MOON_CENTERS = ((-0.5, -0.25), (0.5, 0.25))  # centres of the upper and lower moon's unit circles


def moons(n: int, generator: torch.Generator | None = None, noise: float = 0.0) -> Tensor:
    """Two interleaving half-circles of radius 1 (the "two moons" of scikit-learn, centred).

    Density: each point picks a moon with probability 1/2 and an angle phi uniform on [0, pi].
    Upper moon: c_up + (cos phi, sin phi) with c_up = (-0.5, -0.25); lower moon:
    c_low - (cos phi, sin phi) with c_low = (0.5, 0.25). Then N(0, noise^2 I) is added. Without
    noise all mass lies on the two half-circles, uniform along each.
    """
    n = check_int("n", n, low=1)
    _check_generator(generator)
    noise = check_float("noise", noise, low=0.0)
    lower = _uniform((n,), generator) < 0.5  # which moon
    phi = math.pi * _uniform((n,), generator)
    arc = torch.stack([torch.cos(phi), torch.sin(phi)], dim=1)  # (n, 2), upper half of unit circle
    up, low = torch.tensor(MOON_CENTERS, dtype=torch.float32)
    x = torch.where(lower[:, None], low - arc, up + arc)
    return _add_noise(x, noise, generator)


def checkerboard(n: int, generator: torch.Generator | None = None, squares: int = 4) -> Tensor:
    """Uniform on the "black" squares of a squares x squares checkerboard covering [-2, 2]^2.

    Cell (i, j) spans [-2 + i h, -2 + (i+1) h) x [-2 + j h, -2 + (j+1) h) with h = 4 / squares and
    is black when i + j is even. Density: 2 / 16 = 1/8 on the black cells (half of the board's
    area 16), 0 on the white ones. The sharp edges make it a hard target for a smooth model.
    """
    n = check_int("n", n, low=1)
    _check_generator(generator)
    squares = check_int("squares", squares, low=2)
    if squares % 2:
        raise ValueError(f"squares must be even (so half the cells are black), got {squares}")
    h = 4.0 / squares
    black = torch.tensor([(i, j) for i in range(squares) for j in range(squares) if (i + j) % 2 == 0])
    cell = black[torch.randint(len(black), (n,), generator=generator)]  # (n, 2) integer cells
    return -2.0 + h * (cell + _uniform((n, 2), generator))


def rings(n: int, generator: torch.Generator | None = None, radii: tuple[float, ...] = (0.5, 1.0, 2.0),
          noise: float = 0.0) -> Tensor:
    """Concentric circles around the origin, equally likely, uniform in angle on each.

    Density: a radius r_k is chosen with probability 1 / len(radii), an angle uniform on
    [0, 2 pi), the point is r_k (cos angle, sin angle); then N(0, noise^2 I) is added. Equal mass
    per ring (not per unit length) means a model that drops the small ring loses a third of the data.
    """
    n = check_int("n", n, low=1)
    _check_generator(generator)
    noise = check_float("noise", noise, low=0.0)
    if not isinstance(radii, (tuple, list)) or len(radii) == 0:
        raise TypeError(f"radii must be a non-empty tuple of positive numbers, got {radii!r}")
    radii_t = torch.tensor([check_float("radii[k]", r, low=0.0, low_open=True) for r in radii],
                           dtype=torch.float32)
    r = radii_t[torch.randint(len(radii_t), (n,), generator=generator)]
    angle = 2.0 * math.pi * _uniform((n,), generator)
    x = torch.stack([r * torch.cos(angle), r * torch.sin(angle)], dim=1)  # (n, 2)
    return _add_noise(x, noise, generator)
