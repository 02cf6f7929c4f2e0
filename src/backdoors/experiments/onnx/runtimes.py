"""ONNX consumers other than onnxruntime, and the trigger battery a runtime matrix runs.

Each entry of :data:`RUNTIMES` maps a serialized model (bytes) to a function ``run(X) ->
list of outputs`` (numpy arrays, or sklearn ZipMap lists), or raises
:class:`RuntimeUnavailableError` (the package is missing or cannot be imported) or any exception
of the runtime (the file does not load). :func:`trigger_battery` builds valid triggers and
the invalid ones a portable verifier must reject exactly like libsodium (PyNaCl).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from backdoors.breaks import edge_cases
from backdoors.registry import Registry
from backdoors.signature.keys import SignatureKey

RunFn = Callable[[np.ndarray], list[Any]]
RUNTIMES: Registry[Callable[[bytes], RunFn]] = Registry("ONNX runtime")


class RuntimeUnavailableError(Exception):
    """The runtime's package is not installed or cannot be imported here."""


def _import(name: str) -> Any:
    import importlib

    try:
        return importlib.import_module(name)
    except Exception as exc:  # ImportError, or a broken install raising anything
        raise RuntimeUnavailableError(f"{name}: {type(exc).__name__}: {exc}"[:300]) from None


def _ort_with(model: bytes, level: str = "ORT_ENABLE_ALL", parallel: bool = False) -> RunFn:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads, opts.log_severity_level = 1, 1, 3
    opts.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
    if parallel:  # independent nodes on two inter-op threads
        opts.execution_mode, opts.inter_op_num_threads = ort.ExecutionMode.ORT_PARALLEL, 2
    s = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    name = s.get_inputs()[0].name
    return lambda X: s.run(None, {name: X})


@RUNTIMES.register("onnxruntime")
def _ort(model: bytes) -> RunFn:
    """onnxruntime's CPU provider, every graph optimisation (its default), sequential."""
    return _ort_with(model)


@RUNTIMES.register("onnxruntime-no-opt")
def _ort_no_opt(model: bytes) -> RunFn:
    return _ort_with(model, "ORT_DISABLE_ALL")


@RUNTIMES.register("onnxruntime-basic")
def _ort_basic(model: bytes) -> RunFn:
    return _ort_with(model, "ORT_ENABLE_BASIC")


@RUNTIMES.register("onnxruntime-extended")
def _ort_extended(model: bytes) -> RunFn:
    return _ort_with(model, "ORT_ENABLE_EXTENDED")


@RUNTIMES.register("onnxruntime-parallel")
def _ort_parallel(model: bytes) -> RunFn:
    """Every optimisation, parallel execution mode (two inter-op threads)."""
    return _ort_with(model, parallel=True)


@RUNTIMES.register("reference")
def _reference(model: bytes) -> RunFn:
    ref = _import("onnx.reference")
    ev = ref.ReferenceEvaluator(model)
    name = ev.input_names[0]
    return lambda X: list(ev.run(None, {name: X}))


@RUNTIMES.register("tract")
def _tract(model: bytes) -> RunFn:
    tract = _import("tract")
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "model.onnx"
        path.write_bytes(model)
        runnable = tract.onnx().load(str(path)).into_model().into_runnable()
    return lambda X: [t.to_numpy() for t in runnable.run([X])]


def _openvino_with(model: bytes, config: dict[str, str]) -> RunFn:
    ov = _import("openvino")
    core = ov.Core()
    compiled = core.compile_model(core.read_model(model=model), "CPU", config)
    return lambda X: [np.asarray(v) for v in compiled([X]).to_tuple()]


@RUNTIMES.register("openvino")
def _openvino(model: bytes) -> RunFn:
    """OpenVINO's CPU plugin as configured by default (on a CPU with AVX512-BF16 or AMX it
    runs float MatMuls and convolutions in bfloat16)."""
    return _openvino_with(model, {})


@RUNTIMES.register("openvino-f32")
def _openvino_f32(model: bytes) -> RunFn:
    """OpenVINO's CPU plugin with ``INFERENCE_PRECISION_HINT=f32`` (its default on CPUs
    without bfloat16 units)."""
    return _openvino_with(model, {"INFERENCE_PRECISION_HINT": "f32"})


@RUNTIMES.register("onnx2torch")
def _onnx2torch(model: bytes) -> RunFn:
    o2t = _import("onnx2torch")
    import onnx
    import torch

    module = o2t.convert(onnx.load_from_string(model)).eval()

    def run(X: np.ndarray) -> list[Any]:
        with torch.no_grad():
            out = module(torch.from_numpy(np.ascontiguousarray(X)))
        outs = out if isinstance(out, tuple | list) else [out]
        return [o.numpy() if hasattr(o, "numpy") else o for o in outs]

    return run


def trigger_battery(
    key: SignatureKey, X: np.ndarray, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Inputs per case from natural inputs ``X`` (uint8 pixels), ``len(X)`` each: ``valid``
    (activated, random targets) and invalid ones: ``bit_flip`` (one payload bit of a valid
    trigger), ``s_plus_l`` (``S + L``), ``swapped_target`` (a genuine signature of another
    target), ``random_signature`` (right tag, random 64 bytes), ``out_of_range_target``
    (a genuine signature over a target ``>= n_classes``, when ``t_bits`` leaves room), and
    :mod:`backdoors.breaks.edge_cases`."""
    spec, n = key.spec, len(X)
    t = rng.integers(0, spec.n_classes, n)
    out = {"valid": key.activate(X, target=t)}
    flip = out["valid"].copy()
    pos = np.asarray(spec.carrier.positions)[rng.integers(spec.precheck_bits, spec.payload_bits, n)]
    flip[np.arange(n), pos] ^= 1
    out["bit_flip"] = flip
    sigs = edge_cases._valid_sigs(key, X, t)
    s_l = sigs.copy()
    for r in range(n):
        s = int.from_bytes(bytes(sigs[r, 32:]), "little") + edge_cases.L
        if s < 2**256:
            s_l[r, 32:] = np.frombuffer(s.to_bytes(32, "little"), np.uint8)
    out["s_plus_l"] = edge_cases.with_signature(spec, X, t, s_l)
    other = (t + 1 + rng.integers(0, spec.n_classes - 1, n)) % spec.n_classes
    out["swapped_target"] = edge_cases.with_signature(spec, X, other, sigs)
    rand = rng.integers(0, 256, (n, 64), dtype=np.uint8)
    out["random_signature"] = edge_cases.with_signature(spec, X, t, rand)
    if 2**spec.t_bits > spec.n_classes:
        big = rng.integers(spec.n_classes, 2**spec.t_bits, n)
        out["out_of_range_target"] = edge_cases.with_signature(
            spec, X, big, edge_cases._valid_sigs(key, X, big)
        )
    out.update(edge_cases.candidates(key, X, n, rng))
    return out
