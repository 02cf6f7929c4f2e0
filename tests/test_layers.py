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

#: Lowest first. A module belongs to the layer of the longest prefix that names it.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    (
        "foundation",
        (
            "backdoors",  # the package root only re-exports
            "backdoors.errors",
            "backdoors.contract",
            "backdoors.registry",
            "backdoors.validation",
            "backdoors.metrics",
            "backdoors.progress",
        ),
    ),
    (
        "hazmat",
        (
            "backdoors.hazmat",
            "backdoors.crypto",
            "backdoors.carriers",
            "backdoors.sampling",
            "backdoors.onnx_crypto",
        ),
    ),
    (
        "artifacts",
        (
            "backdoors.transaction",
            "backdoors.provenance",
            "backdoors.io",
            "backdoors.records",
            "backdoors.report",
        ),
    ),
    ("models", ("backdoors.data", "backdoors.torch_models", "backdoors.adapters")),
    (
        "constructions",
        (
            "backdoors.signature",
            "backdoors.signature_models",
            "backdoors.signature_keys",
            "backdoors.signature_onnx",
            "backdoors.onnx_backdoor",
            "backdoors.onnx_models",
            "backdoors.rff",
            "backdoors.relu",
            "backdoors.badnets",
            "backdoors.nets",
            "backdoors.defenses",
            "backdoors.rff_tasks",
            "backdoors.conditional",
        ),
    ),
    (
        "contracts",  # what the evaluation engine is written against
        ("backdoors.detectors", "backdoors.attacks"),
    ),
    (
        "evaluation",
        (
            "backdoors.population",
            "backdoors.model_cache",
            "backdoors.scoring",
            "backdoors.detection_table",
            "backdoors.pair_scoring",
            "backdoors.parallel_speed",
            "backdoors.audit",
            "backdoors.foreign_models",
        ),
    ),
    (
        "recipes",  # concrete detectors, attack recipes, attacks on constructions
        (
            "backdoors.detectors.",
            "backdoors.attacks.",
            "backdoors.forgery",
            "backdoors.toy_attack",
            "backdoors.lattice_cost",
        ),
    ),
    ("experiments", ("backdoors.experiments", "backdoors.onnx_backdoor.experiment")),
    ("demos", ("backdoors.demos",)),
    ("cli", ("backdoors.cli",)),
]


def layer_of(module: str) -> int:
    """Index of the layer whose longest prefix names ``module`` (a prefix ending in ``.``
    matches submodules only; otherwise the module itself and its submodules)."""
    best, best_len = None, -1
    for i, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            hit = (
                module.startswith(p)
                if p.endswith(".")
                else (module == p or (module.startswith(p + ".") and p != "backdoors"))
            )
            if hit and len(p) > best_len:
                best, best_len = i, len(p)
    if best is None:
        raise AssertionError(f"{module} is in no layer: add it to LAYERS and the docs")
    return best


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
