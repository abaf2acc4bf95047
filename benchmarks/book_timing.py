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

`--from-junit FILE` times nothing itself: it reads the JUnit XML of one pytest run of the suite
(`PYTEST_ADDOPTS=--junitxml=FILE make test`, unit tests and every notebook in one process, as CI
runs them; or the notebooks alone) and adds up the seconds of each notebook's cells (cell 0 includes the kernel's start)
and of the unit tests, into book_timing_<profile>_nbval.md/json.
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
    parser.add_argument("--from-junit", type=Path, default=None, metavar="FILE",
                        help="sum the per-cell seconds of a `make test` run's JUnit XML instead of timing")
    args = parser.parse_args()
    if args.from_junit is not None:
        return from_junit(args.from_junit, args.profile)
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
    stem = write(f"book_timing_{args.profile}_{args.cache}", info,
                 f"Seconds per chapter: profile {args.profile}, {args.cache} model cache",
                 f"{info['hardware']}; load average {load_start:.1f} at start, {info['load_average_end']:.1f} at "
                 "end (above the core count, other work shared the CPU and the times are pessimistic).")
    print(f"total {total:.1f} s -> {stem.with_suffix('.md').relative_to(ROOT)}")
    if not all(r["passed"] for r in rows):
        sys.exit(1)


def from_junit(path: Path, profile: str) -> None:
    """Seconds per notebook (sum of its cells) and of the unit tests, from one pytest run's JUnit XML."""
    import xml.etree.ElementTree as ET
    seconds, failed = {}, set()
    for case in ET.parse(path).getroot().iter("testcase"):
        cls = case.get("classname", "")
        key = cls.split(".", 1)[1] if cls.startswith("notebooks.") else "unit tests (tests/)"
        seconds[key] = seconds.get(key, 0.0) + float(case.get("time", 0))
        if case.find("failure") is not None or case.find("error") is not None:
            failed.add(key)
    if not seconds:
        raise SystemExit(f"{path}: no test cases found; is it the JUnit XML of a pytest run?")
    rows = [{"notebook": k, "seconds": round(v, 1), "passed": k not in failed} for k, v in sorted(seconds.items())]
    total = sum(r["seconds"] for r in rows)
    info = {"profile": profile, "source": str(path), "hardware": dl.hardware(), "total_seconds": round(total, 1),
            "rows": rows}
    stem = write(f"book_timing_{profile}_nbval", info,
                 f"Seconds per chapter under nbval: profile {profile}, one pytest process",
                 "From the JUnit XML of one pytest run, all in one process as CI runs them (`make test`'s first "
                 "command with `PYTEST_ADDOPTS=--junitxml=FILE`, or `pytest notebooks --nbval-lax "
                 "--nbval-current-env --junitxml=FILE` for the notebooks alone), by `book_timing.py "
                 "--from-junit`: a notebook's seconds are "
                 "the sum of its cells' (cell 0 includes the kernel's start). Models are trained by the first "
                 "chapter that needs them, in the book's order, into the model cache (empty on a fresh clone). "
                 f"{info['hardware']} (read by the script that parses the file, on the machine it runs on).")
    print(stem.with_suffix(".md").read_text())


def write(name: str, info: dict, title: str, method: str) -> Path:
    """benchmarks/results/<name>.json (info) and .md: the title, the method and the table of info['rows']."""
    stem = ROOT / "benchmarks" / "results" / name
    stem.with_suffix(".json").write_text(json.dumps(info, indent=2) + "\n")
    total = info["total_seconds"]
    lines = [f"# {title}", "", method, "", "| notebook | seconds | passed |", "|---|---:|---|"]
    lines += [f"| {r['notebook']} | {r['seconds']:.1f} | {'yes' if r['passed'] else 'NO'} |" for r in info["rows"]]
    lines += [f"| **total** | **{total:.1f}** ({total / 60:.1f} min) | |", ""]
    stem.with_suffix(".md").write_text("\n".join(lines))
    return stem


if __name__ == "__main__":
    main()
