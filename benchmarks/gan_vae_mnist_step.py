"""Seconds per training step of chapter 15's MNIST GAN, GAN + R1 and VAE (cpu-profile sizes).

Chapter 15 compares them with the shared DDPM at equal training wall time; their cpu step counts
come from this: seconds per step (mean over --steps after 5 warm-up steps, batch 64, width 64, on
the MNIST test split) times the steps gives the expected training time, to set against the DDPM
recipe's recorded training time (benchmarks/results/mnist_recipe_cpu.md).

Writes benchmarks/results/gan_vae_mnist_step.md.
"""
from __future__ import annotations

import argparse
import os
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

import diffusion_lite as dl


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=40, help="timed steps per model")
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    load_start = os.getloadavg()[0]
    images = dl.load_dataset("mnist", split="test").images
    gan_cfg = dl.GANConfig(data="mnist", z_dim=32, width=64)
    vae_cfg = dl.VAEConfig(data="mnist", z_dim=16, width=64)
    rows = []
    for name in ("GAN", "GAN + R1", "VAE"):
        torch.manual_seed(0)
        if name == "VAE":
            vae = dl.VAE(vae_cfg)
            run = lambda s: dl.train_vae(vae, images, dl.VAETrainConfig(steps=s, batch_size=64), progress=False)  # noqa: E731
        else:
            g, d = dl.GANGenerator(gan_cfg), dl.GANDiscriminator(gan_cfg)
            tc = lambda s: dl.GANTrainConfig(steps=s, batch_size=64, r1_gamma=1.0 if "R1" in name else 0.0)  # noqa: E731
            run = lambda s: dl.train_gan(g, d, images, tc(s), progress=False)  # noqa: E731
        run(5)
        start = time.perf_counter()
        run(args.steps)
        rows.append((name, (time.perf_counter() - start) / args.steps))
        print(rows[-1], flush=True)
    lines = ["# Chapter 15's MNIST GAN / VAE: seconds per training step (cpu-profile sizes)", "",
             f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC} · {dl.hardware()} · torch {torch.__version__} · "
             f"{torch.get_num_threads()} threads · load average {load_start:.1f} -> {os.getloadavg()[0]:.1f}", "",
             "| model | ms / step (batch 64) | steps in 558 s (the cpu DDPM recipe's training time) |",
             "|---|---:|---:|"]
    lines += [f"| {name} | {1e3 * sec:.1f} | {558 / sec:,.0f} |" for name, sec in rows]
    out = Path(__file__).resolve().parent / "results" / "gan_vae_mnist_step.md"
    out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
