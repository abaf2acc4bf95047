"""Pixel vs latent diffusion on MNIST at equal training wall time (chapter 12's cost table, issue 19 targets).

Both models train for the same wall-clock budget on this machine; the latent side spends part of it
on the autoencoder first (it is part of what latent diffusion costs), the rest on the latent U-Net.
Each side's step count is set from a measured time per step (--probe steps), so both runs end near
the budget; the actual times are recorded. Then both draw --samples digits with DDIM (--ddim
steps; the latent side decodes once) and the judge of the cpu profile scores them.

Measured: parameters, FLOPs per sampling step (torch.utils.flop_counter via unet_block_report),
wall time per training step and per sample, judge confident share (with its standard error) and
classifier-FID against held-out digits. Targets: latent >= 4x fewer FLOPs per step, confident share
no more than 5 points below the pixel model's.

Usage: /work/wt/cpu-slot python benchmarks/latent_cpu.py --budget 360   (one thread in a slot)
Writes benchmarks/results/latent_cpu.md and .json.
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


def probe(model, data, sched, config, steps):
    """Seconds per training step of dl.train (after 3 warm-up steps), on a copy of the config."""
    short = dataclasses.replace(config, steps=3, warmup_steps=1, lr_decay="none", checkpoint_every=0)
    dl.train(model, data, sched, short, progress=False)
    short = dataclasses.replace(short, steps=steps)
    start = time.perf_counter()
    dl.train(model, data, sched, short, progress=False)
    return (time.perf_counter() - start) / steps


def fit_steps(config, steps):
    return dataclasses.replace(config, steps=max(steps, config.warmup_steps + 1), checkpoint_every=0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--budget", type=float, default=360.0, help="training wall seconds per side")
    ap.add_argument("--ae-steps", type=int, default=1000, help="autoencoder steps (inside the latent budget)")
    ap.add_argument("--samples", type=int, default=300)
    ap.add_argument("--ddim", type=int, default=50)
    ap.add_argument("--probe", type=int, default=20)
    ap.add_argument("--label", default="", help="e.g. 'shortened'")
    ap.add_argument("--ae-outside-budget", action="store_true",
                    help="give the latent U-Net the whole budget; the autoencoder's time is reported beside it")
    ap.add_argument("--out", default="latent_cpu", help="results file name (without .md/.json)")
    args = ap.parse_args()
    torch.manual_seed(0)
    load_start = os.getloadavg()
    data = dl.load_dataset("mnist", split="test", progress=False)
    train_x, held_x = data.images[:9000], data.images[9000:]
    judge = dl.load_mnist_judge("cpu", progress=False)
    sched = dl.Schedule.linear(1000)
    rec = dl.mnist_ddpm_recipe("cpu")
    res = {"budget_s": args.budget, "ae_outside_budget": args.ae_outside_budget, "threads": torch.get_num_threads(), "hardware": dl.hardware(),
           "loadavg_start": load_start, "label": args.label, "samples": args.samples, "ddim_steps": args.ddim}

    # ---- pixel side: the cpu recipe's network and optimiser, steps fitted to the budget
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        pixel = dl.UNet(rec.unet)
    s_pix = probe(dl.UNet(rec.unet), train_x, sched, rec.train, args.probe)
    cfg_pix = fit_steps(rec.train, int(args.budget / s_pix))
    t0 = time.perf_counter()
    pix_model = dl.train(pixel, train_x, sched, cfg_pix, progress=False).ema_model.eval()
    res["pixel"] = {"s_per_step_probe": s_pix, "steps": cfg_pix.steps, "train_s": time.perf_counter() - t0}

    # ---- latent side: the autoencoder first, then the latent U-Net for the rest of the budget
    ae_cfg, ae_train = dl.mnist_autoencoder_recipe("cpu")
    ae_train = dataclasses.replace(ae_train, steps=args.ae_steps)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(ae_train.seed)
        ae = dl.Autoencoder(ae_cfg)
    t0 = time.perf_counter()
    dl.train_autoencoder(ae, train_x, ae_train, progress=False)
    ae_s = time.perf_counter() - t0
    with torch.no_grad():
        z = ae.encode_latents(train_x)
        rec_held = ae.decode_latents(ae.encode_latents(held_x)).clamp(-1, 1)
    before, after = dl.judge(judge, held_x), dl.judge(judge, rec_held)
    u_cfg, l_train = dl.latent_ddpm_recipe(ae_cfg.latent_channels, "cpu")
    s_lat = probe(dl.UNet(u_cfg), z, sched, l_train, args.probe)
    lat_budget = args.budget if args.ae_outside_budget else max(args.budget - ae_s, 0)
    cfg_lat = fit_steps(l_train, int(lat_budget / s_lat))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        unet = dl.UNet(u_cfg)
    t0 = time.perf_counter()
    unet = dl.train(unet, z, sched, cfg_lat, progress=False).ema_model.eval()
    ldm = dl.LatentModel(unet, ae).eval()
    res["latent"] = {"ae_steps": ae_train.steps, "ae_train_s": ae_s, "s_per_step_probe": s_lat,
                     "steps": cfg_lat.steps, "train_s": time.perf_counter() - t0,
                     "ae_psnr_held": float(dl.psnr(rec_held, held_x).mean()),
                     "ae_judge_agreement": float((before.predicted == after.predicted).float().mean()),
                     "scale": float(ae.scale)}
    res["latent"]["total_train_s"] = ae_s + res["latent"]["train_s"]

    # ---- costs and quality
    res["pixel"]["params"] = dl.count_parameters(pix_model)
    res["latent"]["params"] = dl.count_parameters(unet)
    res["latent"]["decoder_params"] = dl.count_parameters(ae.decoder)
    res["pixel"]["flops_per_step"] = dl.unet_block_report(pix_model, (1, 1, 28, 28))[-1]["flops"]
    res["latent"]["flops_per_step"] = dl.unet_block_report(unet, (1,) + ae_cfg.latent_shape)[-1]["flops"]
    with torch.utils.flop_counter.FlopCounterMode(display=False) as fc, torch.no_grad():
        ae.decode_latents(torch.zeros((1,) + ae_cfg.latent_shape))
    res["latent"]["decoder_flops"] = fc.get_total_flops()
    for name, model, shape, decode in (("pixel", pix_model, (1, 28, 28), None),
                                       ("latent", ldm, ae_cfg.latent_shape, ldm.decode)):
        t0 = time.perf_counter()
        with torch.no_grad():
            x = dl.sample_ddim(model, sched, (args.samples,) + shape, args.ddim,
                               generator=torch.Generator().manual_seed(1)).x0
            x = (decode(x) if decode else x).clamp(-1, 1)
        sec = time.perf_counter() - t0
        rep = dl.judge(judge, x)
        p = rep.confident_fraction
        res[name].update({"s_per_sample": sec / args.samples, "confident": p,
                          "confident_se": math.sqrt(p * (1 - p) / args.samples),
                          "balanced": rep.balanced, "fid": dl.classifier_fid(judge, x, held_x)})
    res["flop_ratio"] = res["pixel"]["flops_per_step"] / res["latent"]["flops_per_step"]
    res["share_gap_points"] = 100 * (res["pixel"]["confident"] - res["latent"]["confident"])
    res["loadavg_end"] = os.getloadavg()
    out = ROOT / "benchmarks" / "results"
    (out / f"{args.out}.json").write_text(json.dumps(res, indent=2))
    P, L = res["pixel"], res["latent"]
    md = [f"# Pixel vs latent diffusion at equal training wall time {('(' + args.label + ')') if args.label else ''}",
          "", f"{res['hardware']}; load average {load_start[0]:.2f} at the start, "
          f"{res['loadavg_end'][0]:.2f} at the end. Budget {args.budget:.0f} s of training per side "
          f"({'the autoencoder trains outside it' if args.ae_outside_budget else 'the latent side includes its autoencoder'}). Sampler DDIM-{args.ddim} (NFE {args.ddim}), "
          f"{args.samples} samples per model, judge of the cpu profile, classifier-FID against the "
          "1,000 held-out digits.", "",
          "| | pixel | latent |", "|---|---:|---:|",
          f"| denoiser parameters | {P['params']:,} | {L['params']:,} (+ decoder {L['decoder_params']:,}) |",
          f"| FLOPs per sampling step (batch 1) | {P['flops_per_step'] / 1e6:.1f} M | "
          f"{L['flops_per_step'] / 1e6:.1f} M (decoder once: {L['decoder_flops'] / 1e6:.1f} M) |",
          f"| training: steps / wall s | {P['steps']:,} / {P['train_s']:.0f} | {L['steps']:,} / {L['train_s']:.0f} "
          f"(+ autoencoder {L['ae_steps']:,} steps / {L['ae_train_s']:.0f} s) |",
          f"| wall time per training step (batch 32) | {P['s_per_step_probe'] * 1e3:.1f} ms | "
          f"{L['s_per_step_probe'] * 1e3:.1f} ms |",
          f"| wall time per sample (DDIM-{args.ddim}, batch {args.samples}) | {P['s_per_sample'] * 1e3:.1f} ms | "
          f"{L['s_per_sample'] * 1e3:.1f} ms |",
          f"| judge confident share (+- 1 SE) | {P['confident']:.1%} +- {P['confident_se']:.1%} | "
          f"{L['confident']:.1%} +- {L['confident_se']:.1%} |",
          f"| classes balanced (each >= 4 %, none > 20 %) | {P['balanced']} | {L['balanced']} |",
          f"| classifier-FID (judge features) | {P['fid']:.1f} | {L['fid']:.1f} |",
          "", f"Autoencoder on held-out digits: PSNR {L['ae_psnr_held']:.1f} dB, judge agreement "
          f"{L['ae_judge_agreement']:.1%}, scale {L['scale']:.3f}.", "",
          f"FLOP ratio {res['flop_ratio']:.2f}x (target >= 4x: {'met' if res['flop_ratio'] >= 4 else 'NOT met'}); "
          f"confident-share gap pixel - latent {res['share_gap_points']:+.1f} points (target <= 5: "
          f"{'met' if res['share_gap_points'] <= 5 else 'NOT met'})."]
    (out / f"{args.out}.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
