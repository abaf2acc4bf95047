"""A compact U-Net denoiser for images: eps_hat = UNet(x_t, t, cond), same shape as x_t.

Default MNIST shapes (channel_mults (1, 2, 2), N = num_res_blocks; "cat" joins the skip connection):

    28x28  x_t -> stem -> [Res]*N ------------------------------------- cat -> [Res]*N -> out -> eps_hat
                             | down                                      ^ up
    14x14                 [Res]*N -------------------- cat -> [Res]*N ---+
                             | down                      ^ up
     7x7                  [Res, Attn]*N -> mid -> cat -> [Res, Attn]*N
                                 (Res, Attn, Res)

- ResBlock: GroupNorm -> SiLU -> conv, then the time embedding scales and shifts the normalised
  features (FiLM), SiLU -> conv, plus a residual connection (eq-film).
- AttentionBlock: multi-head self-attention over all H*W positions (eq-attention), used only at low
  resolution where it is cheap; optionally cross-attention to a context sequence (prompts).
- Conditioning: `num_classes` adds a learned class embedding to the time embedding; the extra index
  `num_classes` means "no label" (classifier-free guidance; Ho & Salimans 2022). `cond_dim` adds
  cross-attention to a context (B, L, cond_dim), or to (context, mask) with a padding mask (B, L)
  (True = a real token; padded tokens get no attention weight, eq-masked-attention); a learned null
  context stands in when cond is None.
- Patches: with patch_size p > 1, x_t is first reshaped into p x p patches, C p^2 channels at H / p
  (eq-patchify; Hoogeboom et al. 2023), so the top level runs at H / p; the output is reshaped back.

The structure follows Ho et al. 2020 (Appendix B) and Dhariwal & Nichol 2021, at a size a CPU trains.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._checks import check_float, check_int, check_on_device, check_tensor
from .attention import AttentionBlock, split_context
from .embeddings import TimeEmbedding, check_model_timesteps


@dataclass(frozen=True)
class UNetConfig:
    """Sizes and options of a UNet. The defaults fit 28x28 MNIST (levels at 28, 14, 7)."""

    in_channels: int = 1                        # C of x_t: 1 for MNIST, 3 for RGB images
    out_channels: int | None = None             # channels of the prediction; None -> in_channels
    base_channels: int = 32                     # channels at level 0 (full resolution, H / p with patches)
    channel_mults: tuple[int, ...] = (1, 2, 2)  # level l has base * mult[l] channels at H / (p 2**l)
    num_res_blocks: int = 1                     # residual blocks per level, on the way down and up
    attention_levels: tuple[int, ...] = (2,)    # levels with self-attention (0 = full resolution);
                                                # the middle block always has one
    attention_heads: int = 4                    # heads of every attention layer
    dropout: float = 0.0                        # dropout inside residual blocks (Ho et al.: 0.1 on CIFAR-10)
    groups: int = 8                             # GroupNorm groups; must divide every channel count
    time_embed_dim: int | None = None           # width of the time embedding; None -> 4 * base_channels
    num_classes: int | None = None              # class labels 0..num_classes-1 (+ a null label); None: unconditional
    cond_dim: int | None = None                 # width of a context (B, L, cond_dim) read by cross-attention
    patch_size: int = 1                         # p > 1: x_t enters as p x p patches (C p^2 channels at H / p,
                                                # eq-patchify) and the output is put back the same way
    zero_init: bool = False                     # start the last layer of every residual branch and attention
                                                # block, and the output conv, at zero: each block starts as
                                                # its skip path and eps_hat = 0 (as in Ho et al. 2020's code)

    def __post_init__(self):
        object.__setattr__(self, "channel_mults", tuple(self.channel_mults))
        object.__setattr__(self, "attention_levels", tuple(self.attention_levels))
        check_int("in_channels", self.in_channels, low=1)
        check_int("patch_size", self.patch_size, low=1)
        if self.out_channels is not None:
            check_int("out_channels", self.out_channels, low=1)
        check_int("base_channels", self.base_channels, low=1)
        if not self.channel_mults:
            raise ValueError("channel_mults must list at least one level, got ()")
        for m in self.channel_mults:
            check_int("channel_mults entries", m, low=1)
        check_int("num_res_blocks", self.num_res_blocks, low=1)
        for level in self.attention_levels:
            check_int("attention_levels entries", level, low=0, high=len(self.channel_mults) - 1)
        check_int("attention_heads", self.attention_heads, low=1)
        check_float("dropout", self.dropout, low=0.0, high=1.0, high_open=True)
        check_int("groups", self.groups, low=1)
        for ch in self.channels:
            if ch % self.groups or ch % self.attention_heads:
                raise ValueError(f"groups ({self.groups}) and attention_heads ({self.attention_heads}) must "
                                 f"divide every level's channel count {self.channels}")
        if not isinstance(self.zero_init, bool):
            raise TypeError(f"zero_init must be a bool, got {type(self.zero_init).__name__}")
        if self.time_embed_dim is not None:
            check_int("time_embed_dim", self.time_embed_dim, low=2)
        if self.num_classes is not None:
            check_int("num_classes", self.num_classes, low=1)
        if self.cond_dim is not None:
            check_int("cond_dim", self.cond_dim, low=1)
        if self.num_classes is not None and self.cond_dim is not None:
            raise ValueError("set num_classes (class labels) or cond_dim (a context), not both")

    @property
    def channels(self) -> tuple[int, ...]:
        """Channels per level: base_channels * channel_mults."""
        return tuple(self.base_channels * m for m in self.channel_mults)


class ResBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection; t enters by FiLM on the middle features."""

    def __init__(self, ch_in: int, ch_out: int, emb_dim: int, groups: int, dropout: float):
        super().__init__()
        for name, value in (("ch_in", ch_in), ("ch_out", ch_out), ("emb_dim", emb_dim), ("groups", groups)):
            check_int(name, value, low=1)
        for name, value in (("ch_in", ch_in), ("ch_out", ch_out)):
            if value % groups:
                raise ValueError(f"{name} ({value}) must be a multiple of groups ({groups}) for GroupNorm")
        check_float("dropout", dropout, low=0.0, high=1.0, high_open=True)
        self.norm1 = nn.GroupNorm(groups, ch_in)
        self.conv1 = nn.Conv2d(ch_in, ch_out, 3, padding=1)
        self.film = nn.Linear(emb_dim, 2 * ch_out)  # emb -> (scale, shift)
        self.norm2 = nn.GroupNorm(groups, ch_out)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(ch_out, ch_out, 3, padding=1)
        self.skip = nn.Conv2d(ch_in, ch_out, 1) if ch_in != ch_out else nn.Identity()

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))  # (B, ch_out, H, W)
        scale, shift = self.film(F.silu(emb))[:, :, None, None].chunk(2, dim=1)  # (B, ch_out, 1, 1) each
        # eq-film: h <- GN(h) * (1 + scale(t)) + shift(t) (Perez et al. 2018; Dhariwal & Nichol 2021, AdaGN)
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(self.dropout(F.silu(h)))
        return self.skip(x) + h


