"""How close does the MLP denoiser get to the Bayes floor of L_simple in a wall-clock budget?

The data are the 8-Gaussian mixture of chapter 05 (radius 2, component std 0.1), whose optimal
noise predictor E[eps | x_t] is known exactly (diffusion_lite.oracles.gmm). No network can reach a
held-out L_simple below the Bayes floor E||eps - E[eps | x_t]||^2 (eq-bayes-floor); this script
trains the package's MLPDenoiser with dl.train for --seconds of training time and reports, at a
few checkpoints (10, 30 and 60 s by default), the held-out loss divided by the floor.

Held-out loss and floor use common random numbers: one fixed set of (x0, t, eps) draws, fed to
the trained network and to the exact oracle, so most of the Monte Carlo noise cancels in the
ratio; the standard error printed is that of the paired difference. The Rao-Blackwellised
estimate GaussianMixture.bayes_floor is printed beside it as an independent check.

The wall-clock budget is spent in chunks: dl.train runs `--chunk` steps, saves a checkpoint,
and the next call resumes from it (resuming reproduces an uninterrupted run exactly, so the
loss curve is the same as one long run). Evaluation time is not counted as training time;
checkpoint save/load is (it is a few milliseconds per chunk).

Usage (take real numbers on a quiet machine; other processes slow training down):
    python benchmarks/toy_bayes_floor.py --seconds 60
Writes benchmarks/results/toy_bayes_floor.md and .json (or --out NAME for other file names).
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import diffusion_lite as dl  # noqa: E402
from diffusion_lite.oracles.gmm import GaussianMixture  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=60.0, help="training budget in wall-clock seconds")
    p.add_argument("--checkpoints", type=str, default="10,30,60",
                   help="comma-separated training times (s) at which to evaluate; clipped to --seconds, "
                        "which is always evaluated")
    p.add_argument("--batch-size", type=int, default=1024, help="samples per training step")
    p.add_argument("--lr", type=float, default=2e-3, help="AdamW learning rate")
    p.add_argument("--warmup-steps", type=int, default=100, help="linear learning-rate warm-up")
    p.add_argument("--ema-decay", type=float, default=0.999, help="EMA decay of the weights")
    p.add_argument("--hidden", type=int, default=dl.MLPConfig().hidden, help="MLP width")
    p.add_argument("--depth", type=int, default=dl.MLPConfig().depth, help="MLP hidden layers")
    p.add_argument("--chunk", type=int, default=100, help="training steps between clock readings")
    p.add_argument("--n-train", type=int, default=200_000, help="training points drawn from the mixture")
    p.add_argument("--n-eval", type=int, default=200_000, help="held-out (x0, t, eps) draws")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--seed", type=int, default=0, help="seed of data, model and training draws")
    p.add_argument("--out", type=str, default="toy_bayes_floor", help="file name stem under benchmarks/results")
    return p.parse_args(argv)


@torch.no_grad()
def heldout(model, oracle, x0, t, eps, sched, batch: int = 50_000) -> dict:
    """Per-sample L_simple of model and oracle on the same (x0, t, eps): means and paired SE."""
    model_err, oracle_err = [], []
    for i in range(0, len(x0), batch):
        sl = slice(i, i + batch)
        x_t = dl.q_sample(x0[sl], t[sl], eps[sl], sched)  # eq-q-sample, float64
        eps_hat = model(x_t.float(), t[sl]).double()
        model_err.append(((eps[sl] - eps_hat) ** 2).mean(1))          # eq-l-simple, mean over D
        oracle_err.append(((eps[sl] - oracle(x_t, t[sl])) ** 2).mean(1))  # eq-bayes-floor
    m, o = torch.cat(model_err), torch.cat(oracle_err)
    n = len(m)
    diff = m - o
    return {"loss": float(m.mean()), "floor": float(o.mean()), "ratio": float(m.mean() / o.mean()),
            "ratio_se": float(diff.std() / math.sqrt(n) / o.mean()),
            "floor_se": float(o.std() / math.sqrt(n))}


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    checkpoints = sorted({min(float(s), args.seconds) for s in args.checkpoints.split(",") if s.strip()}
                         | {args.seconds})
    gen = lambda k: torch.Generator().manual_seed(args.seed + k)  # noqa: E731

    gmm = GaussianMixture.eight_gaussians(radius=2.0, std=0.1)
    sched = dl.Schedule.linear(1000)
    oracle = gmm.oracle(sched)
    data = gmm.sample(args.n_train, gen(1)).float()               # (N, 2) training points
    g_eval = gen(2)                                               # held-out draws, never seen in training
    x0_eval = gmm.sample(args.n_eval, g_eval)
    t_eval = torch.randint(1, sched.T + 1, (args.n_eval,), generator=g_eval)
    eps_eval = torch.randn(args.n_eval, 2, generator=g_eval, dtype=torch.float64)
    rb_floor = gmm.bayes_floor(sched, args.n_eval, gen(3))        # Rao-Blackwellised, independent draws

    torch.manual_seed(args.seed)
    mlp_config = dl.MLPConfig(hidden=args.hidden, depth=args.depth)
    model = dl.MLPDenoiser(mlp_config)
    n_params = sum(p.numel() for p in model.parameters())
    load_start = os.getloadavg()[0]

    rows, trained_s, steps = [], 0.0, 0
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Path(tmp) / "mlp.pt"
        pending = list(checkpoints)
        while pending:
            steps += args.chunk
            config = dl.TrainConfig(steps=steps, batch_size=args.batch_size, lr=args.lr,
                                    warmup_steps=args.warmup_steps, ema_decay=args.ema_decay,
                                    seed=args.seed, log_every=args.chunk)
            start = time.perf_counter()
            result = dl.train(model, data, sched, config, checkpoint_path=ckpt, progress=False)
            trained_s += time.perf_counter() - start
            if trained_s >= pending[0]:
                while pending and trained_s >= pending[0]:
                    target = pending.pop(0)
                ema = heldout(result.ema_model.eval(), oracle, x0_eval, t_eval, eps_eval, sched)
                raw = heldout(model.eval(), oracle, x0_eval, t_eval, eps_eval, sched)
                model.train()
                recent = result.history[-1000:]
                rows.append({"target_s": target, "train_s": round(trained_s, 2), "steps": steps,
                             "steps_per_s": round(steps / trained_s, 1),
                             "train_loss_last_1000": sum(recent) / len(recent),
                             "heldout_ema": ema["loss"], "heldout_raw": raw["loss"], "floor": ema["floor"],
                             "ratio_ema": ema["ratio"], "ratio_ema_se": ema["ratio_se"],
                             "ratio_raw": raw["ratio"], "ratio_raw_se": raw["ratio_se"]})
                r = rows[-1]
                print(f"{r['train_s']:7.1f} s  {steps:6d} steps ({r['steps_per_s']:6.1f}/s)  held-out EMA "
                      f"{r['heldout_ema']:.5f} raw {r['heldout_raw']:.5f}  floor {r['floor']:.5f}  "
                      f"ratio EMA {r['ratio_ema']:.4f} +- {r['ratio_ema_se']:.4f}  raw {r['ratio_raw']:.4f}",
                      flush=True)

    info = {
        "benchmark": "toy_bayes_floor",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "hardware": dl.hardware(), "platform": platform.platform(), "torch": torch.__version__,
        "threads": torch.get_num_threads(), "load_average_start": load_start,
        "load_average_end": os.getloadavg()[0],
        "data": {"mixture": "eight_gaussians", "radius": 2.0, "std": 0.1, "n_train": args.n_train},
        "schedule": {"name": sched.name, "T": sched.T},
        "model": {**dataclasses.asdict(mlp_config), "parameters": n_params},
        "train": {"batch_size": args.batch_size, "lr": args.lr, "warmup_steps": args.warmup_steps,
                  "ema_decay": args.ema_decay, "seed": args.seed, "budget_s": args.seconds},
        "n_eval": args.n_eval,
        "bayes_floor_rao_blackwell": {"value": rb_floor.value, "stderr": rb_floor.stderr},
        "rows": rows,
    }
    write(info, ROOT / "benchmarks" / "results", args.out)
    return info


def write(info: dict, folder: Path, stem: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{stem}.json").write_text(json.dumps(info, indent=2) + "\n")
    m, tr = info["model"], info["train"]
    lines = [
        "# MLP denoiser vs the Bayes floor (8 Gaussians)", "",
        f"{info['date']} · {info['hardware']} · torch {info['torch']} · {info['threads']} threads · "
        f"load average {info['load_average_start']:.1f} at start, {info['load_average_end']:.1f} at end", "",
        f"MLPDenoiser {m['depth']}x{m['hidden']} ({m['parameters']:,} parameters), batch {tr['batch_size']}, "
        f"AdamW lr {tr['lr']}, warm-up {tr['warmup_steps']} steps, EMA {tr['ema_decay']}; linear schedule "
        f"T = {info['schedule']['T']}; {info['data']['n_train']:,} training points. Held-out L_simple on "
        f"{info['n_eval']:,} fixed (x0, t, eps) draws; the floor is the exact oracle's loss on the same draws "
        f"(Rao-Blackwellised estimate on independent draws: {info['bayes_floor_rao_blackwell']['value']:.5f} "
        f"± {info['bayes_floor_rao_blackwell']['stderr']:.5f}).", "",
        "| training time (s) | steps | steps/s | held-out loss (EMA) | held-out loss (raw) | Bayes floor | "
        "ratio EMA / floor | ratio raw / floor |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in info["rows"]:
        lines.append(f"| {r['train_s']:.1f} | {r['steps']:,} | {r['steps_per_s']:.1f} | {r['heldout_ema']:.5f} | "
                     f"{r['heldout_raw']:.5f} | {r['floor']:.5f} | {r['ratio_ema']:.4f} ± {r['ratio_ema_se']:.4f} | "
                     f"{r['ratio_raw']:.4f} ± {r['ratio_raw_se']:.4f} |")
    lines += ["", "± is one standard error of the paired (model - oracle) difference, divided by the floor. "
              "Speeds depend on other load on the machine (see the load average)."]
    (folder / f"{stem}.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
