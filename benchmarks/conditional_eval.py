"""One row of a conditional-sampling benchmark: sample a guided model from fixed noise, time it, judge it.

Shared by guidance_cpu.py (class labels) and text_prompts_cpu.py (prompts) so that both measure the
same thing the same way: DDIM (eta = 0) from a given x_T, then `dl.conditional_report` of the in-book
judge against the real test digits, with seeded generators for the sampler and the report.
"""
from __future__ import annotations

import time

import torch

import diffusion_lite as dl


def sample_and_judge(guided, sched: dl.Schedule, x_T: torch.Tensor, labels: torch.Tensor, cond, steps: int,
                     judge, real, seed: int) -> tuple[torch.Tensor, dict]:
    """(x0, row): DDIM samples of `guided` given `cond`, judged against `labels`; the sampler draws from
    generator seed `seed` and the report from `seed + 1`. The row holds the judge's figures, the
    sampling seconds and the NFE."""
    t0 = time.perf_counter()
    with torch.no_grad():
        x0 = dl.sample_ddim(guided, sched, x_T.clone(), steps=steps, cond=cond, eta=0.0,
                            generator=torch.Generator().manual_seed(seed)).x0.clamp(-1, 1)
    seconds = time.perf_counter() - t0
    rep = dl.conditional_report(judge, x0, labels, real.images, real.labels,
                                generator=torch.Generator().manual_seed(seed + 1))
    row = {"fidelity": rep.fidelity, "classes_present": len(rep.classes_present),
           "min_class_fidelity": float(rep.per_class.min()), "reject": rep.reject_fraction, "kid": rep.kid,
           "fid": rep.fid, "recall": rep.recall, "sample_seconds": seconds, "nfe": steps}
    return x0, row
