"""Chapter 07's gpu profile trained through its recipe within a time budget, then sampled and judged.

Trains mnist_ddpm_recipe("gpu") with dl.train into the book's own cache entry (recipes.checkpoint_path),
in legs of --leg steps (train(..., stop_at=...)) until the recipe is finished or --budget seconds are
spent; an unfinished run stays in the cache and the next call resumes it, so repeated calls finish it.
Then the EMA weights draw --n samples with DPM-Solver++(2M) at 20 NFE and with DDPM at 1000 steps
(seeded noise), judged by the in-book judge (confident share, rejected, classes) with judge-feature FID
against 8,000 real test digits. --dry-run: the smoke recipe on the CPU, tiny sizes.
Writes benchmarks/results/gpu/gpu_recipe.{json,md} (dry run: gpu_recipe_dry.*).
"""
from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch

import diffusion_lite as dl
from diffusion_lite.checkpoint import load_weights
from diffusion_lite.training.recipes import checkpoint_path, load_training_data

ROOT = Path(__file__).resolve().parents[1]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--budget", type=float, default=200.0, help="seconds of training in this call")
    p.add_argument("--leg", type=int, default=1000, help="steps between budget checks")
    p.add_argument("--n", type=int, default=1000, help="samples per sampler")
    p.add_argument("--dry-run", action="store_true", help="CPU, smoke recipe, tiny sizes")
    args = p.parse_args()
    profile = "smoke" if args.dry_run else "gpu"
    device = torch.device("cpu" if args.dry_run else "cuda")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("CUDA is not available: run on a GPU machine, or pass --dry-run")
    n = 32 if args.dry_run else args.n
    leg = 10 if args.dry_run else args.leg
    recipe = dl.mnist_ddpm_recipe(profile)
    data, recipe = load_training_data(recipe, progress=False)
    path = checkpoint_path(recipe, data)
    steps = recipe.train.steps
    model = recipe.make_model().to(device)
    done, spent, legs = 0, 0.0, []
    while True:
        if path.exists():
            done = int(dl.load_checkpoint(path)[0]["step"])
        if done >= steps or spent >= args.budget:
            break
        stop = min(steps, (done // leg + 1) * leg)
        start = time.perf_counter()
        result = dl.train(model, data.images, recipe.make_schedule(), recipe.train, checkpoint_path=path,
                          stop_at=stop, progress=False)
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        spent += seconds
        legs.append(dict(from_step=done, to_step=stop, seconds=seconds))
        print(f"steps {done}-{stop}: {seconds:.1f} s, mean loss of the last 100 steps {sum(result.history[-100:]) / len(result.history[-100:]):.4f}")
        model = recipe.make_model().to(device)  # the next leg resumes everything from the checkpoint
    state, _ = dl.load_checkpoint(path)
    done = int(state["step"])
    ema = load_weights(recipe.make_model(), state["ema"], path).to(device).eval()
    per_step = sum(l["seconds"] for l in legs) / max(1, sum(l["to_step"] - l["from_step"] for l in legs)) if legs else None
    judge = dl.load_mnist_judge(profile, progress=False).to(device)
    test = dl.load_dataset("mnist", split="test", progress=False)
    perm = torch.randperm(len(test), generator=torch.Generator().manual_seed(0))
    ref = dl.judge_features(judge, test.images[perm[:8000 if not args.dry_run else 500]].to(device))
    sched = recipe.make_schedule()
    samples = {}
    for method, nfe in (("dpm_solver_pp_2m", 20), ("ddpm", 1000 if not args.dry_run else 20)):
        g = torch.Generator(device=device).manual_seed(0)
        x_T = torch.randn(n, 1, 28, 28, generator=g, device=device)
        start = time.perf_counter()
        with torch.no_grad():
            x = dl.sample(ema, sched, x_T, method=method, steps=nfe, generator=g).x0.clamp(-1, 1)
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        rep = dl.judge(judge, x)
        c = rep.confident_fraction
        samples[f"{method}-{nfe}"] = dict(n=n, seconds=seconds, confident=c, confident_se=math.sqrt(c * (1 - c) / n),
                                          reject=rep.reject_fraction, classes=len(rep.classes_present),
                                          fid=dl.fid_from_features(dl.judge_features(judge, x), ref))
    result = dict(profile=profile, steps_done=done, steps=steps, finished=done == steps, legs=legs,
                  seconds_per_step=per_step, projected_full_seconds=per_step * steps if per_step else None,
                  samples=samples, device=torch.cuda.get_device_name() if device.type == "cuda" else dl.hardware(),
                  torch=torch.__version__)
    out = ROOT / "benchmarks" / "results" / "gpu"
    out.mkdir(parents=True, exist_ok=True)
    stem = "gpu_recipe_dry" if args.dry_run else "gpu_recipe"
    (out / f"{stem}.json").write_text(json.dumps(result, indent=1))
    lines = [f"# Chapter 07's {profile} recipe on {result['device']}", "",
             f"{done:,} of {steps:,} steps trained ({'finished' if done == steps else 'unfinished: rerun to resume'})"
             + (f"; {per_step:.4f} s per step in this call, {per_step * steps / 60:.1f} min for the whole recipe."
                if per_step else "."), "",
             "| sampler | n | seconds | confident (p >= 0.9) | rejected | classes | judge-FID |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {k} | {v['n']} | {v['seconds']:.1f} | {v['confident']:.1%} ± {v['confident_se']:.1%} | "
              f"{v['reject']:.1%} | {v['classes']} | {v['fid']:.1f} |" for k, v in samples.items()]
    (out / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
