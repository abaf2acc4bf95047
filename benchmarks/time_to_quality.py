"""Time to quality on the CPU: the cpu MNIST recipe trained with L_simple, min-SNR-5, v-prediction and EDM.

Each recipe is mnist_ddpm_recipe("cpu") with its loss set (RECIPES; "baseline" is L_simple, the recipe
before min-SNR-5 was adopted from this study); all train the same 5,000 steps of
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
RECIPES = {  # name: (TrainConfig fields set on the cpu recipe, what it is); each names its loss in full
    "baseline": (dict(prediction="eps", min_snr_gamma=None), "eps-prediction, L_simple (eq-l-simple)"),
    "min-SNR-5": (dict(prediction="eps", min_snr_gamma=5.0), "eps-prediction, min-SNR-5 weights (Hang et al. 2023)"),
    "v-pred": (dict(prediction="v", min_snr_gamma=None), "v-prediction (Salimans & Ho 2022)"),
    "EDM": (dict(prediction="edm", min_snr_gamma=None),
            "EDM preconditioning and loss, log-normal sigma (Karras et al. 2022)"),
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
    """Seconds per training step of each recipe: the time of --speed-steps more steps than a 5-step run,
    the recipes alternating over --rounds rounds (a change of the machine's load hits them all), median."""
    import os
    import statistics
    data, _ = load_training_data(dl.mnist_ddpm_recipe("smoke" if args.dry_run else "cpu"), progress=False)
    rounds = {name: [] for name in RECIPES}
    for _ in range(args.rounds):
        for name in RECIPES:
            recipe = recipe_for(name, 0, args.dry_run)
            times = []
            for steps in (5, 5 + args.speed_steps):
                config = dataclasses.replace(recipe.train, steps=steps, checkpoint_every=0, warmup_steps=4)
                start = time.perf_counter()
                dl.train(recipe.make_model(), data.images, recipe.make_schedule(), config, progress=False)
                times.append(time.perf_counter() - start)
            rounds[name].append((times[1] - times[0]) / args.speed_steps)
    out = {name: dict(seconds_per_step=statistics.median(r), rounds=r, steps_timed=args.speed_steps,
                      threads=torch.get_num_threads()) for name, r in rounds.items()}
    for name, row in out.items():
        print(name, row)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / ("speed_dry.json" if args.dry_run else "speed.json")).write_text(
        json.dumps(dict(recipes=out, hardware=dl.hardware(), load_average_after=os.getloadavg()[0]), indent=1))


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
    for frac in [f for f in FRACTIONS if f <= args.until]:
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


def recipe_mean(points: list[dict]) -> dict:
    """Mean confident share over training seeds at one step, with a conservative standard error: the
    larger of the binomial one (sqrt(sum p(1-p)/n) / k) and the seed-to-seed one (sd / sqrt(k), k >= 2)."""
    k = len(points)
    p = [pt["confident"] for pt in points]
    mean = sum(p) / k
    se_binom = math.sqrt(sum(pt["confident_se"] ** 2 for pt in points)) / k
    se_seed = math.sqrt(sum((x - mean) ** 2 for x in p) / (k - 1) / k) if k > 1 else 0.0
    return dict(seeds=k, confident=mean, se=max(se_binom, se_seed), se_binomial=se_binom, se_seeds=se_seed,
                fid=sum(pt["fid"] for pt in points) / k, per_seed=p)


def minutes_to_reach(points: list[dict], share: float) -> float | None:
    """Training minutes at which the confident share first reaches `share`, linear between checkpoints."""
    prev = None
    for pt in points:
        if pt["confident"] >= share:
            if prev is None:
                return pt["minutes"]
            f = (share - prev["confident"]) / (pt["confident"] - prev["confident"])
            return prev["minutes"] + f * (pt["minutes"] - prev["minutes"])
        prev = pt
    return None


