"""The book's shared trained models: one recipe per model, sized by profile, reused through the cache.

Chapter 07 trains an unconditional DDPM on MNIST; chapters 08-17 sample from, distil, guide and
evaluate that same model. Notebooks share nothing but the checkpoint cache (GUIDE, section 3), so the
model must be defined in one place: here. Every chapter calls

    ema_model, result, recipe = dl.load_or_train_mnist_ddpm()     # recipe of the active profile

and gets the cached weights when a run with the same recipe (network, training, schedule, data)
finished before, or trains them - resuming an interrupted run - otherwise.

Profiles (GUIDE, section 6 has the measured CPU speeds the sizes come from):
- smoke: a ~57k-parameter U-Net and 40 steps on the test split. Proves the code path in seconds;
  it cannot draw digits.
- cpu:   the laptop baseline: a 0.55M-parameter U-Net (16-32-64 channels, one residual block per
  level, attention at 7x7), 5,000 steps of batch 32, lr 2e-3 with a cosine decay, channels_last,
  min-SNR-5 loss weights (eq-min-snr), sized for about 10 minutes of training on 2 cores. What it
  reaches, and the variants tried, are measured by benchmarks/mnist_recipe.py, mnist_recipe_trials.py
  and time_to_quality.py; their results live in benchmarks/results/ (mnist_recipe_cpu.md,
  mnist_recipe_trials.md, time_to_quality.md), not here.
- gpu:   a 5.3M-parameter U-Net (64-128-128), 20,000 steps of batch 128, bf16 autocast, L_simple (the
  min-SNR-5 gain was measured on the cpu recipe only).
cpu and gpu train on the 60k train split; when its files are absent and cannot be downloaded they
fall back to the 10k test split, say so, and record the split used in the key and the recipe.
"""
from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .._checks import check_int

from ..checkpoint import cache_path, load_checkpoint, load_weights
from ..eval.judge import JudgeConfig, MNISTJudge, load_or_train_judge
from ..data.datasets import ImageDataset, data_root, load_dataset
from ..data.download import DatasetNotFoundError
from ..profiles import PROFILES, device as default_device, profile as active_profile
from ..core.schedules import Schedule
from .edm import EDMPrecond
from .train import TrainConfig, TrainResult, train
from ..nets.unet import UNet, UNetConfig


