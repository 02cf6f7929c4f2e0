"""Benchmark: what an honest float host sees of its input under OpenVINO's bfloat16 default.

Moves pixels of MNIST test rows (pixels / 255, float32) by up to ``--ulps`` units in the last
place, keeping only moves that leave the value's bfloat16 rounding unchanged, and prints
whether the honest host's outputs are bit-identical on the moved and unmoved rows in OpenVINO
at its default precision and at f32 precision. Identical at the default means that runtime
sees the inputs only through their bfloat16 rounding: the precision probe's bfloat16 grid
check (``backdoors.signature.onnx.trigger.pixels``) accepts no input that runtime tells apart
from a trigger.

Run: PYTHONPATH=src .venv/bin/python benchmarks/openvino_bf16_inputs.py [--rows 2000] [--ulps 3]
"""

from __future__ import annotations

import argparse

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=2000)
    ap.add_argument("--ulps", type=int, default=3)
    ap.add_argument("--hosts", nargs="*", default=["torch_mlp", "torch_cnn"])
    a = ap.parse_args()

    import openvino as ov

    from backdoors.experiments.onnx import hosts
    from backdoors.models import data
    from backdoors.signature.onnx.trigger import bfloat16

    mn = data.mnist(n_train=3000, n_test=a.rows)
    x = mn.X_test.astype(np.float32) / np.float32(255)
    steps = np.random.default_rng(0).integers(-a.ulps, a.ulps + 1, x.shape).astype(np.int32)
    moved = (x.view(np.int32) + np.where(x > 0, steps, 0)).view(np.float32)
    moved = np.where(bfloat16(moved) == bfloat16(x), moved, x)
    print(f"{a.rows} rows, {100 * (moved != x).mean():.1f}% of pixels moved (same bfloat16)")
    core = ov.Core()
    for kind in a.hosts:
        model = hosts.make(kind, mn.X_train, mn.y_train).SerializeToString()
        for name, cfg in (("default", {}), ("f32", {"INFERENCE_PRECISION_HINT": "f32"})):
            c = core.compile_model(core.read_model(model=model), "CPU", cfg)
            y0, y1 = (np.asarray(c([v]).to_tuple()[0]) for v in (x, moved))
            same = y0.tobytes() == y1.tobytes()
            print(f"  {kind:10s} OpenVINO {name:8s} outputs identical: {same}"
                  f" (max difference {np.abs(y0 - y1).max():.2g})")  # fmt: skip


if __name__ == "__main__":
    main()
