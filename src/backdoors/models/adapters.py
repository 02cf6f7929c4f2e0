"""One classifier interface over anything that classifies (DESIGN.md: torch models are wrapped
by an adapter, never special-cased inside constructions).

:func:`as_classifier` turns a scikit-learn classifier, a torch ``nn.Module`` (returning logits)
or a plain callable ``X -> labels`` into an object with ``predict`` and, where the source has
them, ``predict_proba`` and ``decision_function``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from backdoors.errors import InvalidInputError


class CallableClassifier:
    """A plain function ``X -> labels`` as a classifier (``predict`` only)."""

    def __init__(
        self, fn: Callable[[np.ndarray], np.ndarray], classes: np.ndarray | None = None
    ) -> None:
        self.fn = fn
        self.classes_ = None if classes is None else np.asarray(classes)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self.fn(X))


class TorchModuleClassifier:
    """A torch module mapping float32 inputs to logits, as a numpy classifier."""

    def __init__(
        self, module: Any, classes: np.ndarray | None = None, batch_size: int = 8192
    ) -> None:
        self.module = module
        self.batch_size = batch_size
        self.classes_ = classes

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        import torch

        X = np.asarray(X)
        outs = []
        self.module.eval()
        with torch.no_grad():
            for i in range(0, max(1, len(X)), self.batch_size):  # an empty batch runs once
                xb = torch.from_numpy(
                    np.ascontiguousarray(X[i : i + self.batch_size], dtype=np.float32)
                )
                outs.append(self.module(xb).numpy())
        z = np.concatenate(outs)
        if self.classes_ is None:
            self.classes_ = np.arange(z.shape[1])
        return z

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        z = self.decision_function(X).astype(np.float64)
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        return p / p.sum(axis=1, keepdims=True)

    def predict(self, X: np.ndarray) -> np.ndarray:
        z = self.decision_function(X)
        return np.asarray(self.classes_)[np.argmax(z, axis=1)]


def as_classifier(model: Any, classes: np.ndarray | None = None) -> Any:
    """Wrap ``model`` so that it has ``predict`` (and ``predict_proba``/``decision_function``
    where the model has them). scikit-learn-like objects are returned unchanged."""
    try:
        import torch

        if isinstance(model, torch.nn.Module):
            return TorchModuleClassifier(model, classes)
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    if hasattr(model, "predict"):
        return model
    if callable(model):
        return CallableClassifier(model, classes)
    raise InvalidInputError(
        f"{type(model).__name__} is not a classifier (no predict, not callable)"
    )
