"""Fidelity vs diversity of guided class-conditional MNIST samples as the guidance scale varies.

The model is the class-conditional U-Net of chapter 10 (`dl.load_or_train_mnist_cond`, label dropout
p_uncond = 0.1) of a profile; the classifier of classifier guidance is `dl.load_or_train_noisy_classifier`,
applied to the same network with the null label as the unconditional eps-model. Every setting
samples the same x_T (seeded) for the same requested labels (n per class, all ten classes) with
DDIM (eta = 0) at a fixed number of steps, and is judged by the in-book judge (`dl.conditional_report`):

* fidelity: share confidently (p >= 0.9) judged as the requested class; classes present;
* diversity, per class then averaged: judge-feature KID and FID against the real digits of that
  class (the 10k test split), and k-NN recall (k = 3) of those real digits by the samples.

Settings: CFG with constant w in {0, 1, 2, 3, 5, 8}; CFG guided only in a limited interval of noise
levels (Kynkäänniemi et al. 2024: sigma in (0.28, 5.42], sigma = sqrt((1 - alpha_bar) / alpha_bar)),
with w in {2, 3, 5, 8}; classifier guidance with s in {1, 3, 10}.

Usage:  DL_DATA_DIR=../shared/data python benchmarks/guidance_cpu.py [--profile cpu] [--per-class 20] [--steps 50]
Writes benchmarks/results/guidance_<profile>.md, .json and _grid.png.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import diffusion_lite as dl  # noqa: E402
from conditional_eval import sample_and_judge  # noqa: E402

CFG_W = [0.0, 1.0, 2.0, 3.0, 5.0, 8.0]
INTERVAL_W = [2.0, 3.0, 5.0, 8.0]
CG_S = [1.0, 3.0, 10.0]


def sigma_interval(sched: dl.Schedule, sigma_lo: float = 0.28, sigma_hi: float = 5.42) -> tuple[int, int]:
    """(t_lo, t_hi): the timesteps whose noise level sigma_t lies in (sigma_lo, sigma_hi]."""
    ab = sched.alpha_bar
    sigma = ((1 - ab) / ab).sqrt()
    inside = ((sigma > sigma_lo) & (sigma <= sigma_hi)).nonzero().flatten()
    return int(inside.min()), int(inside.max())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--profile", default=os.environ.get("DL_PROFILE", "cpu"))
    ap.add_argument("--per-class", type=int, default=20)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    os.environ["DL_PROFILE"] = args.profile
    torch.manual_seed(0)

    model, result, recipe = dl.load_or_train_mnist_cond(args.profile, progress=False)
    clf = dl.load_or_train_noisy_classifier(args.profile, progress=False)
    judge = dl.load_mnist_judge(args.profile, progress=False)
    real = dl.load_dataset("mnist", split="test")
    sched = recipe.make_schedule()
    interval = sigma_interval(sched)
    labels = torch.arange(10).repeat_interleave(args.per_class)  # (N,)
    x_T = torch.randn(len(labels), 1, 28, 28, generator=torch.Generator().manual_seed(1))

    def uncond(x_t, t):
        return model(x_t, t)  # cond=None: the null label

    settings = [("cfg", w, dl.classifier_free_guidance(model, w)) for w in CFG_W]
    settings += [("cfg-interval", w, dl.classifier_free_guidance(model, w, interval=interval)) for w in INTERVAL_W]
    settings += [("classifier", s, dl.classifier_guidance(uncond, clf, sched, s)) for s in CG_S]
    rows, grids = [], {}
    load_before = open("/proc/loadavg").read().split()[:3]
    for kind, scale, guided in settings:
        x0, measured = sample_and_judge(guided, sched, x_T, labels, labels, args.steps, judge, real, seed=2)
        row = {"guidance": kind, "scale": scale, **measured}
        rows.append(row)
        grids[f"{kind} {scale:g}"] = x0[::max(1, args.per_class // 4)][:40]
        print(json.dumps(row), flush=True)
    load_after = open("/proc/loadavg").read().split()[:3]

    out = Path(args.out) if args.out else ROOT / "benchmarks" / "results" / f"guidance_{args.profile}"
    meta = {"profile": args.profile, "sampler": f"DDIM eta=0, {args.steps} steps", "per_class": args.per_class,
            "n": len(labels), "interval_t": interval, "recipe": recipe.kind, "split": recipe.split,
            "train_steps": recipe.train.steps, "p_uncond": recipe.train.p_uncond, "loss": recipe.train.loss_name,
            "hardware": dl.hardware(),
            "threads": torch.get_num_threads(), "loadavg_before": load_before, "loadavg_after": load_after,
            "torch": torch.__version__}
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    best = max((r for r in rows if r["guidance"] != "classifier"), key=lambda r: (r["fidelity"], -r["scale"]))
    lines = [f"# Guidance on class-conditional MNIST ({args.profile} profile)", "",
             f"Model: `{recipe.kind}` ({recipe.train.steps} steps, p_uncond {recipe.train.p_uncond}, "
             f"loss {recipe.train.loss_name}, split {recipe.split!r}); sampler **{meta['sampler']}** "
             f"(NFE {args.steps} of the guided model; "
             f"a CFG evaluation is one U-Net pass on a batch of 2B, a classifier-guided one adds a classifier "
             f"forward and backward pass); {len(labels)} samples "
             f"({args.per_class} per class, same x_T for every setting); judge threshold 0.9. "
             f"Interval guidance acts for t in [{interval[0]}, {interval[1]}] (sigma in (0.28, 5.42]). "
             f"Classifier guidance: the same network with the null label + the noisy classifier. "
             f"Hardware: {meta['hardware']}, {meta['threads']} torch thread(s), load average "
             f"{' '.join(load_before)} before, {' '.join(load_after)} after.", "",
             "| guidance | scale | fidelity | classes | worst class | rejected | KID (per class) | FID (per class) "
             "| recall | sampling s |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['guidance']} | {r['scale']:g} | {r['fidelity']:.1%} | {r['classes_present']}/10 | "
                     f"{r['min_class_fidelity']:.0%} | {r['reject']:.1%} | {r['kid']:.4f} | {r['fid']:.1f} | "
                     f"{r['recall']:.2f} | {r['sample_seconds']:.0f} |")
    target = "met" if best["fidelity"] >= 0.95 and best["classes_present"] == 10 else "NOT met"
    lines += ["", f"Best CFG setting: {best['guidance']} w = {best['scale']:g}, fidelity {best['fidelity']:.1%}, "
              f"{best['classes_present']}/10 classes: target (>= 95 %, every class) **{target}**.",
              f"Grid: `{out.name}_grid.png` (rows: settings; 4 samples per class)."]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from diffusion_lite import plotting
    fig, axes = plt.subplots(len(grids), 1, figsize=(10, 1.3 * len(grids)))
    for ax, (name, x) in zip(axes, grids.items()):
        ax.imshow(plotting.image_grid(x, nrow=len(x)), cmap="gray")
        ax.set_axis_off()
        ax.set_title(name, fontsize=8, loc="left")
    fig.tight_layout()
    fig.savefig(str(out) + "_grid.png", dpi=80)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
