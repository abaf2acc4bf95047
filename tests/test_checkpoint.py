"""Checkpoints: atomic writes, safe loading, clear errors, stable cache keys, the cache and its lock."""
import io
import os
import pickle
import re
import shlex
import subprocess
import sys
import threading
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from diffusion_lite import pickle_scan
from diffusion_lite.checkpoint import (CheckpointError, cache_path, cached_model, config_key, file_lock,
                                       load_checkpoint, load_weights, save_checkpoint)
from diffusion_lite.nets.mlp import MLPConfig, MLPDenoiser

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


def test_legacy_format_checkpoint_loads(tmp_path):
    path = tmp_path / "legacy.pt"
    w = torch.randn(5)
    torch.save({"format": 1, "state": {"w": w}, "meta": {"m": 1}}, path, _use_new_zipfile_serialization=False)
    assert not zipfile.is_zipfile(path)  # really the raw-pickle layout
    state, meta = load_checkpoint(path)
    assert torch.equal(state["w"], w) and meta == {"m": 1}


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
        path.write_bytes(pickle.dumps(payload, protocol=2))
    with pytest.raises(CheckpointError, match=r"refused to load .*evil\.pt.*blocked global: io\.open"):
        load_checkpoint(path)
    assert not marker.exists()
    # control: the file really is dangerous - an unrestricted load runs the code
    if fmt == "torch.save":
        torch.load(path, weights_only=False)
    else:
        pickle.loads(path.read_bytes())
    assert marker.exists()


class RunsCommand:
    """Unpickling this calls os.system("touch <marker>"): a hostile file that runs a shell command."""

    def __init__(self, marker):
        self.command = f"touch {shlex.quote(str(marker))}"

    def __reduce__(self):
        return (os.system, (self.command,))


def assert_clean_message(message: str, path: Path) -> None:
    """Names the file, fits on one line, and never advises an unrestricted load."""
    assert str(path) in message
    assert "\n" not in message
    assert "weights_only" not in message and "will likely succeed" not in message


HOSTILE_WRITERS = {
    "torch.save": lambda obj, path: torch.save(obj, path),
    "torch.save protocol 4": lambda obj, path: torch.save(obj, path, pickle_protocol=4),
    "torch.save legacy format": lambda obj, path: torch.save(obj, path, _use_new_zipfile_serialization=False),
    "raw pickle protocol 2": lambda obj, path: path.write_bytes(pickle.dumps(obj, protocol=2)),
    "raw pickle protocol 5": lambda obj, path: path.write_bytes(pickle.dumps(obj, protocol=5)),
}
SYSTEM = re.escape(f"{os.system.__module__}.system")  # posix.system on Linux and macOS, nt.system on Windows


@pytest.mark.parametrize("how", list(HOSTILE_WRITERS))
def test_hostile_file_is_refused_naming_the_global(tmp_path, how):
    marker, path = tmp_path / "pwned", tmp_path / "evil.pt"
    HOSTILE_WRITERS[how]({"format": 1, "state": {"w": RunsCommand(marker)}, "meta": {}}, path)
    with pytest.raises(CheckpointError) as refused:
        load_checkpoint(path)
    message = str(refused.value)
    assert re.match(rf"refused to load {re.escape(str(path))}: it holds Python objects that a checkpoint of this "
                    rf"package never holds \(blocked global: {SYSTEM}\); .*nothing in it was run", message), message
    assert_clean_message(message, path)
    assert not marker.exists()
    # control: the file really is hostile - an unrestricted load runs the command
    if how.startswith("torch.save"):
        torch.load(path, weights_only=False)
    else:
        pickle.loads(path.read_bytes())
    assert marker.exists()


def test_hostile_pickle_cut_short_is_still_refused(tmp_path):
    marker, path = tmp_path / "pwned", tmp_path / "evil.pkl"
    data = pickle.dumps(RunsCommand(marker), protocol=2)
    path.write_bytes(data[: data.index(b"system") + 8])  # ends just after the GLOBAL opcode
    with pytest.raises(CheckpointError, match=rf"^refused to load .*blocked global: {SYSTEM}\)") as refused:
        load_checkpoint(path)
    assert_clean_message(str(refused.value), path)
    assert not marker.exists()


@pytest.mark.parametrize("protocol", [2, 5])
@pytest.mark.parametrize("obj", [{"a": 1}, [1, 2.5, "x"]], ids=["dict", "list"])
def test_foreign_pickle_is_not_a_checkpoint(tmp_path, obj, protocol):
    path = tmp_path / "foreign.pkl"
    path.write_bytes(pickle.dumps(obj, protocol=protocol))
    with pytest.raises(CheckpointError) as refused:
        load_checkpoint(path)
    message = str(refused.value)
    assert message.startswith(f"{path} is not a checkpoint of this package: it is a Python pickle (protocol "
                              f"{protocol}), not a file written by save_checkpoint"), message
    assert "truncated" not in message and "refused" not in message
    assert_clean_message(message, path)


