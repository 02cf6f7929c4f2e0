"""Small accessors shared by the white-box detectors.

:func:`torch_module` is the one documented way a detector reaches a torch network: a
:class:`~backdoors.models.torch_models.TorchClassifier` exposes it as ``model.module_``, wrappers
(the
signature backdoor, adapters) expose the honest classifier as ``model.base`` or ``model.module``;
an ONNX classifier (``model.onnx_model``) is converted with onnx2torch when it is installed
(:func:`onnx_torch_module`); anything else raises :class:`~backdoors.errors.NotApplicableError`.
"""

from __future__ import annotations

import weakref
from typing import Any

import numpy as np

from backdoors.errors import NotApplicableError

_CONVERTED: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


def torch_module(model: Any, depth: int = 4) -> Any:
    """The ``torch.nn.Module`` behind ``model`` (``module_``, ``module``, then ``base``)."""
    from torch import nn

    cur = model
    for _ in range(depth):
        if isinstance(cur, nn.Module):
            return cur
        for attr in ("module_", "module"):
            m = getattr(cur, attr, None)
            if isinstance(m, nn.Module):
                return m
        if getattr(cur, "onnx_model", None) is not None:
            return onnx_torch_module(cur)
        nxt = getattr(cur, "base", None)
        if nxt is None or nxt is cur:
            break
        cur = nxt
    raise NotApplicableError(
        f"needs the network's torch module (gradients, activations); a {type(model).__name__} "
        "exposes none (for any architecture: export it to ONNX)"
    )


def onnx_torch_module(model: Any) -> Any:
    """The torch module of an ONNX classifier's graph (onnx2torch), fed the rows of ``X``
    reshaped to the graph's input shape: ``nn.Sequential(reshape, body, last_linear)`` when the
    graph ends in a linear layer (so :func:`features` reads the penultimate activations), else
    the reshaped graph as one module. Converted once per model object."""
    if model in _CONVERTED:
        return _CONVERTED[model]
    try:
        from onnx2torch import convert
    except ImportError as exc:
        raise NotApplicableError(
            f"gradients and activations of an ONNX graph need onnx2torch, which does not "
            f"import here ({exc})"
        ) from None
    try:
        gm = convert(model.onnx_model)
    except Exception as exc:
        msg = " ".join(str(exc).split())[:160]
        raise NotApplicableError(
            f"onnx2torch cannot convert this ONNX graph to torch ({type(exc).__name__}: {msg})"
        ) from None
    module = split_last_linear(gm, tuple(getattr(model, "input_shape", ()) or ()))
    _CONVERTED[model] = module
    return module


def split_last_linear(gm: Any, input_shape: tuple[int, ...]) -> Any:
    """``nn.Sequential(reshape, body, head)`` from a torch.fx ``GraphModule`` whose output is
    an ``nn.Linear`` call (``head``; ``body`` computes that call's input); if the output is not
    a linear layer, the reshaped graph as one (non-Sequential) module."""
    import torch
    from torch import fx, nn

    class Reshape(nn.Module):
        def __init__(self, shape: tuple[int, ...]) -> None:
            super().__init__()
            self.shape = shape

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.reshape(len(x), *self.shape) if self.shape else x

    class Reshaped(nn.Module):
        def __init__(self, shape: tuple[int, ...], inner: nn.Module) -> None:
            super().__init__()
            self.reshape, self.inner = Reshape(shape), inner

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.inner(self.reshape(x))

    out = next(n for n in gm.graph.nodes if n.op == "output")
    last = out.args[0]
    ok = (
        isinstance(last, fx.Node)
        and last.op == "call_module"
        and isinstance(gm.get_submodule(str(last.target)), nn.Linear)
        and sum(n.op == "placeholder" for n in gm.graph.nodes) == 1
    )
    if not ok:
        return Reshaped(input_shape, gm).eval()
    g, env = fx.Graph(), {}
    for n in gm.graph.nodes:
        if n is last:
            break
        env[n] = g.node_copy(n, lambda a: env[a])
    g.output(env[last.args[0]])
    body = fx.GraphModule(gm, g)
    return nn.Sequential(Reshape(input_shape), body, gm.get_submodule(str(last.target))).eval()


def sequential_module(model: Any) -> Any:
    """The ``nn.Sequential`` (two layers or more) behind ``model``, whose hidden
    representations :func:`features` reads; else NotApplicableError."""
    from torch import nn

    module = torch_module(model)
    if not isinstance(module, nn.Sequential) or len(module) < 2:
        raise NotApplicableError(
            f"the network of {type(model).__name__} is not an nn.Sequential of two layers or more"
        )
    return module


def probabilistic(model: Any) -> None:
    """NotApplicableError unless :func:`proba` can read class probabilities of ``model``."""
    if not any(callable(getattr(model, a, None)) for a in ("predict_proba", "decision_function")):
        raise NotApplicableError(
            f"{type(model).__name__} has neither predict_proba nor decision_function"
        )


def features(module: Any, X: np.ndarray, batch: int = 4096) -> np.ndarray:
    """Penultimate representation: the output of every layer of a ``Sequential`` but the last."""
    import torch
    from torch import nn

    if not isinstance(module, nn.Sequential) or len(module) < 2:
        raise NotApplicableError("representations need an nn.Sequential network")
    body = module[:-1]
    out = []
    with torch.no_grad():
        for i in range(0, len(X), batch):
            xb = torch.from_numpy(np.ascontiguousarray(X[i : i + batch], dtype=np.float32))
            out.append(body(xb).reshape(len(xb), -1).numpy())
    return np.concatenate(out).astype(np.float64)


def proba(model: Any, X: np.ndarray) -> np.ndarray:
    """Class probabilities, shape ``(n, n_classes)``: ``predict_proba``, else a softmax of
    ``decision_function`` (a 1-D binary margin z gives ``[1 - sigmoid(z), sigmoid(z)]``)."""
    if hasattr(model, "predict_proba"):
        p = np.asarray(model.predict_proba(X), dtype=np.float64)
        return np.column_stack([1.0 - p, p]) if p.ndim == 1 else p
    if hasattr(model, "decision_function"):
        z = np.asarray(model.decision_function(X), dtype=np.float64)
        if z.ndim == 1:
            z = np.column_stack([np.zeros_like(z), z])
        z = z - z.max(axis=1, keepdims=True)
        p = np.exp(z)
        return p / p.sum(axis=1, keepdims=True)
    raise NotApplicableError(f"{type(model).__name__} gives no class probabilities")


def value_range(X: np.ndarray) -> tuple[float, float]:
    """The input domain ``[lo, hi]`` an auditor infers from clean inputs: ``[0, 255]`` for
    uint8 images, else the observed ``[min, max]``."""
    X = np.asarray(X)
    if X.dtype == np.uint8:
        return 0.0, 255.0
    return float(np.min(X)), float(np.max(X))


def subsample(n: int, k: int, seed: int) -> np.ndarray:
    """``min(n, k)`` sorted row indices drawn without replacement."""
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=min(n, k), replace=False))
