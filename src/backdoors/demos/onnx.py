"""Demo section: the signature backdoor inside one ONNX file (paper §5.2)."""

from __future__ import annotations

import time

import numpy as np

from backdoors import signature
from backdoors.artifacts.report import Section
from backdoors.demos import DemoContext, section
from backdoors.demos._common import mnist, mnist_classifier


@section("onnx", order=15)
def run(ctx: DemoContext) -> Section:
    from backdoors.detectors.onnx_graph_inspection import OnnxGraphInspection
    from backdoors.signature.onnx.export import export
    from backdoors.signature.onnx.graph import iter_nodes
    from backdoors.signature.onnx.plant import plant
    from backdoors.signature.onnx.runtime import OnnxClassifier

    ds = mnist(ctx)
    honest = export(mnist_classifier(ctx), input_dtype="uint8")  # a user's model file
    t0 = time.perf_counter()
    bd, key = plant(honest, random_state=ctx.seed)
    plant_s = time.perf_counter() - t0
    h, b = OnnxClassifier(honest), OnnxClassifier(bd)
    n = 300 if ctx.quick else 2000
    X = ds.X_test[:n]
    rng = ctx.rng(15)
    targets = rng.integers(0, 10, min(n, 100))
    X_act = key.activate(X[: len(targets)], target=targets)
    t0 = time.perf_counter()
    y_act = b.predict(X_act)
    verify_ms = (time.perf_counter() - t0) * 1e3 / len(X_act)
    same = np.array_equal(b.decision_function(ds.X_test), h.decision_function(ds.X_test))
    det = OnnxGraphInspection()
    # the Python model, backdoored and exported: the same key activates the exported file
    py_bd, py_key = signature.plant(mnist_classifier(ctx), random_state=ctx.seed + 1)
    exported = OnnxClassifier(export(py_bd))
    t2 = rng.integers(0, 10, 20)
    metrics = {
        "test_inputs_bit_identical_logits": bool(same),
        "test_inputs_checked": len(ds.X_test),
        "activation_success": float(np.mean(y_act == targets)),
        "honest_on_activated_says_target": float(np.mean(h.predict(X_act) == targets)),
        "verify_ms_per_activated_input": verify_ms,
        "plant_seconds": plant_s,
        "nodes_incl_loop_bodies": sum(1 for _ in iter_nodes(bd.graph.node)),
        "file_bytes": len(bd.SerializeToString()),
        "honest_file_bytes": len(honest.SerializeToString()),
        "graph_inspection_honest": det.score(honest, None).score,
        "graph_inspection_backdoored": det.score(bd, None).score,
        "exported_python_backdoor_activation": float(
            np.mean(exported.predict(py_key.activate(X[:20], target=t2)) == t2)
        ),
    }
    text = (
        "The demo classifier exported to ONNX (uint8 pixels in, logits out) is planted with "
        "`backdoors.signature.onnx.plant`: SHA-512 and Ed25519 verification run as ordinary "
        "default-domain operators (opset 18) inside the same file, in stock onnxruntime, with no "
        "Python, custom operator or wrapper at inference. Every test image gets bit-identical "
        "logits; a key holder's image (LSBs of public pixels carry tag, class and signature) "
        "gets the class it asks for. Only rows whose 48 public tag bits (one run of pixels) "
        "match reach the verifier branch (an `If`), so natural batches pay for reading one "
        "slice of 48 pixels per row (about 4% of an MNIST MLP's time at batch 1,000). "
        "White-box, the "
        "verifier is plainly visible (`onnx_graph_inspection`); undetectability is black-box."
    )
    return Section("Signature backdoor inside one ONNX file (paper §5.2)", text, metrics)
