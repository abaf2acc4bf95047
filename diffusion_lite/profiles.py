"""Profiles pick how much compute a notebook spends: smoke (CI), cpu (laptop) or gpu.

The profile comes from the DL_PROFILE environment variable; without it, gpu when CUDA is
available, else cpu. Notebooks read it once, in their parameters cell:

    EPOCHS = dl.pick(smoke=1, cpu=20, gpu=200)
"""
from __future__ import annotations

import os

import torch

PROFILES = ("smoke", "cpu", "gpu")


def profile() -> str:
    """The active profile name, from DL_PROFILE or the hardware."""
    name = os.environ.get("DL_PROFILE", "").strip().lower()
    if not name:
        return "gpu" if torch.cuda.is_available() else "cpu"
    if name not in PROFILES:
        raise ValueError(f"DL_PROFILE must be one of {PROFILES}, got {name!r}")
    return name


def pick(*, smoke, cpu, gpu):
    """The value for the active profile: pick(smoke=..., cpu=..., gpu=...)."""
    return {"smoke": smoke, "cpu": cpu, "gpu": gpu}[profile()]


def device() -> torch.device:
    """cuda when available and the profile is gpu, else cpu."""
    return torch.device("cuda" if profile() == "gpu" and torch.cuda.is_available() else "cpu")


def to_device(x: torch.Tensor, device) -> torch.Tensor:
    """x on `device` without making the host wait: a CPU tensor bound for CUDA is copied through
    pinned memory with non_blocking=True (a plain copy from pageable memory synchronises the
    stream, which stalls a training or sampling loop once per call). Elsewhere x.to(device)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    device = torch.device(device)
    if device.type == "cuda" and x.device.type == "cpu":
        return x.pin_memory().to(device, non_blocking=True)
    return x.to(device)
