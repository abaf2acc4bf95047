"""Progressive distillation (Salimans & Ho 2022): a student learns to take in one DDIM step what its teacher takes in r.

The teacher samples with deterministic DDIM on the grid tau_N > ... > tau_1 > tau_0 = 0 (timesteps(T, N));
the student's grid is every r-th of those steps, tau'_k = tau_{r k} (trailing spacing makes
timesteps(T, N / r) exactly that). For a training point z_t = a_t x0 + s_t eps at a student time
t = tau'_k, the teacher runs r DDIM steps to t'' = tau'_{k-1} and lands on z_t''. The x0 for which one
DDIM step t -> t'' lands on the same point solves z_t'' = a_t'' x0 + s_t'' (z_t - a_t x0) / s_t:

    x0_target = (z_t'' - (s_t''/s_t) z_t) / (a_t'' - (s_t''/s_t) a_t)       (eq-distill-target; S&H 2022, Alg. 2)
    loss      = omega_t |x0_hat_student(z_t) - x0_target|^2,  omega_t = (a_t'' - s_t'' a_t / s_t)^2      (eq-distill-loss)

With t'' = 0 (a_0 = 1, s_0 = 0) the target is the teacher's final sample itself. a_t = sqrt(alpha_bar_t),
s_t = sqrt(1 - alpha_bar_t). The weight omega_t makes the loss |z_t''(student) - z_t''(teacher)|^2, the
distance between where one student step and r teacher steps land (distill_weight says why this, and
not the paper's max(SNR_t, 1), for an eps-predicting student). Repeating with r = 2 halves the step
count each round: 2^k -> 2^(k-1) -> ... -> 1 (`progressive_distillation`). The student keeps the teacher's
interface (eps_hat from x0_hat by eq-eps-from-x0), so every sampler runs it; it is meant to be sampled
with sample_ddim(student, sched, x_T, steps=student_steps), the grid it was trained on.
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor, nn

from .._checks import check_float, check_int, check_tensor, check_timesteps
from ..core.forward import q_sample
from ..core.parameterization import x0_from_eps
from ..core.schedules import Schedule, check_schedule
from ..sampling.base import timesteps
from ..sampling.ddim import ddim_step


@dataclass(frozen=True)
class DistillConfig:
    """How to train one round of distillation."""

    steps: int = 1000               # optimizer steps per round
    batch_size: int = 128           # training points z_t per step (x0 drawn with replacement)
    lr: float = 1e-4                # Adam learning rate, decayed linearly to 0 over the round (S&H 2022, Sec. 5)
    grad_clip: float | None = 1.0   # clip the global gradient norm to this (None: no clipping)
    seed: int = 0                   # seeds the generator of x0, the student times and eps
    log_every: int = 50             # progress-bar update every this many steps

    def __post_init__(self):
        check_int("steps", self.steps, low=1)
        check_int("batch_size", self.batch_size, low=1)
        check_float("lr", self.lr, low=0.0, low_open=True)
        if self.grad_clip is not None:
            check_float("grad_clip", self.grad_clip, low=0.0, low_open=True)
        check_int("seed", self.seed, low=0)
        check_int("log_every", self.log_every, low=1)


class DistillResult(NamedTuple):
    """One round: the trained student and what it was trained to do."""

    student: nn.Module   # the student (trained in place), in eval mode
    teacher_steps: int   # N: the teacher's DDIM steps
    student_steps: int   # N / r: the student's DDIM steps
    history: list[float]  # the loss of every step
    seconds: float       # wall-clock time of the round


def student_grid(T: int, teacher_steps: int, student_steps: int) -> tuple[Tensor, Tensor]:
    """(teacher grid with 0 appended, student grid with 0 appended), both descending, long.

    The student's step k goes from student[k] to student[k + 1]; the teacher covers it with the r
    steps teacher[r k] -> ... -> teacher[r (k + 1)]. Rejects a student step count that does not
    divide the teacher's.
    """
    T = check_int("T", T, low=1)
    teacher_steps = check_int("teacher_steps", teacher_steps, low=2, high=T)
    student_steps = check_int("student_steps", student_steps, low=1, high=teacher_steps - 1)
    if teacher_steps % student_steps:
        raise ValueError(f"student_steps must divide teacher_steps ({teacher_steps}) so that each student step "
                         f"covers a whole number of teacher steps, got {student_steps}")
    r = teacher_steps // student_steps
    zero = torch.zeros(1, dtype=torch.long)
    teacher = torch.cat([timesteps(T, teacher_steps, "trailing"), zero])
    student = torch.cat([timesteps(T, student_steps, "trailing"), zero])
    if not torch.equal(teacher[::r], student):  # trailing spacing nests; say so if rounding ever breaks it
        raise ValueError(f"the trailing grids of {teacher_steps} and {student_steps} steps over T={T} do not nest")
    return teacher, student


@torch.no_grad()
def distill_target(teacher, z_t: Tensor, k: Tensor, teacher_grid: Tensor, r: int, sched: Schedule,
                   cond=None) -> tuple[Tensor, Tensor]:
    """(x0_target, z_t''): r teacher DDIM steps from teacher_grid[r k] (eq-ddim-step, eta = 0), then eq-distill-target.

    z_t (B, ...) at t = teacher_grid[r k]; k (B,) long student step indices.
    """
    if not callable(teacher):
        raise TypeError(f"teacher must be callable as teacher(x_t, t), got {type(teacher).__name__}")
    check_tensor("z_t", z_t)
    r = check_int("r", r, low=1)
    if not isinstance(k, Tensor) or k.shape != (z_t.shape[0],) or k.is_floating_point():
        raise ValueError(f"k must be a ({z_t.shape[0]},) integer tensor of student step indices, got {k!r:.60}")
    if bool((r * (k + 1) >= len(teacher_grid)).any()) or bool((k < 0).any()):
        raise ValueError(f"k must lie in [0, {(len(teacher_grid) - 1) // r - 1}] for this grid and r={r}")
    ab = sched.alpha_bar.to(z_t.device)
    grid = teacher_grid.to(z_t.device)
    z = z_t
    for j in range(r):
        t, t_prev = grid[r * k + j], grid[r * k + j + 1]
        eps_hat = teacher(z, t) if cond is None else teacher(z, t, cond)
        z = ddim_step(eps_hat.to(z.dtype), t, t_prev, z, sched).x_prev
    shape = (-1,) + (1,) * (z_t.dim() - 1)
    t, t_pp = grid[r * k].reshape(shape), grid[r * (k + 1)].reshape(shape)
    a, s = ab[t].sqrt().to(z.dtype), (1 - ab[t]).sqrt().to(z.dtype)
    a_pp, s_pp = ab[t_pp].sqrt().to(z.dtype), (1 - ab[t_pp]).sqrt().to(z.dtype)
    x0_target = (z - (s_pp / s) * z_t) / (a_pp - (s_pp / s) * a)  # eq-distill-target
    return x0_target, z


def distill_weight(t: Tensor, t_pp: Tensor, sched: Schedule) -> Tensor:
    """omega_t = (a_t'' - s_t'' a_t / s_t)^2: weights |x0_hat - x0_target|^2 into the error of the step's output z_t''.

    eq-distill-loss. One DDIM step t -> t'' maps x0_hat to z_t'' = (a_t'' - s_t'' a_t / s_t) x0_hat
    + (s_t''/s_t) z_t, so this weight makes the loss the squared distance between where the student's
    step lands and where the teacher's r steps land. (Salimans & Ho 2022, Sec. 4, weight the same
    regression by max(SNR_t, 1); with an eps-predicting student that weight lets the first,
    noisiest step dominate the gradient: x0_hat = (z_t - s_t eps_hat) / a_t amplifies eps errors
    by 1 / a_t there.)
    """
    check_schedule(sched)
    t = check_timesteps("t", t, sched.T, low=1).cpu()
    t_pp = check_timesteps("t_pp", t_pp, sched.T).cpu()
    if bool((t_pp >= t).any()):
        raise ValueError(f"t_pp must be smaller than t, got t={t.tolist()}, t_pp={t_pp.tolist()}")
    ab = sched.alpha_bar
    a, s, a_pp, s_pp = ab[t].sqrt(), (1 - ab[t]).sqrt(), ab[t_pp].sqrt(), (1 - ab[t_pp]).sqrt()
    return (a_pp - s_pp * a / s) ** 2


def distill(student: nn.Module, teacher, data: Tensor, sched: Schedule, teacher_steps: int,
            student_steps: int | None = None, config: DistillConfig = DistillConfig(), *,
            progress: bool = True) -> DistillResult:
    """Train `student` in place so that one DDIM step of it matches teacher_steps / student_steps teacher steps.

    teacher: any model (a network, dl.MixtureOracle, a previous student); data (N, ...) training x0.
    student_steps defaults to teacher_steps // 2 (one round of progressive distillation).
    """
    if not isinstance(student, nn.Module):
        raise TypeError(f"student must be a torch.nn.Module, got {type(student).__name__}")
    if not callable(teacher):
        raise TypeError(f"teacher must be callable as teacher(x_t, t), got {type(teacher).__name__}")
    check_schedule(sched)
    data = check_tensor("data", data)
    if not isinstance(config, DistillConfig):
        raise TypeError(f"config must be a DistillConfig, got {type(config).__name__}")
    if student_steps is None:
        check_int("teacher_steps", teacher_steps, low=2)
        student_steps = teacher_steps // 2
    teacher_grid, _ = student_grid(sched.T, teacher_steps, student_steps)
    r = teacher_steps // student_steps
    param = next(student.parameters())
    device, dtype = param.device, param.dtype
    gen = torch.Generator().manual_seed(config.seed)
    opt = torch.optim.Adam(student.parameters(), lr=config.lr)
    ab = sched.alpha_bar
    history: list[float] = []
    bar = None
    if progress:
        from tqdm.auto import tqdm  # imported on use: importing the package stays light
        bar = tqdm(total=config.steps, desc=f"distil {teacher_steps} -> {student_steps} steps", leave=False)
    start = time.perf_counter()
    student.train()
    for step in range(config.steps):
        for group in opt.param_groups:  # linear decay to 0 over the round
            group["lr"] = config.lr * (1 - step / config.steps)
        x0 = data[torch.randint(len(data), (config.batch_size,), generator=gen)].to(device, dtype)
        k = torch.randint(student_steps, (config.batch_size,), generator=gen)        # student step index
        t = teacher_grid[r * k]                                                       # (B,) in [1, T]
        eps = torch.randn(x0.shape, generator=gen, dtype=x0.dtype).to(device)
        z_t = q_sample(x0, t.to(device), eps, sched)                                  # eq-q-sample
        x0_target, _ = distill_target(teacher, z_t, k.to(device), teacher_grid, r, sched)
        x0_hat = x0_from_eps(student(z_t, t.to(device)), t.to(device), z_t, sched)   # eq-x0-from-eps
        omega = distill_weight(t, teacher_grid[r * (k + 1)], sched).to(device, dtype)  # (B,)
        loss = (omega * (x0_hat - x0_target).pow(2).flatten(1).mean(1)).mean()            # eq-distill-loss
        if not math.isfinite(loss.item()):
            raise FloatingPointError(f"distillation loss is {loss.item()} at step {step}; lower config.lr "
                                     f"(now {config.lr}) or keep grad_clip on")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if config.grad_clip is not None:
            nn.utils.clip_grad_norm_(student.parameters(), config.grad_clip)
        opt.step()
        history.append(loss.item())
        if bar is not None and (step + 1) % config.log_every == 0:
            bar.update(config.log_every)
            bar.set_postfix(loss=f"{sum(history[-config.log_every:]) / config.log_every:.4g}")
    if bar is not None:
        bar.close()
    student.eval()
    return DistillResult(student, teacher_steps, student_steps, history, time.perf_counter() - start)


def progressive_distillation(teacher, student: nn.Module, data: Tensor, sched: Schedule, teacher_steps: int,
                             rounds: int, config: DistillConfig = DistillConfig(), *,
                             progress: bool = True) -> list[DistillResult]:
    """`rounds` halvings teacher_steps -> teacher_steps / 2^rounds; each round's student teaches the next.

    `student` is the first round's initial network (often a copy of the teacher); each later round
    starts from a copy of the previous student. teacher_steps must be divisible by 2^rounds.
    """
    rounds = check_int("rounds", rounds, low=1)
    teacher_steps = check_int("teacher_steps", teacher_steps, low=2)
    if teacher_steps % 2**rounds:
        raise ValueError(f"teacher_steps ({teacher_steps}) must be divisible by 2^rounds = {2**rounds}")
    results = []
    for i in range(rounds):
        n = teacher_steps // 2**i
        out = distill(student, teacher, data, sched, n, n // 2, config, progress=progress)
        results.append(out)
        teacher, student = out.student, copy.deepcopy(out.student)
    return results
