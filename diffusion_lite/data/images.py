"""Small real images for demonstrations, read from files that ship inside installed packages."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .._checks import check_int, check_tensor

DEMO_IMAGES = {
    # name: (package, path inside the package)
    "grace_hopper": ("matplotlib", "mpl-data/sample_data/grace_hopper.jpg"),
}


def _package_file(package: str, relative: str) -> Path:
    spec = importlib.util.find_spec(package)  # locate without importing the package
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package {package!r} is not installed; `pip install {package}`")
    path = Path(list(spec.submodule_search_locations)[0]) / relative
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the installed {package!r} package")
    return path


def demo_image(name: str = "grace_hopper", size: int = 64) -> Tensor:
    """A real photograph as a (3, size, size) float32 tensor scaled to [-1, 1] (centre crop, resized)."""
    from PIL import Image  # Pillow comes with matplotlib

    if name not in DEMO_IMAGES:
        raise ValueError(f"unknown demo image {name!r}; choose one of {sorted(DEMO_IMAGES)}")
    size = check_int("size", size, low=8, high=1024)
    img = Image.open(_package_file(*DEMO_IMAGES[name])).convert("RGB")
    w, h = img.size
    side = min(w, h)
    img = img.crop(((w - side) // 2, (h - side) // 2, (w + side) // 2, (h + side) // 2))
    img = img.resize((size, size), Image.Resampling.LANCZOS)
    x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 127.5 - 1.0)  # (H, W, 3)
    return x.permute(2, 0, 1).contiguous()  # (3, H, W)


def to_uint8(x: Tensor) -> np.ndarray:
    """[-1, 1] tensor (C, H, W) or (B, C, H, W) -> uint8 array with channels last, clipped."""
    check_tensor("x", x, min_dim=3)
    if x.shape[-3] not in (1, 3):
        raise ValueError(f"x must have 1 or 3 channels in dim -3, got shape {tuple(x.shape)}")
    x = ((x.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.movedim(-3, -1).numpy()  # (..., H, W, C)
