"""The training loop (Ho et al. 2020, Algorithm 1): minimise L_simple with AdamW (Loshchilov & Hutter 2019).

Each step draws a mini-batch x0, a timestep t ~ Uniform{1..T} and noise eps ~ N(0, I) per sample,
forms x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps (eq-q-sample) and minimises

    L_simple = E || eps - eps_hat(x_t, t) ||^2                 (eq-l-simple; Ho et al. 2020, Eq. 14)

Around it: linear learning-rate warm-up (and an optional cosine decay), gradient clipping, an
exponential moving average (EMA) of the weights, bf16 autocast on GPU, a progress bar, checkpoints
and exact resume. All randomness (batches, t, eps, label dropout) comes from one torch.Generator
seeded with config.seed, and the global RNG (dropout) is seeded too, inside torch.random.fork_rng
so the caller's RNG is untouched. Everything random is saved in the checkpoint, so a resumed run
repeats the uninterrupted one exactly.
"""
from __future__ import annotations

import copy
import dataclasses
import math
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from .._checks import check_float, check_int, check_tensor
from ..checkpoint import file_lock, load_checkpoint, load_weights, save_checkpoint
from ..core.forward import q_sample
from ..core.schedules import check_schedule
from ..core.parameterization import v_from_eps

# Fields that change the trajectory; a checkpoint made with other values cannot be resumed.
# (steps may grow between runs; log_every and checkpoint_every do not change the numbers.)
_FREE_FIELDS = ("steps", "log_every", "checkpoint_every")


@dataclass(frozen=True)
class TrainConfig:
    """How to train a denoiser. The defaults suit a small U-Net on MNIST."""

    steps: int = 1000               # optimizer steps in total (a resumed run continues up to this)
    batch_size: int = 64            # samples per step, drawn with replacement
    lr: float = 2e-4                # peak AdamW learning rate (Ho et al. 2020: 2e-4)
    weight_decay: float = 0.0       # AdamW decoupled weight decay
    adam_beta2: float = 0.999       # AdamW's decay of the squared-gradient average (beta1 stays 0.9)
    warmup_steps: int = 100         # lr rises linearly to `lr` over the first steps (Ho et al.: 5000)
    lr_decay: str = "none"          # after warm-up: "none" keeps `lr`; "cosine" decays it to 0 at `steps`
    grad_clip: float | None = 1.0   # clip the global gradient norm to this (None: no clipping)
    ema_decay: float = 0.999        # EMA of the weights (Ho et al.: 0.9999 for 800k steps)
    seed: int = 0                   # seeds the batch/t/eps generator and the global RNG (dropout)
    log_every: int = 50             # progress-bar update every this many steps (running mean loss)
    checkpoint_every: int = 0       # also save every this many steps (0: only at the end)
    prediction: str = "eps"         # network target: "eps" (eq-l-simple) or "v" (eq-v)
    min_snr_gamma: float | None = None  # weight each sample by min(SNR_t, gamma) / SNR_t (Hang et al. 2023)
    p_uncond: float = 0.0           # probability of dropping a sample's condition (CFG; Ho & Salimans 2022)
    amp: str = "auto"               # "auto": bf16 autocast on CUDA only; "bf16": always; "off": never
    channels_last: bool = False     # NHWC memory order for conv weights and image batches: the same maths,
                                    # other float rounding; often faster for conv nets on a CPU

    def __post_init__(self):
        check_int("steps", self.steps, low=1)
        check_int("batch_size", self.batch_size, low=1)
        check_float("lr", self.lr, low=0.0, low_open=True)
        check_float("weight_decay", self.weight_decay, low=0.0)
        check_float("adam_beta2", self.adam_beta2, low=0.0, high=1.0, high_open=True)
        check_int("warmup_steps", self.warmup_steps, low=0)
        if self.lr_decay not in ("none", "cosine"):
            raise ValueError(f"lr_decay must be 'none' or 'cosine', got {self.lr_decay!r}")
        if self.lr_decay == "cosine" and self.warmup_steps >= self.steps:
            raise ValueError(f"warmup_steps must be below steps ({self.steps}) with lr_decay='cosine', "
                             f"got {self.warmup_steps}")
        if self.grad_clip is not None:
            check_float("grad_clip", self.grad_clip, low=0.0, low_open=True)
        check_float("ema_decay", self.ema_decay, low=0.0, high=1.0, high_open=True)
        check_int("seed", self.seed, low=0)
        check_int("log_every", self.log_every, low=1)
        check_int("checkpoint_every", self.checkpoint_every, low=0)
        if self.prediction not in ("eps", "v"):
            raise ValueError(f"prediction must be 'eps' or 'v', got {self.prediction!r}")
        check_float("p_uncond", self.p_uncond, low=0.0, high=1.0, high_open=True)
        if self.min_snr_gamma is not None:
            check_float("min_snr_gamma", self.min_snr_gamma, low=0.0, low_open=True)
        if self.amp not in ("auto", "bf16", "off"):
            raise ValueError(f"amp must be 'auto', 'bf16' or 'off', got {self.amp!r}")


