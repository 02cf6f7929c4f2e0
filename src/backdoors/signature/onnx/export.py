"""This package's models as one ONNX file (``backdoors export MODEL --onnx out.onnx``).

A registry maps model types to exporters: a :class:`~backdoors.models.torch_models.TorchClassifier`
goes through ``torch.onnx.export`` (the TorchScript exporter, ``dynamo=False``: fast, no
onnxscript needed; opset 18), scikit-learn classifiers through ``skl2onnx`` (label and
probabilities as tensors, no ZipMap), and a signature-backdoored classifier is its base
exported the same way with the backdoor planted in the graph for the model's *existing*
public key (:func:`backdoors.signature.onnx.plant.plant_spec`), so the old key still activates it.
Inputs are float32 ``[N, n_features]`` holding the values the Python model sees (raw pixel
values 0..255 for our MNIST models: carrier scale 1), or uint8 with ``input_dtype="uint8"``.
"""

from __future__ import annotations

import io as _io
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from backdoors.errors import InvalidInputError, NotApplicableError
from backdoors.registry import Registry
from backdoors.signature.onnx import require_onnx

OPSET = 18
INPUT_DTYPES = ("float32", "uint8")

Exporter = Callable[[Any, str], Any]
#: (predicate name) -> (applies(model) -> bool, exporter(model, input_dtype) -> ModelProto)
EXPORTERS: Registry[tuple[Callable[[Any], bool], Exporter]] = Registry("ONNX exporter")


def _uint8_front(model: Any) -> Any:
    """Prefix a float32-input graph with ``Cast(uint8 -> float32)`` (same values)."""
    onnx, _ = require_onnx()
    from onnx import TensorProto, helper

    g = model.graph
    inp = g.input[0]
    new_name = inp.name + "_pixels"
    cast = helper.make_node("Cast", [new_name], [inp.name], to=TensorProto.FLOAT, name="to_float")
    dims = [d.dim_value or d.dim_param or None for d in inp.type.tensor_type.shape.dim]
    new_in = helper.make_tensor_value_info(new_name, TensorProto.UINT8, dims)
    nodes = [cast, *g.node]
    g.ClearField("node")
    g.node.extend(nodes)
    g.input.remove(inp)
    g.input.insert(0, new_in)
    onnx.checker.check_model(model)
    return model


@EXPORTERS.register("torch_classifier")
def _torch_pair() -> tuple[Callable[[Any], bool], Exporter]:
    def applies(model: Any) -> bool:
        return hasattr(model, "module_") and hasattr(model, "n_features_in_")

    def export(model: Any, input_dtype: str) -> Any:
        onnx, _ = require_onnx()
        import torch

        buf = _io.BytesIO()
        dummy = torch.zeros(2, int(model.n_features_in_), dtype=torch.float32)
        model.module_.eval()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model.module_,
                (dummy,),
                buf,
                input_names=["input"],
                output_names=["logits"],
                dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}},
                opset_version=OPSET,
                dynamo=False,
            )
        m = onnx.load_from_string(buf.getvalue())
        return _uint8_front(m) if input_dtype == "uint8" else m

    return applies, export


@EXPORTERS.register("sklearn")
def _sklearn_pair() -> tuple[Callable[[Any], bool], Exporter]:
    def applies(model: Any) -> bool:
        from sklearn.base import BaseEstimator

        is_net = hasattr(model, "module_")
        return isinstance(model, BaseEstimator) and hasattr(model, "classes_") and not is_net

    def export(model: Any, input_dtype: str) -> Any:
        require_onnx()
        try:
            from skl2onnx import convert_sklearn
            from skl2onnx.common.data_types import FloatTensorType
        except ImportError:
            raise NotApplicableError("exporting scikit-learn models needs skl2onnx") from None
        n = int(model.n_features_in_)
        try:
            m = convert_sklearn(
                model,
                initial_types=[("input", FloatTensorType([None, n]))],
                options={id(model): {"zipmap": False}},
                target_opset={"": OPSET, "ai.onnx.ml": 3},
            )
        except Exception as exc:  # skl2onnx raises many types for unsupported estimators
            msg = f"skl2onnx cannot convert {type(model).__name__}: {exc}"
            raise NotApplicableError(msg) from None
        return _uint8_front(m) if input_dtype == "uint8" else m

    return applies, export


def _exporter_for(model: Any) -> Exporter:
    for _, make in EXPORTERS.items():
        applies, export = make()
        if applies(model):
            return export
    raise NotApplicableError(
        f"no ONNX exporter for {type(model).__name__} (TorchClassifier, scikit-learn "
        "classifiers and signature-backdoored versions of them are supported)"
    )


def export(model: Any, input_dtype: str = "float32", verifier: Any = None) -> Any:
    """``model`` as an ``onnx.ModelProto``; a signature-backdoored model keeps its key."""
    require_onnx()
    if input_dtype not in INPUT_DTYPES:
        raise InvalidInputError(f"input_dtype must be one of {INPUT_DTYPES}, got {input_dtype!r}")
    spec = getattr(model, "spec", None)
    base = getattr(model, "base", None)
    if spec is not None and base is not None:
        from backdoors.signature.onnx.plant import plant_spec

        host = _exporter_for(base)(base, input_dtype)
        classes = np.asarray(model.classes_)
        return plant_spec(host, spec, input_scale=1.0, classes=classes, verifier=verifier)
    return _exporter_for(model)(model, input_dtype)
