"""How often a prompt gets the digit it names: the text-conditioned MNIST model of chapter 11.

The model is `dl.load_or_train_mnist_text` of a profile (cross-attention to the token states of the
frozen all-MiniLM-L6-v2, prompt dropout 0.1), trained on captions of the split's training phrasings
(`dl.caption_split(0)`). For each guidance scale w and each kind of caption

* train:        training templates and words (phrasings the model saw),
* new-template: held-out templates, training words,
* new-words:    training templates with held-out nouns, style words or word forms,

n captions per digit are drawn (seeded), encoded once, and sampled from the same x_T with
classifier-free guidance (the U-Net's null context is the null condition) and DDIM (eta = 0). The
in-book judge scores them (`dl.conditional_report`): fidelity = the share confidently (p >= 0.9)
judged as the digit the prompt names; classes present; worst class; "not a digit" share; per-class
k-NN recall of the real digits (diversity).

Usage:  DL_DATA_DIR=../shared/data python benchmarks/text_prompts_cpu.py [--profile cpu] [--per-class 16] [--steps 50]
Writes benchmarks/results/text_prompts_<profile>.md and .json.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import diffusion_lite as dl  # noqa: E402
from conditional_eval import sample_and_judge  # noqa: E402

W_VALUES = [0.0, 1.0, 2.0, 3.0, 5.0]


def label_comparison(profile: str) -> str:
    """A sentence on the best fidelity of chapter 10's label-conditioned model, read from its results file."""
    path = ROOT / "benchmarks" / "results" / f"guidance_{profile}.json"
    if not path.exists():
        return ""
    rows = json.loads(path.read_text())["rows"]
    best = {kind: max(r["fidelity"] for r in rows if r["guidance"] == kind) for kind in ("cfg", "cfg-interval")}
    return (f" Chapter 10's label-conditioned model reached {best['cfg']:.1%} with constant CFG and "
            f"{best['cfg-interval']:.1%} with interval CFG (`{path.name.replace('.json', '.md')}`).")