def compare(runs: list[dict]) -> tuple[list[str], dict]:
    """Each recipe against the baseline at the last step every run reached: per seed (same training seed,
    same starting noise) and over the seeds both have; and the minutes each needs to reach the baseline's
    final share. Standard errors are unpaired, hence conservative (the shared noise correlates shares)."""
    by = {}
    for r in runs:
        by.setdefault(r["recipe"], {})[r["seed"]] = r
    if "baseline" not in by:
        return [], {}
    step = min(r["points"][-1]["step"] for r in runs)
    at = {name: {s: next(pt for pt in r["points"] if pt["step"] == step) for s, r in seeds.items()
                 if any(pt["step"] == step for pt in r["points"])} for name, seeds in by.items()}
    summary, lines = dict(step=step, recipes={}), []
    base = recipe_mean(list(at["baseline"].values()))
    for name in RECIPES:
        if name not in at:
            continue
        m = recipe_mean(list(at[name].values()))
        reach = {s: minutes_to_reach(by[name][s]["points"], base["confident"]) for s in by[name]}
        minutes = [pt["minutes"] for r in by[name].values() for pt in r["points"] if pt["step"] == step]
        summary["recipes"][name] = dict(m, minutes_to_baseline_final=reach, minutes_at_step=sum(minutes) / len(minutes))
        if name == "baseline":
            continue
        per_seed = []
        for s, a in sorted(at[name].items()):
            b = at["baseline"].get(s)
            if b is not None:
                z = (a["confident"] - b["confident"]) / math.hypot(a["confident_se"], b["confident_se"])
                per_seed.append(f"seed {s}: {a['confident']:.1%} vs {b['confident']:.1%} ({z:+.1f} s.e.)")
        se = math.hypot(m["se"], base["se"])
        z = (m["confident"] - base["confident"]) / se
        summary["recipes"][name]["z_vs_baseline"] = z
        verdict = ("beats the baseline by more than 2 standard errors" if z > 2 else
                   "not a resolved gain" if z > -2 else "worse by more than 2 standard errors")
        reached = [f"{v:.1f}" for v in reach.values() if v is not None]
        lines.append(f"- **{name}** at step {step}, mean of {m['seeds']} seed(s): {m['confident']:.1%} ± {m['se']:.1%} "
                     f"confident against the baseline's {base['confident']:.1%} ± {base['se']:.1%} "
                     f"({base['seeds']} seed(s)): {100 * (m['confident'] - base['confident']):+.1f} points = {z:+.1f} "
                     f"s.e., {verdict}. Per seed: {'; '.join(per_seed) or 'no shared seed'}. Judge-FID "
                     f"{m['fid']:.1f} against {base['fid']:.1f}. "
                     + (f"Reaches the baseline's final share after {' and '.join(reached)} min (seeds "
                        f"{', '.join(str(s) for s, v in reach.items() if v is not None)}) against the baseline's "
                        f"{summary['recipes']['baseline']['minutes_at_step']:.1f} min." if reached else "Does not reach the baseline's final share."))
    return lines, summary


