"""Small torch classifiers behind scikit-learn's estimator contract.

:class:`TorchClassifier` trains an architecture from :data:`ARCHITECTURES` (``mlp``, ``cnn``)
on numpy inputs in their natural dtype (uint8 pixels are scaled by ``input_scale`` *inside*
the network, so carriers that live in raw pixel values see exactly what the model sees).
Subclasses change training by overriding :meth:`TorchClassifier._loss` (e.g. PGD training).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from numbers import Integral
from typing import Any, ClassVar

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data
from torch import nn

from backdoors.artifacts.files import ARTIFACTS
from backdoors.errors import InvalidInputError
from backdoors.progress import track
from backdoors.registry import Registry
from backdoors.threads import torch_thread_limit
from backdoors.validation import (
    NONNEGATIVE_INT,
    NONNEGATIVE_REAL,
    POSITIVE_INT,
    POSITIVE_REAL,
    Array,
    Interval,
    Real,
    check_params,
    validate_args,
)

ARCHITECTURES: Registry = Registry("architecture")


class Scale(nn.Module):
    """x -> x * factor (a constant, not a parameter)."""

    def __init__(self, factor: float) -> None:
        super().__init__()
        self.factor = float(factor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.factor


_ARCH_ARGS = {
    "n_features": [Interval(Integral, 1, None, closed="left")],
    "n_classes": [Interval(Integral, 1, None, closed="left")],
    "input_scale": [Real],
}


@ARCHITECTURES.register("mlp")
@validate_args({**_ARCH_ARGS, "hidden": [Array(ndim=1, kinds="iu", low=1)]})
def mlp(
    n_features: int, n_classes: int, hidden: tuple[int, ...] = (256,), input_scale: float = 1.0
) -> nn.Module:
    """Scale -> (Linear -> ReLU)* -> Linear."""
    layers: list[nn.Module] = [Scale(input_scale)]
    width = n_features
    for h in hidden:
        layers += [nn.Linear(width, int(h)), nn.ReLU()]
        width = int(h)
    layers.append(nn.Linear(width, n_classes))
    return nn.Sequential(*layers)


@ARCHITECTURES.register("cnn")
@validate_args({**_ARCH_ARGS, "channels": [Array(ndim=1, kinds="iu", length=2, low=1)]})
def cnn(
    n_features: int, n_classes: int, channels: tuple[int, int] = (16, 32), input_scale: float = 1.0
) -> nn.Module:
    """Two conv/ReLU/max-pool blocks and a linear head, for square single-channel images."""
    side = int(round(np.sqrt(n_features)))
    if side * side != n_features:
        raise InvalidInputError(f"cnn needs square images, got {n_features} features")
    c1, c2 = (int(c) for c in channels)
    flat = c2 * (side // 4) ** 2
    return nn.Sequential(
        Scale(input_scale),
        nn.Unflatten(1, (1, side, side)),
        nn.Conv2d(1, c1, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(c1, c2, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(flat, n_classes),
    )


@contextmanager
def _as_input_errors() -> Iterator[None]:
    """scikit-learn's validation errors (ValueError) as :class:`InvalidInputError` (also a
    ValueError, same message): the package's one error hierarchy, sklearn's contract kept."""
    try:
        yield
    except InvalidInputError:
        raise
    except ValueError as exc:
        raise InvalidInputError(str(exc)) from None


def to_tensor(X: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32))


@ARTIFACTS.register("torch_classifier")
class TorchClassifier(ClassifierMixin, BaseEstimator):
    """A torch network trained with Adam on cross-entropy, used like a scikit-learn classifier.

    ``logits`` returns the network's outputs, ``decision_function`` the logits (for two
    classes ``z_1 - z_0``, scikit-learn's convention), ``predict_proba`` their softmax. Inputs
    keep their numeric dtype (uint8 pixels are scaled inside the network). Passes
    ``sklearn.utils.estimator_checks.check_estimator`` (tests/test_torch_models.py).
    """

    artifact_kind = "torch_classifier"
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "arch": [str],  # a name in ARCHITECTURES (an unknown name: InvalidInputError at fit)
        "arch_params": [dict, None],
        "input_scale": [POSITIVE_REAL],
        "epochs": [NONNEGATIVE_INT],
        "batch_size": [POSITIVE_INT],
        "lr": [POSITIVE_REAL],
        "weight_decay": [NONNEGATIVE_REAL],
        "random_state": [Integral],  # torch.manual_seed takes an integer
    }

    def __init__(
        self,
        *,
        arch: str = "mlp",
        arch_params: dict[str, Any] | None = None,
        input_scale: float = 1.0,
        epochs: int = 3,
        batch_size: int = 128,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        random_state: int = 0,
    ) -> None:
        self.arch = arch
        self.arch_params = arch_params
        self.input_scale = input_scale
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.random_state = random_state

    # -- training ------------------------------------------------------------------------
    def _build(self, n_features: int, n_classes: int) -> nn.Module:
        params = dict(self.arch_params or {})
        return ARCHITECTURES.get(self.arch)(
            n_features, n_classes, input_scale=self.input_scale, **params
        )

    def _loss(self, module: nn.Module, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        """Training loss on one batch (override for adversarial training etc.)."""
        return nn.functional.cross_entropy(module(xb), yb)

    def fit(self, X: np.ndarray, y: np.ndarray) -> TorchClassifier:
        check_params(self)
        with _as_input_errors():
            X, y = validate_data(self, X, y, dtype="numeric")
            check_classification_targets(y)
        self.classes_, y_idx = np.unique(y, return_inverse=True)
        with torch.random.fork_rng(), torch_thread_limit():  # threads: backdoors.threads
            torch.manual_seed(self.random_state)
            self.module_ = self._build(X.shape[1], len(self.classes_))
            opt = torch.optim.Adam(
                self.module_.parameters(), lr=self.lr, weight_decay=self.weight_decay
            )
            Xt, yt = to_tensor(X), torch.from_numpy(y_idx.astype(np.int64))
            gen = torch.Generator().manual_seed(self.random_state)
            self.module_.train()
            for _ in track(range(self.epochs), f"{self.arch} epochs", line=False):
                perm = torch.randperm(len(Xt), generator=gen)
                for i in range(0, len(Xt), self.batch_size):
                    idx = perm[i : i + self.batch_size]
                    opt.zero_grad()
                    loss = self._loss(self.module_, Xt[idx], yt[idx])
                    loss.backward()
                    opt.step()
        self.module_.eval()
        return self

    # -- inference -----------------------------------------------------------------------
    def logits(self, X: np.ndarray, batch_size: int = 8192) -> np.ndarray:
        """The network's outputs, one column per class (float32)."""
        check_is_fitted(self, "module_")
        with _as_input_errors():
            X = validate_data(self, X, reset=False, dtype="numeric")
        out = []
        with torch.no_grad():
            for i in range(0, len(X), batch_size):
                out.append(self.module_(to_tensor(X[i : i + batch_size])).numpy())
        return np.concatenate(out) if out else np.zeros((0, len(self.classes_)), np.float32)

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """Logits (n, C); for two classes scikit-learn's convention: ``z_1 - z_0`` (n,)."""
        z = self.logits(X)
        return z[:, 1] - z[:, 0] if z.shape[1] == 2 else z

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Softmax of the logits (float64)."""
        z = self.logits(X).astype(np.float64)
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        return p / p.sum(axis=1, keepdims=True)

    def predict(self, X: np.ndarray) -> np.ndarray:
        check_is_fitted(self, "module_")
        return self.classes_[np.argmax(self.logits(X), axis=1)]

    # -- artifacts -----------------------------------------------------------------------
    def _to_artifact(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        check_is_fitted(self, "module_")
        tensors = {f"module.{k}": v.detach().numpy() for k, v in self.module_.state_dict().items()}
        tensors["classes"] = np.asarray(self.classes_)
        meta = {"params": self.get_params(), "n_features": int(self.n_features_in_)}
        return tensors, meta

    @classmethod
    def _from_artifact(
        cls, tensors: dict[str, np.ndarray], meta: dict[str, Any]
    ) -> TorchClassifier:
        est = cls(**meta["params"])
        est.classes_ = tensors["classes"]
        est.n_features_in_ = int(meta["n_features"])
        est.module_ = est._build(est.n_features_in_, len(est.classes_))
        state = {
            k[len("module.") :]: torch.from_numpy(v.copy())
            for k, v in tensors.items()
            if k.startswith("module.")
        }
        try:
            est.module_.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise ValueError(f"weights do not fit the architecture: {exc}") from None
        est.module_.eval()
        return est


def mnist_mlp_params(quick: bool = False, seed: int = 0) -> dict[str, Any]:
    """The package's standard MNIST classifier (demo, experiments): a 784-256-10 ReLU MLP on
    raw uint8 pixels, scaled by 1/255 inside; 5 epochs (2 in quick mode)."""
    return {
        "arch": "mlp",
        "arch_params": {"hidden": (256,)},
        "input_scale": 1 / 255,
        "epochs": 2 if quick else 5,
        "batch_size": 128,
        "random_state": seed,
    }
