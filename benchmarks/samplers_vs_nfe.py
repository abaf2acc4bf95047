"""Sampler error vs number of network evaluations (NFE), with the exact Gaussian-mixture oracle.

The "network" is the exact optimal eps predictor E[eps | x_t] of a 2-D Gaussian mixture
(diffusion_lite.oracles.gmm), so every sampler sees a perfect model and what remains is discretisation
error. Each sampler, ours and diffusers' schedulers, starts from the same x_T ~ N(0, I) per seed,
runs at each NFE budget, and its samples are compared with fresh samples of the mixture by

* sliced Wasserstein-2 (SW2): sqrt of the mean over random unit directions of the 1-D W2^2
  between the sorted projections (equal sample sizes), and
* energy distance (Szekely & Rizzo 2013): 2 E|X - Y| - E|X - X'| - E|Y - Y'|, unbiased U-statistic
  (it can dip below 0 when the two sets come from one distribution).

The noise floor is the same distance between two independent sets of true samples of the same
size: a sampler below or at the floor is indistinguishable from exact at this sample size.
Results are mean +- std over seeds.

diffusers' schedulers are driven by the same oracle, wrapped as the "unet": diffusers' timestep i
is our t = i + 1. Euler/Heun/DPM-Solver keep a sigma per step (and scale the sample with
init_noise_sigma, scale_model_input); the oracle is evaluated at that sigma, the noise level the
sample really has (alpha_bar = 1 / (1 + sigma^2)), so fractional or Karras timesteps cost diffusers
nothing. NFE is counted at the wrapper: Heun uses 2 per step except the last. Each diffusers
scheduler runs with its default timestep_spacing and with "trailing", DPM-Solver also with
use_karras_sigmas; clip_sample is off (it would clamp these data to [-1, 1]). Ours run with the
default "trailing" spacing; DPM-Solver++ also with "quadratic" (dense near t = 0).

Usage:
    python benchmarks/samplers_vs_nfe.py --quick     # 2 seeds, 1000 samples, NFE <= 50: ~1 CPU minute
    python benchmarks/samplers_vs_nfe.py             # 5 seeds, 4000 samples, NFE up to 1000: much longer
    python benchmarks/samplers_vs_nfe.py --from-json benchmarks/results/samplers_vs_nfe.json  # redraw
Writes benchmarks/results/samplers_vs_nfe[_quick].md, .json and .png.
"""
from __future__ import annotations

import argparse
import inspect
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import diffusion_lite as dl  # noqa: E402
from diffusion_lite.oracles.gmm import GaussianMixture  # noqa: E402
from diffusion_lite.sampling.ode import sample_dpm_solver_pp_2m, sample_euler, sample_heun  # noqa: E402
from diffusion_lite import sample_ddim, sample_ddpm  # noqa: E402


# ---------------------------------------------------------------------------------------- distances
def sliced_w2(x: torch.Tensor, y: torch.Tensor, directions: torch.Tensor) -> float:
    """SW2 between equal-size samples x, y (n, D) over unit directions (L, D)."""
    px, _ = torch.sort(x @ directions.T, dim=0)  # (n, L)
    py, _ = torch.sort(y @ directions.T, dim=0)
    return float(((px - py) ** 2).mean().sqrt())


def energy_distance(x: torch.Tensor, y: torch.Tensor) -> float:
    """Unbiased energy distance 2 E|X-Y| - E|X-X'| - E|Y-Y'| (U-statistics within each set)."""
    n, m = x.shape[0], y.shape[0]
    xy = torch.cdist(x, y).mean()
    xx = torch.cdist(x, x).sum() / (n * (n - 1))
    yy = torch.cdist(y, y).sum() / (m * (m - 1))
    return float(2 * xy - xx - yy)


