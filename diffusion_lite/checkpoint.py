"""Checkpoints and the checkpoint cache: how a model trained in one chapter is reused by the next.

- `save_checkpoint` writes atomically: a temporary file in the same folder, flushed to disk, then
  os.replace. A crash leaves either the old file or the new one, never half of one.
- `load_checkpoint` uses torch.load(weights_only=True): tensors, numbers, strings, lists, dicts
  only. A pickled object that would run code when loaded is refused, and the error names the global
  it would have imported (read by `pickle_scan` without running the file); a pickle that is not a
  checkpoint and a truncated or corrupted file are reported with their path (delete a broken
  file; it is never silently retrained over).
- `cached_model(kind, model, config_parts, train_fn)` looks the model up in the cache folder under
  a key made from its configuration, the data description and the training configuration
  (`config_key`); it trains (and saves) only when no matching file exists. A lock file makes two
  notebooks that need the same model at once train it once: the second waits, then loads.

    model = dl.cached_model("unet-mnist", dl.UNet(ucfg), (ucfg, data_description, tcfg),
                            lambda m: dl.train(m, images, sched, tcfg).ema_model)

`train(..., checkpoint_path=cache_path(kind, *parts))` is the other way to use the cache: it holds
the same lock, resumes an interrupted run, and keeps the loss history beside the weights.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import re
import socket
import tempfile
import time
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor, nn

from . import pickle_scan

KEY_FORMAT = 1         # bump when config_key's canonical form changes: old cache entries are then ignored
CHECKPOINT_FORMAT = 1  # version of the {"format", "state", "meta"} layout written by save_checkpoint


# dataclasses.field metadata of a config field added after models were cached: config_key leaves
# it out while it holds its default, so every existing cache entry keeps its key
NEW_FIELD = {"key_if_default": False}


class CheckpointError(RuntimeError):
    """A checkpoint file that cannot be used: corrupted, unsafe, or made for another model."""


def cache_dir() -> Path:
    """The checkpoint cache folder: $DL_CACHE_DIR, else ~/.cache/diffusion_lite (created if missing)."""
    path = Path(os.environ.get("DL_CACHE_DIR") or Path.home() / ".cache" / "diffusion_lite").expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


# ---------------------------------------------------------------------------------- cache keys
def _canonical(obj, where: str = "config_parts"):
    """A JSON-ready form that is the same in every run: dataclasses by class name and fields,
    tuples as lists, dict keys sorted (by json.dumps), tensors by their SHA-256."""
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    if isinstance(obj, float):
        if not math.isfinite(obj):
            raise ValueError(f"{where} holds a non-finite float {obj}; a cache key needs finite numbers")
        return obj
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        # a field added after models were cached carries metadata {"key_if_default": False}: at its
        # default it stays out of the key, so the cached models keep their keys (see NEW_FIELD)
        fields = {f.name: _canonical(getattr(obj, f.name), f"{where}.{f.name}") for f in dataclasses.fields(obj)
                  if f.metadata.get("key_if_default", True) or getattr(obj, f.name) != f.default}
        return {"__class__": type(obj).__name__, **fields}
    if isinstance(obj, dict):
        if not all(isinstance(k, str) for k in obj):
            raise TypeError(f"{where} is a dict with non-string keys; use string keys in a cache key")
        return {k: _canonical(v, f"{where}[{k!r}]") for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_canonical(v, f"{where}[{i}]") for i, v in enumerate(obj)]
    if isinstance(obj, Tensor):
        data = obj.detach().cpu().contiguous()
        digest = hashlib.sha256(data.numpy().tobytes() if data.dtype != torch.bfloat16
                                else data.view(torch.int16).numpy().tobytes()).hexdigest()
        return {"__tensor__": digest, "shape": list(data.shape), "dtype": str(data.dtype)}
    raise TypeError(f"{where} has a {type(obj).__name__}; a cache key accepts dataclasses, dicts, lists, "
                    "tuples, tensors, str, int, float, bool and None")


def config_key(*parts) -> str:
    """A stable 16-hex-digit key for a configuration: the SHA-256 of its canonical JSON.

    The same parts give the same key in every run and on every machine; change any field and the
    key changes. Example: config_key(unet_config, {"data": "mnist", "split": "test"}, train_config).
    """
    text = json.dumps({"format": KEY_FORMAT, "parts": _canonical(list(parts))},
                      sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def cache_path(kind: str, *parts) -> Path:
    """Where the cache keeps the model `kind` trained with configuration `parts`."""
    if not isinstance(kind, str) or not re.fullmatch(r"[A-Za-z0-9_.-]+", kind):
        raise ValueError(f"kind must be a short name of letters, digits, '_', '-' or '.', got {kind!r}")
    return cache_dir() / f"{kind}-{config_key(kind, *parts)}.pt"


# ---------------------------------------------------------------------------------- save / load
def _check_plain(obj, where: str) -> None:
    """Only what a weights-only load accepts: tensors, containers of them, and plain values."""
    if obj is None or isinstance(obj, (Tensor, bool, int, float, str)):
        return
    if isinstance(obj, dict):
        for k, v in obj.items():
            if not isinstance(k, (str, int)):
                raise TypeError(f"{where} has a key of type {type(k).__name__}; use str or int keys")
            _check_plain(v, f"{where}[{k!r}]")
        return
    if isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            _check_plain(v, f"{where}[{i}]")
        return
    raise TypeError(f"{where} is a {type(obj).__name__}; a checkpoint holds only tensors, dicts, lists, "
                    "numbers, strings and None (save model.state_dict(), not the model)")


def save_checkpoint(path, state: dict, meta: dict) -> Path:
    """Write {state, meta} to path atomically (temp file in the same folder, fsync, os.replace)."""
    if not isinstance(state, dict) or not isinstance(meta, dict):
        raise TypeError(f"state and meta must be dicts, got {type(state).__name__} and {type(meta).__name__}")
    _check_plain(state, "state")
    _check_plain(meta, "meta")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save({"format": CHECKPOINT_FORMAT, "state": state, "meta": meta}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)  # atomic on one file system: readers see the old file or the new one
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    try:  # make the rename itself durable (not possible on every OS / file system)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass
    return path


def _refusal(path: Path, error: Exception) -> str:
    """One line that says why torch.load(weights_only=True) refused `path`, never advising an unsafe load."""
    try:
        verdict, detail = pickle_scan.diagnose(path)
    except Exception:  # the scan only words the message; the refusal stands whatever it does
        verdict, detail = "unknown", ""
    if verdict == "unsafe":
        plural = "s" if ", " in detail else ""
        return (f"refused to load {path}: it holds Python objects that a checkpoint of this package never holds "
                f"(blocked global{plural}: {detail}); unpickling them could run arbitrary code, so nothing in it "
                "was run. Delete the file if you did not make it")
    if verdict == "foreign":
        return (f"{path} is not a checkpoint of this package: it is {detail}, not a file written by "
                "save_checkpoint, and nothing in it was run. Point to a diffusion_lite checkpoint or delete it")
    if verdict == "damaged":
        return (f"cannot read checkpoint {path}: the file is truncated or corrupted ({detail}). "
                "Delete it and run again; the model will then be trained afresh")
    # nothing wrong found by reading it: quote torch's reason, minus every line about loading it unsafely
    lines = [line.strip() for line in re.sub(r"\x1b\[[0-9;]*m", "", str(error)).splitlines()]
    reason = next((line for line in lines if line and not re.search(r"(?i)weights.only|trust|https?:", line)), "")
    reason = type(error).__name__ + (f": {reason.split('. ')[0][:200].rstrip('.')}" if reason else "")
    return (f"cannot read checkpoint {path}: it is truncated or corrupted, or holds something a weights-only load "
            f"refuses ({reason}). Delete it and run again; the model will then be trained afresh")


def load_checkpoint(path, map_location="cpu") -> tuple[dict, dict]:
    """(state, meta) from a file written by save_checkpoint, loaded without running pickled code."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        with warnings.catch_warnings():  # torch warns about a protocol-5 pickle before refusing it: noise here
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            payload = torch.load(path, map_location=map_location, weights_only=True)  # the safety gate
    except Exception as e:  # refused: pickle_scan reads the file, without running it, to say why
        raise CheckpointError(_refusal(path, e)) from None
    if not (isinstance(payload, dict) and payload.get("format") == CHECKPOINT_FORMAT
            and isinstance(payload.get("state"), dict) and isinstance(payload.get("meta"), dict)):
        raise CheckpointError(f"{path} is not a checkpoint of this package: torch.load reads it, but it lacks the "
                              f"{{format: {CHECKPOINT_FORMAT}, state, meta}} layout that save_checkpoint writes. "
                              "Point to a diffusion_lite checkpoint or delete the file")
    return payload["state"], payload["meta"]


