"""The text-conditioned MNIST model of chapter 11: digits drawn from prompts in free words.

- `mnist_text_recipe(profile)`: chapter 07's MNIST recipe with cross-attention to a 384-d context
  (`cond_dim`, the width of all-MiniLM-L6-v2's token states), in the cpu profile 4,500 steps instead
  of 5,000 (the cross-attention costs ~10 % per step; training stays within 10 minutes on 2 cores),
  and prompt dropout `p_uncond` = 0.1:
  with that probability a training prompt is replaced by the U-Net's learned null context, so one
  network learns eps(x_t, t, prompt) and eps(x_t, t, null) for classifier-free guidance on text
  (Ho & Salimans 2022).
- `training_captions(labels, split, seed)`: one caption per training image, drawn from the
  training phrasings of its digit (data/captions.py); held-out phrasings never appear.
- `prompt_conditions(encoder, captions)`: (states, mask) for the trainer, one row per image. The
  frozen encoder runs once per distinct caption (its cache), not once per image or per step.
- `load_or_train_mnist_text`: the model through the shared checkpoint cache; the key holds the
  recipe, the data, the captions and the encoder's weights.
"""
from __future__ import annotations

import dataclasses
import hashlib

import torch
from torch import Tensor, nn

from .._checks import check_int
from ..data.captions import CaptionSplit, caption_split, sample_captions
from ..nets.text_encoder import TextEncoder, check_prompts
from .recipes import Recipe, load_or_train_mnist_ddpm, load_training_data, mnist_ddpm_recipe
from .train import TrainResult

P_EMPTY = 0.1      # prompt dropout to the null context (Ho & Salimans 2022 found 0.1-0.2 best)
TEXT_DIM = 384     # width of all-MiniLM-L6-v2's token states
CPU_STEPS = 4500   # training steps of the cpu profile (chapter 07's recipe: 5,000 without cross-attention)
CAPTION_SEED = 0   # the seed of the caption split and of the captions drawn for the training images


def mnist_text_recipe(profile: str | None = None) -> Recipe:
    """The prompt-conditioned MNIST U-Net: chapter 07's recipe of `profile` + cross-attention + prompt dropout."""
    base = mnist_ddpm_recipe(profile)  # checks the profile name
    steps = CPU_STEPS if base.profile == "cpu" else base.train.steps
    return dataclasses.replace(base, kind="tddpm-mnist",
                               unet=dataclasses.replace(base.unet, cond_dim=TEXT_DIM),
                               train=dataclasses.replace(base.train, p_uncond=P_EMPTY, steps=steps))


def training_captions(labels: Tensor, split: CaptionSplit | None = None, seed: int = CAPTION_SEED) -> list[str]:
    """One training caption per label (the split's training phrasings only), drawn with `seed`."""
    seed = check_int("seed", seed, low=0)
    split = caption_split(seed) if split is None else split
    return sample_captions(labels, split, "train", generator=torch.Generator().manual_seed(seed))


def prompt_conditions(encoder: TextEncoder, captions: list[str], length: int | None = None,
                      batch: int = 4096) -> tuple[Tensor, Tensor]:
    """(states (N, L, dim), mask (N, L)) of the captions, padded to the longest (or to `length`).
    The encoder's cache makes this one transformer run per distinct caption."""
    if not isinstance(encoder, TextEncoder):
        raise TypeError(f"encoder must be a TextEncoder, got {type(encoder).__name__}")
    distinct = list(dict.fromkeys(check_prompts(captions)))
    longest = max(len(t) for t in encoder.encode(distinct).tokens)  # fills the cache once
    length = longest if length is None else length
    parts = [encoder.encode(captions[i:i + batch], length=length) for i in range(0, len(captions), batch)]
    return torch.cat([p.states for p in parts]), torch.cat([p.mask for p in parts])


def encoder_fingerprint(encoder: TextEncoder) -> dict:
    """What the model's weights depend on in the encoder: its folder's name, width and a hash of its weights."""
    weights = sorted(encoder.path.glob("*.safetensors")) or sorted(encoder.path.glob("*.bin"))
    digest = hashlib.sha256()
    for f in weights:
        digest.update(f.read_bytes())
    return {"encoder": encoder.path.name, "dim": encoder.dim, "max_length": encoder.max_length,
            "weights_sha256": digest.hexdigest()[:16]}


def load_or_train_mnist_text(profile: str | None = None, encoder: TextEncoder | None = None, progress: bool = True,
                             device=None, train_steps: int | None = None) -> tuple[nn.Module, TrainResult, Recipe]:
    """(model, result, recipe) of mnist_text_recipe(profile): from the cache, or trained now (EMA weights).

    encoder: the frozen TextEncoder (default: a new one; pass the chapter's to share its cache).
    train_steps: train for this many steps instead of the recipe's (the learning-rate schedule
    follows; for measurements that must fit a shorter budget); None keeps the recipe.
    """
    recipe = mnist_text_recipe(profile)
    if train_steps is not None:
        check_int("train_steps", train_steps, low=recipe.train.warmup_steps + 1)
        recipe = dataclasses.replace(recipe, train=dataclasses.replace(recipe.train, steps=train_steps))
    encoder = TextEncoder() if encoder is None else encoder
    if not isinstance(encoder, TextEncoder):
        raise TypeError(f"encoder must be a TextEncoder or None, got {type(encoder).__name__}")
    data, _ = load_training_data(recipe, progress=progress)
    captions = training_captions(data.labels)
    key = {"captions": hashlib.sha256("\n".join(captions).encode()).hexdigest()[:16],
           "caption_seed": CAPTION_SEED, **encoder_fingerprint(encoder)}
    return load_or_train_mnist_ddpm(recipe, progress=progress, device=device,
                                    cond=lambda: prompt_conditions(encoder, captions), cond_key=key)
