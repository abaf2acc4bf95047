"""Reading what a pickle file would import, without running it: why a checkpoint was refused.

torch.load(weights_only=True) is the safety gate: `load_checkpoint` calls it first, and only when it
refuses a file does it ask `diagnose(path)` for words. `diagnose` never unpickles anything. It walks
the opcodes with `pickletools.genops`, which only parses, and collects every global the pickle would
import (GLOBAL, INST, STACK_GLOBAL, EXT1/2/4). For STACK_GLOBAL the module and the name are the two
strings on top of the stack; a small simulation of the stack (from pickletools' table of each
opcode's stack effect) and of the memo (PUT, MEMOIZE, GET) finds them even when they were memoised.

Layouts: a torch.save file is a zip archive whose `<name>/data.pkl` member holds the pickle; a file in
torch's legacy format is a raw sequence of pickles that starts with torch's magic number. Anything
else that parses is a pickle from somewhere else.
"""
from __future__ import annotations

import _compat_pickle
import io
import pickletools
import zipfile
from pathlib import Path

import torch

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C  # the first pickle of a legacy-format torch.save file
LEGACY_PICKLES = 5  # legacy layout: magic, protocol, sys_info, the object, its storage keys; then raw bytes

# Globals a weights-only load accepts besides the torch families that `allowed` recognises by name.
ALLOWED = {"collections.OrderedDict", "collections.Counter", "torch.Size", "torch.device", "torch.Tensor",
           "torch.nn.parameter.Parameter", "torch.serialization._get_layout",
           "torch._tensor._rebuild_from_type_v2", "_codecs.encode", "builtins.bytearray", "builtins.set",
           "builtins.complex"}
# modules whose *Storage and *Tensor classes are allowed: torch.FloatStorage, torch.storage.UntypedStorage, ...
TORCH_CLASS_MODULES = {"torch", "torch.storage", "torch.cuda", "torch.sparse", "torch.cuda.sparse"}
LITERALS = {"STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8",
            "INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4"}  # opcodes that push their argument
MARK = object()  # stands for pickle's mark on the simulated stack


def allowed(name: str) -> bool:
    """Whether a weights-only load accepts the global `module.name`: tensors, their storages, dtypes,
    rebuild functions and plain containers, plus what the user allow-listed with add_safe_globals."""
    module, _, attr = name.rpartition(".")
    if name in ALLOWED or (module == "torch._utils" and attr.startswith("_rebuild_")):
        return True
    if module in TORCH_CLASS_MODULES and (attr.endswith("Storage") or attr.endswith("Tensor")):
        return True
    if module == "torch" and isinstance(getattr(torch, attr, None), (torch.dtype, torch.qscheme)):
        return True
    user = [g[1] if isinstance(g, tuple) else f"{g.__module__}.{g.__qualname__}"
            for g in torch.serialization.get_safe_globals()]
    return name in user


def _global_name(module: str, name: str) -> str:
    """module.name as Python 3 spells it (protocol 2 pickles may say __builtin__ for builtins)."""
    module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
    return f"{_compat_pickle.IMPORT_MAPPING.get(module, module)}.{name}"


def scan_pickle(stream, found: list[str]) -> tuple[int | None, object]:
    """Read one pickle from `stream` up to its STOP, appending each global it imports to `found`.

    Returns (its protocol, its value when that is a plain int or str, else None). Raises ValueError
    where the pickle is cut short or is not a pickle; `found` then holds what was read before that.
    """
    stack, memo, protocol = [], {}, None
    for op, arg, _ in pickletools.genops(stream):
        if op.name == "PROTO":
            protocol = arg
        if op.name == "STOP":  # the pickle's value is the one object left on the stack
            return protocol, stack[-1] if len(stack) == 1 and isinstance(stack[-1], (int, str)) else None
        if op.name in ("GLOBAL", "INST"):
            module, _, name = arg.partition(" ")
            found.append(_global_name(module, name))
        elif op.name == "STACK_GLOBAL":
            module, name = stack[-2:] if len(stack) >= 2 else (None, None)
            found.append(_global_name(module, name) if isinstance(module, str) and isinstance(name, str)
                         else "<a global whose name is computed while loading>")
        elif op.name.startswith("EXT"):
            found.append(f"<copyreg extension code {arg}>")
        if op.name in ("PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"):  # store the top of the stack; no stack change
            memo[len(memo) if op.name == "MEMOIZE" else arg] = stack[-1] if stack else None
            continue
        before = op.stack_before  # the opcode's stack effect, as pickletools documents it
        if pickletools.markobject in before:
            while stack and stack.pop() is not MARK:
                pass
            below = before.index(pickletools.markobject)
            del stack[max(0, len(stack) - below):]
        else:
            del stack[max(0, len(stack) - len(before)):]
        value = arg if op.name in LITERALS else memo.get(arg) if op.name in ("GET", "BINGET", "LONG_BINGET") else None
        stack.extend(MARK if item is pickletools.markobject else value for item in op.stack_after)
    raise ValueError("pickle exhausted before seeing STOP")  # genops itself raises this first


def diagnose(path) -> tuple[str, str]:
    """Why torch.load(weights_only=True) may have refused `path`, read without running any of it.

    Returns (verdict, detail): "unsafe" (detail: the globals outside the allow-list), "foreign" (it
    parses, but is not a torch.save file; detail: what it is), "damaged" (detail: where reading
    stopped), or "unknown" (nothing wrong found; detail "").
    """
    path = Path(path)
    if path.stat().st_size == 0:
        return "damaged", "the file is empty"
    imports, problem, foreign = [], "", ""
    with open(path, "rb") as f:
        zipped = f.read(4) == b"PK\x03\x04"  # a zip archive: torch.save's format since torch 1.6
        f.seek(0)
        if zipped:
            try:
                with zipfile.ZipFile(f) as archive:
                    members = [n for n in archive.namelist() if n == "data.pkl" or n.endswith("/data.pkl")]
                    data = archive.read(members[0]) if members else None
            except (zipfile.BadZipFile, EOFError, OSError, ValueError) as e:
                return "damaged", f"it starts as a zip archive but cannot be read as one, as when it is cut short: {e}"
            if data is None:
                return "foreign", "a zip archive without the data.pkl that torch.save writes"
            stream = io.BytesIO(data)
        else:
            stream = f
        try:
            protocol, value = scan_pickle(stream, imports)
            if not zipped and value != LEGACY_MAGIC:  # a pickle from elsewhere: pickle.load would run this one
                foreign = f"a Python pickle (protocol {protocol if protocol is not None else '0 or 1'})"
            elif not zipped:  # legacy torch.save: four more pickles, then raw storage bytes
                for _ in range(LEGACY_PICKLES - 1):
                    scan_pickle(stream, imports)
        except ValueError as e:
            where = "data.pkl" if zipped else "the pickle"
            problem = (f"it is neither a zip archive nor a pickle: {e}" if not zipped and stream.tell() <= 1
                       else f"{where} breaks off or goes wrong at byte {stream.tell()}: {e}")
    blocked = list(dict.fromkeys(g for g in imports if not allowed(g)))
    if blocked:
        return "unsafe", ", ".join(blocked[:3]) + (f" and {len(blocked) - 3} more" if len(blocked) > 3 else "")
    if problem:
        return "damaged", problem
    if foreign:
        return "foreign", foreign
    return "unknown", ""
