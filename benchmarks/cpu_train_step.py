"""Where a training step of the cpu MNIST recipe spends its time, and how close it runs to the CPU's limit.

The cpu recipe (diffusion_lite.training.recipes) must train within 10 minutes on 2 cores, so its quality is set
by the images per second a step achieves. This script measures, on the recipe's network and batch
(channels_last, random images, one AdamW step per training step, as in train()):

1. the eager step: the median over --reps rounds of the mean wall time of --steps steps, after warm-up;
2. the arithmetic rate that implies: images/s x 3 x the forward FLOPs per image (unet_block_report;
   the backward pass costs about twice the forward), against a reference, the rate of a large fp32
   matmul (2048 x 2048) on the same threads: an upper bound no conv net of this size reaches;
3. the share of the step's CPU time per kind of operation (torch.profiler, --profile-steps steps);
4. with --compile, the same step through torch.compile (inductor; needs a C++ compiler), timed in
   rounds alternating with the eager ones, and the time its first steps took (compiling, or loading
   inductor's on-disk cache of an earlier run);
5. with --bf16, the step under bf16 autocast (train(amp="bf16")), alternating with the eager rounds too.

Usage (a quiet machine):
    python benchmarks/cpu_train_step.py --compile --bf16
Writes benchmarks/results/cpu_train_step.md and .json.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

import diffusion_lite as dl
from mnist_recipe import probe_batch, probe_model  # the probe of the same step, beside this script

ROOT = Path(__file__).resolve().parents[1]
KINDS = {  # profiler op name fragment -> kind of work (the first match wins)
    "convolution": "convolutions (forward and backward)",
    "group_norm": "GroupNorm (forward and backward)",
    "attention": "attention",
    "silu": "SiLU (forward and backward)",
}
OTHER = "other: elementwise arithmetic (AdamW's included), copies, concatenations"


def training_step(recipe, sched, compiled: bool = False, bf16: bool = False):
    """One step of L_simple (eq-l-simple) of a fresh copy of the recipe's network on a fixed batch of random
    images in its layout: a closure to time. compiled: through torch.compile; bf16: the forward pass under
    bf16 autocast, as train(amp="bf16") does."""
    model, opt, layout = probe_model(recipe)
    x0, t, eps = probe_batch(recipe, sched, torch.Generator().manual_seed(0), layout)
    x_t = dl.q_sample(x0, t, eps, sched)
    net = torch.compile(model) if compiled else model

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            pred = net(x_t, t)
        loss = F.mse_loss(pred.float(), eps)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def time_steps(step, steps: int) -> float:
    """Mean seconds per step over `steps` consecutive steps."""
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) / steps


def matmul_gflops(n: int = 2048, repeats: int = 20) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(3):
        a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * n ** 3 * repeats / (time.perf_counter() - start) / 1e9


def op_shares(step, steps: int) -> dict[str, float]:
    """Share of the profiled self CPU time per kind of operation (KINDS; the rest is OTHER)."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    totals: dict[str, float] = {}
    for event in prof.key_averages():
        kind = next((k for frag, k in KINDS.items() if frag in event.key), OTHER)
        totals[kind] = totals.get(kind, 0.0) + event.self_cpu_time_total
    whole = sum(totals.values())
    return {k: v / whole for k, v in sorted(totals.items(), key=lambda kv: -kv[1])}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=40, help="steps per timed round")
    p.add_argument("--reps", type=int, default=5, help="timed rounds (the median is reported)")
    p.add_argument("--profile-steps", type=int, default=10, help="steps under torch.profiler")
    p.add_argument("--compile", action="store_true", help="also time the step through torch.compile")
    p.add_argument("--bf16", action="store_true", help="also time the step under bf16 autocast")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    recipe = dl.mnist_ddpm_recipe("cpu")
    B, sched = recipe.train.batch_size, recipe.make_schedule()
    flops = next(r["flops"] for r in dl.unet_block_report(recipe.make_model(), (1, 1, 28, 28)) if r["block"] == "total")

    step = training_step(recipe, sched)
    time_steps(step, 3)  # warm-up: the allocator and oneDNN's kernels
    if args.bf16:
        autocast = training_step(recipe, sched, bf16=True)
        time_steps(autocast, 3)
    if args.compile:
        compiled = training_step(recipe, sched, compiled=True)
        start = time.perf_counter()
        time_steps(compiled, 3)  # the first calls compile the graphs (or load inductor's on-disk cache)
        compile_seconds = time.perf_counter() - start
    eager_rounds, compiled_rounds, bf16_rounds = [], [], []
    for _ in range(args.reps):  # alternate the two, so that a change in the machine's load hits both
        eager_rounds.append(time_steps(step, args.steps))
        if args.compile:
            compiled_rounds.append(time_steps(compiled, args.steps))
        if args.bf16:
            bf16_rounds.append(time_steps(autocast, args.steps))
    eager = statistics.median(eager_rounds)
    shares = op_shares(step, args.profile_steps)
    reference = matmul_gflops()
    row = dict(batch=B, forward_mflops_per_image=flops / 1e6, eager_seconds_per_step=eager,
               eager_rounds=eager_rounds, eager_images_per_second=B / eager,
               eager_gflops=3 * flops * B / eager / 1e9, matmul_gflops=reference, op_shares=shares)
    if args.compile:
        row.update(compile_first_steps_seconds=compile_seconds, compiled_rounds=compiled_rounds,
                   compiled_seconds_per_step=statistics.median(compiled_rounds))
        row["compiled_images_per_second"] = B / row["compiled_seconds_per_step"]
    if args.bf16:
        row.update(bf16_rounds=bf16_rounds, bf16_seconds_per_step=statistics.median(bf16_rounds))
    row.update(hardware=dl.hardware(), torch=torch.__version__, load_average=os.getloadavg()[0])

    out = ROOT / "benchmarks" / "results" / "cpu_train_step"
    out.with_suffix(".json").write_text(json.dumps(row, indent=1))
    lines = ["# One training step of the cpu MNIST recipe", "",
             f"U-Net of the cpu recipe, batch {B}, channels_last, AdamW; {flops / 1e6:.1f} MFLOPs per image "
             "forward (`unet_block_report`), about three times that per image for forward and backward.", "",
             "| step | seconds per step | images / s | GFLOP/s |", "|---|---:|---:|---:|",
             f"| eager | {eager:.3f} | {B / eager:.0f} | {row['eager_gflops']:.0f} |"]
    if args.compile:
        c = row["compiled_seconds_per_step"]
        lines.append(f"| torch.compile (first steps {row['compile_first_steps_seconds']:.0f} s) | {c:.3f} | "
                     f"{B / c:.0f} | {3 * flops * B / c / 1e9:.0f} |")
    if args.bf16:
        b = row["bf16_seconds_per_step"]
        lines.append(f"| bf16 autocast | {b:.3f} | {B / b:.0f} | |")
    lines += [f"| reference: fp32 matmul 2048 x 2048 | | | {reference:.0f} |", "",
              "| kind of operation | share of the eager step's CPU time |", "|---|---:|"]
    lines += [f"| {kind} | {share:.1%} |" for kind, share in shares.items()]
    lines += ["", f"{dl.hardware()}; torch {torch.__version__}; load average at the end "
              f"{row['load_average']:.2f}."]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
