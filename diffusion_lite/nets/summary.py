"""Looking inside a network: parameter counts and a per-block table of shapes, parameters and FLOPs."""
from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from .unet import UNet


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of scalar parameters (all, or only those with requires_grad)."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def _blocks(module: nn.Module, prefix: str = ""):
    """(name, module) of the U-Net's building blocks: children, with ModuleLists opened."""
    for name, child in module.named_children():
        if isinstance(child, nn.ModuleList):
            yield from _blocks(child, f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}", child


@torch.no_grad()
def unet_block_report(model: UNet, x_shape: tuple[int, ...], cond: Tensor | None = None) -> list[dict]:
    """Per block, in execution order: output shape, parameters and FLOPs of one forward pass.

    FLOPs are counted by torch.utils.flop_counter (2 per multiply-add, matmuls and convolutions
    only) for a batch of shape x_shape. The last row is the total of the whole model.
    """
    if not isinstance(model, UNet):
        raise TypeError(f"model must be a UNet, got {type(model).__name__}")
    if not isinstance(x_shape, (tuple, list, torch.Size)) or not all(
            isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in x_shape):
        raise TypeError(f"x_shape must be a tuple of positive ints such as (1, 1, 28, 28), got {x_shape!r}")
    p = next(model.parameters())
    x_t = torch.zeros(x_shape, dtype=p.dtype, device=p.device)
    blocks = dict(_blocks(model))
    order, shapes = [], {}

    def hook(name):
        def record(_module, _inputs, output):
            order.append(name)
            shapes[name] = tuple(output.shape)
        return record

    handles = [m.register_forward_hook(hook(name)) for name, m in blocks.items()]
    try:
        with FlopCounterMode(display=False) as counter:
            model(x_t, 1, cond)
    finally:
        for h in handles:
            h.remove()
    flops = {k: sum(v.values()) for k, v in counter.get_flop_counts().items()}
    root = type(model).__name__
    rows = [{"block": name, "type": type(blocks[name]).__name__, "output": shapes[name],
             "params": count_parameters(blocks[name]), "flops": flops.get(f"{root}.{name}", 0)}
            for name in order]
    rows.append({"block": "total", "type": root, "output": tuple(x_shape),
                 "params": count_parameters(model), "flops": counter.get_total_flops()})
    return rows
