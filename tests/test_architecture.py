"""The floors of the house: imports only run downward, and no modules import each other in a cycle.

Floors (see ARCHITECTURE.md): 0 the ground (``ppgen`` core: errors, seed, data, the model protocol,
likelihoods, layers, flows, estimators, the graphical-model layer, metrics), 1 ``ppgen.models``,
2 ``ppgen.inference``, 3 ``ppgen.app``. ``ppgen/__init__.py`` is the facade above them all (its public
names are imported lazily), with ``ppgen/__main__.py``. Every import statement counts, also those inside
functions.
"""

import ast
from pathlib import Path

import networkx as nx
import pytest

ROOT = Path(__file__).parent.parent
PACKAGE_DIRS = {
    "ppgen": ROOT / "ppgen",
    "ppgen.models": ROOT / "models",
    "ppgen.inference": ROOT / "inference",
}
FLOORS = {"ppgen.models": 1, "ppgen.inference": 2, "ppgen.app": 3}


def module_files() -> dict[str, Path]:
    r"""{dotted module name: file} for every module of the package, with the setuptools mapping."""
    out = {}
    for package, folder in PACKAGE_DIRS.items():
        for path in folder.rglob("*.py"):
            parts = path.relative_to(folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join((package, *parts))] = path
    return out


def floor(module: str) -> int:
    if module in ("ppgen", "ppgen.__main__"):
        return 4  # the facade and `python -m ppgen`
    for prefix, level in FLOORS.items():
        if module == prefix or module.startswith(prefix + "."):
            return level
    return 0


def imported_modules(path: Path, known: set[str]) -> set[str]:
    r"""The package modules that ``path`` imports anywhere in its body (resolved to known modules)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{a.name}" for a in node.names] + [node.module]
        else:
            continue
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name.startswith("ppgen"):
                out.add(name)
    return out


def import_graph() -> nx.DiGraph:
    files = module_files()
    graph = nx.DiGraph()
    for module, path in files.items():
        graph.add_node(module)
        for target in imported_modules(path, set(files)):
            if target != module and not module.startswith(target + "."):  # a package's own __init__
                graph.add_edge(module, target)
    return graph


def test_the_floors_are_found():
    modules = set(module_files())
    assert {"ppgen.base", "ppgen.models.vae", "ppgen.inference.trainer", "ppgen.app.cli"} <= modules
    assert {floor(m) for m in modules} == {0, 1, 2, 3, 4}


def test_no_import_climbs_a_floor():
    climbing = [
        f"{a} (floor {floor(a)}) imports {b} (floor {floor(b)})"
        for a, b in import_graph().edges
        if floor(b) > floor(a)
    ]
    assert not climbing, "\n".join(climbing)


def test_no_import_cycles_between_modules():
    cycles = [c for c in nx.simple_cycles(import_graph()) if len(c) > 1]
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles[:10])


@pytest.mark.parametrize("module", ["ppgen.data", "ppgen.base", "ppgen.graph"])
def test_ground_floor_imports_nothing_above_it(module):
    import subprocess
    import sys

    code = (
        f"import sys, {module}; "
        "floors = ('ppgen.models', 'ppgen.inference', 'ppgen.app'); "
        "print(sorted(m for m in sys.modules if m.startswith(floors)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "[]"
