"""The house plan as a test (GUIDE.md, "The house we are moving into"): imports only go down the
flow, there is no cycle among asclab's modules, function-local imports are kept for optional
heavy dependencies only, and no module is past about 400 lines of code.

The flow, top to bottom (a layer imports only from layers above it in this list):
utilities (errors, io, registry, terminal, memory, metrics) < data < features < augment < models
< losses < optim < compress < config < train < evaluate < interop < export < workflows < cli.
Two deviations from GUIDE.md's list, on purpose: ``optim`` (optimisers and schedules, which the
recipe schema must know to check their keys) sits below ``config``, and ``compress`` (pruning,
QAT, complexity) sits below ``train``, whose prune and QAT stages use it.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "asclab"
FLOW = ["data", "features", "augment", "models", "losses", "optim", "compress", "config", "train", "evaluate",
        "interop", "export", "workflows", "cli"]
UTILITIES = {"asclab", "asclab.errors", "asclab.io", "asclab.registry", "asclab.terminal", "asclab.memory", "asclab.run_lock",
             "asclab.metrics"}
# The DCASE 2025 package template is copied into packages that must not need asclab: its modules
# import torch, numpy, soundfile and each other only (tests/export/test_package*.py).
TEMPLATE = "asclab.export.dcase2025_package"
# Function-local imports allowed: optional heavy dependencies, each with a comment at the import.
OPTIONAL = ("onnx", "onnxruntime", "litert_torch", "ai_edge_litert", "ai_edge_quantizer", "ai_edge_torch",
            "tensorboard", "torch.utils.tensorboard", "torchao", "matplotlib", "torch")
MAX_CODE_LINES = 400


def _modules() -> dict[str, Path]:
    out = {}
    for path in SRC.rglob("*.py"):
        parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _imports(name: str, path: Path) -> list[tuple[ast.stmt, list[str], bool]]:
    """(node, asclab modules it imports, whether it sits inside a function) for each import."""
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    local: set[int] = set()
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            local |= {id(n) for n in ast.walk(fn) if isinstance(n, (ast.Import, ast.ImportFrom))}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        mods = [t for t in targets if t in MODULES]
        out.append((node, mods, id(node) in local))
    return out


def layer(module: str) -> int:
    if module in UTILITIES:
        return -1
    top = module.split(".")[1]
    if top not in FLOW:
        pytest.fail(f"{module}: not in a layer of the flow; add its package to FLOW or UTILITIES in this test")
    return FLOW.index(top)


GRAPH = {name: {m for _, mods, _ in _imports(name, path) for m in mods if m != name}
         for name, path in MODULES.items()}


def test_no_import_climbs_against_the_flow():
    climbs = [f"{a} -> {b}" for a, targets in GRAPH.items() for b in targets
              if not a.startswith(TEMPLATE) and layer(b) > layer(a)]
    assert not climbs, "imports against the flow:\n" + "\n".join(sorted(climbs))


def test_utilities_import_no_layer():
    bad = [f"{a} -> {b}" for a in UTILITIES if a in GRAPH for b in GRAPH[a] if b not in UTILITIES]
    assert not bad, bad


def test_no_cycle_among_modules():
    # a package's __init__ importing its own submodules is not a cycle of the flow
    edges = {a: {b for b in bs if not b.startswith(a + ".")} for a, bs in GRAPH.items()}
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(u: str) -> None:
        state[u] = 1
        stack.append(u)
        for v in sorted(edges.get(u, ())):
            if state.get(v) == 1:
                cycles.append(stack[stack.index(v):] + [v])
            elif v not in state:
                visit(v)
        stack.pop()
        state[u] = 2

    for u in sorted(edges):
        if u not in state:
            visit(u)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_function_local_imports_are_optional_heavy_dependencies_with_a_reason():
    bad = []
    for name, path in MODULES.items():
        lines = path.read_text().splitlines()
        for node, mods, local in _imports(name, path):
            if not local:
                continue
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            optional = all(any(n == o or n.startswith(o + ".") for o in OPTIONAL) for n in names) and not mods
            commented = any("#" in lines[i] for i in range(node.lineno - 2, node.end_lineno))
            if not (optional and commented):
                bad.append(f"{path.relative_to(SRC.parent)}:{node.lineno}: {ast.unparse(node)}")
    assert not bad, "function-local imports (only optional heavy dependencies, with a comment):\n" + "\n".join(bad)


def test_template_modules_import_only_torch_numpy_soundfile_and_each_other():
    allowed = {"torch", "numpy", "soundfile"}
    bad = []
    for name, path in MODULES.items():
        if not name.startswith(TEMPLATE):
            continue
        for node, mods, _ in _imports(name, path):
            if isinstance(node, ast.ImportFrom) and node.level:
                continue
            roots = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            for r in roots:
                top = r.split(".")[0]
                if top not in allowed and top not in _stdlib():
                    bad.append(f"{name}: {r}")
    assert not bad, bad


def _stdlib() -> frozenset[str]:
    import sys

    return frozenset(sys.stdlib_module_names) | {"__future__"}


def code_lines(path: Path) -> int:
    """Lines that are neither blank, comments nor docstrings."""
    text = path.read_text()
    tree = ast.parse(text)
    doc_lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(getattr(first, "value", None), ast.Constant) \
                    and isinstance(first.value.value, str):
                doc_lines |= set(range(first.lineno, first.end_lineno + 1))
    return sum(1 for i, line in enumerate(text.splitlines(), 1)
               if line.strip() and not line.strip().startswith("#") and i not in doc_lines)


def test_no_module_is_doing_two_jobs():
    big = {str(p.relative_to(SRC.parent)): n for p in MODULES.values() if (n := code_lines(p)) > MAX_CODE_LINES}
    assert not big, f"modules over {MAX_CODE_LINES} lines of code: {big}"


def test_the_checker_sees_a_climb_and_a_cycle(tmp_path):
    """The rules above can fail: a fake graph with a climb and a cycle is caught."""
    assert layer("asclab.data.audio") < layer("asclab.train.fit")
    assert layer("asclab.errors") < layer("asclab.data.audio")
    fake = tmp_path / "m.py"
    fake.write_text("def f():\n    import json\n    return json\n\n" + "x = 1\n" * (MAX_CODE_LINES + 1))
    assert code_lines(fake) == MAX_CODE_LINES + 4
