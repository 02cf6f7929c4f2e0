"""Experiments: one module per paper claim, each registered under a public name.

An experiment is a function ``run(quick: bool, seed: int, out_dir: Path | None) -> dict``
returning a record made by :func:`backdoors.artifacts.records.make_record`; ``out_dir`` receives PNG
plots (``None``: no plots). ``--quick`` must finish in under 60 s on 2 cores.
``backdoors experiment NAME [--quick] --json PATH`` is the public contract.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from backdoors.registry import Registry

ExperimentFn = Callable[[bool, int, "Path | None"], dict[str, Any]]

EXPERIMENTS: Registry[ExperimentFn] = Registry(
    "experiment",
    modules=(
        "backdoors.experiments.checksum_net",
        "backdoors.experiments.conditional",
        "backdoors.experiments.detectors",
        "backdoors.experiments.immunize",
        "backdoors.experiments.onnx",
        "backdoors.experiments.persistence",
        "backdoors.experiments.relu",
        "backdoors.experiments.relu_map",
        "backdoors.experiments.relu_scale",
        "backdoors.experiments.rff",
        "backdoors.experiments.rff_map",
        "backdoors.experiments.signature",
    ),
)


def run(
    name: str, quick: bool = False, seed: int = 0, out_dir: Path | None = None
) -> dict[str, Any]:
    """Run the experiment ``name`` and return its record."""
    fn = EXPERIMENTS.get(name)
    if out_dir is not None:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
    return fn(quick, seed, out_dir)
