"""Is the in-book MNIST judge a fair instrument? Real held-out digits it accepts, garbage it lets through.

The judge (diffusion_lite.eval.judge) scores generated digits: a sample counts when the judge names a
digit with probability >= 0.9. That share means something only next to two others, measured here on
images the judge never saw:
- the share of *real* digits it accepts (the ceiling a perfect generator would reach), and
- the share of *garbage* (each kind of diffusion_lite.eval.garbage, drawn from held-out digits with a
  generator the training never used) that it accepts as a confident digit (the floor), plus one
  kind no judge trains on: digits with inverted colours.

For each training length in --steps, a judge with JudgeConfig(steps=...) (everything else the
book's defaults) is trained on the first --n-train images of the MNIST test split and measured on
the rest. With --samples FILE.pt (a saved (N, 1, 28, 28) tensor of generated digits in [-1, 1], as
written by mnist_recipe_trials.py --save), each judge also scores those samples, to show how much
of a generator's score is the judge's doing.

The book's judge itself trains on all 10k test images (the only MNIST split offline), so these
held-out numbers are for a judge of the same recipe trained on 80 % of them.

Usage:
    DL_DATA_DIR=../shared/data .venv/bin/python benchmarks/judge_calibration.py --steps 400 1200 2400 4000
Writes benchmarks/results/judge_calibration.md and .json.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

import diffusion_lite as dl
from diffusion_lite.eval.judge import GARBAGE_KINDS, JudgeConfig, train_judge

ROOT = Path(__file__).resolve().parents[1]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, nargs="+", default=[400, 1200, 2400, 4000], help="judge training lengths")
    p.add_argument("--n-train", type=int, default=8000,
                   help="test-split images the judges train on; the rest are held out")
    p.add_argument("--n-garbage", type=int, default=1000, help="held-out garbage images per kind")
    p.add_argument("--samples", type=Path, nargs="*", default=[],
                   help="saved generated samples to score with each judge")
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    missing = [str(path) for path in args.samples if not path.is_file()]
    if missing:
        raise SystemExit(f"--samples: no such file(s): {', '.join(missing)}")
    data = dl.load_dataset("mnist", split="test", progress=False)
    if not 0 < args.n_train < len(data.images):
        raise SystemExit(f"--n-train must be between 1 and {len(data.images) - 1}, got {args.n_train}")
    train_x, train_y = data.images[:args.n_train], data.labels[:args.n_train]
    held_x, held_y = data.images[args.n_train:], data.labels[args.n_train:]
    g = torch.Generator().manual_seed(2024)  # not the generator any judge trains with (JudgeConfig.seed = 0)
    garbage = {kind: dl.garbage(args.n_garbage, held_x, g, kinds=(kind,), labels=held_y) for kind in GARBAGE_KINDS}
    garbage["inverted (unseen kind)"] = -held_x[:args.n_garbage]  # white background: a kind no judge trains on
    samples = {path.stem: torch.load(path) for path in args.samples}

    rows = []
    for steps in args.steps:
        start = time.perf_counter()
        judge = train_judge(train_x, train_y, JudgeConfig(steps=steps), progress=True)
        seconds = time.perf_counter() - start
        real = dl.judge(judge, held_x)
        passed = {kind: dl.judge(judge, x).confident_fraction for kind, x in garbage.items()}
        rows.append(dict(steps=steps, train_seconds=seconds, real_confident=real.confident_fraction,
                         real_accuracy=float((real.predicted == held_y).double().mean()),
                         real_rejected=real.reject_fraction, garbage_passed=passed,
                         garbage_passed_max=max(passed.values()),
                         samples={name: dl.judge(judge, x).confident_fraction for name, x in samples.items()}))
        print(json.dumps(rows[-1]), flush=True)

    load = os.getloadavg()[0]
    out = ROOT / "benchmarks" / "results" / "judge_calibration"
    meta = dict(n_train=args.n_train, n_heldout=len(held_x), n_garbage_per_kind=args.n_garbage,
                hardware=dl.hardware(), threads=torch.get_num_threads(), torch=torch.__version__, load_average=load)
    out.with_suffix(".json").write_text(json.dumps(dict(meta=meta, rows=rows), indent=1))
    sample_cols = list(samples)
    lines = [
        "# How fair is the MNIST judge? Held-out real digits and garbage",
        "",
        "Produced by `benchmarks/judge_calibration.py` (method in its docstring). Judges of the book's recipe "
        f"(`JudgeConfig`, only `steps` varied) trained on the first {args.n_train:,} MNIST test images, measured on "
        f"the other {len(held_x):,} and on {args.n_garbage:,} held-out garbage images of each of the "
        f"{len(GARBAGE_KINDS)} kinds, plus inverted digits (a kind the judges never saw). "
        "'Accepted' means: top class a digit, probability >= 0.9.",
        "",
        "| judge steps | real digits accepted | real digits: accuracy | real digits rejected | garbage accepted "
        "(worst kind) | training (s) |" + "".join(f" samples `{c}` accepted |" for c in sample_cols),
        "|---:|---:|---:|---:|---:|---:|" + "---:|" * len(sample_cols),
    ]
    for r in rows:
        worst = max(r["garbage_passed"], key=r["garbage_passed"].get)
        lines.append(f"| {r['steps']:,} | {r['real_confident']:.1%} | {r['real_accuracy']:.2%} "
                     f"| {r['real_rejected']:.1%} "
                     f"| {r['garbage_passed_max']:.1%} ({worst}) | {r['train_seconds']:.0f} |"
                     + "".join(f" {r['samples'][c]:.1%} |" for c in sample_cols))
    lines += ["", f"{dl.hardware()}; torch {torch.__version__}; load average at the end {load:.1f}."]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
