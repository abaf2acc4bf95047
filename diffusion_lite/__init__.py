"""Diffusion Lite: the small, readable package behind the book."""
from .forward import q_posterior, q_sample, q_step
from .images import demo_image, to_uint8
from .parameterization import (eps_from_score, eps_from_v, eps_from_x0, score_from_eps, v_from_eps,
                               x0_from_eps, x0_from_v)
from .profiles import PROFILES, device, pick, profile
from .reporting import Stopwatch, hardware
from .schedules import Schedule, gather

__version__ = "0.1.0"

__all__ = [
    "Schedule", "gather",
    "q_step", "q_sample", "q_posterior",
    "x0_from_eps", "eps_from_x0", "v_from_eps", "x0_from_v", "eps_from_v", "score_from_eps", "eps_from_score",
    "profile", "pick", "device", "PROFILES",
    "demo_image", "to_uint8",
    "Stopwatch", "hardware",
]
