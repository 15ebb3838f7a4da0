"""Imports run one way: every module of hf_fiqa imports only its own layer or lower ones, and no module imports
itself back through a chain (no cycle). In-function imports count as much as top-level ones: a lazy upward import
is still a lower layer depending on a higher one. CONTRIBUTING.md says where new code goes."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

# Lowest first. A module of layer k may import modules of layers 0..k. The root package (hf_fiqa/__init__.py,
# holding register()) and the command line sit on top.
LAYERS: list[set[str]] = [
    {"io", "paths", "quality_scale", "atomic", "devices"},  # leaves: no hf_fiqa imports at all
    {"faces", "sharding"},
    {"models", "data"},
    {"embedding", "labels", "hub", "components"},
    {"scorers"},
    {"metrics", "training", "export"},
    {"pipelines"},
    {"recipes"},
    {"commands", "cli", ""},
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_module(name: str) -> bool:
    base = SRC.joinpath(*name.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def imports_of(path: Path) -> set[str]:
    """hf_fiqa modules that ``path`` imports anywhere in its body (``from a import b`` counts as ``a.b`` when
    ``b`` is a module)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                child = f"{target}.{alias.name}"
                found.add(child if _is_module(child) else target)
    return {t for t in found if t == "hf_fiqa" or t.startswith("hf_fiqa.")}


def layer_of(module: str) -> int:
    area = module.split(".")[1] if "." in module else ""
    for index, names in enumerate(LAYERS):
        if area in names:
            return index
    raise AssertionError(f"{module}: its area {area!r} has no layer; add it to LAYERS (and CONTRIBUTING.md)")


def import_graph() -> dict[str, set[str]]:
    return {module_name(path): imports_of(path) for path in sorted(SRC.joinpath("hf_fiqa").rglob("*.py"))}


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module, or a module importing itself (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in graph:
                continue
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1 or node in graph.get(node, ()):
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def test_no_module_imports_a_higher_layer():
    upward = [f"{module} (layer {layer_of(module)}) imports {target} (layer {layer_of(target)})"
              for module, targets in import_graph().items() for target in sorted(targets)
              if layer_of(target) > layer_of(module)]
    assert not upward, "upward imports:\n" + "\n".join(upward)


def test_leaf_modules_import_nothing_from_the_package():
    leaves = [(module, sorted(targets)) for module, targets in import_graph().items()
              if layer_of(module) == 0 and targets]
    assert not leaves, f"leaf modules must stay standalone (they ship as remote code or load first): {leaves}"


def test_no_import_cycle():
    cycles = find_cycles(import_graph())
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_the_checks_catch_an_upward_import_and_a_cycle():
    graph = {"hf_fiqa.io": {"hf_fiqa.faces.types"}, "hf_fiqa.faces.types": {"hf_fiqa.io"}}
    assert find_cycles(graph) == [["hf_fiqa.faces.types", "hf_fiqa.io"]]
    assert layer_of("hf_fiqa.faces.types") > layer_of("hf_fiqa.io")
    assert find_cycles({"hf_fiqa.io": set(), "hf_fiqa.faces.types": {"hf_fiqa.io"}}) == []


def test_importing_any_package_registers_nothing():
    """Registration is hf_fiqa.register(), never a side effect: import every sub-package, then check that
    transformers' Auto classes and pipeline registry still do not know hf-fiqa."""
    packages = sorted(module_name(p) for p in SRC.joinpath("hf_fiqa").rglob("__init__.py"))
    code = (
        "import importlib, sys\n"
        f"for name in {packages!r}: importlib.import_module(name)\n"
        "from transformers import CONFIG_MAPPING\n"
        "from transformers.pipelines import PIPELINE_REGISTRY\n"
        "known = [t for t in ('maniqa', 'musiq', 'iresnet', 'dlib_resnet', 'mobilefacenet', 'face_mesh')\n"
        "         if t in CONFIG_MAPPING]\n"
        "assert not known, known\n"
        "assert 'face-image-quality' not in PIPELINE_REGISTRY.get_supported_tasks()\n"
        "import hf_fiqa\n"
        "hf_fiqa.register(); hf_fiqa.register()\n"
        "assert all(t in CONFIG_MAPPING\n"
        "           for t in ('maniqa', 'musiq', 'iresnet', 'dlib_resnet', 'mobilefacenet', 'face_mesh'))\n"
        "assert 'face-image-quality' in PIPELINE_REGISTRY.get_supported_tasks()\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-3000:]


@pytest.mark.parametrize("banned", ["sys.modules[", "meta_path"])
def test_no_import_machinery_tricks(banned):
    users = [str(p.relative_to(SRC)) for p in SRC.joinpath("hf_fiqa").rglob("*.py")
             if banned in p.read_text(encoding="utf-8")]
    assert not users, f"{banned!r} used in {users}"
