"""The deployed form of a model as a scoring target: what a detector sees of a model after
the standard deployment tool has run on it.

:func:`deployed_view` turns a float model (a
:class:`~backdoors.models.torch_models.TorchClassifier`) and a form name of
:data:`backdoors.conditional.forms.FORMS` into a :class:`DeployedForm`:

* queries (``predict``, ``predict_proba``, ``decision_function``) run the form itself in
  onnxruntime: for ``int8:dynamic`` the graph :func:`onnxruntime.quantization.quantize_dynamic`
  writes, int8 weights and uint8 activations quantized per batch at run time, exactly what a
  user deploys. Query-only detectors (STRIP, the disagreement search, MNTD, the differential
  detector) therefore score the deployed model itself;
* weights (``module_``, what :func:`backdoors.detectors._access.torch_module` returns) are a
  copy of the float network whose quantized tensors are replaced by the int8 values the tool
  wrote times their scales, ``W_hat = s * q`` (read from the quantized graph's
  ``<name>_quantized`` / ``<name>_scale`` initializers; Gemm weights transposed back). That
  module computes what the deployed model computes *except* the dynamic quantization of
  activations (uint8, per batch) and the integer accumulation: weight-reading and gradient
  detectors see the deployed weights, with float activations. For an ``ort:<level>`` form
  the weights are the float weights (graph optimisation does not change weight values);
* ``onnx_model`` is the deployed graph (ONNX detectors read it).

The honest and the backdoored member go through the same function, so both are scored the
same way. Forms other than ``int8:dynamic`` and ``ort:<level>`` are refused
(:class:`~backdoors.errors.NotApplicableError`): ``int8:static`` quantizes activations with
calibration data, and its QDQ graph names its tensors otherwise.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from backdoors.conditional import forms
from backdoors.errors import NotApplicableError

#: forms a :class:`DeployedForm` can be built for
SUPPORTED = ("int8:dynamic", *(f"ort:{lvl}" for lvl in forms.LEVELS))


class DeployedForm:
    """A float model as deployed in form ``form`` (see the module docstring). Scikit-learn-like:
    ``classes_``, ``n_features_in_``, ``predict``, ``predict_proba``, ``decision_function``;
    ``module_`` holds the deployed weights, ``onnx_model`` the deployed graph."""

    def __init__(self, model: Any, form: str, X_calib: np.ndarray) -> None:
        if form not in SUPPORTED:
            raise NotApplicableError(
                f"no deployed view of form {form!r} (supported: {', '.join(SUPPORTED)})"
            )
        module = getattr(model, "module_", None)
        if module is None:
            raise NotApplicableError(
                f"a deployed view needs a torch classifier; {type(model).__name__} has no module_"
            )
        self.form = form
        self.classes_ = np.asarray(model.classes_)
        self.n_features_in_ = int(model.n_features_in_)
        runner = forms.FORMS.get(form)(forms.onnx_of(model), np.asarray(X_calib, np.float32))
        self.runner_ = runner
        self.onnx_model = runner.onnx_model
        self.module_ = copy.deepcopy(module).eval()
        self.dequantized_: list[str] = []
        if form.startswith("int8:"):
            self.dequantized_ = load_int8_weights(self.module_, self.onnx_model)

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """The deployed graph's logits (float64), shape ``(n, n_classes)``."""
        Xf = np.asarray(X, dtype=np.float32).reshape(len(X), -1)
        return np.asarray(self.runner_.decision_function(Xf), dtype=np.float64)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Softmax of :meth:`decision_function`."""
        z = self.decision_function(X)
        z = z - z.max(axis=1, keepdims=True)
        p = np.exp(z)
        return p / p.sum(axis=1, keepdims=True)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Class of the largest deployed logit."""
        return self.classes_[np.argmax(self.decision_function(X), axis=1)]


def load_int8_weights(module: Any, proto: Any) -> list[str]:
    """Set every weight of ``module`` that the quantized graph ``proto`` holds as int8 to its
    dequantized value ``s * q`` (in place); returns the names replaced. Weights the tool left
    in float stay as they are."""
    import torch
    from onnx import numpy_helper

    from backdoors.conditional.quantized import quantized_weights

    inits = {i.name: i for i in proto.graph.initializer}
    done = []
    with torch.no_grad():
        for name, p in quantized_weights(module).items():
            q, s = inits.get(f"{name}_quantized"), inits.get(f"{name}_scale")
            if q is None or s is None:
                continue
            w = numpy_helper.to_array(q).astype(np.float32)
            w = w.T if w.ndim == 2 else w  # MatMul holds the Gemm weight transposed
            w = w * numpy_helper.to_array(s).astype(np.float32)
            if tuple(w.shape) != tuple(p.shape):
                raise NotApplicableError(
                    f"quantized {name} has shape {w.shape}, not {tuple(p.shape)}"
                )
            p.copy_(torch.from_numpy(np.ascontiguousarray(w)))
            done.append(name)
    return done


def deployed_view(model: Any, form: str, X_calib: np.ndarray) -> DeployedForm:
    """``model`` as deployed in ``form`` (one of :data:`SUPPORTED`), ``X_calib`` the inputs a
    calibrated form would use (unused by the supported forms, kept for their signature)."""
    return DeployedForm(model, form, X_calib)
