"""Per-image distances for image-to-image tasks: PSNR and SSIM (chapters 12 and 13).

    PSNR(x, y) = 10 log10(range^2 / MSE(x, y))                                      (eq-psnr)
    SSIM(x, y) = mean over windows of
                 (2 mu_x mu_y + C1)(2 s_xy + C2) / ((mu_x^2 + mu_y^2 + C1)(s_x^2 + s_y^2 + C2))  (eq-ssim)

with Gaussian windows (sigma 1.5, 11 taps; Wang et al. 2004), C1 = (0.01 L)^2, C2 = (0.03 L)^2 and
L the data range (2 for images in [-1, 1]). Both are distortion measures: they reward the
pixel-wise average of the plausible answers, which is why a regression network tends to win them
even where its output looks less like a real image (the perception-distortion trade-off; Blau & Michaeli 2018).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .._checks import check_float, check_tensor


def _pair(x: Tensor, y: Tensor) -> None:
    check_tensor("x", x, min_dim=4)
    check_tensor("y", y, min_dim=4)
    if x.dim() != 4 or x.shape != y.shape:
        raise ValueError(f"x and y must be image batches (B, C, H, W) of the same shape, got "
                         f"{tuple(x.shape)} and {tuple(y.shape)}")


def psnr(x: Tensor, y: Tensor, data_range: float = 2.0) -> Tensor:
    """PSNR per image in dB (eq-psnr); images in [-1, 1] have data_range 2."""
    _pair(x, y)
    data_range = check_float("data_range", data_range, low=0.0, low_open=True)
    mse = (x.float() - y.float()).pow(2).flatten(1).mean(1).clamp_min(1e-12)
    return 10.0 * torch.log10(data_range ** 2 / mse)  # (B,)


def ssim(x: Tensor, y: Tensor, data_range: float = 2.0, window: int = 11, sigma: float = 1.5) -> Tensor:
    """SSIM per image (eq-ssim; Wang et al. 2004, Eq. 13), Gaussian windows, 'valid' positions only."""
    _pair(x, y)
    data_range = check_float("data_range", data_range, low=0.0, low_open=True)
    if isinstance(window, bool) or not isinstance(window, int) or window < 1 or window % 2 == 0 \
            or window > min(x.shape[2:]):
        raise ValueError(f"window must be an odd int in [1, {min(x.shape[2:])}], got {window!r}")
    sigma = check_float("sigma", sigma, low=0.0, low_open=True)
    x, y = x.double(), y.double()
    k = torch.exp(-0.5 * ((torch.arange(window, dtype=torch.float64) - window // 2) / sigma) ** 2)
    k = (k / k.sum()).to(x.device)
    C = x.shape[1]
    kernel = (k[:, None] * k[None, :]).expand(C, 1, window, window)  # (C, 1, w, w), one per channel

    def blur(v: Tensor) -> Tensor:
        return F.conv2d(v, kernel, groups=C)

    mu_x, mu_y = blur(x), blur(y)
    s_xx = blur(x * x) - mu_x ** 2
    s_yy = blur(y * y) - mu_y ** 2
    s_xy = blur(x * y) - mu_x * mu_y
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    s = ((2 * mu_x * mu_y + c1) * (2 * s_xy + c2)) / ((mu_x ** 2 + mu_y ** 2 + c1) * (s_xx + s_yy + c2))
    return s.flatten(1).mean(1).float()  # (B,)
