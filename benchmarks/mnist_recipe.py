"""Does the book's MNIST DDPM draw recognisable digits? The recipe of a profile, judged by the in-book classifier.

Loads (or trains, through the checkpoint cache) the unconditional MNIST DDPM of chapter 07 with the
recipe of --profile (diffusion_lite.training.recipes), draws --n samples with each sampler, and reports the
judge's numbers (diffusion_lite.eval.judge): the share of samples classified as a digit with
confidence >= 0.9, the share sent to the judge's reject class, the digits present and the class
shares, and the judge-feature FID against 8,000 real test digits (biased upwards at --n samples, so
comparable between the rows of one run, not with chapter 09's larger samples). The target of the
cpu profile: >= 80 % confident digits, all ten classes, within 10 minutes of training on 2 cores.

Training time: when the model is trained by this run, its wall time is reported. When it comes
from the cache, the training time is estimated instead from a timed probe of the same network:
recipe.train.steps x the median seconds per training step (forward, backward, AdamW) over
--probe-steps steps, at the recipe's batch size. The report says which of the two it is.

Offline, only the MNIST test split (10k images) is in the shared data folder: the recipe then
falls back to it (and says so), so the model trains on the same images the judge was trained on.

Usage (take real numbers on a quiet machine):
    DL_DATA_DIR=/work/shared/data python benchmarks/mnist_recipe.py --profile cpu
Writes benchmarks/results/mnist_recipe_<profile>.md and .json.
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

import diffusion_lite as dl
from diffusion_lite.training.recipes import checkpoint_path, load_training_data, training_seconds

ROOT = Path(__file__).resolve().parents[1]
SAMPLERS = {"DDPM 1000 steps": dict(method="ddpm", steps=1000), "DDIM 100 steps": dict(method="ddim", steps=100),
            "DDIM 50 steps": dict(method="ddim", steps=50),
            "DPM-Solver++(2M) 20 steps": dict(method="dpm_solver_pp_2m", steps=20)}
N_REF = 8000  # real test digits for the judge-feature FID (chapter 09's reference size)


def probe_model(recipe):
    """A fresh copy of the recipe's network in its memory layout and an AdamW at its peak rate, as train()
    builds them: (model, optimizer, layout)."""
    model = recipe.make_model()
    layout = torch.channels_last if recipe.train.channels_last else torch.contiguous_format
    model.to(memory_format=layout)
    return model, torch.optim.AdamW(model.parameters(), lr=recipe.train.lr), layout


def probe_batch(recipe, sched, g: torch.Generator, layout):
    """A batch of the recipe's size for timing a step: random images in [-1, 1], t ~ Uniform{1..T}, eps."""
    B = recipe.train.batch_size
    x0 = (torch.rand(B, 1, 28, 28, generator=g) * 2 - 1).contiguous(memory_format=layout)
    t = torch.randint(1, sched.T + 1, (B,), generator=g)
    return x0, t, torch.randn(x0.shape, generator=g)


