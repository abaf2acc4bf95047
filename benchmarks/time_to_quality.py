"""Time to quality on the CPU: the cpu MNIST recipe against min-SNR-5, v-prediction and EDM preconditioning.

Each recipe is mnist_ddpm_recipe("cpu") with one change (RECIPES); all train the same 5,000 steps of
batch 32 with the same cosine learning-rate schedule, seed and data, through train(..., stop_at=...),
which saves one run's checkpoint at 1/8, 1/4, 1/2 and all of its steps. At each checkpoint the EMA
weights draw --n samples with the SAME sampler for every recipe (DPM-Solver++(2M), 20 NFE, trailing
timesteps, starting noise from --sample-seed) and the in-book judge reports the confident share
(p >= 0.9), the rejected share and the classes present, with judge-feature FID and KID against 8,000
real test digits (chapter 09's reference size). FID at n = 400 samples is biased upwards by the small
sample; it is comparable between rows of one n only.

The time axis. Two recipes train side by side with one thread each (the machine has two cores),
which slows each by a varying amount, so wall-clock time of those runs would corrupt the axis.
Instead `speed` measures each recipe's seconds per step briefly on the idle machine with two
threads (run it under `cpu-slot -2`: it holds both cores), and the report puts each checkpoint at
steps x that recipe's measured seconds/step. The intermediate checkpoints are points of one run
whose cosine decay ends at 5,000 steps, not runs tuned for their own budget.

Usage (DL_DATA_DIR=/work/shared/data DL_CACHE_DIR=...):
    cpu-slot -2 python benchmarks/time_to_quality.py speed                 # seconds/step, 2 threads
    cpu-slot python benchmarks/time_to_quality.py run edm --threads 1      # train, checkpoint, judge
    python benchmarks/time_to_quality.py report                            # table, JSON, plot
    python benchmarks/time_to_quality.py run edm --dry-run                 # seconds: smoke sizes
Writes benchmarks/results/time_to_quality/<recipe>_seed<k>.json (one per run, updated at every
checkpoint), speed.json, and benchmarks/results/time_to_quality.{md,json,png}.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import time
from pathlib import Path

import torch

import diffusion_lite as dl
from diffusion_lite.training.recipes import load_training_data

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "time_to_quality"
RECIPES = {  # name: (TrainConfig changes to the cpu recipe, what it is)
    "baseline": ({}, "the cpu recipe: eps-prediction, L_simple"),
    "min-SNR-5": (dict(min_snr_gamma=5.0), "eps-prediction, min-SNR-5 weights (Hang et al. 2023)"),
    "v-pred": (dict(prediction="v"), "v-prediction (Salimans & Ho 2022)"),
    "EDM": (dict(prediction="edm"), "EDM preconditioning and loss, log-normal sigma (Karras et al. 2022)"),
}
FRACTIONS = (1 / 8, 1 / 4, 1 / 2, 1)  # checkpoints, as shares of the run
NFE, N_REF = 20, 8000


def recipe_for(name: str, seed: int, dry: bool) -> dl.Recipe:
    base = dl.mnist_ddpm_recipe("smoke" if dry else "cpu")
    changes, _ = RECIPES[name]
    return dataclasses.replace(base, train=dataclasses.replace(base.train, seed=seed, **changes))


def eps_model(model, recipe: dl.Recipe):
    """The samplers take an eps model: v is read through eq-eps-from-v; EDMPrecond already returns eps."""
    if recipe.train.prediction != "v":
        return model
    sched = recipe.make_schedule()
    return lambda x_t, t: dl.eps_from_v(model(x_t, t), t, x_t, sched)


def speed(args) -> None:
    """Seconds per training step of each recipe: --speed-steps steps after 5 warm-up steps."""
    out = {}
    data, _ = load_training_data(dl.mnist_ddpm_recipe("cpu"), progress=False)
    for name in RECIPES:
        recipe = recipe_for(name, 0, args.dry_run)
        runs = []
        for steps in (5, 5 + args.speed_steps):
            config = dataclasses.replace(recipe.train, steps=steps, checkpoint_every=0,
                                         warmup_steps=min(recipe.train.warmup_steps, 4))
            start = time.perf_counter()
            dl.train(recipe.make_model(), data.images, recipe.make_schedule(), config, progress=False)
            runs.append(time.perf_counter() - start)
        out[name] = dict(seconds_per_step=(runs[1] - runs[0]) / args.speed_steps, steps_timed=args.speed_steps,
                         threads=torch.get_num_threads())
        print(name, out[name])
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / ("speed_dry.json" if args.dry_run else "speed.json")).write_text(
        json.dumps(dict(recipes=out, hardware=dl.hardware()), indent=1))


@torch.no_grad()
def evaluate(model, recipe: dl.Recipe, judge, ref_features, n: int, seed: int) -> dict:
    """Judge n samples of DPM-Solver++(2M) at NFE steps from fixed starting noise."""
    g = torch.Generator().manual_seed(seed)
    x_T = torch.randn(n, 1, 28, 28, generator=g)
    start = time.perf_counter()
    x = dl.sample(eps_model(model, recipe), recipe.make_schedule(), x_T, method="dpm_solver_pp_2m", steps=NFE,
                  generator=g).x0.clamp(-1, 1)
    seconds = time.perf_counter() - start
    rep = dl.judge(judge, x)
    feats = dl.judge_features(judge, x)
    k = dl.kid(feats, ref_features, subsets=50, generator=torch.Generator().manual_seed(seed))
    p = rep.confident_fraction
    return dict(n=n, confident=p, confident_se=math.sqrt(p * (1 - p) / n), reject=rep.reject_fraction,
                reject_se=math.sqrt(rep.reject_fraction * (1 - rep.reject_fraction) / n),
                classes=len(rep.classes_present), class_shares=[float(v) for v in rep.class_shares],
                fid=dl.fid_from_features(feats, ref_features), kid=k.mean, kid_se=k.stderr,
                sample_seconds=seconds)


def run(args) -> None:
    if args.threads:
        torch.set_num_threads(args.threads)
    recipe = recipe_for(args.recipe, args.seed, args.dry_run)
    data, recipe = load_training_data(recipe, progress=False)
    judge = dl.load_mnist_judge("smoke" if args.dry_run else "cpu", progress=False)
    test = dl.load_dataset("mnist", split="test", progress=False)
    perm = torch.randperm(len(test), generator=torch.Generator().manual_seed(0))
    n_ref = min(N_REF, len(test)) if not args.dry_run else 500
    ref_features = dl.judge_features(judge, test.images[perm[:n_ref]])
    path = dl.cache_path(f"ttq-{args.recipe.replace('-', '')}" + ("-dry" if args.dry_run else ""), dl.UNet.__name__,
                         recipe.unet, dataclasses.replace(recipe.train, checkpoint_every=0),
                         {"schedule": recipe.schedule, "T": recipe.T},
                         {"dataset": data.name, "split": recipe.split, "n": len(data)})
    steps = recipe.train.steps
    config = dataclasses.replace(recipe.train, checkpoint_every=0)
    name = f"{args.recipe}_seed{args.seed}" + ("_dry" if args.dry_run else "")
    out_file = OUT / f"{name}.json"
    row = dict(recipe=args.recipe, what=RECIPES[args.recipe][1], seed=args.seed, sample_seed=args.sample_seed,
               sampler="DPM-Solver++(2M), trailing", nfe=NFE, n_ref=n_ref, steps=steps,
               batch_size=recipe.train.batch_size, split=recipe.split, threads=torch.get_num_threads(),
               hardware=dl.hardware(), points=[])
    model = recipe.make_model()
    n = 64 if args.dry_run else args.n
    for frac in FRACTIONS:
        stop = max(1, round(steps * frac))
        start = time.perf_counter()
        result = dl.train(model, data.images, recipe.make_schedule(), config, checkpoint_path=path, stop_at=stop,
                          progress=not args.quiet)
        train_seconds = time.perf_counter() - start
        point = dict(step=stop, loss_last_100=sum(result.history[-100:]) / len(result.history[-100:]),
                     train_seconds_this_leg=train_seconds,
                     **evaluate(result.ema_model.eval(), recipe, judge, ref_features, n, args.sample_seed))
        row["points"].append(point)
        print(json.dumps({k: v for k, v in point.items() if k != "class_shares"}))
        OUT.mkdir(parents=True, exist_ok=True)
        out_file.write_text(json.dumps(row, indent=1))
        model = recipe.make_model()  # the next leg resumes everything from the checkpoint


def report(args) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    speed_file = OUT / "speed.json"
    sps = json.loads(speed_file.read_text())["recipes"]
    runs = [json.loads(p.read_text()) for p in sorted(OUT.glob("*_seed*.json")) if "_dry" not in p.name]
    for r in runs:
        for pt in r["points"]:
            pt["minutes"] = pt["step"] * sps[r["recipe"]]["seconds_per_step"] / 60
    lines = ["| recipe | seed | step | minutes (2 idle threads) | confident (p >= 0.9) | rejected | classes "
             "| judge-FID | KID x 1e3 |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in runs:
        for pt in r["points"]:
            lines.append(f"| {r['recipe']} | {r['seed']} | {pt['step']} | {pt['minutes']:.2f} | "
                         f"{pt['confident']:.1%} ± {pt['confident_se']:.1%} | {pt['reject']:.1%} | {pt['classes']} "
                         f"| {pt['fid']:.1f} | {1e3 * pt['kid']:.2f} ± {1e3 * pt['kid_se']:.2f} |")
    table = "\n".join(lines)
    (ROOT / "benchmarks" / "results" / "time_to_quality.json").write_text(
        json.dumps(dict(speed=sps, runs=runs), indent=1))
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for r in runs:
        m = [pt["minutes"] for pt in r["points"]]
        axes[0].errorbar(m, [100 * pt["confident"] for pt in r["points"]],
                         yerr=[100 * pt["confident_se"] for pt in r["points"]], marker="o", capsize=3,
                         label=f"{r['recipe']} (seed {r['seed']})")
        axes[1].plot(m, [pt["fid"] for pt in r["points"]], marker="o", label=r["recipe"])
    axes[0].set(xlabel="training minutes (steps x s/step, 2 idle threads)", ylabel="confident digits (%)",
                title=f"judge, DPM-Solver++(2M) {NFE} NFE")
    axes[1].set(xlabel="training minutes", ylabel="judge-feature FID", yscale="log", title="FID (n samples vs 8k real)")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(ROOT / "benchmarks" / "results" / "time_to_quality.png", dpi=120)
    print(table)
    (OUT / "table.md").write_text(table + "\n")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("what", choices=("speed", "run", "report"))
    p.add_argument("recipe", nargs="?", choices=RECIPES, default="baseline")
    p.add_argument("--seed", type=int, default=0, help="training seed")
    p.add_argument("--sample-seed", type=int, default=0, help="seed of the starting noise (the same for all)")
    p.add_argument("--n", type=int, default=400, help="samples judged per checkpoint")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--speed-steps", type=int, default=30, help="steps timed per recipe by `speed`")
    p.add_argument("--dry-run", action="store_true", help="smoke sizes: checks the code path in seconds")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    args = p.parse_args()
    {"speed": speed, "run": run, "report": report}[args.what](args)


if __name__ == "__main__":
    main()
