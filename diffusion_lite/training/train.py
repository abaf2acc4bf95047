"""The training loop (Ho et al. 2020, Algorithm 1): minimise L_simple with AdamW (Loshchilov & Hutter 2019).

Each step draws a mini-batch x0, a timestep t ~ Uniform{1..T} and noise eps ~ N(0, I) per sample,
forms x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps (eq-q-sample) and minimises

    L_simple = E || eps - eps_hat(x_t, t) ||^2                 (eq-l-simple; Ho et al. 2020, Eq. 14)

Around it: linear learning-rate warm-up (and an optional cosine decay), gradient clipping, an
exponential moving average (EMA) of the weights, bf16 autocast on GPU, a progress bar, checkpoints
and exact resume. All randomness (batches, t, eps, label dropout) comes from one torch.Generator
seeded with config.seed, and the global RNG (dropout) is seeded too, inside torch.random.fork_rng
so the caller's RNG is untouched. Everything random is saved in the checkpoint, so a resumed run
repeats the uninterrupted one exactly. prediction="edm" trains an EDMPrecond (training/edm.py) on
Karras et al.'s preconditioned loss instead (eq-edm-loss).

On an accelerator the inner loop never waits for the device: the random draws stay on the CPU
generator and travel through pinned memory without blocking, each step's loss stays on the device
and the history (one float per step, as on the CPU) is read, and checked for NaN/inf, once every
log_every steps (and before every checkpoint). The data set moves to the device once when it fits
(config.data_on_device); AdamW is fused on CUDA and uses its foreach kernels elsewhere.
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
from ..checkpoint import NEW_FIELD, file_lock, load_checkpoint, load_weights, save_checkpoint
from ..profiles import to_device
from ..core.forward import q_sample
from ..core.schedules import check_schedule
from ..core.parameterization import v_from_eps
from .edm import EDMPrecond, edm_check_schedule, edm_loss, edm_sigmas

# Fields that change the trajectory; a checkpoint made with other values cannot be resumed.
# (steps may grow between runs; log_every, checkpoint_every and data placement do not change the numbers.)
_FREE_FIELDS = ("steps", "log_every", "checkpoint_every", "data_on_device")
DEVICE_DATA_SHARE = 0.25  # data_on_device="auto" moves the data when it needs at most this share of free memory


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
    log_every: int = 50             # read the device's losses into the history, check them for NaN/inf and
                                    # update the progress bar every this many steps (running mean loss)
    checkpoint_every: int = 0       # also save every this many steps (0: only at the end)
    prediction: str = "eps"         # network target: "eps" (eq-l-simple), "v" (eq-v) or "edm" (the model
                                    # is an EDMPrecond trained on eq-edm-loss; Karras et al. 2022)
    min_snr_gamma: float | None = None  # weight each sample by min(SNR_t, gamma) / SNR_t (Hang et al. 2023)
    p_uncond: float = 0.0           # probability of dropping a sample's condition (CFG; Ho & Salimans 2022)
    amp: str = "auto"               # "auto": bf16 autocast on CUDA only; "bf16": always; "off": never
    channels_last: bool = False     # NHWC memory order for conv weights and image batches: the same maths,
                                    # other float rounding; often faster for conv nets on a CPU
    # fields added later: left out of cache keys at their defaults (NEW_FIELD), so cached models keep their keys
    edm_p_mean: float = dataclasses.field(default=-1.2, metadata=NEW_FIELD)  # "edm": ln(sigma) ~ N(p_mean, p_std^2)
    edm_p_std: float = dataclasses.field(default=1.2, metadata=NEW_FIELD)   # (eq-edm-sigma; Karras et al., Sec. 5)
    data_on_device: str = dataclasses.field(default="auto", metadata=NEW_FIELD)  # "auto": move the data set to
    #   a CUDA model's GPU once when it needs <= DEVICE_DATA_SHARE of the free memory; "always"; "never"
    compile: bool = dataclasses.field(default=False, metadata=NEW_FIELD)  # torch.compile the training forward
    #   (needs a C compiler on the CPU; same maths, other float rounding)

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
        if self.prediction not in ("eps", "v", "edm"):
            raise ValueError(f"prediction must be 'eps', 'v' or 'edm', got {self.prediction!r}")
        check_float("edm_p_mean", self.edm_p_mean)
        check_float("edm_p_std", self.edm_p_std, low=0.0)
        if self.data_on_device not in ("auto", "always", "never"):
            raise ValueError(f"data_on_device must be 'auto', 'always' or 'never', got {self.data_on_device!r}")
        if not isinstance(self.compile, bool):
            raise TypeError(f"compile must be a bool, got {type(self.compile).__name__}")
        check_float("p_uncond", self.p_uncond, low=0.0, high=1.0, high_open=True)
        if self.min_snr_gamma is not None:
            check_float("min_snr_gamma", self.min_snr_gamma, low=0.0, low_open=True)
            if self.prediction == "edm":
                raise ValueError("min_snr_gamma weights eps/v losses; prediction='edm' has its own weight "
                                 "lambda(sigma) (eq-edm-loss): leave min_snr_gamma None")
        if self.amp not in ("auto", "bf16", "off"):
            raise ValueError(f"amp must be 'auto', 'bf16' or 'off', got {self.amp!r}")

    @property
    def loss_name(self) -> str:
        """The loss in words, for tables and reports: what the network predicts and how it is weighted."""
        if self.prediction == "edm":
            return "EDM preconditioning and loss (eq-edm-loss)"
        weight = ("L_simple (eq-l-simple)" if self.min_snr_gamma is None
                  else f"min-SNR-{self.min_snr_gamma:g} weights (eq-min-snr)")
        return f"{self.prediction}-prediction, {weight}"


@dataclass
class TrainResult:
    """What train returns. The model passed in holds the raw (last-step) weights."""

    history: list[float]  # the loss of every step (L_simple or its weighted form), from step 1 (with resumes)
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

    Min-SNR-gamma (Hang et al. 2023; eq-min-snr) caps the weight the loss gives to nearly clean timesteps:
    with eps-prediction it is min(SNR_t, gamma) / SNR_t, so t with SNR_t <= gamma keep weight 1 and
    cleaner ones, whose eps is hard to learn and matters little for samples, count less. With
    v-prediction the squared v-error is (SNR_t + 1) / SNR_t times the eps-error, so the weight becomes
    min(SNR_t, gamma) / (SNR_t + 1): the same weighted objective.
    """
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    if not isinstance(t, Tensor) or t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
        raise TypeError(f"t must be an integer tensor of timesteps in [1, T], got "
                        f"{t.dtype if isinstance(t, Tensor) else type(t).__name__}")
    if config.min_snr_gamma is None:
        return None
    snr = check_schedule(sched).snr.to(t.device)[t]  # t >= 1: finite (not checked here: a range check would sync the device)
    capped = snr.clamp(max=config.min_snr_gamma)
    return (capped / snr if config.prediction == "eps" else capped / (snr + 1)).float()


