"""An MNIST judge: a small CNN that names the digit in a sample, or says "not a digit".

A plain digit classifier is a bad judge of generated images: it must spread all its probability
over the ten digits, so it happily gives >= 0.9 confidence to clamped noise (it calls it "8").
This judge has an eleventh output, REJECT, trained on garbage (garbage.py): noise, heavily
blurred digits, shuffled patches, two digits on top of each other, blobs, strokes, digits
drowned in noise.
A sample counts as a good digit only if its top class is a digit with probability >= threshold.

Its penultimate features (`MNISTJudge.features`) feed the feature-space distances in metrics.py.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from .._checks import check_float, check_int, check_tensor
from ..checkpoint import cached_model
from ..data.datasets import load_dataset
from .garbage import GARBAGE_KINDS, draw_garbage, garbage  # noqa: F401 (garbage: re-exported)

REJECT = 10  # index of the "not a digit" class


@dataclass(frozen=True)
class JudgeConfig:
    widths: tuple[int, ...] = (16, 32, 64)  # channels of the conv blocks (each halves H and W)
    hidden: int = 128                       # width of the penultimate layer = feature dimension F
    steps: int = 2400                       # optimiser steps (~21 passes over 10k digits); 400 accepted only 93 %
                                            # of held-out real digits (benchmarks/results/judge_calibration.md)
    batch: int = 128                        # images per step, real digits and garbage together
    lr: float = 3e-3                        # peak AdamW learning rate (one-cycle schedule)
    weight_decay: float = 1e-4              # AdamW weight decay
    max_shift: int = 2                      # augmentation: random shifts of up to this many pixels
    garbage_fraction: float = 0.3           # share of each batch that is garbage (class REJECT);
                                            # 0.0 trains a plain 10-way digit classifier
    garbage_weights: tuple[float, ...] = (1, 1, 0.5, 1, 1.5, 1.5, 1.5, 1, 1, 1)  # mix over
                                            # GARBAGE_KINDS (same order), normalised when used
    seed: int = 0                           # seeds weights, batches, augmentation and garbage

    @classmethod
    def tiny(cls, **changes) -> "JudgeConfig":
        """A small judge, about 1/40 of the default's compute (~8 s on one CPU core): tests and smoke."""
        return cls(**{"widths": (8, 16, 32), "hidden": 64, "steps": 250, "batch": 64, "lr": 5e-3,
                      **changes})


# ---------------------------------------------------------------------------------------------
# The network
# ---------------------------------------------------------------------------------------------

class MNISTJudge(nn.Module):
    """Conv blocks (conv3x3-BN-ReLU-maxpool) and an MLP head with 11 outputs: digits + REJECT."""

    def __init__(self, config: JudgeConfig = JudgeConfig()):
        super().__init__()
        if not isinstance(config, JudgeConfig):
            raise TypeError(f"config must be a JudgeConfig, got {type(config).__name__}")
        if not 1 <= len(config.widths) <= 4:  # each block halves 28x28; a fifth would leave 0x0
            raise ValueError(f"config.widths must list 1 to 4 channel counts, got {config.widths}")
        for w in config.widths:
            check_int("config.widths entries", w, low=1)
        check_int("config.hidden", config.hidden, low=1)
        self.config = config
        blocks, c_in, size = [], 1, 28
        for c_out in config.widths:
            blocks += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(),
                       nn.MaxPool2d(2)]
            c_in, size = c_out, size // 2
        self.conv = nn.Sequential(*blocks)
        self.hidden = nn.Sequential(nn.Flatten(), nn.Linear(c_in * size * size, config.hidden),
                                    nn.ReLU())
        self.head = nn.Linear(config.hidden, REJECT + 1)

    def features(self, x: Tensor) -> Tensor:
        """Penultimate features (B, F) of images x (B, 1, 28, 28) in [-1, 1]."""
        return self.hidden(self.conv(x))

    def forward(self, x: Tensor) -> Tensor:
        """Logits (B, 11): digits 0-9, then REJECT."""
        return self.head(self.features(x))


# ---------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------

def random_shift(x: Tensor, max_shift: int, generator: torch.Generator) -> Tensor:
    """Shift each image by up to max_shift pixels in x and y, filling with background (-1)."""
    if max_shift == 0:
        return x
    n, m = len(x), max_shift
    padded = F.pad(x, (m,) * 4, value=-1.0)                           # (n, 1, 28+2m, 28+2m)
    dy, dx = torch.randint(0, 2 * m + 1, (2, n, 1), generator=generator, device=x.device)
    r = torch.arange(28, device=x.device)
    rows, cols = (dy + r)[:, :, None], (dx + r)[:, None, :]           # (n, 28, 1), (n, 1, 28)
    return padded[torch.arange(n, device=x.device)[:, None, None], 0, rows, cols][:, None]