@dataclass(frozen=True)
class Recipe:
    """Everything the weights of a shared model depend on."""

    kind: str                   # cache name of the model, e.g. "ddpm-mnist"
    profile: str                # the profile whose sizes these are (not part of the cache key)
    unet: UNetConfig            # the network
    train: TrainConfig          # the optimisation (steps, batch, lr, EMA, seed, ...)
    schedule: str               # noise schedule, a name for Schedule.named ("linear", "cosine", ...)
    T: int                      # number of diffusion steps
    dataset: str                # data set name for load_dataset
    split: str                  # split the model trains on: "train" or "test"
    n_images: int | None        # train on the first n images of the split; None: all of them
    fallback_split: str | None  # split to use when `split` cannot be loaded; None: no fallback

    def __post_init__(self):
        if not isinstance(self.unet, UNetConfig):
            raise TypeError(f"unet must be a UNetConfig, got {type(self.unet).__name__}")
        if not isinstance(self.train, TrainConfig):
            raise TypeError(f"train must be a TrainConfig, got {type(self.train).__name__}")
        check_int("T", self.T, low=1)
        Schedule.named(self.schedule, T=self.T)  # rejects unknown schedule names
        for name in ("split", "fallback_split"):
            value = getattr(self, name)
            if value is not None and value not in ("train", "test"):
                raise ValueError(f"{name} must be 'train' or 'test', got {value!r}")
        if self.n_images is not None:
            check_int("n_images", self.n_images, low=1)

    def make_schedule(self) -> Schedule:
        """The noise schedule the model is trained (and must be sampled) with."""
        return Schedule.named(self.schedule, T=self.T)

    def make_model(self) -> nn.Module:
        """A freshly initialised UNet, seeded by train.seed (the caller's RNG is left alone); wrapped in
        EDMPrecond (Karras et al.'s preconditioning, an eps model of the schedule) when train.prediction
        is "edm"."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.train.seed)
            net = UNet(self.unet)
        return EDMPrecond(net, self.make_schedule()) if self.train.prediction == "edm" else net


def mnist_ddpm_recipe(profile: str | None = None) -> Recipe:
    """The unconditional MNIST DDPM of chapter 07 at the sizes of `profile` (default: the active one)."""
    profile = active_profile() if profile is None else profile
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES} or None, got {profile!r}")
    if profile == "smoke":    # seconds on 2 CPU cores: proves the code path, draws no digits
        unet = UNetConfig(base_channels=8, channel_mults=(1, 2, 2), attention_levels=(2,), attention_heads=2,
                          groups=4)
        config = TrainConfig(steps=40, batch_size=32, lr=2e-3, warmup_steps=5, ema_decay=0.99, log_every=10,
                             min_snr_gamma=5.0)  # the cpu recipe's loss, so smoke runs its code path
        split, fallback = "test", None
    elif profile == "cpu":    # under 10 minutes on 2 cores (~280 img/s); mnist_recipe_cpu.md has the timing
        unet = UNetConfig(base_channels=16, channel_mults=(1, 2, 4), num_res_blocks=1, attention_levels=(2,),
                          attention_heads=4, groups=8)
        # min-SNR-5 (eq-min-snr): time_to_quality.md measured it against L_simple at the same steps
        config = TrainConfig(steps=5000, batch_size=32, lr=2e-3, warmup_steps=100, lr_decay="cosine",
                             ema_decay=0.999, channels_last=True, checkpoint_every=500, min_snr_gamma=5.0)
        split, fallback = "train", "test"
    else:                     # gpu: a bigger network, trained ten times longer with bf16 autocast
        unet = UNetConfig(base_channels=64, channel_mults=(1, 2, 2), num_res_blocks=2, attention_levels=(2,),
                          attention_heads=4, groups=8, dropout=0.1)
        config = TrainConfig(steps=20_000, batch_size=128, lr=3e-4, warmup_steps=500, ema_decay=0.9995,
                             log_every=100, checkpoint_every=2000)
        split, fallback = "train", "test"
    return Recipe(kind="ddpm-mnist", profile=profile, unet=unet, train=config, schedule="linear", T=1000,
                  dataset="mnist", split=split, n_images=None, fallback_split=fallback)


def mnist_judge_config(profile: str | None = None) -> JudgeConfig:
    """The in-book judge's configuration: the tiny one in smoke, the full one otherwise."""
    profile = active_profile() if profile is None else profile
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES} or None, got {profile!r}")
    return JudgeConfig.tiny() if profile == "smoke" else JudgeConfig()


def load_mnist_judge(profile: str | None = None, progress: bool = True) -> MNISTJudge:
    """The judge every chapter uses (trained on the MNIST test split, through the checkpoint cache)."""
    return load_or_train_judge(config=mnist_judge_config(profile), progress=progress)


def load_training_data(recipe: Recipe, progress: bool = True) -> tuple[ImageDataset, Recipe]:
    """The recipe's training images, and the recipe with the split actually used.

    When recipe.split cannot be loaded (files absent, no download possible) and the recipe has a
    fallback_split, a notice is printed and the fallback split is loaded instead.
    """
    if not isinstance(recipe, Recipe):
        raise TypeError(f"recipe must be a Recipe, got {type(recipe).__name__}")
    try:
        data = load_dataset(recipe.dataset, split=recipe.split, progress=progress)
    except DatasetNotFoundError as err:
        if recipe.fallback_split is None or recipe.fallback_split == recipe.split:
            raise
        print(f"NOTICE: the {recipe.dataset} {recipe.split!r} split is not available: its files are not in "
              f"{data_root() / recipe.dataset} and could not be downloaded ({str(err).splitlines()[0].rstrip(':')}). "
              f"Training on the {recipe.fallback_split!r} split instead; the cache key and the returned recipe "
              f"record split={recipe.fallback_split!r}. Put the official {recipe.split} files there to train on them.")
        recipe = dataclasses.replace(recipe, split=recipe.fallback_split, fallback_split=None)
        data = load_dataset(recipe.dataset, split=recipe.split, progress=progress)
    if recipe.n_images is not None:
        if not 1 <= recipe.n_images <= len(data):
            raise ValueError(f"recipe.n_images must be in [1, {len(data)}] for the {recipe.split} split, "
                             f"got {recipe.n_images}")
        data = dataclasses.replace(data, images=data.images[:recipe.n_images],
                                   labels=data.labels[:recipe.n_images])
    return data, recipe


