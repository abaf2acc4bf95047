"""GAN, GAN + R1, VAE and diffusion on the ring of eight Gaussians: modes covered over training seeds.

The models and their sizes are dl.ring_configs of a profile (default cpu), the same that chapter
15 trains, so both share the cache. For each model and training seed: train (or load), draw --n
samples (diffusion: DDIM with --ddim steps), count the modes covered (within 3 std of a mode, at
least a tenth of its fair share; dl.mode_coverage), the smallest and largest share near a mode,
the off-mode share, the energy distance to fresh mixture samples in units of its noise floor's sd,
the training time and the sampling time per 1000 samples. A seed fails when fewer than 8 modes are
covered or more than a quarter of the samples are off-mode (chapter 15's definition).

Writes benchmarks/results/gan_vae_2d_<profile>.md and .json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

import diffusion_lite as dl
from diffusion_lite.training.rivals import MODELS


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--profile", default="cpu", choices=dl.PROFILES, help="sizes of dl.ring_configs")
    p.add_argument("--seeds", type=int, default=5, help="training seeds per model")
    p.add_argument("--n", type=int, default=4000, help="samples per trained model")
    p.add_argument("--ddim", type=int, default=100, help="DDIM steps (NFE) of the diffusion model")
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    return p.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    load_start = os.getloadavg()[0]
    ring, data, sched = dl.GaussianMixture.eight_gaussians(), dl.ring_data(), dl.Schedule.linear(1000)
    g_floor = torch.Generator().manual_seed(1)
    floor = dl.distance_floor(dl.energy_distance, lambda n: ring.sample(n, generator=g_floor), args.n, 10)
    ref = ring.sample(args.n, generator=torch.Generator().manual_seed(2))
    rows = []
    for name in MODELS:
        for seed in range(args.seeds):
            net_cfg, train_cfg = dl.ring_configs(name, seed, args.profile)
            g = torch.Generator().manual_seed(100 + seed)
            if name.startswith("GAN"):
                net, t_train = dl.load_or_train_gan(net_cfg, train_cfg, data, "ring", progress=False)
                draw, nfe = (lambda: net.sample(args.n, g)), 1
            elif name == "VAE":
                net, t_train = dl.load_or_train_vae(net_cfg, train_cfg, data, "ring", progress=False)
                draw, nfe = (lambda: net.sample(args.n, g, noise=True)), 1
            else:
                net, t_train = dl.load_or_train_ring_diffusion(seed, args.profile, progress=False)
                x_T = torch.randn(args.n, 2, generator=g)
                draw, nfe = (lambda: dl.sample_ddim(net, sched, x_T, args.ddim).x0), args.ddim
            start = time.perf_counter()
            with torch.no_grad():
                x = draw().double()
            t_sample = time.perf_counter() - start
            cov = dl.mode_coverage(x, ring.means, std=0.1)
            energy_sd = (dl.energy_distance(x, ref) - floor.mean) / floor.std
            rows.append(dict(model=name, seed=seed, modes=cov.modes_covered, min_share=min(cov.shares),
                             max_share=max(cov.shares), off_mode=cov.off_mode, energy_floor_sd=energy_sd,
                             failed=cov.modes_covered < 8 or cov.off_mode > 0.25, train_seconds=t_train,
                             nfe=nfe, sample_ms_per_1000=1e6 * t_sample / args.n))
            print(rows[-1], flush=True)
    info = {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "args": vars(args),
            "hardware": dl.hardware(), "platform": platform.platform(), "torch": torch.__version__,
            "threads": torch.get_num_threads(), "load_average_start": load_start,
            "load_average_end": os.getloadavg()[0], "floor": floor._asdict(), "rows": rows}
    folder = Path(__file__).resolve().parent / "results"
    stem = f"gan_vae_2d_{args.profile}"
    (folder / f"{stem}.json").write_text(json.dumps(info, indent=2) + "\n")
    lines = [f"# Ring of eight Gaussians: GAN, GAN + R1, VAE, diffusion ({args.profile} recipes)", "",
             f"{info['date']} · {info['hardware']} · torch {info['torch']} · {info['threads']} threads · "
             f"load average {load_start:.1f} -> {info['load_average_end']:.1f} (train times are those "
             f"recorded when each model was trained, possibly under other load)", "",
             f"{args.seeds} training seeds, {args.n} samples each; energy-distance floor "
             f"{floor.mean:.5f} ± {floor.std:.5f}.", "",
             "| model | seed | modes | min / max share | off-mode | energy (floor sd) | failed | train (s) | "
             "NFE | sample (ms / 1000) |", "|---|---:|---:|---|---:|---:|---|---:|---:|---:|"]
    lines += [f"| {r['model']} | {r['seed']} | {r['modes']} | {r['min_share']:.3f} / {r['max_share']:.3f} | "
              f"{r['off_mode']:.2f} | {r['energy_floor_sd']:.0f} | {'yes' if r['failed'] else 'no'} | "
              f"{r['train_seconds']:.1f} | {r['nfe']} | {r['sample_ms_per_1000']:.1f} |" for r in rows]
    (folder / f"{stem}.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