def train_judge(images: Tensor, labels: Tensor, config: JudgeConfig = JudgeConfig(),
                progress: bool = True) -> MNISTJudge:
    """Train an MNISTJudge on real digits (labels 0-9) plus fresh garbage (label REJECT).

    Each step: batch * (1 - garbage_fraction) random digits, the rest fresh garbage made from
    the training digits, all randomly shifted by up to max_shift pixels. Seeded by config.seed
    (the global RNG is left alone); runs on the device of `images`; returns the model in eval mode.
    """
    check_tensor("images", images, min_dim=4)
    if tuple(images.shape[1:]) != (1, 28, 28):
        raise ValueError(f"images must have shape (N, 1, 28, 28), got {tuple(images.shape)}")
    if not isinstance(labels, Tensor) or labels.shape != (len(images),) or labels.is_floating_point():
        raise ValueError(f"labels must be an integer tensor of shape ({len(images)},), got "
                         f"{type(labels).__name__} {tuple(getattr(labels, 'shape', ()))}")
    if bool((labels < 0).any()) or bool((labels > 9).any()):
        raise ValueError("labels must be digits 0-9")
    check_float("config.garbage_fraction", config.garbage_fraction, low=0, high=1, high_open=True)
    check_int("config.steps", config.steps, low=1)
    check_int("config.batch", config.batch, low=2)
    check_float("config.lr", config.lr, low=0.0, low_open=True)
    check_float("config.weight_decay", config.weight_decay, low=0.0)
    check_int("config.max_shift", config.max_shift, low=0)
    check_int("config.seed", config.seed, low=0)
    w = config.garbage_weights
    if len(w) != len(GARBAGE_KINDS) or any(v < 0 for v in w) or sum(w) <= 0:
        raise ValueError(f"config.garbage_weights must be {len(GARBAGE_KINDS)} non-negative numbers "
                         f"(one per kind in {GARBAGE_KINDS}) with a positive sum, got {w}")

    device, g = images.device, torch.Generator(images.device).manual_seed(config.seed)
    labels = labels.to(device, torch.long)
    with torch.random.fork_rng(devices=[]):                           # seeded init, global RNG untouched
        torch.manual_seed(config.seed)
        model = MNISTJudge(config).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, config.lr, total_steps=config.steps)
    n_bad = round(config.garbage_fraction * config.batch)
    weights = torch.as_tensor(config.garbage_weights, dtype=torch.float64)
    model.train()
    bar = tqdm(range(config.steps), desc="judge", disable=not progress)
    for step in bar:
        idx = torch.randint(len(images), (config.batch - n_bad,), generator=g, device=device)
        x, y = images[idx], labels[idx]
        if n_bad:
            bad = draw_garbage(n_bad, images, g, GARBAGE_KINDS, weights, labels)
            x = torch.cat([x, bad])
            y = torch.cat([y, torch.full((n_bad,), REJECT, device=device, dtype=y.dtype)])
        logits = model(random_shift(x, config.max_shift, g))
        loss = F.cross_entropy(logits, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % 25 == 0 or step == config.steps - 1:
            bar.set_postfix(loss=f"{loss.item():.3f}")
    return model.eval()


# ---------------------------------------------------------------------------------------------
# Judging samples
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class JudgeReport:
    predicted: Tensor           # (N,) top class per sample, 0-9 or REJECT (10)
    confidence: Tensor          # (N,) softmax probability of that top class
    threshold: float            # a sample is a confident digit if top class < 10 and confidence >= this
    confident_fraction: float   # share of all samples that are confident digits
    reject_fraction: float      # share of all samples whose top class is REJECT
    class_shares: Tensor        # (10,) share of each digit among the confident digits (zeros if none)
    classes_present: tuple      # digits with at least one confident sample
    balanced: bool              # every class share >= 4 % and none > 20 % (GUIDE: judging samples)

    @classmethod
    def from_probs(cls, probs: Tensor, threshold: float = 0.9) -> "JudgeReport":
        """Summarise softmax probabilities (N, 11) into a report."""
        check_tensor("probs", probs, min_dim=2)
        if probs.dim() != 2 or probs.shape[1] != REJECT + 1:
            raise ValueError(f"probs must have shape (N, {REJECT + 1}), got {tuple(probs.shape)}")
        if bool((probs < 0).any()) or not torch.allclose(probs.sum(1), torch.ones_like(probs[:, 0]),
                                                        atol=1e-4):
            raise ValueError("probs must be softmax probabilities (each row >= 0, summing to 1), "
                             "not logits")
        check_float("threshold", threshold, low=0, high=1)
        confidence, predicted = probs.detach().float().cpu().max(dim=1)
        good = (predicted < REJECT) & (confidence >= threshold)
        counts = torch.bincount(predicted[good], minlength=REJECT)[:REJECT].double()
        shares = counts / counts.sum() if bool(good.any()) else counts
        return cls(predicted=predicted, confidence=confidence, threshold=float(threshold),
                   confident_fraction=float(good.double().mean()),
                   reject_fraction=float((predicted == REJECT).double().mean()),
                   class_shares=shares,
                   classes_present=tuple(int(c) for c in (counts > 0).nonzero().flatten()),
                   balanced=bool(good.any()) and bool((shares >= 0.04).all() & (shares <= 0.20).all()))

    def to_markdown(self) -> str:
        """A short Markdown summary: fractions, then one row of per-digit shares."""
        n = len(self.predicted)
        head = (f"{n} samples: **{self.confident_fraction:.1%} confident digits** "
                f"(p >= {self.threshold:g}), {self.reject_fraction:.1%} rejected, "
                f"{len(self.classes_present)}/10 digits present, "
                f"{'balanced' if self.balanced else 'NOT balanced'} (each 4-20 %).")
        digits = "| digit | " + " | ".join(str(d) for d in range(10)) + " |"
        rule = "|---|" + "---:|" * 10
        row = "| share | " + " | ".join(f"{float(s):.0%}" for s in self.class_shares) + " |"
        return "\n".join([head, "", digits, rule, row])

    def __str__(self) -> str:
        return self.to_markdown()


@torch.no_grad()
def judge(model: MNISTJudge, x: Tensor, threshold: float = 0.9, batch: int = 512) -> JudgeReport:
    """Judge images x (N, 1, 28, 28) in [-1, 1]: which digit, how sure, how many are garbage."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an MNISTJudge (an nn.Module), got {type(model).__name__}")
    check_tensor("x", x, min_dim=4)
    if tuple(x.shape[1:]) != (1, 28, 28):
        raise ValueError(f"x must have shape (N, 1, 28, 28), got {tuple(x.shape)}")
    check_int("batch", batch, low=1)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    probs = torch.cat([model(x[i:i + batch].to(device)).softmax(dim=1).cpu()
                       for i in range(0, len(x), batch)])
    model.train(was_training)
    return JudgeReport.from_probs(probs, threshold)


# ---------------------------------------------------------------------------------------------
# Cached judge for the chapters
# ---------------------------------------------------------------------------------------------

def describe_data(images: Tensor, labels: Tensor) -> dict:
    """A content fingerprint of a data set (size + SHA-256), so a cached judge matches its data."""
    h = hashlib.sha256()
    h.update(images.detach().cpu().float().contiguous().numpy().tobytes())
    h.update(labels.detach().cpu().to(torch.int64).contiguous().numpy().tobytes())
    return {"n": len(images), "sha256": h.hexdigest()[:16]}


def load_or_train_judge(dataset=None, config: JudgeConfig = JudgeConfig(), cache: bool = True,
                        progress: bool = True) -> MNISTJudge:
    """The judge for `dataset` (anything with .images and .labels; default: the MNIST test split).

    With cache=True it comes from the checkpoint cache when a judge with this config was trained
    on these very data before (key: "mnist-judge", config, data fingerprint); else it is trained
    and saved, so later chapters reuse it. Returned in eval mode, on the device of the images.
    """
    if dataset is None:
        dataset = load_dataset("mnist", split="test")
    if not (hasattr(dataset, "images") and hasattr(dataset, "labels")):
        raise TypeError(f"dataset must have .images and .labels (e.g. an ImageDataset), got {type(dataset).__name__}")
    images, labels = dataset.images, dataset.labels
    if not cache:
        return train_judge(images, labels, config, progress=progress)
    with torch.random.fork_rng(devices=[]):                           # the weights are overwritten
        model = MNISTJudge(config)
    data = {"name": getattr(dataset, "name", None), "split": getattr(dataset, "split", None),
            **describe_data(images, labels)}
    model = cached_model("mnist-judge", model, [config, data],
                         lambda _: train_judge(images, labels, config, progress=progress))
    return model.to(images.device).eval()
