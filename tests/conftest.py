"""Shared test fixtures: one torch thread per test module, and the official MNIST test split when present."""
import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """A folder holding mnist/t10k-*.gz: DL_DATA_DIR, else ../shared/data; skip if neither has it."""
    for candidate in (os.environ.get("DL_DATA_DIR"), SHARED_DATA):
        if candidate and (Path(candidate) / "mnist" / "t10k-images-idx3-ubyte.gz").is_file():
            return Path(candidate)
    pytest.skip("the MNIST test split is not available (set DL_DATA_DIR to a folder holding mnist/)")


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny tensors: thread start-up dominates and the machine is shared, so every test uses one thread."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