def test_torch_file_without_the_checkpoint_layout_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, path)
    with pytest.raises(CheckpointError, match=r"other\.pt is not a checkpoint of this package: torch\.load reads it"):
        load_checkpoint(path)


def drop_tensor_data(data: bytes, path: Path) -> bytes:
    """The same zip archive without its tensor bytes: every entry parses, the checkpoint is still broken."""
    source, out = zipfile.ZipFile(io.BytesIO(data)), io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name in source.namelist():
            if "/data/" not in name:
                archive.writestr(name, source.read(name))
    return out.getvalue()


def legacy_cut_in_half(data: bytes, path: Path) -> bytes:
    """A checkpoint in torch's legacy (raw pickles, pre-zip) format, cut in half."""
    torch.save({"format": 1, "state": {"w": torch.randn(1000)}, "meta": {}}, path, _use_new_zipfile_serialization=False)
    whole = path.read_bytes()
    return whole[: len(whole) // 2]


DAMAGE = {
    "truncate": lambda data, path: data[: len(data) // 2],
    "garbage": lambda data, path: bytes(range(256)) * 16,
    "empty": lambda data, path: b"",
    "no tensor data": drop_tensor_data,
    "truncate legacy": legacy_cut_in_half,
    "raw pickle protocol 2 cut short": lambda data, path: pickle.dumps({"a": list(range(50))}, protocol=2)[:40],
    "raw pickle protocol 5 cut short": lambda data, path: pickle.dumps({"a": list(range(50))}, protocol=5)[:40],
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_file_gives_clear_error(tmp_path, damage):
    path = tmp_path / "model.pt"
    save_checkpoint(path, {"w": torch.randn(1000)}, {})
    path.write_bytes(DAMAGE[damage](path.read_bytes(), path))
    damaged = r"cannot read checkpoint .*model\.pt.*truncated or corrupted.*Delete it"
    with pytest.raises(CheckpointError, match=damaged) as refused:
        load_checkpoint(path)
    assert_clean_message(str(refused.value), path)
    assert "not a checkpoint of this package" not in str(refused.value)
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")


def test_refusal_stays_safe_when_the_scan_fails(tmp_path, monkeypatch):
    """If pickle_scan breaks, torch still refuses the file and the message still gives no unsafe advice."""
    marker, path = tmp_path / "pwned", tmp_path / "evil.pt"
    torch.save({"w": RunsCommand(marker)}, path)

    def broken(path):
        raise RuntimeError("scan failed")

    monkeypatch.setattr(pickle_scan, "diagnose", broken)
    with pytest.raises(CheckpointError, match=r"cannot read checkpoint .*evil\.pt") as refused:
        load_checkpoint(path)
    assert_clean_message(str(refused.value), path)
    assert not marker.exists()


def test_scan_finds_memoised_stack_globals(tmp_path):
    path = tmp_path / "two.pkl"
    data = pickle.dumps([os.getcwd, os.system], protocol=4)
    module = os.system.__module__.encode()
    assert data.count(module) == 1  # the second global takes its module name from the memo (BINGET)
    path.write_bytes(data)
    found = []
    with open(path, "rb") as f:
        pickle_scan.scan_pickle(f, found)
    assert found == [f"{os.getcwd.__module__}.getcwd", f"{os.system.__module__}.system"]
    assert pickle_scan.diagnose(path) == ("unsafe", ", ".join(found))


def test_allow_list_matches_the_weights_only_unpickler(tmp_path):
    # what save_checkpoint writes, including an OrderedDict state_dict and several dtypes, is all allowed
    path = tmp_path / "a.pt"
    state = {"model": small_mlp().state_dict(), "half": torch.zeros(2, dtype=torch.float16),
             "ints": torch.arange(3), "mask": torch.ones(2, dtype=torch.bool)}
    save_checkpoint(path, state, {"note": "x"})
    with zipfile.ZipFile(path) as archive:
        data = archive.read(next(n for n in archive.namelist() if n.endswith("/data.pkl")))
    found = []
    pickle_scan.scan_pickle(io.BytesIO(data), found)
    assert "torch._utils._rebuild_tensor_v2" in found and "collections.OrderedDict" in found
    assert all(pickle_scan.allowed(name) for name in found), found
    for name in ["posix.system", "os.system", "builtins.eval", "builtins.exec", "builtins.getattr", "io.open",
                 "subprocess.Popen", "torch.load", "torch.storage._load_from_bytes", "torch.nn.Module"]:
        assert not pickle_scan.allowed(name), name
    # every global torch's own weights-only unpickler accepts (a private table, so skip where it is gone)
    table = getattr(torch._weights_only_unpickler, "_get_allowed_globals", None)
    if table is None:
        pytest.skip("this torch has no _get_allowed_globals table to compare with")
    refused = sorted(name for name in table() if not pickle_scan.allowed(name))
    assert not refused, refused


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
    code = ("from diffusion_lite.checkpoint import config_key; from diffusion_lite.nets.mlp import MLPConfig; "
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