def report(args) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    speed_file = OUT / "speed.json"
    sps = json.loads(speed_file.read_text())["recipes"]
    runs = [json.loads(p.read_text()) for p in sorted(OUT.glob("*_seed*.json")) if "_dry" not in p.name]
    runs.sort(key=lambda r: (list(RECIPES).index(r["recipe"]), r["seed"]))
    for r in runs:
        for pt in r["points"]:
            pt["minutes"] = pt["step"] * sps[r["recipe"]]["seconds_per_step"] / 60
    lines = ["| recipe | seed | step | minutes (2 threads) | confident (p >= 0.9) | rejected | classes "
             "| judge-FID | KID (± s.e.) |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in runs:
        for pt in r["points"]:
            lines.append(f"| {r['recipe']} | {r['seed']} | {pt['step']} | {pt['minutes']:.2f} | "
                         f"{pt['confident']:.1%} ± {pt['confident_se']:.1%} | {pt['reject']:.1%} | {pt['classes']} "
                         f"| {pt['fid']:.1f} | {pt['kid']:.3g} ± {pt['kid_se']:.2g} |")
    table = "\n".join(lines)
    verdicts, summary = compare(runs)
    (ROOT / "benchmarks" / "results" / "time_to_quality.json").write_text(
        json.dumps(dict(speed=sps, runs=runs, summary=summary), indent=1))
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    colours = dict(zip(RECIPES, ["tab:gray", "tab:blue", "tab:orange", "tab:green"]))
    for r in runs:  # one colour per recipe, one line style per training seed
        m = [pt["minutes"] for pt in r["points"]]
        style = dict(color=colours[r["recipe"]], ls=["-", "--", ":"][r["seed"] % 3], marker="o")
        axes[0].errorbar(m, [100 * pt["confident"] for pt in r["points"]],
                         yerr=[100 * pt["confident_se"] for pt in r["points"]], capsize=3,
                         label=f"{r['recipe']} (seed {r['seed']})", **style)
        axes[1].plot(m, [pt["fid"] for pt in r["points"]], **style)
    if summary:
        axes[0].axhline(100 * summary["recipes"]["baseline"]["confident"], color="tab:gray", lw=0.8, ls=":",
                        label="baseline's final share (mean)")
    axes[0].set(xlabel="training minutes (steps x s/step, 2 threads)", ylabel="confident digits (%)",
                title=f"judge, DPM-Solver++(2M) {NFE} NFE")
    axes[1].set(xlabel="training minutes", ylabel="judge-feature FID", yscale="log", title="judge-feature FID")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(ROOT / "benchmarks" / "results" / "time_to_quality.png", dpi=120)
    speed_rows = [f"| {k} | {v['seconds_per_step']:.4f} | {', '.join(f'{x:.4f}' for x in v.get('rounds', []))} |"
                  for k, v in sps.items()]
    speed_info = json.loads(speed_file.read_text())
    samples = [pt["sample_seconds"] for r in runs for pt in r["points"]]
    mean_sample = sum(samples) / max(1, len(samples))
    md = [HEADER.format(nfe=NFE, n=runs[0]["points"][0]["n"] if runs else 0), "",
          "## Seconds per step (the time axis)", "",
          f"Measured by `time_to_quality.py speed` with {next(iter(sps.values()))['threads']} threads on "
          f"{speed_info['hardware']}; load average after the measurement "
          f"{speed_info.get('load_average_after', float('nan')):.2f}.", "",
          "| recipe | seconds / step (median) | rounds |", "|---|---:|---|", *speed_rows, "",
          "## Quality at each checkpoint", "",
          f"EMA weights, DPM-Solver++(2M) with {NFE} NFE, the same starting noise for every row; "
          "confident share with its binomial standard error sqrt(p(1-p)/n).", "", table, "",
          "![confident share and FID against training time](time_to_quality.png)", "",
          "## Against the baseline", "", *verdicts, "",
          FOOTER.format(sample_seconds=mean_sample, nfe=NFE, ddpm_minutes=mean_sample * 1000 / NFE / 60)]
    (ROOT / "benchmarks" / "results" / "time_to_quality.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


HEADER = """# Time to quality: the cpu MNIST recipe's loss and three alternatives

`benchmarks/time_to_quality.py` (its docstring has the method). Every recipe is the cpu recipe of
chapter 07 (U-Net 16-32-64, 5,000 steps of batch 32, AdamW lr 2e-3 with a cosine decay, EMA 0.999,
channels_last, the MNIST test split: the only split on this offline machine) with its loss set as the
row says ("baseline" is L_simple, the recipe before min-SNR-5 was adopted), trained with the seeds in
the table and checkpointed at 1/8, 1/4, 1/2 and all of its run with `train(..., stop_at=...)`.
Samples: n = {n} per point from the EMA weights, DPM-Solver++(2M) at {nfe} NFE, the same starting noise
for every run; judge-feature FID and KID against 8,000 real test digits (FID at this n is biased
upwards; compare rows, not chapters). The runs trained two at a time with one thread each on a shared
2-core machine; the time axis is steps x each recipe's seconds/step measured separately, so the
sharing does not enter it."""

FOOTER = """## Limits of this measurement

- The seconds/step come from 3 short rounds of 20 steps; they scatter by about 30 % between rounds,
  so the time axis is uncertain by about that much (all recipes do the same work per step, so they
  share one axis within that scatter).
- Training seeds: see the table (v-pred and EDM have seed 0 only). The standard error of a mean over seeds is the
  larger of the binomial and the seed-to-seed one; with two seeds the latter is itself rough.
- DDPM-1000 on these checkpoints was not run: at the measured {sample_seconds:.0f} s per {nfe}-NFE point
  it would take about {ddpm_minutes:.0f} minutes of a core per checkpoint. `mnist_recipe_cpu.md` has
  DDPM-1000, DDIM and DPM-Solver++ on the adopted recipe's model.
- The intermediate checkpoints are points of one run whose cosine decay ends at 5,000 steps, not runs
  tuned for their own length.
- Zero-terminal-SNR rescaling (Lin et al. 2024) was not tried: the linear schedule at T = 1000 already
  ends at sqrt(alpha_bar_T) = 0.0064 (SNR 4e-5), ten times closer to pure noise than the schedule that
  paper fixes, so the mismatch it removes is small here."""


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("what", choices=("speed", "run", "report"))
    p.add_argument("recipe", nargs="?", choices=RECIPES, default="baseline")
    p.add_argument("--seed", type=int, default=0, help="training seed")
    p.add_argument("--sample-seed", type=int, default=0, help="seed of the starting noise (the same for all)")
    p.add_argument("--n", type=int, default=400, help="samples judged per checkpoint")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--speed-steps", type=int, default=30, help="steps timed per recipe and round by `speed`")
    p.add_argument("--rounds", type=int, default=3, help="rounds of `speed` (the median is kept)")
    p.add_argument("--until", type=float, default=1.0, help="`run`: stop after the checkpoint at this share of the "
                   "run (the points before it are those of the full run: the schedule still ends at 5,000 steps)")
    p.add_argument("--dry-run", action="store_true", help="smoke sizes: checks the code path in seconds")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    args = p.parse_args()
    {"speed": speed, "run": run, "report": report}[args.what](args)


if __name__ == "__main__":
    main()
