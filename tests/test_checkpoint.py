"""Checkpoints: atomic writes, safe loading, clear errors, stable cache keys, the cache and its lock."""
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from diffusion_lite.checkpoint import (CheckpointError, cache_path, cached_model, config_key, file_lock,
                                       load_checkpoint, load_weights, save_checkpoint)
from diffusion_lite.mlp import MLPConfig, MLPDenoiser

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DL_CACHE_DIR", str(tmp_path / "cache"))


def small_mlp(hidden=8, seed=0) -> MLPDenoiser:
    torch.manual_seed(seed)
    return MLPDenoiser(MLPConfig(hidden=hidden, depth=2, time_embed_dim=4))


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp") or p.name.endswith(".lock"))


# ------------------------------------------------------------------------------------ save / load
def test_save_load_round_trip_leaves_no_temp_files(tmp_path):
    path = tmp_path / "a.pt"
    state = {"w": torch.arange(6.0).reshape(2, 3), "step": 3, "history": [1.0, 0.5], "betas": (0.9, 0.999),
             "flag": None}
    save_checkpoint(path, state, {"note": "hello"})
    loaded, meta = load_checkpoint(path)
    torch.testing.assert_close(loaded["w"], state["w"])
    assert loaded["history"] == [1.0, 0.5] and loaded["step"] == 3 and meta == {"note": "hello"}
    assert leftovers(tmp_path) == []


def test_crash_during_write_keeps_the_old_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "a.pt"
    save_checkpoint(path, {"w": torch.zeros(3)}, {"version": "old"})

    def crash(src, dst):
        raise OSError("simulated crash before the rename")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="simulated crash"):
        save_checkpoint(path, {"w": torch.ones(3)}, {"version": "new"})
    monkeypatch.undo()
    state, meta = load_checkpoint(path)
    assert meta == {"version": "old"} and torch.equal(state["w"], torch.zeros(3))
    assert leftovers(tmp_path) == []


def test_save_rejects_objects_that_need_pickle(tmp_path):
    with pytest.raises(TypeError, match=r"state\['model'\] is a MLPDenoiser"):
        save_checkpoint(tmp_path / "a.pt", {"model": small_mlp()}, {})
    assert list(tmp_path.iterdir()) == []


