"""Our U-Net vs diffusers' UNet2DModel of about the same size: training speed and held-out loss.

Two measurements, both models in one run on the same machine, same batches, same optimiser:

1. Throughput: images per second of one training step (forward + backward + AdamW step) at
   batch 64 on 28x28x1 MNIST. The models are timed in alternating rounds and the median round is
   reported, so a burst of load on a shared machine hits both.
2. Quality per wall-clock second: each model trains for the same --seconds on 9,000 images of the
   MNIST test split (the only split in the shared data folder), then L_simple (eq-l-simple) is
   measured on the other 1,000 images with one fixed (t, eps) draw per image, the same for both.

diffusers' UNet2DModel accepts 28x28 directly (it halves H, W twice, 28 -> 14 -> 7), so no padding
is used. Its widths (32, 56, 56) give nearly the parameter count of our default UNetConfig()
(32, 64, 64 channels, but one residual block per level where diffusers puts two in each up level).

Usage (take real numbers on a quiet machine; other processes change both columns):
    DL_DATA_DIR=/work/shared/data python benchmarks/unet_vs_diffusers.py --seconds 300
Writes benchmarks/results/unet_vs_diffusers.md and .json.
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import diffusion_lite as dl  # noqa: E402


class DiffusersEps(nn.Module):
    """diffusers' UNet2DModel behind our interface: forward(x_t, t) -> eps_hat."""

    def __init__(self):
        super().__init__()
        from diffusers import UNet2DModel
        self.net = UNet2DModel(
            sample_size=28, in_channels=1, out_channels=1, layers_per_block=1, block_out_channels=(32, 56, 56),
            down_block_types=("DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
            up_block_types=("AttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
            norm_num_groups=8, attention_head_dim=14)  # 4 heads at 56 channels, like our 4 heads at 64

    def forward(self, x_t, t):
        return self.net(x_t, t).sample


def load_mnist_test() -> torch.Tensor:
    """(10000, 1, 28, 28) in [-1, 1]: via diffusion_lite.data.datasets, else straight from the IDX file."""
    try:
        return dl.load_dataset("mnist", split="test").images.float()
    except (AttributeError, ImportError):
        root = Path(os.environ.get("DL_DATA_DIR", ROOT.parent / "shared" / "data"))
        raw = gzip.decompress((root / "mnist" / "t10k-images-idx3-ubyte.gz").read_bytes())
        images = np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(-1, 1, 28, 28)
        return torch.from_numpy(images.astype(np.float32)) / 127.5 - 1.0


def batch(data, sched, g, size):
    """A training batch: x_t, t, eps (eq-q-sample) from one generator."""
    x0 = data[torch.randint(len(data), (size,), generator=g)]
    t = torch.randint(1, sched.T + 1, (size,), generator=g)
    eps = torch.randn(x0.shape, generator=g)
    return dl.q_sample(x0, t, eps, sched), t, eps


def step(model, opt, x_t, t, eps, lr):
    for group in opt.param_groups:
        group["lr"] = lr
    loss = F.mse_loss(model(x_t, t), eps)  # eq-l-simple
    opt.zero_grad(set_to_none=True)
    loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    return loss.item()


def throughput(models, data, sched, batch_size, steps, rounds):
    """Median img/s over alternating rounds of `steps` training steps per model."""
    g = torch.Generator().manual_seed(0)
    x_t, t, eps = batch(data, sched, g, batch_size)
    opts = {name: torch.optim.AdamW(m.parameters(), lr=1e-4) for name, m in models.items()}
    for name, m in models.items():  # warm-up: allocator, oneDNN kernels
        for _ in range(2):
            step(m, opts[name], x_t, t, eps, 1e-4)
    rates = {name: [] for name in models}
    for _ in range(rounds):
        for name, m in models.items():
            start = time.perf_counter()
            for _ in range(steps):
                step(m, opts[name], x_t, t, eps, 1e-4)
            rates[name].append(steps * batch_size / (time.perf_counter() - start))
    return {name: {"median": statistics.median(r), "rounds": r} for name, r in rates.items()}


@torch.no_grad()
def held_out_loss(model, x0, sched, seed=1234):
    """Mean L_simple on x0 with one fixed (t, eps) per image, and its standard error."""
    g = torch.Generator().manual_seed(seed)
    t = torch.randint(1, sched.T + 1, (len(x0),), generator=g)
    eps = torch.randn(x0.shape, generator=g)
    model.eval()
    per_image = torch.cat([(model(dl.q_sample(x0[i:i + 250], t[i:i + 250], eps[i:i + 250], sched), t[i:i + 250])
                            - eps[i:i + 250]).pow(2).mean(dim=(1, 2, 3)) for i in range(0, len(x0), 250)])
    model.train()
    return float(per_image.mean()), float(per_image.std() / len(per_image) ** 0.5)


def train_for(model, data, sched, seconds, batch_size, lr, warmup):
    """Train for `seconds` of wall time with the same batch sequence for every model."""
    g = torch.Generator().manual_seed(0)
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    steps, losses, start = 0, [], time.perf_counter()
    while time.perf_counter() - start < seconds:
        steps += 1
        losses.append(step(model, opt, *batch(data, sched, g, batch_size), lr * min(1.0, steps / warmup)))
    return steps, losses, time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=300.0, help="training wall time per model")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=10, help="training steps per throughput round")
    parser.add_argument("--rounds", type=int, default=3, help="alternating throughput rounds per model")
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    load_before = os.getloadavg()
    data = load_mnist_test()
    train_x, held_x = data[:9000], data[9000:]
    sched = dl.Schedule.linear(T=1000)
    torch.manual_seed(0)
    models = {"diffusion_lite UNet": dl.UNet(dl.UNetConfig()), "diffusers UNet2DModel": DiffusersEps()}
    results = {name: {"params": dl.count_parameters(m)} for name, m in models.items()}

    print(f"throughput: {args.rounds} rounds x {args.steps} steps, batch {args.batch}", flush=True)
    for name, r in throughput(models, train_x, sched, args.batch, args.steps, args.rounds).items():
        results[name]["img_per_s"], results[name]["img_per_s_rounds"] = r["median"], r["rounds"]

    for name, model in models.items():
        torch.manual_seed(0)
        fresh = dl.UNet(dl.UNetConfig()) if name.startswith("diffusion_lite") else DiffusersEps()
        print(f"training {name} for {args.seconds:.0f} s", flush=True)
        steps, losses, took = train_for(fresh, train_x, sched, args.seconds, args.batch, args.lr, warmup=50)
        loss, se = held_out_loss(fresh, held_x, sched)
        results[name].update(train_steps=steps, train_seconds=took, last_train_loss=statistics.fmean(losses[-20:]),
                             held_out_loss=loss, held_out_se=se)

    env = {"hardware": dl.hardware(), "torch": torch.__version__, "diffusers": __import__("diffusers").__version__,
           "python": platform.python_version(), "threads": torch.get_num_threads(),
           "load_average_before": load_before, "load_average_after": os.getloadavg(),
           "seconds": args.seconds, "batch": args.batch, "lr": args.lr, "image": "28x28x1, no padding"}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "unet_vs_diffusers.json").write_text(json.dumps({"env": env, "results": results}, indent=2) + "\n")
    rows = ["| model | parameters | train img/s (batch %d) | steps in %.0f s | held-out L_simple (± s.e.) |"
            % (args.batch, args.seconds), "|---|---:|---:|---:|---:|"]
    for name, r in results.items():
        rows.append(f"| {name} | {r['params']:,} | {r['img_per_s']:.1f} | {r['train_steps']} | "
                    f"{r['held_out_loss']:.4f} ± {r['held_out_se']:.4f} |")
    text = "\n".join([
        "# U-Net vs diffusers UNet2DModel", "",
        "Produced by `benchmarks/unet_vs_diffusers.py` (see its docstring for the method) with",
        f"`{' '.join(['python benchmarks/unet_vs_diffusers.py', *sys.argv[1:]])}`.", "",
        *rows, "",
        f"{env['hardware']}; torch {env['torch']}, diffusers {env['diffusers']}; "
        f"load average before/after: {load_before[0]:.1f} / {env['load_average_after'][0]:.1f} "
        f"(a load above the thread count means other processes shared the CPU and the numbers are noisy).",
        f"Held-out: L_simple on 1,000 MNIST test images not used for training, one fixed (t, eps) per image; "
        f"both models trained with AdamW lr {args.lr}, batch {args.batch}, the same batches, for the same wall time.",
        "Images are 28x28x1 for both models (no padding).", ""])
    (args.out / "unet_vs_diffusers.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
