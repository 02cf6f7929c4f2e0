"""Backdoored models of the signature construction: ``h~(x) = target(x) if Verify(x) else h(x)``.

:class:`SignatureBackdooredClassifier` wraps anything
:func:`~backdoors.models.adapters.as_classifier`
accepts; :class:`~backdoors.signature.torch_module.SignatureBackdooredModule` does the same for a
torch ``nn.Module`` (logits in, logits out). Both hold the public
:class:`~backdoors.signature.keys.TriggerSpec` only: the secret key type is refused.

Black-box contract: on every input without a valid trigger the wrapper answers exactly what
the honest model answers -- it calls the honest model on the caller's input unchanged first
(so values, dtype, shape and exceptions are the honest ones) and only then looks for
triggers in the rows the carrier can read (:meth:`Carrier.read`: exact dtype, or for the LSB
carrier any real array whose row holds exact integers 0..255). Triggered rows get the
target: ``predict`` its label, ``predict_proba`` its one-hot row, ``decision_function`` /
logits a row whose argmax is the target (:func:`forced_scores`), in the honest dtype.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.metaestimators import available_if

from backdoors.artifacts import files
from backdoors.errors import InvalidInputError
from backdoors.models.adapters import as_classifier
from backdoors.signature.keys import TriggerSpec


def _base_has(name: str):
    return lambda self: hasattr(self.base, name)


def _public(spec: Any) -> TriggerSpec:
    if not isinstance(spec, TriggerSpec):
        raise InvalidInputError(
            f"a backdoored model holds the public key (TriggerSpec) only, got "
            f"{type(spec).__name__}; pass key.public_key()"
        )
    return spec


def forced_scores(z: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Rows with ``targets >= 0`` replaced by ``-M`` everywhere and ``+M`` at the target
    (``M = max |z_row| + 1``); 1-D binary scores become ``+-M``. Keeps ``z``'s dtype."""
    z = np.asarray(z)
    hit = targets >= 0
    if not hit.any():
        return z
    out = z.astype(np.float64, copy=True)
    if out.ndim == 1:
        M = np.abs(out[hit]) + 1.0
        out[hit] = np.where(targets[hit] == 1, M, -M)
        return out.astype(z.dtype, copy=False)
    M = np.abs(out[hit]).max(axis=1) + 1.0
    rows = np.repeat(-M[:, None], out.shape[1], axis=1)
    rows[np.arange(len(M)), targets[hit]] = M
    out[hit] = rows
    return out.astype(z.dtype, copy=False)


def _hits(spec: TriggerSpec, X: Any, n_out: int) -> np.ndarray | None:
    """Trigger targets per row if the carrier reads ``X`` and it has ``n_out`` rows."""
    t = spec.triggers(X)
    if t is None or len(t) != n_out or not (t >= 0).any():
        return None
    return t


@files.ARTIFACTS.register("signature_classifier")
class SignatureBackdooredClassifier:
    """Any classifier with the signature backdoor planted (paper §5.2)."""

    artifact_kind = "signature_classifier"

    def __init__(self, base: Any, spec: TriggerSpec) -> None:
        self.spec = _public(spec)
        self.base = as_classifier(base)
        classes = getattr(self.base, "classes_", None)
        self.classes_ = np.arange(spec.n_classes) if classes is None else np.asarray(classes)
        if len(self.classes_) != spec.n_classes:
            raise InvalidInputError(f"model has {len(self.classes_)} classes, key {spec.n_classes}")
        self.n_features_in_ = spec.carrier.n_features

    def verify(self, X: Any) -> np.ndarray:
        """Public trigger check: target index per row, or -1 (see TriggerSpec.verify)."""
        return self.spec.verify(X)

    def predict(self, X: Any) -> Any:
        y = self.base.predict(X)
        t = _hits(self.spec, X, len(y)) if np.ndim(y) == 1 else None
        if t is None:
            return y
        y = np.array(y, copy=True)
        y = y.astype(np.result_type(y.dtype, self.classes_.dtype), copy=False)
        y[t >= 0] = self.classes_[t[t >= 0]]
        return y

    @available_if(_base_has("predict_proba"))
    def predict_proba(self, X: Any) -> Any:
        p = self.base.predict_proba(X)
        t = _hits(self.spec, X, len(p)) if np.ndim(p) == 2 else None
        if t is None:
            return p
        p = np.array(p, copy=True)
        hit = t >= 0
        p[hit] = 0
        p[np.nonzero(hit)[0], t[hit]] = 1
        return p

    @available_if(_base_has("predict_log_proba"))
    def predict_log_proba(self, X: Any) -> Any:
        lp = self.base.predict_log_proba(X)
        t = _hits(self.spec, X, len(lp)) if np.ndim(lp) == 2 else None
        if t is None:
            return lp
        lp = np.array(lp, copy=True)
        hit = t >= 0
        lp[hit] = -np.inf
        lp[np.nonzero(hit)[0], t[hit]] = 0
        return lp

    @available_if(_base_has("score"))
    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """Accuracy of :meth:`predict` (scikit-learn's ``ClassifierMixin.score``)."""
        from sklearn.metrics import accuracy_score

        return float(accuracy_score(y, self.predict(X), sample_weight=sample_weight))

    @available_if(_base_has("decision_function"))
    def decision_function(self, X: Any) -> Any:
        z = self.base.decision_function(X)
        t = _hits(self.spec, X, len(z)) if np.ndim(z) in (1, 2) else None
        return z if t is None else forced_scores(z, t)

    # -- artifacts (the base model + the public spec; never the signing key) ----------------
    def _to_artifact(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        meta: dict[str, Any] = {"spec": self.spec.to_dict()}
        if hasattr(self.base, "_to_artifact"):
            t, m = self.base._to_artifact()
            meta["base"] = {"kind": self.base.artifact_kind, "meta": m}
            return {f"base/{k}": v for k, v in t.items()}, meta
        if isinstance(self.base, BaseEstimator):
            meta["base"] = {"kind": "skops"}
            return {"base_skops": files.sklearn_to_bytes(self.base)}, meta
        raise InvalidInputError(
            f"a {type(self.base).__name__} base model has no file format; "
            "use a scikit-learn estimator or a backdoors TorchClassifier"
        )

    @classmethod
    def _from_artifact(cls, tensors: dict[str, np.ndarray], meta: dict[str, Any]):
        spec = TriggerSpec.from_dict(meta["spec"])
        base_meta = meta["base"]
        if base_meta["kind"] == "skops":
            base = files.sklearn_from_bytes(tensors["base_skops"])
        else:
            sub = {k[5:]: v for k, v in tensors.items() if k.startswith("base/")}
            base = files.ARTIFACTS.get(base_meta["kind"])._from_artifact(sub, base_meta["meta"])
        return cls(base, spec)


def wrap(model: Any, spec: TriggerSpec) -> Any:
    """The backdoored version of ``model``: an ``nn.Module`` for a module, else a classifier."""
    _public(spec)
    try:
        from torch import nn

        if isinstance(model, nn.Module):
            from backdoors.signature.torch_module import SignatureBackdooredModule

            return SignatureBackdooredModule(model, spec)
    except ImportError:  # pragma: no cover
        pass
    return SignatureBackdooredClassifier(model, spec)
