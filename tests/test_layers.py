"""The package's layers (docs/architecture.md): every import points to the same or a lower
layer, modules import no private names of other modules, and there are no import cycles.

Imports inside functions count (grimp reads every import statement), so a lazy import cannot
hide an upward dependency.
"""

from __future__ import annotations

from pathlib import Path

import grimp  # a dev dependency: the layer contract is always checked
import networkx as nx
import pytest

#: The folders of ``src/backdoors`` are the layers, lowest first; a module's layer is the
#: layer of the top-level folder that holds it, and the package's top-level modules
#: (``errors``, ``contract``, ``registry``, ...) are the foundation. Constructions are one
#: folder each, side by side in one layer.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("foundation", ()),
    ("hazmat", ("hazmat",)),
    ("artifacts", ("artifacts",)),
    ("models", ("models",)),
    (
        "constructions",
        ("signature", "rff", "relu", "badnets", "nets", "defenses", "conditional"),
    ),
    ("breaks", ("breaks",)),
    ("detectors", ("detectors",)),
    ("evaluation", ("evaluation",)),
    ("experiments", ("experiments",)),
    ("demos", ("demos",)),
    ("cli", ("cli",)),
]
PACKAGE = Path(__file__).resolve().parents[1] / "src" / "backdoors"


def layer_of(module: str) -> int:
    """Index of the layer of ``module``: its top-level folder's, or the foundation for the
    package root and its top-level modules."""
    parts = module.split(".")
    if parts[0] != "backdoors":
        raise AssertionError(f"{module} is not in the package")
    if len(parts) == 1 or (PACKAGE / f"{parts[1]}.py").is_file():
        return 0
    for i, (_, folders) in enumerate(LAYERS):
        if parts[1] in folders:
            return i
    raise AssertionError(f"{module}: folder {parts[1]!r} is in no layer: add it to LAYERS and docs")


def test_tree_is_the_layers():
    """Every folder of the package is a layer (or a construction), and the foundation holds
    modules only: the tree a newcomer reads is the table above."""
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    named = {f for _, fs in LAYERS for f in fs}
    assert folders <= named, f"folders in no layer: {sorted(folders - named)}"
    top = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__")
    assert len(top) <= 8, f"top-level modules beyond the foundation: {top}"


@pytest.fixture(scope="module")
def graph():
    return grimp.build_graph("backdoors")


def _edges(graph):
    for importer in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            yield importer, imported


def test_every_import_points_down(graph):
    up = []
    for a, b in _edges(graph):
        la, lb = layer_of(a), layer_of(b)
        if lb > la:
            up.append(f"{a} ({LAYERS[la][0]}) imports {b} ({LAYERS[lb][0]})")
    assert not up, "upward imports:\n" + "\n".join(up)


def test_no_import_cycles(graph):
    G = nx.DiGraph(list(_edges(graph)))
    cycles = [sorted(c) for c in nx.strongly_connected_components(G) if len(c) > 1]
    assert not cycles, f"import cycles: {cycles}"


def _package(module: str) -> str:
    """The subpackage a module belongs to (top-level modules are each their own unit)."""
    parent = module.rsplit(".", 1)[0]
    return module if parent == "backdoors" else parent


def test_no_private_names_across_modules(graph):
    """``_name`` is private to its module (or to its subpackage, e.g. detectors._access)."""
    import ast
    import importlib.util

    bad = []
    for a in sorted(graph.modules):
        origin = importlib.util.find_spec(a).origin
        tree = ast.parse(Path(origin).read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not isinstance(node, ast.ImportFrom) or not (node.module or "").startswith(
                "backdoors"
            ):
                continue
            b = node.module
            names = [b.rsplit(".", 1)[-1]] + [f"{b}.{al.name}" for al in node.names]
            for full in names:
                target = full if full.startswith("backdoors") else b
                tail = full.rsplit(".", 1)[-1]
                private = tail.startswith("_") and not tail.startswith("__")
                if private and _package(a) != _package(target if target in graph.modules else b):
                    bad.append(f"{a}:{node.lineno} imports {full}")
    assert not bad, "private names used across modules:\n" + "\n".join(sorted(set(bad)))


def test_layer_table_is_total(graph):
    for m in graph.modules:
        layer_of(m)  # raises for a module in no layer
