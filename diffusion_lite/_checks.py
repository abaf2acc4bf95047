"""Argument checks shared by the package: each raises a clear error naming the argument."""
from __future__ import annotations

import math

import torch
from torch import Tensor


def check_tensor(name: str, x, *, floating: bool = True, min_dim: int = 1) -> Tensor:
    """Reject non-tensors, empty tensors, non-float dtypes and, on the CPU, NaN/inf values.

    Finiteness is read only from CPU tensors: on an accelerator that read would wait for the device
    (a sync), and functions called once per step must not stall the loop. The entry points that run
    once per call (a sampler's start, the trainer's data) check accelerator tensors themselves.
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() < min_dim:
        raise ValueError(f"{name} must have at least {min_dim} dimension(s), got shape {tuple(x.shape)}")
    if x.numel() == 0:
        raise ValueError(f"{name} is empty (shape {tuple(x.shape)}); expected at least one element")
    if floating and not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    if floating and x.device.type == "cpu" and not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} contains NaN or infinite values")
    return x


def check_same(name_a: str, a: Tensor, name_b: str, b: Tensor) -> None:
    """Two tensors that enter one equation must share shape and device."""
    if a.shape != b.shape:
        raise ValueError(
            f"{name_a} and {name_b} must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    if a.device != b.device:
        raise ValueError(f"{name_a} and {name_b} must be on the same device, got {a.device} and {b.device}")


def check_generator(name: str, generator, device=None) -> None:
    """None or a torch.Generator; with `device`, one that can draw there (same device type)."""
    if generator is None:
        return
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"{name} must be a torch.Generator or None, got {type(generator).__name__}")
    if device is not None and generator.device.type != torch.device(device).type:
        raise ValueError(f"{name} is on {generator.device} but the samples are on {device}; "
                         f"make it with torch.Generator(device={str(torch.device(device).type)!r})")


def check_int(name: str, value, *, low: int, high: float = math.inf) -> int:
    """An integer in [low, high] (bool is not an integer here)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} ({value!r})")
    if not low <= value <= high:
        upper = "" if high == math.inf else f", {int(high)}"
        raise ValueError(f"{name} must be in [{low}{upper}{']' if upper else ', inf)'}, got {value}")
    return value


def check_float(name: str, value, *, low: float = -math.inf, high: float = math.inf,
                low_open: bool = False, high_open: bool = False) -> float:
    """A finite real number in the given interval."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} ({value!r})")
    value = float(value)
    too_low = value <= low if low_open else value < low
    too_high = value >= high if high_open else value > high
    if not math.isfinite(value) or too_low or too_high:
        lo, hi = ("(" if low_open else "["), (")" if high_open else "]")
        raise ValueError(f"{name} must be a finite number in {lo}{low}, {high}{hi}, got {value}")
    return value


def check_timesteps(name: str, t, T: int, *, low: int = 0) -> Tensor:
    """Timesteps as a long tensor of shape () or (B,), each in [low, T]."""
    if isinstance(t, bool):
        raise TypeError(f"{name} must be an int or an integer tensor, got bool")
    if isinstance(t, int):
        t = torch.tensor(t)
    if not isinstance(t, Tensor):
        raise TypeError(f"{name} must be an int or an integer tensor, got {type(t).__name__}")
    if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
        raise TypeError(f"{name} must hold integers, got dtype {t.dtype}")
    if t.dim() > 1:
        raise ValueError(f"{name} must be a scalar or a 1-D batch of timesteps, got shape {tuple(t.shape)}")
    if t.numel() == 0:
        raise ValueError(f"{name} is empty; expected at least one timestep")
    if bool((t < low).any()) or bool((t > T).any()):
        raise ValueError(
            f"{name} must lie in [{low}, {T}] for this schedule (T={T}), "
            f"got values from {int(t.min())} to {int(t.max())}"
        )
    return t.long()


def check_on_device(name: str, x: Tensor, weight: Tensor, owner: str) -> None:
    """The input of a network must live where its weights are."""
    if x.device != weight.device:
        raise ValueError(f"{name} is on device {x.device} but the {owner}'s weights are on {weight.device}; "
                         f"move one of them, e.g. {name}.to({str(weight.device)!r})")


def check_labels(name: str, y, num_classes: int, batch: int | None = None) -> Tensor:
    """Class labels: an integer (B,) tensor with every entry in [0, num_classes)."""
    if not isinstance(y, Tensor) or y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise TypeError(f"{name} must be a (B,) tensor of integer class labels, got "
                        f"{type(y).__name__}{'' if not isinstance(y, Tensor) else ' of dtype ' + str(y.dtype)}")
    if y.dim() != 1 or (batch is not None and y.shape[0] != batch):
        want = "(B,)" if batch is None else f"({batch},)"
        raise ValueError(f"{name} must have shape {want}, got {tuple(y.shape)}")
    if y.numel() and (bool((y < 0).any()) or bool((y >= num_classes).any())):
        raise ValueError(f"{name} must hold class labels in [0, {num_classes}), got values from "
                         f"{int(y.min())} to {int(y.max())}")
    return y