@dataclass
class TrainResult:
    """What train returns. The model passed in holds the raw (last-step) weights."""

    history: list[float]  # L_simple of every step, from step 1 (resumed runs include the earlier steps)
    ema_model: nn.Module  # a copy of the model holding the EMA weights (use it for sampling)
    steps_done: int       # steps in the history
    seconds: float        # wall-clock time of this call (not of earlier, resumed-from runs)
    resumed_from: int = 0  # step the run continued from (0: trained from scratch)
    epochs: float = 0.0    # passes over the data: steps_done * batch_size / number of training images
    trained_seconds: float | None = None  # training time recorded with the weights (this call's, or the
    #                                       cached checkpoint's when nothing was trained; None: unknown)


@torch.no_grad()
def update_ema(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """theta_ema <- decay * theta_ema + (1 - decay) * theta (eq-ema; Polyak & Juditsky 1992)."""
    for name, module in (("ema", ema), ("model", model)):
        if not isinstance(module, nn.Module):
            raise TypeError(f"{name} must be a torch.nn.Module, got {type(module).__name__}")
    decay = check_float("decay", decay, low=0.0, high=1.0)
    shapes = [p.shape for p in ema.parameters()], [p.shape for p in model.parameters()]
    if shapes[0] != shapes[1]:
        raise ValueError("ema and model must have the same parameters (same architecture); their shapes differ")
    for p_ema, p in zip(ema.parameters(), model.parameters()):
        p_ema.lerp_(p, 1.0 - decay)
    for b_ema, b in zip(ema.buffers(), model.buffers()):
        b_ema.copy_(b)


def _ema_decay(config: TrainConfig, step: int) -> float:
    # warm-up min(decay, (1 + s) / (10 + s)) as in TensorFlow's ExponentialMovingAverage: the average
    # does not drag the random initial weights along for thousands of steps on a short run
    return min(config.ema_decay, (1.0 + step) / (10.0 + step))


def learning_rate(config: TrainConfig, step: int) -> float:
    """The learning rate of step `step` (1-based): linear warm-up, then constant or cosine decay to 0."""
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    step = check_int("step", step, low=1, high=config.steps)
    if config.warmup_steps and step <= config.warmup_steps:
        return config.lr * step / config.warmup_steps
    if config.lr_decay == "cosine":  # Loshchilov & Hutter (2017), one cycle without restarts
        progress = (step - config.warmup_steps) / (config.steps - config.warmup_steps)
        return config.lr * 0.5 * (1.0 + math.cos(math.pi * progress))
    return config.lr


def loss_weight(config: TrainConfig, t: Tensor, sched) -> Tensor | None:
    """Per-sample weights of the squared error, or None for L_simple's uniform weight (eq-l-simple).

    Min-SNR-gamma (Hang et al. 2023) caps the weight the loss gives to nearly clean timesteps:
    with eps-prediction it is min(SNR_t, gamma) / SNR_t, so t with SNR_t <= gamma keep weight 1 and
    cleaner ones, whose eps is hard to learn and matters little for samples, count less. With
    v-prediction the squared v-error is (SNR_t + 1) / SNR_t times the eps-error, so the weight becomes
    min(SNR_t, gamma) / (SNR_t + 1): the same weighted objective.
    """
    if config.min_snr_gamma is None:
        return None
    snr = sched.snr.to(t.device)[t]  # t >= 1: finite
    capped = snr.clamp(max=config.min_snr_gamma)
    return (capped / snr if config.prediction == "eps" else capped / (snr + 1)).float()


def batch_cond(cond, idx: Tensor, device, dtype):
    """The rows idx of cond (a tensor or a tuple of tensors), on `device`; floating parts (contexts)
    take the model's dtype, labels and masks keep theirs."""
    if isinstance(cond, tuple):
        return tuple(batch_cond(part, idx, device, dtype) for part in cond)
    c = cond[idx].to(device)  # (B, ...)
    return c.to(dtype) if c.is_floating_point() else c


def _check_resumable(meta: dict, config: TrainConfig, model: nn.Module, data: Tensor, path: Path) -> None:
    # a cosine decay depends on the total number of steps, so then `steps` must match as well;
    # fields missing from an older checkpoint take their defaults
    free = _FREE_FIELDS if config.lr_decay == "none" else tuple(f for f in _FREE_FIELDS if f != "steps")
    saved = {**dataclasses.asdict(TrainConfig()), **meta.get("config", {})}
    saved = {k: v for k, v in saved.items() if k not in free}
    now = {k: v for k, v in dataclasses.asdict(config).items() if k not in free}
    diff = sorted(k for k in set(saved) | set(now) if saved.get(k) != now.get(k))
    problems = [f"config fields {diff} differ ({', '.join(f'{k}: {saved.get(k)!r} -> {now.get(k)!r}' for k in diff)})"
                if diff else "",
                f"model class {meta.get('model_class')} -> {type(model).__name__}"
                if meta.get("model_class") != type(model).__name__ else "",
                f"data shape {meta.get('data_shape')} -> {list(data.shape)}"
                if meta.get("data_shape") != list(data.shape) else ""]
    problems = [p for p in problems if p]
    if problems:
        raise ValueError(f"cannot resume from {path}: {'; '.join(problems)}. Delete the file, pass another "
                         "checkpoint_path, or call train(..., resume=False) to start afresh")


def train(model: nn.Module, data: Tensor, sched, config: TrainConfig = TrainConfig(), *, cond=None,
          checkpoint_path=None, resume: bool = True, progress: bool = True) -> TrainResult:
    """Train `model` (in place) to predict eps on `data` (N, ...) with L_simple; see the module docstring.

    data may live on any device and dtype: each batch is moved to the model's device and dtype.
    cond: optional per-sample conditions (N,) labels or (N, [L,] cond_dim) contexts, or a tuple of
    per-sample tensors such as (contexts (N, L, cond_dim), masks (N, L)); each is indexed by the batch
    and the batch's condition is passed to model(x_t, t, cond). checkpoint_path: save there every config.checkpoint_every steps and at the
    end; with resume=True an existing file is continued (a finished one is just loaded).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    sched = check_schedule(sched)
    check_tensor("data", data, min_dim=2)
    N, B = data.shape[0], config.batch_size
    if cond is not None:
        for i, part in enumerate(cond if isinstance(cond, tuple) else (cond,)):
            if not isinstance(part, Tensor) or part.dim() == 0 or part.shape[0] != N:
                where = f"cond[{i}]" if isinstance(cond, tuple) else "cond"
                raise ValueError(f"{where} must be a tensor with one row per data sample ({N}), "
                                 f"got {getattr(part, 'shape', type(part).__name__)}")
    if config.p_uncond > 0 and (cond is None or not hasattr(model, "drop_cond")):
        raise ValueError("p_uncond > 0 needs cond (labels or contexts) and a conditional model with drop_cond")
    device, dtype = next(model.parameters()).device, next(model.parameters()).dtype
    use_amp = config.amp == "bf16" or (config.amp == "auto" and device.type == "cuda")
    data_range = (float(data.min()), float(data.max()))
    image_batches = config.channels_last and data.dim() == 4
    if image_batches:
        model.to(memory_format=torch.channels_last)  # in place: the caller's model keeps this layout

    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay,
                            betas=(0.9, config.adam_beta2))
    ema = copy.deepcopy(model).eval().requires_grad_(False)  # a separate copy, updated after every step
    for p in ema.parameters():
        p.grad = None
    g = torch.Generator().manual_seed(config.seed)  # CPU generator: same draws on every device
    history: list[float] = []
    start, recorded = 0, None
    path = Path(checkpoint_path) if checkpoint_path is not None else None
    cuda = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    t_start = time.perf_counter()

    def save(step: int) -> None:
        state = {"model": model.state_dict(), "ema": ema.state_dict(), "optimizer": opt.state_dict(),
                 "step": step, "generator": g.get_state(), "torch_rng": torch.get_rng_state(),
                 "history": list(history)}
        if cuda:
            state["cuda_rng"] = torch.cuda.get_rng_state(device)
        meta = {"config": dataclasses.asdict(config), "model_class": type(model).__name__,
                "data_shape": list(data.shape), "seconds": time.perf_counter() - t_start}
        save_checkpoint(path, state, meta)

    was_training = model.training
    with (file_lock(path) if path is not None else nullcontext()), torch.random.fork_rng(devices=cuda):
        torch.manual_seed(config.seed)  # dropout's RNG; fork_rng restores the caller's state afterwards
        if path is not None and resume and path.exists():
            state, meta = load_checkpoint(path)
            _check_resumable(meta, config, model, data, path)
            load_weights(model, state["model"], path)
            load_weights(ema, state["ema"], path)
            opt.load_state_dict(state["optimizer"])
            g.set_state(state["generator"])
            torch.set_rng_state(state["torch_rng"])
            if cuda and "cuda_rng" in state:
                torch.cuda.set_rng_state(state["cuda_rng"], device)
            history, start = list(state["history"]), int(state["step"])
            recorded = meta.get("seconds")  # the time of the call that saved it
            if start > config.steps:
                raise ValueError(f"{path} holds {start} steps, more than config.steps={config.steps}; "
                                 "raise steps or use another checkpoint_path")
        model.train()
        bar = tqdm(total=config.steps, initial=start, desc=f"train {type(model).__name__}", unit="step",
                   disable=not progress or start == config.steps)
        for step in range(start + 1, config.steps + 1):
            idx = torch.randint(N, (B,), generator=g)
            x0 = data[idx].to(device=device, dtype=dtype)  # (B, ...)
            if image_batches:
                x0 = x0.contiguous(memory_format=torch.channels_last)
            t = torch.randint(1, sched.T + 1, (B,), generator=g).to(device)  # t ~ Uniform{1..T}
            eps = torch.randn(x0.shape, generator=g, dtype=x0.dtype).to(device)  # eps ~ N(0, I)
            c = None if cond is None else batch_cond(cond, idx, device, dtype)
            if config.p_uncond > 0:
                c = model.drop_cond(c, (torch.rand(B, generator=g) < config.p_uncond).to(device))
            x_t = q_sample(x0, t, eps, sched)  # eq-q-sample
            target = eps if config.prediction == "eps" else v_from_eps(eps, t, x_t, sched)  # eq-v
            lr = learning_rate(config, step)
            for group in opt.param_groups:
                group["lr"] = lr
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                pred = model(x_t, t) if c is None else model(x_t, t, c)
            weight = loss_weight(config, t, sched)
            if weight is None:
                loss = F.mse_loss(pred.float(), target.float())  # eq-l-simple (Ho et al. 2020, Eq. 14)
            else:  # the same squared error, each sample's mean weighted by w_t
                loss = (weight * (pred.float() - target.float()).pow(2).flatten(1).mean(1)).mean()
            if not bool(torch.isfinite(loss)):
                bar.close()
                raise RuntimeError(
                    f"training stopped: the loss is {loss.item()} at step {step}. Likely causes: the learning "
                    f"rate is too high (lr={config.lr}; try 3-10x lower or a longer warmup_steps), an AMP/bf16 "
                    f"overflow (amp={config.amp!r}, active={use_amp}; try amp='off'), or data outside a sensible "
                    f"range (data spans [{data_range[0]:.3g}, {data_range[1]:.3g}]; images should be in [-1, 1])."
                    + (f" The last checkpoint is {path}." if path is not None and path.exists() else ""))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip is not None:
                nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            opt.step()
            update_ema(ema, model, _ema_decay(config, step))
            history.append(loss.item())
            bar.update(1)
            if step % config.log_every == 0 or step == config.steps:
                recent = history[-config.log_every:]
                bar.set_postfix(loss=f"{sum(recent) / len(recent):.4f}", lr=f"{lr:.2g}", refresh=False)
            if path is not None and config.checkpoint_every and step % config.checkpoint_every == 0 \
                    and step < config.steps:
                save(step)
        bar.close()
        if path is not None and start < config.steps:
            save(config.steps)
    model.train(was_training)
    seconds = time.perf_counter() - t_start
    return TrainResult(history=history, ema_model=ema, steps_done=len(history), seconds=seconds,
                       resumed_from=start, epochs=len(history) * B / N,
                       trained_seconds=seconds if start < config.steps else recorded)
