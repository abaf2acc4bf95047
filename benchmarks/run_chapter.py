"""Run one chapter notebook in a profile and keep what it measured: its tables, its timings, its seconds.

The book build executes every chapter in the smoke profile; the cpu and gpu profiles are what a reader
runs, and their numbers (chapter 15's FID comparison, chapter 16's memorisation curve) exist only in a
reader's executed notebook. This script executes notebooks/<name>.ipynb top to bottom with nbclient
(DL_PROFILE set, no cell timeout), times the whole run, and writes

* benchmarks/results/chapter_<stem>_<profile>.md: every Markdown output of the run (the chapter's tables
  and "This run measured ..." sentences), in order, under a header with hardware and load average;
* benchmarks/results/chapter_<stem>_<profile>.json: the same, with the seconds;
* .cache/executed/<name>_<profile>.ipynb: the executed notebook (not committed), to look at the figures.

A cell that fails stops the run; the results written then say so and name the cell.

    DL_DATA_DIR=../shared/data .venv/bin/python benchmarks/run_chapter.py 15_gan_vae_diffusion --profile cpu
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import diffusion_lite as dl  # noqa: E402


def markdown_outputs(nb) -> list[str]:
    """The text/markdown outputs of every code cell, in order."""
    found = []
    for cell in nb.cells:
        for out in cell.get("outputs", []) if cell.cell_type == "code" else []:
            text = out.get("data", {}).get("text/markdown")
            if text:
                found.append(text if isinstance(text, str) else "".join(text))
    return found


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("notebook", help="a notebook's name in notebooks/, with or without .ipynb")
    p.add_argument("--profile", default="cpu", choices=tuple(dl.PROFILES))
    args = p.parse_args(argv)
    path = ROOT / "notebooks" / (args.notebook if args.notebook.endswith(".ipynb") else args.notebook + ".ipynb")
    if not path.is_file():
        raise SystemExit(f"run_chapter: no notebook {path}; the chapters are "
                         f"{', '.join(q.stem for q in sorted((ROOT / 'notebooks').glob('[0-9][0-9]_*.ipynb')))}")
    os.environ["DL_PROFILE"] = args.profile
    os.environ.setdefault("TQDM_DISABLE", "1")
    nb = nbformat.read(path, as_version=4)
    load_start = os.getloadavg()[0]
    client = NotebookClient(nb, timeout=None, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}})
    start, error = time.perf_counter(), None
    try:
        client.execute()
    except CellExecutionError:  # the failing cell holds an "error" output: name the cell and the exception
        error = next(f"cell {i}: {out['ename']}: {out['evalue']}" for i, cell in enumerate(nb.cells)
                     for out in cell.get("outputs", []) if out.get("output_type") == "error")
    seconds = time.perf_counter() - start
    executed = ROOT / ".cache" / "executed" / f"{path.stem}_{args.profile}.ipynb"
    executed.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, executed)

    info = {"notebook": path.name, "profile": args.profile, "seconds": round(seconds, 1), "error": error,
            "hardware": dl.hardware(), "cores": os.cpu_count(), "load_average_start": load_start,
            "load_average_end": os.getloadavg()[0], "markdown": markdown_outputs(nb)}
    stem = ROOT / "benchmarks" / "results" / f"chapter_{path.stem.split('_')[0]}_{args.profile}"
    stem.with_suffix(".json").write_text(json.dumps(info, indent=1) + "\n")
    lines = [f"# {path.name}, profile {args.profile}: what the run measured", "",
             f"Produced by `benchmarks/run_chapter.py {path.stem} --profile {args.profile}`: the notebook executed "
             f"top to bottom in {seconds / 60:.1f} min on {info['hardware']} (the notebook sets its own thread "
             f"counts); load average {load_start:.1f} at start, {info['load_average_end']:.1f} at end (above the "
             "core count, other work shared the CPU and the times are pessimistic). "
             + (f"**The run stopped at an error**: `{error}`." if error else "Every cell ran and every check passed.")
             + " Below: each Markdown output of the run, in order.", ""]
    for text in info["markdown"]:
        lines += [text.strip(), ""]
    stem.with_suffix(".md").write_text("\n".join(lines))
    print(f"{path.name} ({args.profile}): {seconds:.0f} s, {'error: ' + error if error else 'ok'}; "
          f"wrote {stem.with_suffix('.md').relative_to(ROOT)} and {executed.relative_to(ROOT)}")
    if error:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
