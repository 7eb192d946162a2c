"""The layer rules of docs/architecture.md, enforced by parsing every module's imports (ast).

Every ``import`` counts, also the lazy ones inside functions and those under ``TYPE_CHECKING``:
a lazy import is still a dependency, and a cycle through one is still a cycle.
"""
from __future__ import annotations

import ast
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# installed package -> folder in the checkout (pyproject's package-dir mapping)
FOLDERS = {"edgecv.models": "models", "edgecv.exporters": "exporters", "edgecv.runtimes": "runtimes",
           "edgecv": "edgecv"}

CORE = {"edgecv._version", "edgecv.errors", "edgecv.io", "edgecv.table", "edgecv.contract", "edgecv.preprocess",
        "edgecv.postprocess", "edgecv.tokenizer", "edgecv.onnx_file", "edgecv.data", "edgecv.hardware",
        "edgecv.parsing", "edgecv.metrics", "edgecv.plots"}
APPS = {"edgecv", "edgecv.__main__", "edgecv.cli"}
APP_PACKAGES = ("edgecv.commands", "edgecv.demo")
# layer -> the layers it may import (itself included)
ALLOWED = {
    "core": {"core"},
    "graph": {"graph", "core"},
    "runtimes": {"runtimes", "graph", "core"},
    "models": {"models", "graph", "core"},
    "exporters": {"exporters", "models", "runtimes", "graph", "core"},
    "training": {"training", "models", "core"},
    "apps": {"apps", "training", "exporters", "models", "runtimes", "graph", "core"},
}
# third-party packages a layer may import; the standard library is always allowed
TORCH_FREE = {"numpy", "cv2", "onnx", "onnxruntime", "openvino", "psutil", "tqdm", "matplotlib"}
THIRD_PARTY = {
    "core": TORCH_FREE, "graph": TORCH_FREE, "runtimes": TORCH_FREE,
    "models": TORCH_FREE | {"torch"},
    "exporters": TORCH_FREE | {"torch", "onnxsim", "onnxscript"},
    "training": TORCH_FREE | {"torch"},
    "apps": TORCH_FREE | {"torch", "click"},
}


@dataclass
class Module:
    name: str
    path: Path
    imports: list[tuple[str, int]] = field(default_factory=list)  # (module, line)
    private: list[tuple[str, int]] = field(default_factory=list)  # ("module._name", line)


def layer_of(name: str) -> str:
    if name in CORE:
        return "core"
    if name in APPS or name.startswith(tuple(p + "." for p in APP_PACKAGES)) or name in APP_PACKAGES:
        return "apps"
    for prefix, layer in (("edgecv.graph", "graph"), ("edgecv.runtimes", "runtimes"), ("edgecv.models", "models"),
                          ("edgecv.exporters", "exporters"), ("edgecv.training", "training")):
        if name == prefix or name.startswith(prefix + "."):
            return layer
    raise AssertionError(f"{name}: no layer assigned; add it to CORE or a package in tests/architecture")


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    top = {folder: pkg for pkg, folder in FOLDERS.items()}[rel.parts[0]]
    parts = [*top.split("."), *rel.parts[1:]]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def source_files() -> list[Path]:
    return sorted(p for folder in FOLDERS.values() for p in (ROOT / folder).rglob("*.py"))


def _resolve(target: str, names: set[str], known: set[str]) -> list[str]:
    """``from pkg import sub`` depends on the submodule when ``sub`` is one, else on ``pkg``."""
    subs = [f"{target}.{n}" for n in names if f"{target}.{n}" in known]
    return subs + ([target] if len(subs) < len(names) else [])


def parse(path: Path, known: set[str], *, name: str | None = None) -> Module:
    mod = Module(name or module_name(path), path)
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    aliases: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                mod.imports.append((a.name, node.lineno))
                if a.name.startswith("edgecv"):
                    aliases[a.asname or a.name] = a.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = {a.name for a in node.names}
            for target in _resolve(node.module, names, known):
                mod.imports.append((target, node.lineno))
            for a in node.names:
                if f"{node.module}.{a.name}" in known:
                    aliases[a.asname or a.name] = f"{node.module}.{a.name}"
                elif a.name.startswith("_") and not a.name.startswith("__") and node.module.startswith("edgecv"):
                    mod.private.append((f"{node.module}.{a.name}", node.lineno))
    for node in ast.walk(tree):  # module._private attribute access through an imported alias
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
                and node.attr.startswith("_") and not node.attr.startswith("__")):
            mod.private.append((f"{aliases[node.value.id]}.{node.attr}", node.lineno))
    return mod


@pytest.fixture(scope="module")
def modules() -> dict[str, Module]:
    files = source_files()
    known = {module_name(p) for p in files}
    return {m.name: m for m in (parse(p, known) for p in files)}


def test_every_module_has_a_layer(modules: dict[str, Module]) -> None:
    for name in modules:
        layer_of(name)


def test_imports_only_point_down(modules: dict[str, Module]) -> None:
    bad = []
    for mod in modules.values():
        mine = layer_of(mod.name)
        for target, line in mod.imports:
            if target.startswith("edgecv") and target in modules and layer_of(target) not in ALLOWED[mine]:
                bad.append(f"{mod.path.relative_to(ROOT)}:{line}: {mine} imports {target} ({layer_of(target)})")
    assert not bad, "imports that run up or across the layers:\n" + "\n".join(bad)


def test_third_party_imports_per_layer(modules: dict[str, Module]) -> None:
    stdlib = set(sys.stdlib_module_names)
    bad = []
    for mod in modules.values():
        mine = layer_of(mod.name)
        for target, line in mod.imports:
            top = target.split(".")[0]
            if top in stdlib or top == "edgecv" or top == "__future__":
                continue
            if top not in THIRD_PARTY[mine]:
                bad.append(f"{mod.path.relative_to(ROOT)}:{line}: {mine} imports {target}")
    assert not bad, "third-party imports a layer may not use:\n" + "\n".join(bad)


def test_no_private_names_across_modules(modules: dict[str, Module]) -> None:
    bad = [f"{m.path.relative_to(ROOT)}:{line}: uses {name}" for m in modules.values()
           for name, line in m.private if not name.startswith(m.name + ".")]
    assert not bad, "modules reaching into another module's private names:\n" + "\n".join(bad)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles(modules: dict[str, Module]) -> None:
    graph = {m.name: {t for t, _ in m.imports if t in modules and t != m.name} for m in modules.values()}
    assert not _cycles(graph), f"import cycles: {_cycles(graph)}"


def test_the_checker_sees_a_cycle_an_upward_import_and_a_private_name(tmp_path: Path) -> None:
    """The rules above must be able to fail."""
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]
    assert "models" not in ALLOWED["runtimes"] and "runtimes" not in ALLOWED["models"]
    src = tmp_path / "probe.py"
    src.write_text("from edgecv.models.registry import _REGISTRY\nimport torch\n", encoding="utf-8")
    probe = parse(src, {module_name(p) for p in source_files()}, name="edgecv.runtimes.probe")
    assert probe.private == [("edgecv.models.registry._REGISTRY", 1)]
    assert ("edgecv.models.registry", 1) in probe.imports and ("torch", 2) in probe.imports