def batch_cond(cond, idx: Tensor, device, dtype):
    """The rows idx of cond (a tensor or a tuple of tensors), on `device`; floating parts (contexts)
    take the model's dtype, labels and masks keep theirs."""
    if isinstance(cond, tuple):
        return tuple(batch_cond(part, idx, device, dtype) for part in cond)
    c = to_device(cond[idx if cond.device.type == "cpu" else to_device(idx, cond.device)], device)  # (B, ...)
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


def _place_data(config: TrainConfig, data: Tensor, device: torch.device) -> bool:
    """Whether the data set moves to the model's device once (config.data_on_device; CPU: nothing to move)."""
    if device.type == "cpu" or config.data_on_device == "never" or data.device == device:
        return False
    if config.data_on_device == "always" or device.type != "cuda":
        return config.data_on_device == "always"
    free, _ = torch.cuda.mem_get_info(device)
    return data.numel() * data.element_size() <= DEVICE_DATA_SHARE * free


def train(model: nn.Module, data: Tensor, sched, config: TrainConfig = TrainConfig(), *, cond=None,
          checkpoint_path=None, resume: bool = True, progress: bool = True, stop_at: int | None = None) -> TrainResult:
    """Train `model` (in place) to predict eps on `data` (N, ...) with L_simple; see the module docstring.

    data may live on any device and dtype: it moves to the model's device once (config.data_on_device)
    or batch by batch, in the model's dtype. cond: optional per-sample conditions (N,) labels or
    (N, [L,] cond_dim) contexts, or a tuple of per-sample tensors such as (contexts (N, L, cond_dim),
    masks (N, L)); each is indexed by the batch and passed to model(x_t, t, cond). checkpoint_path: save there every
    config.checkpoint_every steps and at the end; with resume=True an existing file is continued (a
    finished one is just loaded). stop_at: end this call after that step, saving the checkpoint there,
    as an interruption would (a later call with the same config resumes; the learning-rate schedule
    still runs to config.steps): checkpoints at chosen steps of one run.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    sched = check_schedule(sched)
    check_tensor("data", data, min_dim=2)
    if stop_at is not None:
        stop_at = check_int("stop_at", stop_at, low=1, high=config.steps)
    end = config.steps if stop_at is None else stop_at
    N, B = data.shape[0], config.batch_size
    if cond is not None:
        for i, part in enumerate(cond if isinstance(cond, tuple) else (cond,)):
            if not isinstance(part, Tensor) or part.dim() == 0 or part.shape[0] != N:
                where = f"cond[{i}]" if isinstance(cond, tuple) else "cond"
                raise ValueError(f"{where} must be a tensor with one row per data sample ({N}), "
                                 f"got {getattr(part, 'shape', type(part).__name__)}")
    if config.p_uncond > 0 and (cond is None or not hasattr(model, "drop_cond")):
        raise ValueError("p_uncond > 0 needs cond (labels or contexts) and a conditional model with drop_cond")
    edm = config.prediction == "edm"
    if edm:
        if not isinstance(model, EDMPrecond):
            raise TypeError(f"prediction='edm' trains an EDMPrecond (Karras et al.'s preconditioned denoiser), "
                            f"got {type(model).__name__}; wrap the network: EDMPrecond(net, sched)")
        edm_check_schedule(model, sched)
        if config.p_uncond > 0:
            raise ValueError("p_uncond > 0 is not supported with prediction='edm'")
    device, dtype = next(model.parameters()).device, next(model.parameters()).dtype
    use_amp = config.amp == "bf16" or (config.amp == "auto" and device.type == "cuda")
    data_range = (float(data.min()), float(data.max()))
    image_batches = config.channels_last and data.dim() == 4
    if image_batches:
        model.to(memory_format=torch.channels_last)  # in place: the caller's model keeps this layout
    if _place_data(config, data, device):  # once: then every batch is gathered on the device
        data = data.to(device)
        if cond is not None:
            cond = tuple(part.to(device) for part in cond) if isinstance(cond, tuple) else cond.to(device)

    # fused: one kernel for all parameters on CUDA; foreach: a few multi-tensor kernels elsewhere
    fast = {"fused": True} if device.type == "cuda" else {"foreach": True}
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay,
                            betas=(0.9, config.adam_beta2), **fast)
    ema = copy.deepcopy(model).eval().requires_grad_(False)  # a separate copy, updated after every step
    for p in ema.parameters():
        p.grad = None
    forward = model.net_output if edm else model  # the network call of a step (compiled on request)
    if config.compile:
        forward = torch.compile(forward)
    g = torch.Generator().manual_seed(config.seed)  # CPU generator: same draws on every device
    history: list[float] = []
    pending: list[Tensor] = []  # the device's losses since the history was last read
    start, recorded = 0, None
    path = Path(checkpoint_path) if checkpoint_path is not None else None
    cuda = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    t_start = time.perf_counter()

    def read_losses(step: int, bar) -> None:
        """Append the pending losses to the history (one device read), stopping on the first NaN/inf."""
        if not pending:
            return
        values = torch.stack(pending).tolist()
        first = step - len(values) + 1
        pending.clear()
        bad = next((i for i, v in enumerate(values) if not math.isfinite(v)), None)
        if bad is not None:
            bar.close()
            raise RuntimeError(
                f"training stopped: the loss is {values[bad]} at step {first + bad} (losses are read every "
                f"log_every={config.log_every} steps; this read covered steps {first}-{step}, and the weights "
                f"have taken them all). Likely causes: the learning "
                f"rate is too high (lr={config.lr}; try 3-10x lower or a longer warmup_steps), an AMP/bf16 "
                f"overflow (amp={config.amp!r}, active={use_amp}; try amp='off'), or data outside a sensible "
                f"range (data spans [{data_range[0]:.3g}, {data_range[1]:.3g}]; images should be in [-1, 1])."
                + (f" The last checkpoint is {path}." if path is not None and path.exists() else ""))
        history.extend(values)

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
                   disable=not progress or start >= end)
        for step in range(start + 1, end + 1):
            idx = torch.randint(N, (B,), generator=g)
            x0 = data[idx if data.device.type == "cpu" else to_device(idx, data.device)]
            x0 = to_device(x0, device).to(dtype)  # (B, ...)
            if image_batches:
                x0 = x0.contiguous(memory_format=torch.channels_last)
            t = torch.randint(1, sched.T + 1, (B,), generator=g)  # t ~ Uniform{1..T}, on the CPU
            if edm:  # ln(sigma) ~ N(P_mean, P_std^2) instead of a timestep (eq-edm-sigma)
                t = edm_sigmas(B, g, config.edm_p_mean, config.edm_p_std)
            eps = to_device(torch.randn(x0.shape, generator=g, dtype=x0.dtype), device)  # eps ~ N(0, I)
            c = None if cond is None else batch_cond(cond, idx, device, dtype)
            if config.p_uncond > 0:
                c = model.drop_cond(c, to_device(torch.rand(B, generator=g) < config.p_uncond, device))
            lr = learning_rate(config, step)
            for group in opt.param_groups:
                group["lr"] = lr
            t_model = to_device(t, device)
            if edm:
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                    loss = edm_loss(model, x0, t_model, eps, c, forward=forward).mean()  # eq-edm-loss
            else:
                x_t = q_sample(x0, t, eps, sched)  # eq-q-sample (t on the CPU: coefficients copied without a sync)
                target = eps if config.prediction == "eps" else v_from_eps(eps, t, x_t, sched)  # eq-v
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                    pred = forward(x_t, t_model) if c is None else forward(x_t, t_model, c)
                weight = loss_weight(config, t, sched)
                if weight is None:
                    loss = F.mse_loss(pred.float(), target.float())  # eq-l-simple (Ho et al. 2020, Eq. 14)
                else:  # the same squared error, each sample's mean weighted by w_t
                    weight = to_device(weight, device)
                    loss = (weight * (pred.float() - target.float()).pow(2).flatten(1).mean(1)).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip is not None:
                nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            opt.step()
            update_ema(ema, model, _ema_decay(config, step))
            pending.append(loss.detach())
            bar.update(1)
            saving = path is not None and config.checkpoint_every and step % config.checkpoint_every == 0 \
                and step < end
            if step % config.log_every == 0 or step == end or saving:
                read_losses(step, bar)  # the loop's only device read
                if step % config.log_every == 0 or step == end:
                    recent = history[-config.log_every:]
                    bar.set_postfix(loss=f"{sum(recent) / len(recent):.4f}", lr=f"{lr:.2g}", refresh=False)
            if saving:
                save(step)
        bar.close()
        if path is not None and start < end:
            save(end)
    model.train(was_training)
    seconds = time.perf_counter() - t_start
    return TrainResult(history=history, ema_model=ema, steps_done=len(history), seconds=seconds,
                       resumed_from=start, epochs=len(history) * B / N,
                       trained_seconds=seconds if start < end else recorded)