class WritesMarker:
    """Unpickling this calls open(marker, "w"): a stand-in for arbitrary code in a malicious file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("fmt", ["torch.save", "raw pickle"])
def test_pickled_code_is_refused(tmp_path, fmt):
    marker, path = tmp_path / "pwned", tmp_path / "evil.pt"
    payload = {"format": 1, "state": {"w": WritesMarker(marker)}, "meta": {}}
    if fmt == "torch.save":
        torch.save(payload, path)
    else:
        import pickle
        path.write_bytes(pickle.dumps(payload, protocol=2))
    with pytest.raises(CheckpointError, match=r"refused to load .*evil\.pt"):
        load_checkpoint(path)
    assert not marker.exists()
    # control: the file really is dangerous - an unrestricted load runs the code
    if fmt == "torch.save":
        torch.load(path, weights_only=False)
    else:
        import pickle
        pickle.loads(path.read_bytes())
    assert marker.exists()


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_damaged_file_gives_clear_error(tmp_path, damage):
    path = tmp_path / "model.pt"
    save_checkpoint(path, {"w": torch.randn(1000)}, {})
    data = path.read_bytes()
    path.write_bytes({"truncate": data[: len(data) // 2], "garbage": bytes(range(256)) * 16, "empty": b""}[damage])
    with pytest.raises(CheckpointError, match=r"cannot read checkpoint .*model\.pt.*truncated or corrupted.*Delete it"):
        load_checkpoint(path)
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")


def test_mismatched_state_dict_gives_clear_error():
    small, big = small_mlp(hidden=8), small_mlp(hidden=16)
    with pytest.raises(CheckpointError, match=r"does not fit this MLPDenoiser: shape mismatch .*delete it"):
        load_weights(big, small.state_dict(), "x.pt")
    partial = dict(small.state_dict())
    partial.pop("out.bias")
    with pytest.raises(CheckpointError, match=r"missing \['out.bias'\]"):
        load_weights(small_mlp(), partial)


# ------------------------------------------------------------------------------------ keys
@dataclass(frozen=True)
class OtherConfig:
    dim: int = 2
    hidden: int = 128
    depth: int = 4
    time_embed_dim: int = 64


def test_config_key_stable_across_processes():
    parts = (MLPConfig(), {"data": "mnist", "split": "test", "n": 10000}, (1, 2.5, None))
    here = config_key(*parts)
    code = ("from diffusion_lite.checkpoint import config_key; from diffusion_lite.mlp import MLPConfig; "
            "print(config_key(MLPConfig(), {'n': 10000, 'split': 'test', 'data': 'mnist'}, [1, 2.5, None]))")
    there = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONHASHSEED": "123", "PYTHONPATH": str(ROOT)}).stdout.strip()
    assert here == there  # another process, another hash seed, other dict order, list for tuple
    assert len(here) == 16 and int(here, 16) >= 0


def test_config_key_changes_with_every_field():
    base = config_key(MLPConfig(), {"data": "moons"})
    assert config_key(MLPConfig(hidden=64), {"data": "moons"}) != base
    assert config_key(MLPConfig(), {"data": "swissroll"}) != base
    assert config_key(OtherConfig(), {"data": "moons"}) != base  # same fields, another class
    assert config_key(torch.arange(3.0)) != config_key(torch.tensor([0.0, 1.0, 2.5]))
    assert config_key(torch.arange(3.0)) == config_key(torch.arange(3.0))
    with pytest.raises(TypeError, match="cache key accepts"):
        config_key(object())
    with pytest.raises(ValueError, match="non-finite"):
        config_key({"lr": float("nan")})


# ------------------------------------------------------------------------------------ the cache
def counting_trainer(calls: list):
    def train_fn(model):
        calls.append(1)
        with torch.no_grad():
            for p in model.parameters():
                p.add_(1.0)  # "training": a visible change of the weights
    return train_fn


def test_cache_trains_once_then_loads():
    calls = []
    parts = (MLPConfig(hidden=8, depth=2, time_embed_dim=4), {"data": "toy"})
    first = cached_model("mlp-toy", small_mlp(), parts, counting_trainer(calls))
    second = cached_model("mlp-toy", small_mlp(seed=1), parts, counting_trainer(calls))
    assert len(calls) == 1
    for a, b in zip(first.state_dict().values(), second.state_dict().values()):
        assert torch.equal(a, b)
    cached_model("mlp-toy", small_mlp(), (parts[0], {"data": "other"}), counting_trainer(calls))
    assert len(calls) == 2  # another data description is another model


def test_cache_keeps_the_returned_module():
    ema = small_mlp(seed=5)
    model = cached_model("mlp-ema", small_mlp(), ("x",), lambda m: ema)
    for a, b in zip(model.parameters(), ema.parameters()):
        assert torch.equal(a, b)


def test_cache_file_for_another_architecture_is_an_error():
    parts = ("same key",)
    path = cache_path("mlp", "MLPDenoiser", *parts)  # where cached_model looks for this key
    save_checkpoint(path, {"model": small_mlp(hidden=16).state_dict()}, {})
    with pytest.raises(CheckpointError, match="does not fit"):
        cached_model("mlp", small_mlp(hidden=8), parts, counting_trainer([]))


def test_second_user_waits_for_the_lock_then_loads():
    calls, parts = [], ("shared",)
    path = cache_path("mlp", "MLPDenoiser", *parts)
    trained = small_mlp(seed=3)
    result = {}
    with file_lock(path):  # "another notebook" is training this model
        waiter = threading.Thread(
            target=lambda: result.setdefault("model", cached_model("mlp", small_mlp(), parts, counting_trainer(calls))))
        waiter.start()
        time.sleep(1.0)
        assert waiter.is_alive() and not calls  # waiting, not training a second copy
        save_checkpoint(path, {"model": trained.state_dict()}, {})
    waiter.join(timeout=20)
    assert not calls
    for a, b in zip(result["model"].parameters(), trained.parameters()):
        assert torch.equal(a, b)


def test_stale_locks_are_taken_over(tmp_path):
    old = tmp_path / "old"
    Path(f"{old}.lock").write_text("somehost 1\n")
    os.utime(f"{old}.lock", (time.time() - 7200, time.time() - 7200))
    with file_lock(old, stale_after=3600, timeout=5):  # too old
        pass
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    import socket
    Path(f"{tmp_path / 'dead'}.lock").write_text(f"{socket.gethostname()} {dead.pid}\n")
    with file_lock(tmp_path / "dead", timeout=5):  # its process has exited
        pass
    assert leftovers(tmp_path) == []


def test_lock_timeout_names_the_lock(tmp_path):
    with file_lock(tmp_path / "m") as lock:
        os.utime(lock, (time.time() - 7200, time.time() - 7200))  # old, but its process is alive: not stale
        with pytest.raises(TimeoutError, match=r"m\.lock"):
            with file_lock(tmp_path / "m", timeout=0.3, poll=0.05, stale_after=60):
                pass
