"""ONNX files as classifiers: one onnxruntime session behind ``predict`` / ``predict_proba``.

:class:`OnnxClassifier` is how the black-box detectors and ``backdoors audit`` query an ONNX
model: inputs are converted to the graph's input dtype and reshaped to its input shape (a
uint8 image batch ``[N, 784]`` feeds a ``[N, 1, 28, 28]`` float graph unchanged in value).
Outputs are read by kind (:func:`backdoors.signature.onnx.outputs.mux_points`): labels,
probabilities (also from sklearn's ZipMap), logits (``decision_function``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from backdoors.errors import CorruptArtifactError, InvalidInputError, NotApplicableError
from backdoors.signature.onnx import require_onnx
from backdoors.validation import check_features


def session(model: Any, threads: int = 1) -> Any:
    """An onnxruntime CPU session for a ModelProto or a path (``threads`` intra-op threads)."""
    _, ort = require_onnx()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    src = model if isinstance(model, str | os.PathLike) else model.SerializeToString()
    try:
        return ort.InferenceSession(
            str(src) if isinstance(src, os.PathLike) else src,
            opts,
            providers=["CPUExecutionProvider"],
        )
    except Exception as exc:
        raise CorruptArtifactError(f"onnxruntime cannot load the model: {exc}") from None


_NP = {
    "tensor(uint8)": np.uint8,
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(float16)": np.float16,
}


class OnnxClassifier:
    """A classifier backed by an ONNX graph (``onnx_model`` holds the graph for white-box
    inspection). ``n_classes`` and ``classes`` are read from the graph where it shows them."""

    def __init__(self, model: Any, threads: int = 1) -> None:
        onnx, _ = require_onnx()
        from backdoors.signature.onnx.outputs import (
            class_labels,
            graph_input,
            input_features,
            mux_points,
            n_classes_of,
        )

        self.onnx_model = model if isinstance(model, onnx.ModelProto) else load_onnx(model)
        self.session_ = session(self.onnx_model, threads)
        vi = graph_input(self.onnx_model)
        self.input_name = vi.name
        inp = self.session_.get_inputs()[0]
        self.input_dtype = np.dtype(_NP.get(inp.type, np.float32))
        self.input_shape = [d.dim_value for d in vi.type.tensor_type.shape.dim[1:]]
        self.n_features_in_ = input_features(vi)
        self._points = mux_points(self.onnx_model)
        self._outputs = [o.name for o in self.onnx_model.graph.output]
        self._kind = {}
        for o in self.onnx_model.graph.output:
            prod = [n for n in self.onnx_model.graph.node if o.name in n.output]
            name = prod[0].input[0] if prod and prod[0].op_type == "ZipMap" else o.name
            kind = next((p.kind for p in self._points if p.name == name), None)
            self._kind.setdefault(kind, o.name)
        labels = class_labels(self.onnx_model)
        n = n_classes_of(self.onnx_model, self._points)
        if labels is None and n is not None:
            labels = np.arange(n)
        self.classes_ = labels

    def _run(self, X: Any) -> dict[str, Any]:
        X = check_features(X, n_features=self.n_features_in_)
        Xr = np.ascontiguousarray(X, dtype=self.input_dtype).reshape(len(X), *self.input_shape)
        return dict(zip(self._outputs, self.session_.run(None, {self.input_name: Xr}), strict=True))

    def holds_constant(self, data: bytes) -> bool:
        """Whether a uint8 constant of the graph (subgraphs included) is exactly ``data``."""
        from backdoors.signature.onnx.graph import holds_bytes

        return holds_bytes(self.onnx_model.graph, data)

    def raw(self, X: Any) -> list[Any]:
        """Every output of the graph, in order."""
        return list(self._run(X).values())

    def decision_function(self, X: Any) -> np.ndarray:
        if "logits" not in self._kind:
            raise NotApplicableError("this ONNX model has no logits output")
        return np.asarray(self._run(X)[self._kind["logits"]], dtype=np.float64)

    def predict_proba(self, X: Any) -> np.ndarray:
        out = self._run(X)
        if "probabilities" in self._kind:
            p = out[self._kind["probabilities"]]
            if isinstance(p, list):  # ZipMap: a list of {label: probability}
                keys = list(self.classes_)
                p = np.array([[d[k] for k in keys] for d in p], dtype=np.float64)
            return np.asarray(p, dtype=np.float64).reshape(len(p), -1)
        if "logits" in self._kind:
            z = np.asarray(out[self._kind["logits"]], dtype=np.float64)
            z = z - z.max(axis=1, keepdims=True)
            e = np.exp(z)
            return e / e.sum(axis=1, keepdims=True)
        raise NotApplicableError("this ONNX model gives no class probabilities")

    def predict(self, X: Any) -> np.ndarray:
        out = self._run(X)
        if "labels" in self._kind:
            return np.asarray(out[self._kind["labels"]]).ravel()
        scores = self.predict_proba(X) if "probabilities" in self._kind else None
        if scores is None:
            scores = np.asarray(out[self._kind.get("logits", self._outputs[0])])
        if self.classes_ is None:
            raise InvalidInputError("cannot tell this ONNX model's classes")
        return np.asarray(self.classes_)[np.argmax(scores, axis=1)]


def load_onnx(path: str | os.PathLike) -> Any:
    """Read an ONNX file (a single file; external data is refused) and check it."""
    onnx, _ = require_onnx()
    path = Path(path)
    if not path.is_file():
        raise InvalidInputError(f"no such model file: {path}")
    try:
        model = onnx.load(str(path), load_external_data=False)
        onnx.checker.check_model(model)
    except Exception as exc:
        raise CorruptArtifactError(f"{path} is not a valid ONNX model ({exc})") from None
    return model


def onnx_from_bytes(data: bytes, where: str | os.PathLike = "model") -> Any:
    """Parse and check the bytes of an ONNX file (single file; no external data)."""
    onnx, _ = require_onnx()
    try:
        model = onnx.load_from_string(data)
        onnx.checker.check_model(model)
    except Exception as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CorruptArtifactError(f"{where} is not a valid ONNX model ({msg})") from None
    if any(
        t.data_location == onnx.TensorProto.EXTERNAL
        for g in _graphs(model.graph)
        for t in g.initializer
    ):
        raise CorruptArtifactError(f"{where}: ONNX files with external data are not supported")
    return model


def _graphs(g: Any) -> Any:
    from backdoors.signature.onnx.graph import subgraphs

    yield g
    for n in g.node:
        for sg in subgraphs(n):
            yield from _graphs(sg)


def load_classifier(path: str | os.PathLike, publisher: Any = None) -> OnnxClassifier:
    """An ONNX file as an :class:`OnnxClassifier`; with ``publisher`` (a
    :class:`~backdoors.artifacts.provenance.PublisherKey`) only if ``<path>.sig`` is that
    publisher's
    signature on exactly the bytes loaded."""
    path = Path(path)
    if not path.is_file():
        raise InvalidInputError(f"no such model file: {path}")
    if publisher is not None:
        from backdoors.artifacts.provenance import verify_file

        data = verify_file(path, publisher)
    else:
        data = path.read_bytes()
    return OnnxClassifier(onnx_from_bytes(data, path))


def save_onnx(model: Any, path: str | os.PathLike) -> Path:
    """Write a ModelProto as one file, atomically."""
    from backdoors.artifacts.files import atomic_write

    return atomic_write(path, model.SerializeToString())
