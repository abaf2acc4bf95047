"""What we measured: wall-clock timings of a chapter's steps and the hardware they ran on."""
from __future__ import annotations

import os
import platform
import time
from contextlib import contextmanager

import torch

from .profiles import profile


def hardware() -> str:
    """A one-line description of the machine: GPU name, or CPU model and thread count."""
    if torch.cuda.is_available() and profile() == "gpu":
        return f"GPU {torch.cuda.get_device_name(0)}"
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"CPU {cpu}, {torch.get_num_threads()} threads (of {os.cpu_count()} cores)"


class Stopwatch:
    """Collects named wall-clock timings: `with watch("train"): ...`, then `watch.table()`."""

    def __init__(self):
        self.records: list[tuple[str, float]] = []

    @contextmanager
    def __call__(self, what: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            self.records.append((what, time.perf_counter() - start))

    def table(self) -> str:
        """A Markdown table: step, seconds, with the profile and hardware underneath."""
        rows = ["| step | time (s) |", "|---|---:|"]
        rows += [f"| {what} | {sec:.2f} |" for what, sec in self.records]
        rows.append(f"| **total** | **{sum(s for _, s in self.records):.2f}** |")
        return "\n".join(rows) + f"\n\nProfile `{profile()}` on {hardware()}."
