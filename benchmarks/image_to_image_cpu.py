"""Inpainting coherence (replacement vs RePaint) and 7->28 super-resolution on MNIST (chapter 13, issue 19 targets).

1. A pixel DDPM with the cpu recipe's network and optimiser is trained on the first 9,000 digits of
   the test split (--pixel-steps steps; the recipe uses 5,000), cached with cached_model.
2. Coherence: the top half of --n held-out digits (the last 1,000) is kept and the bottom half
   inpainted with respaced DDPM (--steps), by plain replacement and by RePaint (--resample,
   --jump); coherence = share whose judge class equals the original's, with standard errors and
   the difference in standard errors of the difference (paired over the same digits).
3. Super-resolution 7->28: the cpu recipe's SR U-Net trained as a diffusion model (SR3-style
   concatenation) and by MSE regression (--sr-steps each), against bicubic: PSNR, SSIM, judge
   confident share, consistency RMS on --n-sr held-out digits, DDIM (--sr-ddim).
Targets: RePaint coherence above replacement by > 2 SE; SR PSNR >= bicubic + 2 dB; SR confident
share above the regression network's.

Usage: /work/wt/cpu-slot python benchmarks/image_to_image_cpu.py
Writes benchmarks/results/image_to_image_cpu.md and .json.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import time
from pathlib import Path

import torch

import diffusion_lite as dl

ROOT = Path(__file__).resolve().parents[1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pixel-steps", type=int, default=2500)
    ap.add_argument("--shared-pixel", action="store_true",
                    help="use the book's cached cpu-profile DDPM (dl.load_or_train_mnist_ddpm) instead; it may "
                         "have trained on the whole test split, evaluation digits included")
    ap.add_argument("--sr-steps", type=int, default=1500)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--resample", type=int, default=4)
    ap.add_argument("--jump", type=int, default=5)
    ap.add_argument("--n-sr", type=int, default=300)
    ap.add_argument("--sr-ddim", type=int, default=50)
    ap.add_argument("--label", default="")
    ap.add_argument("--out", default="image_to_image_cpu", help="results file name (without .md/.json)")
    args = ap.parse_args()
    res = {"args": vars(args), "hardware": dl.hardware(), "loadavg_start": os.getloadavg()}
    data = dl.load_dataset("mnist", split="test", progress=False)
    train_x, held = data.images[:9000], data.images[9000:]
    judge = dl.load_mnist_judge("cpu", progress=False)
    rec = dl.mnist_ddpm_recipe("cpu")
    sched = rec.make_schedule()
    cfg = dataclasses.replace(rec.train, steps=args.pixel_steps, checkpoint_every=0)
    t0 = time.perf_counter()
    if args.shared_pixel:
        pixel, _, used = dl.load_or_train_mnist_ddpm(rec, progress=False)
        res["pixel_model"] = f"shared cpu recipe, {used.train.steps} steps on the {used.split} split"
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            pixel = dl.UNet(rec.unet)
        pixel = dl.cached_model("ddpm-mnist-9k", pixel, (rec.unet, cfg, {"images": train_x}),
                                lambda m: dl.train(m, train_x, sched, cfg, progress=False).ema_model)
        res["pixel_model"] = f"cpu recipe network, {cfg.steps} steps on the first 9,000 test-split digits"
    res["pixel_train_or_load_s"] = time.perf_counter() - t0

    # ---- inpainting coherence (--n 0 skips it)
    x = held[:max(args.n, 1)]
    mask = torch.zeros(1, 1, 28, 28)
    mask[..., :14, :] = 1
    truth = dl.judge(judge, x).predicted
    hits, inp = {}, {}
    for name, r in (("replacement", 1), ("repaint", args.resample)) if args.n else ():
        t0 = time.perf_counter()
        with torch.no_grad():
            out = dl.inpaint(pixel, sched, x, mask, args.steps, resample=r, jump=args.jump,
                             generator=torch.Generator().manual_seed(2))
        hits[name] = (dl.judge(judge, out.x0.clamp(-1, 1)).predicted == truth).float()
        h = hits[name]
        inp[name] = {"nfe": out.nfe, "coherence": float(h.mean()), "se": float(h.std() / math.sqrt(len(h))),
                     "seconds": time.perf_counter() - t0}
    if args.n:
        diff = hits["repaint"] - hits["replacement"]
        inp["difference"] = float(diff.mean())
        inp["difference_se_paired"] = float(diff.std() / math.sqrt(len(diff)))
        inp["difference_in_se"] = inp["difference"] / max(inp["difference_se_paired"], 1e-12)
        res["inpainting"] = inp

    # ---- super-resolution 7 -> 28
    u_cfg, sr_cfg = dl.superres_recipe("cpu")
    sr_cfg = dataclasses.replace(sr_cfg, steps=args.sr_steps)
    low = dl.downsample(train_x, 7)
    models, times = {}, {}
    for kind in dl.SR_KINDS:
        t0 = time.perf_counter()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(sr_cfg.seed)
            m = dl.SuperResModel(dl.UNet(u_cfg), low_size=7)
        if kind == "regression":
            dl.train_regression(m, train_x, low, sr_cfg, progress=False)
        else:
            m = dl.train(m, train_x, sched, sr_cfg, cond=low, progress=False).ema_model
        models[kind], times[kind] = m.eval(), time.perf_counter() - t0
    xh = held[:args.n_sr]
    y = dl.downsample(xh, 7)
    with torch.no_grad():
        outs = {"bicubic": dl.upsample(y, 28), "regression": dl.regress(models["regression"], y),
                "diffusion": dl.sample_ddim(models["diffusion"], sched, xh.shape, args.sr_ddim, cond=y,
                                            generator=torch.Generator().manual_seed(7)).x0}
    sr = {}
    for name, out in outs.items():
        out = out.clamp(-1, 1)
        sr[name] = {"psnr": float(dl.psnr(out, xh).mean()), "ssim": float(dl.ssim(out, xh).mean()),
                    "confident": dl.judge(judge, out).confident_fraction,
                    "consistency_rms": float((dl.downsample(out, 7) - y).pow(2).mean().sqrt()),
                    "train_s": times.get(name)}
    sr["real_confident"] = dl.judge(judge, xh).confident_fraction
    res["superres_7_28"] = sr
    res["loadavg_end"] = os.getloadavg()
    out_dir = ROOT / "benchmarks" / "results"
    (out_dir / f"{args.out}.json").write_text(json.dumps(res, indent=2))
    I, S = inp, sr
    md = [f"# Image-to-image on MNIST {('(' + args.label + ')') if args.label else ''}", "",
          f"{res['hardware']}; load average {res['loadavg_start'][0]:.2f} at the start, "
          f"{res['loadavg_end'][0]:.2f} at the end. Pixel DDPM: {res['pixel_model']}; judge of the cpu "
          "profile; evaluation on the last 1,000 digits of the test split.", ""]
    if args.n:
        md += [f"## Inpainting, top half known, {args.n} digits, DDPM respaced to {args.steps} steps", "",
          "| method | NFE | coherence (+- 1 SE) |", "|---|---:|---:|",
          f"| replacement | {I['replacement']['nfe']} | {I['replacement']['coherence']:.1%} +- {I['replacement']['se']:.1%} |",
          f"| RePaint r={args.resample}, j={args.jump} | {I['repaint']['nfe']} | {I['repaint']['coherence']:.1%} "
          f"+- {I['repaint']['se']:.1%} |", "",
          f"Difference {I['difference']:+.1%}, paired SE {I['difference_se_paired']:.1%}: "
          f"{I['difference_in_se']:.1f} SE (target > 2: {'met' if I['difference_in_se'] > 2 else 'NOT met'}).", ""]
    md += [f"## Super-resolution 7->28, {args.n_sr} digits ({args.sr_steps} training steps per network; "
          f"diffusion sampled with DDIM-{args.sr_ddim})", "",
          "| method | PSNR (dB) | SSIM | judge confident | consistency RMS |", "|---|---:|---:|---:|---:|"]
    md += [f"| {k} | {v['psnr']:.2f} | {v['ssim']:.3f} | {v['confident']:.1%} | {v['consistency_rms']:.3f} |"
           for k, v in S.items() if isinstance(v, dict)]
    gain = S["diffusion"]["psnr"] - S["bicubic"]["psnr"]
    md += ["", f"Real held-out digits: {S['real_confident']:.1%} confident.",
           f"Diffusion PSNR - bicubic = {gain:+.2f} dB (target >= +2: {'met' if gain >= 2 else 'NOT met'}); "
           f"confident share diffusion {S['diffusion']['confident']:.1%} vs regression "
           f"{S['regression']['confident']:.1%} (target: higher: "
           f"{'met' if S['diffusion']['confident'] > S['regression']['confident'] else 'NOT met'})."]
    (out_dir / f"{args.out}.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