def seconds_per_step(recipe, n_steps: int) -> float:
    """Median wall time of one training step of a fresh copy of the recipe's network."""
    (model, opt, layout), sched = probe_model(recipe), recipe.make_schedule()
    g = torch.Generator().manual_seed(0)
    times = []
    for _ in range(n_steps + 2):  # the first two steps warm up the allocator
        x0, t, eps = probe_batch(recipe, sched, g, layout)
        start = time.perf_counter()
        loss = F.mse_loss(model(dl.q_sample(x0, t, eps, sched), t), eps)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - start)
    return statistics.median(times[2:])


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--profile", default="cpu", choices=dl.PROFILES)
    p.add_argument("--n", type=int, default=256, help="samples per sampler")
    p.add_argument("--probe-steps", type=int, default=20, help="timed training steps for the time estimate")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None, help="output path without extension")
    args = p.parse_args()
    out = args.out or ROOT / "benchmarks" / "results" / f"mnist_recipe_{args.profile}"
    out.parent.mkdir(parents=True, exist_ok=True)

    recipe = dl.mnist_ddpm_recipe(args.profile)
    data, used = load_training_data(recipe, progress=False)
    cached = checkpoint_path(used, data).exists()
    start = time.perf_counter()
    model, result, used = dl.load_or_train_mnist_ddpm(recipe, progress=True)
    trained_seconds = None if cached else time.perf_counter() - start
    step_s = seconds_per_step(used, args.probe_steps)
    params = sum(p.numel() for p in model.parameters())
    judge = dl.load_mnist_judge(args.profile, progress=False)
    sched = used.make_schedule()
    test = dl.load_dataset("mnist", split="test", progress=False)
    perm = torch.randperm(len(test), generator=torch.Generator().manual_seed(0))
    ref_features = dl.judge_features(judge, test.images[perm[:min(N_REF, len(test))]])

    rows = {}
    for name, kw in SAMPLERS.items():
        g = torch.Generator().manual_seed(args.seed)
        x_T = torch.randn(args.n, 1, 28, 28, generator=g)
        t0 = time.perf_counter()
        with torch.no_grad():
            x = dl.sample(model, sched, x_T, generator=g, progress=True, **kw).x0.clamp(-1, 1)
        seconds = time.perf_counter() - t0
        rep = dl.judge(judge, x)
        rows[name] = dict(confident=rep.confident_fraction, reject=rep.reject_fraction,
                          classes=len(rep.classes_present), shares=[round(float(v), 4) for v in rep.class_shares],
                          fid=dl.fid_from_features(dl.judge_features(judge, x), ref_features), sample_seconds=seconds)
        print(name, rows[name], flush=True)

    train_line = (f"trained in this run: {trained_seconds:.0f} s" if trained_seconds is not None else
                  f"loaded from the cache; estimated training time {used.train.steps} steps x {step_s:.3f} s "
                  f"(median of {args.probe_steps} timed steps) = {used.train.steps * step_s:.0f} s; the cached run "
                  f"itself recorded {training_seconds(used):.0f} s, with whatever else then ran on the machine")
    results = dict(profile=args.profile, split=used.split, params=params, steps=used.train.steps,
                   batch=used.train.batch_size, lr=used.train.lr,
                   lr_decay=used.train.lr_decay, prediction=used.train.prediction,
                   min_snr_gamma=used.train.min_snr_gamma, channels_last=used.train.channels_last, seconds_per_step=step_s,
                   trained_seconds=trained_seconds, estimated_train_seconds=used.train.steps * step_s,
                   final_loss=sum(result.history[-100:]) / min(100, len(result.history)),
                   n=args.n, hardware=dl.hardware(), load_average=os.getloadavg()[0], samplers=rows)
    out.with_suffix(".json").write_text(json.dumps(results, indent=1))
    lines = [f"# MNIST DDPM, `{args.profile}` recipe, judged by the in-book classifier", "",
             f"Produced by `benchmarks/mnist_recipe.py --profile {args.profile}` (method in its docstring).", "",
             f"U-Net of {params:,} parameters ({used.unet.channels} channels, {used.unet.num_res_blocks} residual "
             f"block(s) per level), {used.train.steps:,} steps of batch {used.train.batch_size}, AdamW lr "
             f"{used.train.lr} (warm-up {used.train.warmup_steps}, decay {used.train.lr_decay!r}), EMA "
             f"{used.train.ema_decay}, channels_last={used.train.channels_last}; trained on the MNIST **{used.split}** split "
             f"({len(data):,} images); loss {used.train.loss_name}. Training: {train_line}. Mean training loss over the "
             f"last 100 steps {results['final_loss']:.4f}.", "",
             f"| sampler (EMA weights, {args.n} samples) | confident digits (p >= 0.9) | rejected | digits present "
             "| largest / smallest class share | judge-FID | sampling time (s) |", "|---|---:|---:|---:|---:|---:|---:|"]
    for name, r in rows.items():
        lines.append(f"| {name} | {r['confident']:.1%} | {r['reject']:.1%} | {r['classes']} | "
                     f"{max(r['shares']):.1%} / {min(r['shares']):.1%} | {r['fid']:.1f} | {r['sample_seconds']:.0f} |")
    lines += ["", f"{dl.hardware()}; torch {torch.__version__}; load average at the end "
              f"{results['load_average']:.1f}" + (" (above the thread count: other processes shared the CPU)."
                                                 if results["load_average"] > torch.get_num_threads() + 0.5 else "."), ""]
    out.with_suffix(".md").write_text("\n".join(lines))
    print(out.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
