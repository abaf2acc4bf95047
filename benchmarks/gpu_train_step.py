"""Training throughput of the gpu MNIST recipe on one accelerator, its roofline, and the loop's host syncs.

Measures, on the device of --device (default cuda), with the gpu recipe's U-Net and batch:

1. seconds per step of dl.train itself (the real loop: data on the device, fused AdamW, bf16 autocast,
   EMA), as the difference of two runs of --warm and --warm + --steps steps (start-up cost cancels),
   for amp="auto" (bf16 on CUDA) and amp="off" (fp32), and with --compile also through torch.compile;
2. the roofline: the model FLOPs of one training step (torch.utils.flop_counter over forward and
   backward of one batch) divided by the step time, against the card's measured dense matmul rate
   (bf16, n x n with n = --matmul-n, timed with CUDA events; fp32 on the CPU);
3. host syncs (CUDA only): torch.cuda.set_sync_debug_mode("warn") counts the operations that make
   the host wait, in a training run and in DDPM, DDIM and DPM-Solver++ sampling; counting two run
   lengths and taking the difference gives the syncs per step, which must be 0 beyond the trainer's
   one read of the losses every log_every steps.

--dry-run runs the same code on the CPU with the smoke recipe and tiny sizes (no sync count: that
needs CUDA). Writes benchmarks/results/gpu/gpu_train_step.{json,md} (dry run: gpu_train_step_dry.*).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import time
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

import diffusion_lite as dl

ROOT = Path(__file__).resolve().parents[1]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_seconds(recipe, data, device, steps: int, **changes) -> float:
    """Wall seconds of dl.train for `steps` steps of a fresh model (synchronised at both ends)."""
    config = dataclasses.replace(recipe.train, steps=steps, checkpoint_every=0, warmup_steps=1,
                                 log_every=max(1, min(50, steps)), lr_decay="none", **changes)
    model = recipe.make_model().to(device)
    sync(device)
    start = time.perf_counter()
    dl.train(model, data, recipe.make_schedule(), config, progress=False)
    sync(device)
    return time.perf_counter() - start


def step_flops(recipe, device) -> int:
    """FLOPs of one training step's forward and backward at the recipe's batch (flop_counter)."""
    model = recipe.make_model().to(device)
    B = recipe.train.batch_size
    x = torch.randn(B, 1, 28, 28, device=device)
    t = torch.randint(1, recipe.T + 1, (B,), device=device)
    with FlopCounterMode(display=False) as counter:
        F.mse_loss(model(x, t), x).backward()
    return counter.get_total_flops()


def matmul_rate(device, n: int, repeats: int = 20) -> tuple[float, str]:
    """Measured FLOP/s of an n x n matmul (bf16 on CUDA, fp32 on the CPU) and the dtype's name."""
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    sync(device)
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(repeats):
            a @ b
        end.record()
        torch.cuda.synchronize(device)
        seconds = start.elapsed_time(end) / 1e3
    else:
        t0 = time.perf_counter()
        for _ in range(repeats):
            a @ b
        seconds = time.perf_counter() - t0
    return 2 * n ** 3 * repeats / seconds, str(dtype).replace("torch.", "")


def count_syncs(fn) -> int:
    """How many host-device synchronisations fn() performs (CUDA's sync debug mode, as warnings)."""
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            fn()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message).lower() for w in caught)


