"""The package layout: every module imports on its own, imports form no cycle, and layers point one way."""
import ast
import subprocess
from concurrent.futures import ThreadPoolExecutor
import sys
from pathlib import Path


PKG = Path(__file__).resolve().parents[1] / "diffusion_lite"
MODULES = sorted(".".join(("diffusion_lite",) + p.relative_to(PKG).with_suffix("").parts).removesuffix(".__init__")
                 for p in PKG.rglob("*.py"))
# what each sub-package may import from the package (the top-level helper modules are open to all)
TOP = {"_checks", "checkpoint", "pickle_scan", "profiles", "plotting", "reporting"}
ALLOWED = {
    "core": set(),
    "oracles": {"core"},
    "data": set(),
    "nets": set(),
    "sampling": {"core"},
    "eval": {"data"},
    "training": {"core", "nets", "data", "eval", "sampling"},  # distill.py: its targets are the teacher's DDIM steps
}


def imports_of(module: str) -> set[str]:
    """The diffusion_lite modules `module` imports at module level or inside functions (static)."""
    path = PKG.joinpath(*module.split(".")[1:])
    path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("diffusion_lite"):
                continue
            for alias in node.names:  # `from . import x` may name a module
                candidate = f"{target}.{alias.name}"
                found.add(candidate if candidate in MODULES else target)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("diffusion_lite")}
    return {m for m in found if m in MODULES and m != module}


GRAPH = {m: imports_of(m) for m in MODULES}


def test_every_module_is_found():
    assert "diffusion_lite.sampling.ddim" in MODULES and "diffusion_lite.core.reverse" in MODULES
    assert len(MODULES) >= 30


def test_every_module_imports_alone():
    """A fresh interpreter imports each module by itself: no order dependence, no hidden cycle.
    (Four interpreters at a time: each spends most of its second importing torch.)"""
    def attempt(module):
        out = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True, timeout=300)
        return module, out.returncode, out.stderr[-1500:]

    with ThreadPoolExecutor(max_workers=4) as pool:
        failed = [f"{m}:\n{err}" for m, rc, err in pool.map(attempt, MODULES) if rc != 0]
    assert not failed, "\n".join(failed)


def test_no_import_cycle():
    state, stack = {}, []

    def visit(m):
        state[m] = "open"
        stack.append(m)
        for n in sorted(GRAPH[m]):
            if n == "diffusion_lite" or n.endswith("__init__"):
                continue
            if state.get(n) == "open":
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(n):] + [n]))
            if n not in state:
                visit(n)
        stack.pop()
        state[m] = "done"

    for m in MODULES:
        if m != "diffusion_lite" and m not in state:
            visit(m)


def test_layers_point_one_way():
    wrong = []
    for m, deps in GRAPH.items():
        parts = m.split(".")
        if len(parts) < 3:  # the package itself and the top-level modules
            continue
        for d in deps:
            dp = d.split(".")
            if len(dp) == 2 and dp[1] in TOP or dp[1] == parts[1]:
                continue
            if dp[1] not in ALLOWED[parts[1]]:
                wrong.append(f"{m} imports {d}")
    assert not wrong, "imports against the layer order:\n" + "\n".join(sorted(wrong))


def test_top_level_modules_import_no_stage():
    """checkpoint, profiles, plotting, ... serve every stage, so they import none (data images excepted)."""
    wrong = [f"{m} imports {d}" for m in MODULES if m.count(".") == 1 and m.split(".")[1] in TOP
             for d in GRAPH[m] if d.count(".") == 2 and d != "diffusion_lite.data.images"]
    assert not wrong, wrong


def test_no_private_names_cross_modules():
    """A module uses only public names of another module (no `from .x import _helper`)."""
    wrong = []
    for path in PKG.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("diffusion_lite")):
                if (node.module or "").split(".")[-1] == "_checks":
                    continue
                wrong += [f"{path.relative_to(PKG)}: {a.name}" for a in node.names
                          if a.name.startswith("_") and a.name != "__version__"]
    assert not wrong, wrong