def _describe(data: ImageDataset) -> dict:
    """What the weights depend on in the data: name, split, size and a SHA-256 of the pixels."""
    digest = hashlib.sha256(data.images.detach().cpu().contiguous().numpy().tobytes()).hexdigest()[:16]
    return {"dataset": data.name, "split": data.split, "n": len(data), "sha256": digest}


def checkpoint_path(recipe: Recipe, data: ImageDataset, *extra) -> Path:
    """Where the cache keeps the model trained by `recipe` on `data`.

    The key holds what the weights depend on: not the profile name, nor how often the run logs or
    saves (log_every, checkpoint_every), which leave the numbers unchanged. extra: plain
    descriptions of anything else the weights depend on (chapter 11: the captions and the encoder).
    """
    if not isinstance(recipe, Recipe):
        raise TypeError(f"recipe must be a Recipe, got {type(recipe).__name__}")
    train_config = dataclasses.replace(recipe.train, log_every=TrainConfig.log_every,
                                       checkpoint_every=TrainConfig.checkpoint_every)
    return cache_path(recipe.kind, UNet.__name__, recipe.unet, train_config,
                      {"schedule": recipe.schedule, "T": recipe.T}, _describe(data), *extra)


def load_or_train_mnist_ddpm(recipe: Recipe | None = None, progress: bool = True, device=None,
                             weights: str = "ema", cond=None, cond_key=None) -> tuple[nn.Module, TrainResult, Recipe]:
    """(model, result, recipe): the recipe's MNIST DDPM, from the checkpoint cache or trained now.

    recipe: default mnist_ddpm_recipe() of the active profile. A finished checkpoint is loaded
    without calling `train`; a missing or unfinished one is trained (or resumed) with `train`,
    which saves it. weights: "ema" (the averaged weights, for sampling) or "raw" (the last step's).
    result.history holds every step's loss; result.resumed_from == recipe.train.steps means nothing
    was trained in this call (then result.seconds is 0 and result.trained_seconds is the time recorded
    in the checkpoint); result.epochs counts passes over the training images.
    The returned recipe records the split actually used (see load_training_data). The model is in
    eval mode on `device` (default: dl.device()).
    cond, cond_key: for conditions other than the data set's labels (chapter 11's prompts): a
    function returning the per-sample conditions for `train` (called only if training is needed),
    and a plain description of them for the cache key. Default: the labels when the U-Net has classes.
    """
    recipe = mnist_ddpm_recipe() if recipe is None else recipe
    if not isinstance(recipe, Recipe):
        raise TypeError(f"recipe must be a Recipe or None, got {type(recipe).__name__}")
    if weights not in ("ema", "raw"):
        raise ValueError(f"weights must be 'ema' or 'raw', got {weights!r}")
    device = default_device() if device is None else torch.device(device)
    if (cond is None) != (cond_key is None) or (cond is not None and not callable(cond)):
        raise TypeError("cond and cond_key go together: cond a function returning the conditions, cond_key "
                        f"their description; got {type(cond).__name__} and {type(cond_key).__name__}")
    data, recipe = load_training_data(recipe, progress=progress)
    path = checkpoint_path(recipe, data, *([] if cond_key is None else [cond_key]))
    steps = recipe.train.steps
    if path.exists():
        state, meta = load_checkpoint(path)
        if int(state["step"]) == steps:  # finished: the cache hit, no training
            ema = load_weights(recipe.make_model(), state["ema"], path)
            model = ema if weights == "ema" else load_weights(recipe.make_model(), state["model"], path)
            result = TrainResult(history=list(state["history"]), ema_model=ema.to(device).eval(),
                                 steps_done=len(state["history"]), seconds=0.0, resumed_from=steps,
                                 epochs=steps * recipe.train.batch_size / len(data),
                                 trained_seconds=meta.get("seconds"))
            return model.to(device).eval(), result, recipe
    model = recipe.make_model().to(device)
    labels = data.labels if recipe.unet.num_classes is not None else None  # class-conditional (chapter 10)
    conditions = cond() if cond is not None else labels
    result = train(model, data.images, recipe.make_schedule(), recipe.train, cond=conditions, checkpoint_path=path,
                   progress=progress)
    out = result.ema_model if weights == "ema" else model
    return out.eval(), result, recipe


def training_seconds(recipe: Recipe) -> float | None:
    """Wall-clock seconds of the (last) training run stored in the cache for `recipe`, if any."""
    data, recipe = load_training_data(recipe, progress=False)
    path = checkpoint_path(recipe, data)
    if not path.exists():
        return None
    return float(load_checkpoint(path)[1].get("seconds", float("nan")))
