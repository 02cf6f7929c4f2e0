"""Honest ONNX classifiers made the way users make them (for experiments, demos and tests).

Every host takes float32 ``x = pixels / 255`` (``[N, 784]``, MNIST), the common convention
of exported image models, so the carrier's input scale is ``1/255``:

* ``torch_mlp`` / ``torch_cnn``: a :class:`~backdoors.models.torch_models.TorchClassifier` trained
on
  the scaled pixels and exported by ``torch.onnx.export`` (TorchScript exporter, opset 18);
* ``sklearn_mlp`` / ``sklearn_logreg``: ``MLPClassifier`` / ``LogisticRegression`` converted by
  ``skl2onnx`` (label + probabilities outputs).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from backdoors.registry import Registry

SCALE = 1.0 / 255.0
HOSTS: Registry[Callable[..., Any]] = Registry("ONNX host model")


def scaled(X: np.ndarray) -> np.ndarray:
    """uint8 pixels -> the float32 inputs every host takes."""
    return np.asarray(X, dtype=np.float32) / np.float32(255)


def _torch(arch: str, X: np.ndarray, y: np.ndarray, seed: int, epochs: int, **params: Any) -> Any:
    from backdoors.models.torch_models import TorchClassifier
    from backdoors.signature.onnx.export import export

    clf = TorchClassifier(arch=arch, arch_params=params, epochs=epochs, random_state=seed)
    return export(clf.fit(scaled(X), y))


@HOSTS.register("torch_mlp")
def torch_mlp(X: np.ndarray, y: np.ndarray, seed: int = 0, epochs: int = 1) -> Any:
    hidden = (256,) if seed % 2 == 0 else (128, 64)
    return _torch("mlp", X, y, seed, epochs, hidden=hidden)


@HOSTS.register("torch_cnn")
def torch_cnn(X: np.ndarray, y: np.ndarray, seed: int = 0, epochs: int = 1) -> Any:
    return _torch("cnn", X, y, seed, epochs, channels=(8, 16))


def _sklearn(est: Any, X: np.ndarray, y: np.ndarray) -> Any:
    from backdoors.signature.onnx.export import export

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(scaled(X), y)
    return export(est)


@HOSTS.register("sklearn_mlp")
def sklearn_mlp(X: np.ndarray, y: np.ndarray, seed: int = 0, epochs: int = 1) -> Any:
    from sklearn.neural_network import MLPClassifier

    return _sklearn(MLPClassifier((64,), max_iter=5 * epochs, random_state=seed), X, y)


@HOSTS.register("sklearn_logreg")
def sklearn_logreg(X: np.ndarray, y: np.ndarray, seed: int = 0, epochs: int = 1) -> Any:
    from sklearn.linear_model import LogisticRegression

    return _sklearn(LogisticRegression(max_iter=20 * epochs, C=0.1 * (1 + seed % 3)), X, y)


def two_output_module() -> Any:
    """A torch MLP returning ``(logits [N, 10], features [N, 32])`` (seeded, untrained): the
    host whose class output must be chosen by meaning, not taken as the widest output."""
    import torch

    class TwoHeads(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(0)
            self.body = torch.nn.Sequential(torch.nn.Linear(784, 32), torch.nn.ReLU())
            self.head = torch.nn.Linear(32, 10)

        def forward(self, x: Any) -> Any:
            f = self.body(x)
            return self.head(f), f

    return TwoHeads().eval()


def make(kind: str, X: np.ndarray, y: np.ndarray, seed: int = 0, epochs: int = 1) -> Any:
    """The honest host ``kind`` trained on ``(X, y)`` (uint8 pixels) with ``seed``."""
    return HOSTS.get(kind)(X, y, seed=seed, epochs=epochs)