def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--profile", default=os.environ.get("DL_PROFILE", "cpu"))
    ap.add_argument("--per-class", type=int, default=16)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--train-steps", type=int, default=None,
                    help="train this many steps instead of the recipe's (when the full run does not fit)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    os.environ["DL_PROFILE"] = args.profile
    torch.manual_seed(0)
    load_before = open("/proc/loadavg").read().split()[:3]

    t0 = time.perf_counter()
    encoder = dl.TextEncoder()
    encoder_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    model, result, recipe = dl.load_or_train_mnist_text(args.profile, encoder=encoder, progress=True,
                                                          train_steps=args.train_steps)
    load_seconds = time.perf_counter() - t0
    judge = dl.load_mnist_judge(args.profile, progress=False)
    real = dl.load_dataset("mnist", split="test")
    sched = recipe.make_schedule()
    split = dl.caption_split(0)
    labels = torch.arange(10).repeat_interleave(args.per_class)  # (N,)
    x_T = torch.randn(len(labels), 1, 28, 28, generator=torch.Generator().manual_seed(1))
    captions = {kind: dl.sample_captions(labels, split, kind, torch.Generator().manual_seed(2))
                for kind in dl.CAPTION_KINDS}

    rows = []
    for w in W_VALUES:
        guided = dl.classifier_free_guidance(model, w)
        for kind, caps in captions.items():
            cond = encoder.encode(caps).cond
            _, measured = sample_and_judge(guided, sched, x_T, labels, cond, args.steps, judge, real, seed=3)
            row = {"w": w, "captions": kind, **measured, "examples": caps[::args.per_class][:10]}
            rows.append(row)
            print(json.dumps({k: v for k, v in row.items() if k != "examples"}), flush=True)
    load_after = open("/proc/loadavg").read().split()[:3]

    trained = result.trained_seconds
    meta = {"profile": args.profile, "sampler": f"DDIM eta=0, {args.steps} steps", "per_class": args.per_class,
            "n": len(labels), "recipe": recipe.kind, "split": recipe.split, "train_steps": recipe.train.steps,
            "batch_size": recipe.train.batch_size, "p_uncond": recipe.train.p_uncond,
            "parameters": dl.count_parameters(model), "train_seconds": trained,
            "trained_in_this_run": result.resumed_from < recipe.train.steps,
            "final_loss": sum(result.history[-100:]) / min(100, len(result.history)),
            "encoder_load_seconds": encoder_seconds, "model_load_or_train_seconds": load_seconds,
            "encoder": repr(encoder), "held_out": {"templates": split.eval_templates, "words": split.eval_words},
            "hardware": dl.hardware(), "threads": torch.get_num_threads(), "loadavg_before": load_before,
            "loadavg_after": load_after, "torch": torch.__version__}
    out = Path(args.out) if args.out else ROOT / "benchmarks" / "results" / f"text_prompts_{args.profile}"
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))

    held = [r for r in rows if r["captions"] != "train"]
    best_w = max(W_VALUES, key=lambda w: sum(r["fidelity"] for r in held if r["w"] == w))
    best_held = sum(r["fidelity"] for r in held if r["w"] == best_w) / 2
    lines = [f"# Prompts to digits: text-conditioned MNIST ({args.profile} profile)", "",
             f"Produced by `benchmarks/text_prompts_cpu.py --profile {args.profile}` (method in its docstring).", "",
             f"Model: `{recipe.kind}`, a U-Net of {meta['parameters']:,} parameters with cross-attention to the "
             f"token states of the frozen all-MiniLM-L6-v2 (384-d, padding masked); {recipe.train.steps:,} steps of "
             f"batch {recipe.train.batch_size}, prompt dropout {recipe.train.p_uncond}; trained on the MNIST "
             f"**{recipe.split}** split, one caption per image from the training phrasings. Training: "
             + (f"{trained:.0f} s" if trained is not None else "time unknown")
             + (" (in this run)" if meta["trained_in_this_run"] else " (loaded from the cache; time recorded there)")
             + f"; loss {recipe.train.loss_name}, mean over the last 100 steps {meta['final_loss']:.4f}."
             + ("" if args.train_steps is None else
                f" **Shortened run**: the recipe trains {dl.mnist_text_recipe(args.profile).train.steps:,} steps; "
                f"this measurement trained {args.train_steps:,} (`--train-steps`), what fitted the time left on a "
                "CPU shared with other jobs, so it understates the recipe."), "",
             f"Sampler **{meta['sampler']}** (NFE {args.steps}; each CFG evaluation is one U-Net pass on a batch "
             f"of 2B); {len(labels)} samples per row ({args.per_class} per digit, the same x_T in every row); "
             f"fidelity = judged confidently (p >= 0.9) as the digit the prompt names. Held out from training: "
             f"templates {', '.join(repr(t) for t in split.eval_templates)}; words "
             f"{', '.join(f'{k}: {list(v)}' for k, v in split.eval_words.items())}.", "",
             "| w | captions | fidelity | classes | worst class | not a digit | recall | sampling s |",
             "|---:|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['w']:g} | {r['captions']} | {r['fidelity']:.1%} | {r['classes_present']}/10 | "
                     f"{r['min_class_fidelity']:.0%} | {r['reject']:.1%} | {r['recall']:.2f} | "
                     f"{r['sample_seconds']:.0f} |")
    target = "met" if best_held >= 0.9 else "NOT met"
    lines += ["", f"Best w on held-out phrasings: w = {best_w:g}, fidelity {best_held:.1%} (mean of new-template and "
              f"new-words): target (>= 90 %) **{target}**.{label_comparison(args.profile)}", "",
              f"Hardware: {meta['hardware']}, {meta['threads']} torch thread(s); load average "
              f"{' '.join(load_before)} before, {' '.join(load_after)} after (above the thread count: other "
              f"processes shared the CPU and the times are pessimistic)."]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