def sync_report(recipe, data, device) -> dict:
    """Syncs per step of the training loop (beyond its log reads) and of three samplers."""
    sched = recipe.make_schedule()

    def run_train(steps):
        config = dataclasses.replace(recipe.train, steps=steps, checkpoint_every=0, log_every=10, warmup_steps=1,
                                     lr_decay="none")
        dl.train(recipe.make_model().to(device), data, sched, config, progress=False)

    out = {}
    few, many = count_syncs(lambda: run_train(10)), count_syncs(lambda: run_train(40))
    out["train"] = dict(syncs_10_steps=few, syncs_40_steps=many,
                        per_step_beyond_log_reads=(many - few - 3) / 30)  # 3 more reads of the losses
    model = recipe.make_model().to(device).eval()
    x_T = torch.randn(16, 1, 28, 28, device=device)
    for method in ("ddpm", "ddim", "dpm_solver_pp_2m"):
        def run(steps, method=method):
            with torch.no_grad():
                dl.sample(model, sched, x_T, method=method, steps=steps)
        a, b = count_syncs(lambda: run(10)), count_syncs(lambda: run(20))
        out[method] = dict(syncs_10_steps=a, syncs_20_steps=b, per_step=(b - a) / 10)
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--warm", type=int, default=20, help="steps of the shorter timing run")
    p.add_argument("--steps", type=int, default=200, help="extra steps of the longer one")
    p.add_argument("--matmul-n", type=int, default=8192)
    p.add_argument("--compile", action="store_true", help="also time train(compile=True)")
    p.add_argument("--dry-run", action="store_true", help="CPU, smoke recipe, tiny sizes: checks the code path")
    args = p.parse_args()
    if args.dry_run:
        args.device, args.warm, args.steps, args.matmul_n = "cpu", 3, 6, 256
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("CUDA is not available: run on a GPU machine, or pass --dry-run to check the code on the CPU")
    recipe = dl.mnist_ddpm_recipe("smoke" if args.dry_run else "gpu")
    data = torch.rand(512 if args.dry_run else 60_000, 1, 28, 28) * 2 - 1  # random images: speed only
    flops = step_flops(recipe, device)
    rate, mm_dtype = matmul_rate(device, args.matmul_n)
    rows, syncs = {}, None
    out = ROOT / "benchmarks" / "results" / "gpu"
    out.mkdir(parents=True, exist_ok=True)
    stem = "gpu_train_step_dry" if args.dry_run else "gpu_train_step"

    def write() -> None:  # after every stage: a time-out later still leaves what was measured
        result = dict(recipe=recipe.profile, batch=recipe.train.batch_size,
                      parameters=dl.count_parameters(recipe.make_model()), step_flops=flops,
                      matmul=dict(n=args.matmul_n, dtype=mm_dtype, flops_per_second=rate), variants=rows,
                      syncs=syncs, device=str(device),
                      device_name=torch.cuda.get_device_name(device) if device.type == "cuda" else dl.hardware(),
                      torch=torch.__version__)
        (out / f"{stem}.json").write_text(json.dumps(result, indent=1))
        lines = [f"# Training step of the {recipe.profile} MNIST recipe on {result['device_name']}", "",
                 f"U-Net of {result['parameters']:,} parameters, batch {result['batch']}; one step (forward + "
                 f"backward) is {flops / 1e9:.2f} GFLOP (flop_counter). Reference: {mm_dtype} matmul "
                 f"{args.matmul_n}^2 at {rate / 1e12:.1f} TFLOP/s.", "",
                 "| loop | s / step | images / s | model TFLOP/s | share of the matmul rate |",
                 "|---|---:|---:|---:|---:|"]
        lines += [f"| {k} | {v['seconds_per_step']:.4f} | {v['images_per_second']:.0f} | "
                  f"{v['model_flops_per_second'] / 1e12:.2f} | {v['share_of_matmul_rate']:.1%} |"
                  for k, v in rows.items()]
        if syncs:
            lines += ["", "| loop | host syncs per step |", "|---|---:|",
                      f"| dl.train (beyond one loss read every log_every steps) | "
                      f"{syncs['train']['per_step_beyond_log_reads']:.2f} |"]
            lines += [f"| sampler {m} | {syncs[m]['per_step']:.2f} |" for m in ("ddpm", "ddim", "dpm_solver_pp_2m")]
        (out / f"{stem}.md").write_text("\n".join(lines) + "\n")
        print("\n".join(lines))

    variants = {"bf16 autocast" if device.type == "cuda" else "default": dict(amp="auto"), "fp32": dict(amp="off")}
    for name, changes in variants.items():
        short = train_seconds(recipe, data, device, args.warm, **changes)
        long = train_seconds(recipe, data, device, args.warm + args.steps, **changes)
        s = (long - short) / args.steps
        rows[name] = dict(seconds_per_step=s, images_per_second=recipe.train.batch_size / s,
                          model_flops_per_second=flops / s, share_of_matmul_rate=flops / s / rate,
                          first_run_seconds=short, changes=changes)
        write()
    if device.type == "cuda":
        syncs = sync_report(recipe, data, device)
        write()
    if args.compile:  # last: compiling takes the longest, and a time-out here keeps the rest
        changes = dict(amp="auto", compile=True)
        short = train_seconds(recipe, data, device, args.warm, **changes)
        long = train_seconds(recipe, data, device, args.warm + args.steps, **changes)
        s = (long - short) / args.steps
        rows["bf16 autocast + torch.compile"] = dict(seconds_per_step=s, images_per_second=recipe.train.batch_size / s,
                                                     model_flops_per_second=flops / s,
                                                     share_of_matmul_rate=flops / s / rate,
                                                     first_run_seconds=short, changes=changes)
        write()


if __name__ == "__main__":
    main()