class Downsample(nn.Module):
    """Halve H and W with a stride-2 3x3 convolution (28 -> 14 -> 7)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    """Double H and W: nearest-neighbour upsampling, then a 3x3 convolution."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class UNet(nn.Module):
    """forward(x_t (B, C, H, W), t (B,) or int, cond=None) -> (B, out_channels, H, W)."""

    def __init__(self, config: UNetConfig = UNetConfig()):
        super().__init__()
        if not isinstance(config, UNetConfig):
            raise TypeError(f"config must be a UNetConfig, got {type(config).__name__}")
        self.config = c = config
        chs, L = c.channels, len(c.channel_mults)
        emb_dim = c.time_embed_dim or 4 * c.base_channels

        def res(ch_in, ch_out):
            return ResBlock(ch_in, ch_out, emb_dim, c.groups, c.dropout)

        def attn(ch):
            return AttentionBlock(ch, c.attention_heads, c.groups, c.cond_dim)

        self.time_embed = TimeEmbedding(c.base_channels, emb_dim)
        if c.num_classes is not None:
            self.class_embed = nn.Embedding(c.num_classes + 1, emb_dim)  # index num_classes = no label
        if c.cond_dim is not None:
            self.null_context = nn.Parameter(torch.randn(1, 1, c.cond_dim) * 0.02)  # (1, 1, cond_dim)
        p2 = c.patch_size ** 2  # channels per input channel after patchifying (1 when patch_size is 1)
        self.stem = nn.Conv2d(c.in_channels * p2, chs[0], 3, padding=1)

        self.down, self.downsample = nn.ModuleList(), nn.ModuleList()
        ch = chs[0]
        for level in range(L):
            blocks = nn.ModuleList()
            for _ in range(c.num_res_blocks):
                blocks.append(res(ch, chs[level]))
                ch = chs[level]
                if level in c.attention_levels:
                    blocks.append(attn(ch))
            self.down.append(blocks)
            if level < L - 1:
                self.downsample.append(Downsample(ch))

        self.mid = nn.ModuleList([res(ch, ch), attn(ch), res(ch, ch)])

        self.up, self.upsample = nn.ModuleList(), nn.ModuleList()
        for level in reversed(range(L)):
            blocks = nn.ModuleList()
            for i in range(c.num_res_blocks):
                blocks.append(res(ch + chs[level] if i == 0 else ch, chs[level]))  # first one eats the skip
                ch = chs[level]
                if level in c.attention_levels:
                    blocks.append(attn(ch))
            self.up.append(blocks)
            if level > 0:
                self.upsample.append(Upsample(ch))

        out_channels = c.out_channels or c.in_channels
        self.out = nn.Sequential(nn.GroupNorm(c.groups, ch), nn.SiLU(), nn.Conv2d(ch, out_channels * p2, 3, padding=1))
        if c.zero_init:
            for layer in self._branch_outputs():
                nn.init.zeros_(layer.weight)
                nn.init.zeros_(layer.bias)

    def _branch_outputs(self):
        """The layers zero_init starts at zero: the last conv of every residual branch, the attention
        output projections and the output conv."""
        yield self.out[-1]
        for m in self.modules():
            if isinstance(m, ResBlock):
                yield m.conv2
            elif isinstance(m, AttentionBlock):
                yield m.proj
                if m.cross:
                    yield m.proj_cross

    # ------------------------------------------------------------------------------ conditioning
    def _check_inputs(self, x_t, t, cond):
        c = self.config
        check_tensor("x_t", x_t)
        if x_t.dim() != 4 or x_t.shape[1] != c.in_channels:
            raise ValueError(f"x_t must have shape (B, {c.in_channels}, H, W) for this UNet "
                             f"(in_channels={c.in_channels}), got {tuple(x_t.shape)}")
        factor = c.patch_size * 2 ** (len(c.channel_mults) - 1)
        if x_t.shape[2] % factor or x_t.shape[3] % factor:
            patches = f"cut into patches of {c.patch_size}, then " if c.patch_size > 1 else ""
            raise ValueError(f"x_t height and width must be divisible by {factor} ({patches}the U-Net halves them "
                             f"{len(c.channel_mults) - 1} times), got {x_t.shape[2]}x{x_t.shape[3]}")
        check_on_device("x_t", x_t, self.stem.weight, "UNet")
        dtype = self.stem.weight.dtype
        if x_t.dtype != dtype and not torch.is_autocast_enabled(x_t.device.type):
            raise TypeError(f"x_t has dtype {x_t.dtype} but the UNet's weights are {dtype}; pass x_t.to({dtype})")
        B = x_t.shape[0]
        t = check_model_timesteps(t, B, x_t)
        if c.num_classes is not None:
            if cond is None:
                cond = torch.full((B,), c.num_classes, device=x_t.device)  # all "no label"
            if not isinstance(cond, Tensor) or cond.is_floating_point() or cond.dtype == torch.bool:
                raise TypeError(f"cond must be a (B,) tensor of integer class labels, got {cond!r:.80}")
            if cond.shape != (B,) or (cond.device.type == "cpu" and  # values read on the CPU only (no sync)
                                      (bool((cond < 0).any()) or bool((cond > c.num_classes).any()))):
                raise ValueError(f"cond must hold {B} labels in [0, {c.num_classes}] ({c.num_classes} = no label), "
                                 f"got shape {tuple(cond.shape)}")
            return x_t, t, cond, (None, None)
        if c.cond_dim is not None:
            if cond is None:
                return x_t, t, None, (self.null_context.expand(B, 1, c.cond_dim), None)  # (B, 1, cond_dim)
            return x_t, t, None, split_context(cond, B, c.cond_dim)  # (B, L, cond_dim), (B, L) or None
        if cond is not None:
            raise ValueError("this UNet is unconditional (num_classes and cond_dim are None): cond must be None")
        return x_t, t, None, (None, None)

    def drop_cond(self, cond, drop: Tensor):
        """cond with the samples where drop is True replaced by the null condition (CFG training).
        A (context, mask) tuple keeps its form: dropped rows get the null context and a mask of all True."""
        c = self.config
        if c.num_classes is not None:
            return torch.where(drop, torch.full_like(cond, c.num_classes), cond)  # (B,)
        if c.cond_dim is not None:
            context, mask = split_context(cond, drop.shape[0], c.cond_dim)
            null = self.null_context.to(context.dtype).expand_as(context)
            context = torch.where(drop[:, None, None], null, context)  # attention to L copies = to one
            if mask is None:
                return context
            return context, mask | drop[:, None]  # (B, L, cond_dim), (B, L): the null copies all count
        raise ValueError("this UNet is unconditional: there is no condition to drop")

    # ------------------------------------------------------------------------------ forward
    @staticmethod
    def _run(blocks: nn.ModuleList, h: Tensor, emb: Tensor, context: tuple) -> Tensor:
        for block in blocks:
            if isinstance(block, ResBlock):
                h = block(h, emb)
            else:  # a mask only when there is one: blocks written as forward(x, context) keep working
                h = block(h, context[0]) if context[1] is None else block(h, *context)
        return h

    def forward(self, x_t: Tensor, t, cond=None) -> Tensor:
        x_t, t, labels, context = self._check_inputs(x_t, t, cond)
        emb = self.time_embed(t)  # (B, emb_dim)
        if labels is not None:
            emb = emb + self.class_embed(labels)  # (B, emb_dim)
        p = self.config.patch_size
        # eq-patchify: each p x p patch of each channel becomes p^2 channels at H / p, W / p (a reshape)
        h = self.stem(F.pixel_unshuffle(x_t, p) if p > 1 else x_t)  # (B, base_channels, H / p, W / p)
        skips = []
        for level, blocks in enumerate(self.down):
            h = self._run(blocks, h, emb, context)  # (B, channels[level], H / (p 2**level), W / (p 2**level))
            skips.append(h)
            if level < len(self.downsample):
                h = self.downsample[level](h)
        h = self._run(self.mid, h, emb, context)
        for i, blocks in enumerate(self.up):  # deepest level first
            h = torch.cat([h, skips.pop()], dim=1)  # (B, ch + channels[level], ...)
            h = self._run(blocks, h, emb, context)
            if i < len(self.upsample):
                h = self.upsample[i](h)
        out = self.out(h)  # (B, out_channels * p^2, H / p, W / p)
        return F.pixel_shuffle(out, p) if p > 1 else out  # (B, out_channels, H, W): the inverse reshape


# ---------------------------------------------------------------------------------- accounting
