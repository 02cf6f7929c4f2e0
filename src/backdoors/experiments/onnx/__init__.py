"""Experiment ``onnx``: the signature backdoor inside one standard ONNX file.

The implementation lives in :mod:`backdoors.experiments.onnx.experiment`; this module only
registers it, so that listing experiments works without the optional ``onnx`` packages.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from backdoors.experiments import EXPERIMENTS


@EXPERIMENTS.register("onnx")
def run(quick: bool = False, seed: int = 0, out_dir: Path | None = None) -> dict[str, Any]:
    from backdoors.signature.onnx import require_onnx

    require_onnx()
    from backdoors.experiments.onnx.experiment import run as run_onnx

    return run_onnx(quick, seed, out_dir)