# ---------------------------------------------------------------------------------------- samplers
def our_samplers(sched):
    """name -> run(model, x_T, nfe_budget, generator) -> (samples, nfe)."""

    def run(fn, steps_from_nfe, **kw):
        def go(model, x_T, nfe, gen):
            out = fn(model, sched, x_T, steps_from_nfe(nfe), generator=gen, **kw)
            return out.x0, out.nfe
        return go

    same = lambda nfe: nfe  # noqa: E731
    return {
        "ours DDPM (beta_tilde)": run(sample_ddpm, same),
        "ours DDIM (eta=0)": run(sample_ddim, same),
        "ours Euler (PF-ODE)": run(sample_euler, same),
        "ours Heun (PF-ODE)": run(sample_heun, lambda nfe: (nfe + 1) // 2),  # 2 S - 1 NFE
        "ours DPM-Solver++(2M)": run(sample_dpm_solver_pp_2m, same),
        "ours DPM-Solver++(2M), quadratic": run(sample_dpm_solver_pp_2m, same, spacing="quadratic"),
    }


def diffusers_samplers(sched):
    """The same interface for diffusers' schedulers (default spacing and "trailing")."""
    import diffusers

    T = sched.T
    base = dict(num_train_timesteps=T, beta_start=float(sched.betas[1]), beta_end=float(sched.betas[-1]),
                beta_schedule="linear", prediction_type="epsilon")
    kinds = {"DDPMScheduler": dict(clip_sample=False), "DDIMScheduler": dict(clip_sample=False),
             "EulerDiscreteScheduler": {}, "HeunDiscreteScheduler": {}, "DPMSolverMultistepScheduler": {}}

    def make(cls_name, extra, spacing):
        cls = getattr(diffusers, cls_name)

        def go(model_at_alpha_bar, x_T, nfe, gen):
            kw = dict(base, **extra) if spacing is None else dict(base, **extra, timestep_spacing=spacing)
            sch = cls(**kw)
            sch.set_timesteps((nfe + 1) // 2 if cls_name == "HeunDiscreteScheduler" else nfe)
            calls = 0

            def unet(x, tau):  # the oracle at the noise level of x
                nonlocal calls
                calls += 1
                if hasattr(sch, "sigmas"):  # sigma-based: the scheduler's current sigma
                    sigma = float(sch.sigmas[sch.step_index or 0])  # step_index is None before step 1
                    return model_at_alpha_bar(x, 1.0 / (1.0 + sigma**2))
                return model_at_alpha_bar(x, sched.alpha_bar[int(tau) + 1])  # diffusers index i = t - 1

            step_kw = {"generator": gen} if "generator" in inspect.signature(sch.step).parameters else {}
            x = x_T * sch.init_noise_sigma
            for tau in sch.timesteps:
                eps_hat = unet(sch.scale_model_input(x, tau), tau)
                x = sch.step(eps_hat, tau, x, **step_kw).prev_sample
            return x, calls
        return go

    out = {}
    for cls_name, extra in kinds.items():
        default = getattr(diffusers, cls_name)().config.timestep_spacing
        short = cls_name.replace("Scheduler", "")
        out[f"diffusers {short} ({default})"] = make(cls_name, extra, None)
        if default != "trailing":
            out[f"diffusers {short} (trailing)"] = make(cls_name, extra, "trailing")
    out["diffusers DPMSolverMultistep (karras sigmas)"] = make(
        "DPMSolverMultistepScheduler", dict(use_karras_sigmas=True), None)
    return out


# ---------------------------------------------------------------------------------------- the run
def run(args) -> dict:
    torch.set_num_threads(args.threads)
    sched = dl.Schedule.linear()
    datasets = {"8 Gaussians (radius 2, std 0.1)": GaussianMixture.eight_gaussians(radius=2.0, std=0.1),
                "25-grid (5x5, spacing 1, std 0.05)": GaussianMixture.grid(n=5, spacing=1.0, std=0.05)}
    samplers = {**our_samplers(sched), **diffusers_samplers(sched)}
    results = {"config": vars(args), "datasets": {}}
    for dname, gmm in datasets.items():
        oracle = gmm.oracle(sched)

        def at_alpha_bar(x, ab, gmm=gmm):
            return gmm.posterior(x, ab).eps_hat

        rows = {name: {str(nfe): {"sw2": [], "energy": [], "nfe": None, "seconds": 0.0} for nfe in args.nfe}
                for name in samplers}
        floor = {"sw2": [], "energy": []}
        for seed in range(args.seeds):
            g = torch.Generator().manual_seed(1000 + seed)
            ref = gmm.sample(args.n, g).float()
            other = gmm.sample(args.n, g).float()
            directions = torch.randn(args.projections, 2, generator=g)
            directions = directions / directions.norm(dim=1, keepdim=True)
            floor["sw2"].append(sliced_w2(ref, other, directions))
            floor["energy"].append(energy_distance(ref, other))
            x_T = torch.randn(args.n, 2, generator=g)
            for name, fn in samplers.items():
                model = oracle if name.startswith("ours") else at_alpha_bar
                for nfe in args.nfe:
                    start = time.perf_counter()
                    cell = rows[name][str(nfe)]
                    try:
                        x0, used = fn(model, x_T, nfe, torch.Generator().manual_seed(2000 + seed))
                        if not bool(torch.isfinite(x0).all()):
                            raise FloatingPointError("the samples are not finite")
                    except (ValueError, FloatingPointError) as err:  # a sampler that breaks down is a result
                        cell["failed"] = str(err).splitlines()[0]
                        cell["nfe"], x0 = nfe, None
                    else:
                        cell["nfe"] = used
                    cell["seconds"] += time.perf_counter() - start
                    cell["sw2"].append(float("nan") if x0 is None else sliced_w2(x0.float(), ref, directions))
                    cell["energy"].append(float("nan") if x0 is None else energy_distance(x0.float(), ref))
            print(f"{dname}: seed {seed + 1}/{args.seeds} done", flush=True)
        results["datasets"][dname] = {"samplers": rows, "floor": floor}
    return results


# ---------------------------------------------------------------------------------------- reporting
def _ms(values):
    return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def _best(rows, prefix, nfe, metric):
    """(mean, name) of the best sampler whose name starts with prefix, at this NFE budget."""
    return min((_ms(r[str(nfe)][metric])[0], name) for name, r in rows.items()
               if name.startswith(prefix) and "failed" not in r[str(nfe)])


def check_at(rows, floor, nfe, metric) -> str:
    """Best of ours vs best of diffusers, with the paired (same x_T, same reference) difference."""
    (m_ours, ours), (m_them, them) = _best(rows, "ours", nfe, metric), _best(rows, "diffusers", nfe, metric)
    diff = np.array(rows[ours][str(nfe)][metric]) - np.array(rows[them][str(nfe)][metric])
    se = diff.std(ddof=1) / math.sqrt(len(diff)) if len(diff) > 1 else float("nan")
    if abs(diff.mean()) < 1e-5:  # the same iterates up to float32 rounding (e.g. DDPM vs DDPMScheduler)
        verdict = "ties (same algorithm and spacing: equal up to float rounding)"
    elif m_ours <= m_them:
        verdict = "meets"
    else:
        verdict = "ties within noise" if abs(diff.mean()) <= 2 * se else "misses"
    fm, fs = _ms(floor[metric])
    note = (f" Both lie within the noise floor ({fm:.4f} + 2 × {fs:.4f}): this metric cannot rank them "
            "at this sample size." if max(m_ours, m_them) <= fm + 2 * fs else "")
    return (f"{metric} at {nfe} NFE: best of ours, {ours}: {m_ours:.4f}; best of diffusers, {them}: "
            f"{m_them:.4f}; paired difference {diff.mean():+.4f} ± {se:.4f} (s.e.) -> target (ours ≤ "
            f"diffusers) {verdict}.{note}")


def write_markdown(results, path: Path, hardware: str, seconds: float):
    cfg = results["config"]
    lines = ["# Samplers vs NFE with the exact Gaussian-mixture oracle", "",
             "Produced by `benchmarks/samplers_vs_nfe.py` (method in its docstring). "
             f"{cfg['n']} samples per set, {cfg['seeds']} seeds (mean ± std), SW2 over {cfg['projections']} "
             "random directions; linear schedule, T = 1000. Numbers in brackets: actual NFE where it "
             "differs from the budget (Heun). The noise floor is the distance between two independent "
             "sets of true samples.", ""]
    for dname, d in results["datasets"].items():
        rows, nfes = d["samplers"], cfg["nfe"]
        for metric, title in (("sw2", "sliced W2"), ("energy", "energy distance")):
            fm, fs = _ms(d["floor"][metric])
            lines += [f"## {dname}: {title}", "",
                      "| sampler | " + " | ".join(f"NFE {n}" for n in nfes) + " |",
                      "|---|" + "---:|" * len(nfes)]
            for name, r in rows.items():
                cells = []
                for n in nfes:
                    m, s = _ms(r[str(n)][metric])
                    used = r[str(n)]["nfe"]
                    cells.append("fails (non-finite samples)" if "failed" in r[str(n)] else
                                 f"{m:.4f} ± {s:.4f}" + (f" ({used})" if used != n else ""))
                lines.append(f"| {name} | " + " | ".join(cells) + " |")
            lines += ["| *noise floor* | " + " | ".join([f"*{fm:.4f} ± {fs:.4f}*"] * len(nfes)) + " |", ""]
        if 10 in nfes:
            lines += [f"Check ({dname}): " + check_at(rows, d["floor"], 10, "energy"), "",
                      f"Check ({dname}): " + check_at(rows, d["floor"], 10, "sw2"), ""]
    lines += [f"{hardware}; torch {torch.__version__}, diffusers {results.get('diffusers_version', '?')}; "
              f"wall time {seconds:.0f} s; load average at the end {os.getloadavg()[0]:.1f}.", ""]
    path.write_text("\n".join(lines))


def _style(name: str) -> dict:
    """Colour by algorithm, line by library (ours solid, diffusers dashed), marker by spacing."""
    family = next(f for f in ("DDPM", "DDIM", "Euler", "Heun", "DPM") if f in name)
    color = {"DDPM": "C0", "DDIM": "C1", "Euler": "C2", "Heun": "C3", "DPM": "C4"}[family]
    if "quadratic" in name or "karras" in name:
        color = "C5" if "quadratic" in name else "C6"
    marker = next((m for key, m in (("leading", "s"), ("linspace", "^"), ("quadratic", "D"), ("karras", "v"))
                   if key in name), "o")
    return dict(color=color, marker=marker, ls="-" if name.startswith("ours") else "--")


def write_plot(results, path: Path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    names = list(next(iter(results["datasets"].values()))["samplers"])
    ncol = len(results["datasets"])
    fig, axes = plt.subplots(2, ncol, figsize=(5.2 * ncol + 3.2, 8.0), squeeze=False)
    for col, (dname, d) in enumerate(results["datasets"].items()):
        for row, (metric, label) in enumerate((("sw2", "sliced W2"), ("energy", "energy distance (U-statistic)"))):
            ax = axes[row][col]
            for name in names:
                r = d["samplers"][name]
                ok = [k for k in r if "failed" not in r[k]]  # a failed run has no distance to plot
                nfe = [r[k]["nfe"] for k in ok]
                ms = [_ms(r[k][metric]) for k in ok]
                ax.errorbar(nfe, [m for m, _ in ms], yerr=[s for _, s in ms], ms=4, capsize=2, lw=1.2,
                            mfc="none" if not name.startswith("ours") else None, label=name, **_style(name))
            fm, fs = _ms(d["floor"][metric])
            ax.axhspan(max(fm - fs, 1e-6) if metric == "sw2" else fm - fs, fm + fs, color="grey", alpha=0.3,
                       label="noise floor: two true sample sets (mean ± std)")
            ax.axhline(fm, color="grey", lw=1)
            ax.set_xscale("log")
            if metric == "sw2":
                ax.set_yscale("log")
            else:
                ax.set_yscale("symlog", linthresh=1e-3)
            ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
            ax.set_xticks(results["config"]["nfe"], [str(n) for n in results["config"]["nfe"]])
            ax.set_xlabel("NFE (network evaluations; Heun uses one less)")
            ax.set_ylabel(label)
            ax.set_title(dname, fontsize=10)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center right", fontsize=7.5, frameon=False)
    fig.tight_layout(rect=(0, 0, 1 - 3.2 / (5.2 * ncol + 3.2), 1))
    fig.savefig(path, dpi=110)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="2 seeds, 1000 samples, NFE 5-50: about a CPU minute")
    p.add_argument("--seeds", type=int, default=None)
    p.add_argument("--n", type=int, default=None, help="samples per set")
    p.add_argument("--projections", type=int, default=512)
    p.add_argument("--nfe", type=int, nargs="+", default=None)
    p.add_argument("--threads", type=int, default=1, help="torch threads (1: steady on a shared machine)")
    p.add_argument("--out", type=Path, default=None, help="output path without extension")
    p.add_argument("--from-json", type=Path, default=None, help="only rewrite .md and .png from a saved .json")
    args = p.parse_args()
    if args.from_json:
        results = json.loads(args.from_json.read_text())
        out = args.from_json.with_suffix("")
        write_markdown(results, out.with_suffix(".md"), results["hardware"], results["seconds"])
        write_plot(results, out.with_suffix(".png"))
        print(out.with_suffix(".md").read_text())
        return
    args.seeds = args.seeds or (2 if args.quick else 5)
    args.n = args.n or (1000 if args.quick else 4000)
    args.nfe = args.nfe or ([5, 10, 20, 50] if args.quick else [5, 10, 20, 50, 100, 1000])
    out = args.out or ROOT / "benchmarks" / "results" / ("samplers_vs_nfe_quick" if args.quick else "samplers_vs_nfe")
    out.parent.mkdir(parents=True, exist_ok=True)

    import diffusers
    start = time.perf_counter()
    results = run(args)
    seconds = time.perf_counter() - start
    results["config"] = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    results["diffusers_version"] = diffusers.__version__
    hardware = f"CPU {platform.processor() or platform.machine()}, {args.threads} torch thread(s)"
    try:
        hardware = dl.hardware().replace(f"{torch.get_num_threads()} threads", f"{args.threads} torch thread(s)")
    except Exception:  # noqa: BLE001 - the description is cosmetic
        pass
    results["hardware"], results["seconds"] = hardware, seconds
    out.with_suffix(".json").write_text(json.dumps(results, indent=1))
    write_markdown(results, out.with_suffix(".md"), hardware, seconds)
    write_plot(results, out.with_suffix(".png"))
    print(out.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
