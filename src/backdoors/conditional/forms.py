"""Deployment forms of a classifier: what a user runs after inspecting the float model.

A *form* is a classifier with ``predict`` / ``decision_function`` built from the model by a
standard tool, never by the model's author:

* ``ort:<level>``: the model's ONNX export run by onnxruntime at graph optimisation level
  ``disable``, ``basic``, ``extended`` or ``all`` (``all`` is onnxruntime's default);
* ``int8:dynamic``: :func:`onnxruntime.quantization.quantize_dynamic` with int8 weights
  (per-tensor, symmetric: ``s = max|w| / 127``, ``q = round(w / s)``) and uint8 activations
  quantized per batch at run time. It needs no calibration data, so it is the one-call path
  of the onnxruntime documentation and the one whose integer weights an author can predict
  exactly: the threat model of :mod:`backdoors.conditional.quantized`;
* ``int8:static``: :func:`onnxruntime.quantization.quantize_static` in QDQ format, calibrated
  (MinMax) on inputs the auditor holds.

Torch models (:class:`~backdoors.models.torch_models.TorchClassifier`) are exported with
:func:`backdoors.signature.onnx.export.export`; ONNX models (:class:`OnnxClassifier`) are used
as they are.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable
from typing import Any

import numpy as np

from backdoors.errors import NotApplicableError
from backdoors.registry import Registry
from backdoors.signature.onnx import require_onnx

LEVELS = ("disable", "basic", "extended", "all")
_ORT_LEVEL = {
    "disable": "ORT_DISABLE_ALL",
    "basic": "ORT_ENABLE_BASIC",
    "extended": "ORT_ENABLE_EXTENDED",
    "all": "ORT_ENABLE_ALL",
}


def onnx_of(model: Any) -> Any:
    """The ONNX graph of ``model``: its own graph for an ONNX classifier, else the export
    (float32 input ``[N, n_features]``, logits output)."""
    onnx, _ = require_onnx()
    proto = getattr(model, "onnx_model", None)
    if isinstance(proto, onnx.ModelProto):
        return proto
    from backdoors.signature.onnx.export import export

    return export(model)


def session(proto: Any, level: str = "all", threads: int = 1) -> Any:
    """An onnxruntime CPU session of ``proto`` at optimisation ``level`` (one of LEVELS)."""
    _, ort = require_onnx()
    opts = ort.SessionOptions()
    opts.graph_optimization_level = getattr(ort.GraphOptimizationLevel, _ORT_LEVEL[level])
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(proto.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def classifier(proto: Any, level: str = "all") -> Any:
    """``proto`` as an :class:`OnnxClassifier` whose session runs at ``level``."""
    from backdoors.signature.onnx.runtime import OnnxClassifier

    clf = OnnxClassifier(proto)
    clf.session_ = session(proto, level)
    return clf


def _quantize(fn: Callable[[str, str], None], proto: Any) -> Any:
    onnx, _ = require_onnx()
    root = logging.getLogger()
    level = root.level
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = os.path.join(tmp, "float.onnx"), os.path.join(tmp, "int8.onnx")
        onnx.save(proto, src)
        root.setLevel(logging.ERROR)  # the quantizer's advice to pre-process, on every call
        try:
            fn(src, dst)
        except Exception as exc:  # the quantizer raises many types for graphs it cannot do
            raise NotApplicableError(f"onnxruntime cannot quantize this model: {exc}") from None
        finally:
            root.setLevel(level)
        return onnx.load(dst)


def quantize_dynamic(proto: Any) -> Any:
    """onnxruntime's dynamic int8 quantization of ``proto`` (weights QInt8, per tensor)."""
    from onnxruntime.quantization import QuantType
    from onnxruntime.quantization import quantize_dynamic as qd

    return _quantize(lambda s, d: qd(s, d, weight_type=QuantType.QInt8), proto)


def quantize_static(proto: Any, X_calib: np.ndarray) -> Any:
    """onnxruntime's static QDQ int8 quantization of ``proto`` calibrated on ``X_calib``."""
    from onnx.helper import tensor_dtype_to_np_dtype
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
    )
    from onnxruntime.quantization import quantize_static as qs

    vi = proto.graph.input[0]
    dims = [d.dim_value for d in vi.type.tensor_type.shape.dim[1:]]
    dtype = tensor_dtype_to_np_dtype(vi.type.tensor_type.elem_type)
    name = vi.name
    X = np.asarray(X_calib).astype(dtype).reshape(len(X_calib), *dims)

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter([{name: X}])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._it, None)

    def run(src: str, dst: str) -> None:
        qs(
            src,
            dst,
            _Reader(),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
        )

    return _quantize(run, proto)


#: form name -> builder(float ONNX graph, calibration inputs) -> classifier
FORMS: Registry[Callable[[Any, np.ndarray], Any]] = Registry("deployment form")
for _lvl in LEVELS:
    FORMS.register(f"ort:{_lvl}")(lambda p, X, _lvl=_lvl: classifier(p, _lvl))
FORMS.register("int8:dynamic")(lambda p, X: classifier(quantize_dynamic(p), "all"))
FORMS.register("int8:static")(lambda p, X: classifier(quantize_static(p, X), "all"))


def int8_grid(w: np.ndarray) -> tuple[np.ndarray, float]:
    """onnxruntime's symmetric per-tensor int8 weight grid: ``s = max|w| / 127`` and
    ``q = round_half_even(w / s)`` in float32 (``quant_utils.quantize_data``)."""
    w = np.asarray(w, dtype=np.float32)
    absmax = float(np.abs(w).max())
    s = np.float32(absmax / 127.0) if absmax > 0 else np.float32(1.0)
    q = np.clip(np.rint(w / s), -127, 127).astype(np.int8)
    return q, float(s)
