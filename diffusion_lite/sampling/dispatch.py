"""`sample(..., method=...)`: a table from a sampler's name to its function, for loops over samplers.

Each sampler is also called directly (`dl.sample_ddim(...)`); this table only lets chapter 09 and
the benchmarks loop over names. Steps and NFE (model evaluations) per method, with S = steps:

| method             | function                  | NFE          | default steps |
|--------------------|---------------------------|--------------|---------------|
| "ddpm"             | sample_ddpm               | S            | T (all)       |
| "ddim"             | sample_ddim               | S            | 50            |
| "euler"            | sample_euler              | S            | 50            |
| "heun"             | sample_heun               | 2 S - 1      | 25            |
| "dpm_solver_pp_2m" | sample_dpm_solver_pp_2m   | S            | 20            |
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..core.schedules import Schedule
from .base import Model, SampleOutput
from .ddim import sample_ddim
from .ddpm import sample_ddpm
from .ode import sample_dpm_solver_pp_2m, sample_euler, sample_heun

SAMPLERS = {"ddpm": sample_ddpm, "ddim": sample_ddim, "euler": sample_euler, "heun": sample_heun,
            "dpm_solver_pp_2m": sample_dpm_solver_pp_2m}
METHODS = tuple(SAMPLERS)


def sample(model: Model, sched: Schedule, x_T, steps: int | Tensor | None = None, method: str = "ddim",
           cond=None, generator: torch.Generator | None = None, return_trajectory: bool = False,
           progress: bool = False, **options) -> SampleOutput:
    """SAMPLERS[method](model, sched, x_T, steps, cond=..., ...): sample(model, sched, (64, 1, 28, 28), 50).

    steps=None takes the sampler's own default; options go to the sampler (eta, spacing, variance,
    clip_x0, ...) and a sampler rejects the ones it does not take.
    """
    if method not in SAMPLERS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if steps is not None:
        options["steps"] = steps
    return SAMPLERS[method](model, sched, x_T, cond=cond, generator=generator, return_trajectory=return_trajectory,
                            progress=progress, **options)
