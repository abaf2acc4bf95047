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