def load_weights(model: nn.Module, state_dict: dict, path="the checkpoint") -> nn.Module:
    """model.load_state_dict(state_dict) with a clear error when keys or shapes do not match."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    shapes = [f"{k}: file {tuple(state_dict[k].shape)} vs model {tuple(own[k].shape)}"
              for k in own if k in state_dict and tuple(state_dict[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or shapes:
        details = "; ".join(filter(None, [
            f"missing {missing[:5]}{' ...' if len(missing) > 5 else ''}" if missing else "",
            f"unexpected {unexpected[:5]}{' ...' if len(unexpected) > 5 else ''}" if unexpected else "",
            f"shape mismatch {shapes[:5]}{' ...' if len(shapes) > 5 else ''}" if shapes else ""]))
        raise CheckpointError(f"{path} does not fit this {type(model).__name__}: {details}. It was saved for a "
                              "different model configuration; delete it or build the model it was made for")
    model.load_state_dict(state_dict)
    return model


# ---------------------------------------------------------------------------------- lock file
def _lock_is_stale(lock: Path, stale_after: float) -> bool:
    """Same machine: stale when the process that holds it is gone. Else: when older than stale_after."""
    try:
        age = time.time() - lock.stat().st_mtime
        host, pid = lock.read_text().split()[:2]
        pid = int(pid)
    except (OSError, ValueError):
        return False  # vanished, or its owner has not written it yet
    if host != socket.gethostname():
        return age > stale_after
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # it exists, owned by someone else
    return False


@contextmanager
def file_lock(path, *, timeout: float = 24 * 3600.0, stale_after: float = 12 * 3600.0, poll: float = 0.5):
    """Hold `<path>.lock` (created with O_CREAT | O_EXCL) while the block runs.

    Another process that wants the same lock waits. A lock left by a process that died is removed
    (on another machine, sharing the folder: once it is older than stale_after seconds). Waiting
    longer than timeout raises TimeoutError.
    """
    lock = Path(f"{path}.lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    while True:
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            break
        except FileExistsError:
            if _lock_is_stale(lock, stale_after):
                lock.unlink(missing_ok=True)
                continue
            if time.monotonic() - start > timeout:
                raise TimeoutError(f"waited {timeout:.0f} s for {lock}; if no other notebook is training this "
                                   "model, delete the lock file") from None
            time.sleep(poll)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(f"{socket.gethostname()} {os.getpid()}\n")
        yield lock
    finally:
        lock.unlink(missing_ok=True)


# ---------------------------------------------------------------------------------- the cache
def cached_model(kind: str, model: nn.Module, config_parts, train_fn: Callable[[nn.Module], nn.Module | None],
                 *, map_location="cpu") -> nn.Module:
    """`model` with trained weights: loaded from the cache, or trained by train_fn(model) and saved.

    config_parts: everything the weights depend on (model config, data description, training
    config); with `kind` and the model's class it forms the key (config_key). train_fn trains the
    model in place and returns None, or returns the module whose weights to keep (e.g. the EMA
    copy). The model is returned in eval mode.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not callable(train_fn):
        raise TypeError(f"train_fn must be callable as train_fn(model), got {type(train_fn).__name__}")
    parts = list(config_parts) if isinstance(config_parts, (list, tuple)) else [config_parts]
    path = cache_path(kind, type(model).__name__, *parts)

    def load() -> nn.Module:
        state, _ = load_checkpoint(path, map_location=map_location)
        return load_weights(model, state["model"], path).eval()

    if path.exists():
        return load()
    with file_lock(path):
        if path.exists():  # another process trained it while we waited for the lock
            return load()
        start = time.perf_counter()
        trained = train_fn(model)
        trained = model if trained is None else trained
        if not isinstance(trained, nn.Module):
            raise TypeError(f"train_fn must return None or an nn.Module, got {type(trained).__name__}")
        meta = {"kind": kind, "key": path.stem, "model_class": type(model).__name__,
                "config_parts": json.dumps(_canonical(parts), sort_keys=True),
                "train_seconds": time.perf_counter() - start}
        save_checkpoint(path, {"model": trained.state_dict()}, meta)
        if trained is not model:
            load_weights(model, trained.state_dict(), "the trained module")
    return model.eval()
