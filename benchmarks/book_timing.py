"""Seconds per chapter: each notebook executed on its own, in a profile, with a given model cache.

Method: for each notebook in notebooks/ (or those named), run it under nbval in a fresh pytest
process (`--nbval-lax --nbval-current-env`, as `make test` does) with DL_PROFILE set, and time the
whole process (kernel start included). `--cache` picks the model cache: "shared" uses DL_CACHE_DIR
as it is (warm: later chapters reuse the models earlier ones trained), "empty" points every run at
one fresh folder (a first build: each model is trained once, by the first chapter that needs it, in
the book's order). Results go to benchmarks/results/book_timing_<profile>_<cache>.md/json and the
summary table into benchmarks/RESULTS.md is left to the reader (the .md file is that table).

    python benchmarks/book_timing.py --profile smoke --cache empty
    python benchmarks/book_timing.py --profile cpu --cache empty      # a first cpu build: long
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import diffusion_lite as dl  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", help="notebook paths (default: all of notebooks/)")
    parser.add_argument("--profile", default="smoke", choices=tuple(dl.PROFILES))
    parser.add_argument("--cache", default="empty", choices=("empty", "shared"))
    args = parser.parse_args()
    books = [Path(p) for p in args.notebooks] or sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    env = dict(os.environ, DL_PROFILE=args.profile, TQDM_DISABLE="1")
    scratch = tempfile.mkdtemp(prefix="dl-cache-") if args.cache == "empty" else None
    if scratch:
        env["DL_CACHE_DIR"] = scratch
    load_start, rows = os.getloadavg()[0], []
    for nb in books:
        start = time.perf_counter()
        out = subprocess.run([sys.executable, "-m", "pytest", str(nb), "--nbval-lax", "--nbval-current-env", "-q",
                              "-p", "no:cacheprovider"], cwd=ROOT, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        rows.append({"notebook": nb.name, "seconds": round(seconds, 1), "passed": out.returncode == 0})
        print(f"{nb.name:40s} {seconds:7.1f} s  {'ok' if out.returncode == 0 else 'FAILED'}", flush=True)
    total = sum(r["seconds"] for r in rows)
    info = {"profile": args.profile, "cache": args.cache, "hardware": dl.hardware(), "threads": os.cpu_count(),
            "load_average_start": load_start, "load_average_end": os.getloadavg()[0], "total_seconds": round(total, 1),
            "rows": rows}
    stem = ROOT / "benchmarks" / "results" / f"book_timing_{args.profile}_{args.cache}"
    stem.with_suffix(".json").write_text(json.dumps(info, indent=2) + "\n")
    lines = [f"# Seconds per chapter: profile {args.profile}, {args.cache} model cache", "",
             f"{info['hardware']}; load average {load_start:.1f} at start, {info['load_average_end']:.1f} at end "
             "(above the core count, other work shared the CPU and the times are pessimistic).", "",
             "| notebook | seconds | passed |", "|---|---|---|"]
    lines += [f"| {r['notebook']} | {r['seconds']:.1f} | {'yes' if r['passed'] else 'NO'} |" for r in rows]
    lines += [f"| **total** | **{total:.1f}** ({total / 60:.1f} min) | |", ""]
    stem.with_suffix(".md").write_text("\n".join(lines))
    print(f"total {total:.1f} s -> {stem.with_suffix('.md').relative_to(ROOT)}")
    if not all(r["passed"] for r in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
