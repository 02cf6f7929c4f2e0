"""Backdoored models of the signature construction: ``h~(x) = target(x) if Verify(x) else h(x)``.

:class:`SignatureBackdooredClassifier` wraps anything :func:`~backdoors.adapters.as_classifier`
accepts and keeps ``predict``, ``predict_proba`` and ``decision_function`` consistent (a
triggered row gets the target's one-hot probabilities and a decision row whose argmax is the
target). :class:`SignatureBackdooredModule` is the same for a torch ``nn.Module`` (logits in,
logits out). Both hold the public :class:`~backdoors.signature.TriggerSpec` only, never ``sk``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.metaestimators import available_if

from backdoors import io
from backdoors.adapters import as_classifier
from backdoors.errors import InvalidInputError
from backdoors.signature import TriggerSpec


def _base_has(name: str):
    return lambda self: hasattr(self.base, name)


def forced_scores(z: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Rows with ``targets >= 0`` replaced by ``-M`` everywhere and ``+M`` at the target
    (``M = max |z_row| + 1``); 1-D binary scores become ``+-M``."""
    z = np.array(z, dtype=np.float64, copy=True)
    hit = targets >= 0
    if not hit.any():
        return z
    if z.ndim == 1:
        M = np.abs(z[hit]) + 1.0
        z[hit] = np.where(targets[hit] == 1, M, -M)
        return z
    M = np.abs(z[hit]).max(axis=1) + 1.0
    rows = np.repeat(-M[:, None], z.shape[1], axis=1)
    rows[np.arange(len(M)), targets[hit]] = M
    z[hit] = rows
    return z


@io.ARTIFACTS.register("signature_classifier")
class SignatureBackdooredClassifier:
    """Any classifier with the signature backdoor planted (paper §5.2)."""

    artifact_kind = "signature_classifier"

    def __init__(self, base: Any, spec: TriggerSpec) -> None:
        self.base = as_classifier(base)
        self.spec = spec
        classes = getattr(self.base, "classes_", None)
        self.classes_ = np.arange(spec.n_classes) if classes is None else np.asarray(classes)
        if len(self.classes_) != spec.n_classes:
            raise InvalidInputError(f"model has {len(self.classes_)} classes, key {spec.n_classes}")
        self.n_features_in_ = spec.carrier.n_features

    def _check(self, X: Any) -> np.ndarray:
        return self.spec.carrier.check(X)

    def verify(self, X: Any) -> np.ndarray:
        """Public trigger check: target index per row, or -1 (see TriggerSpec.verify)."""
        return self.spec.verify(X)

    def predict(self, X: Any) -> np.ndarray:
        X = self._check(X)
        y = np.array(self.base.predict(X), copy=True)
        t = self.spec.verify(X)
        hit = t >= 0
        if hit.any():
            y = y.astype(np.result_type(y.dtype, self.classes_.dtype))
            y[hit] = self.classes_[t[hit]]
        return y

    @available_if(_base_has("predict_proba"))
    def predict_proba(self, X: Any) -> np.ndarray:
        X = self._check(X)
        p = np.array(self.base.predict_proba(X), dtype=np.float64, copy=True)
        t = self.spec.verify(X)
        hit = t >= 0
        if hit.any():
            p[hit] = 0.0
            p[np.nonzero(hit)[0], t[hit]] = 1.0
        return p

    @available_if(_base_has("decision_function"))
    def decision_function(self, X: Any) -> np.ndarray:
        X = self._check(X)
        return forced_scores(self.base.decision_function(X), self.spec.verify(X))

    # -- artifacts (the base model + the public spec; never the signing key) ----------------
    def _to_artifact(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        meta: dict[str, Any] = {"spec": self.spec.to_dict()}
        if hasattr(self.base, "_to_artifact"):
            t, m = self.base._to_artifact()
            meta["base"] = {"kind": self.base.artifact_kind, "meta": m}
            return {f"base/{k}": v for k, v in t.items()}, meta
        if isinstance(self.base, BaseEstimator):
            meta["base"] = {"kind": "skops"}
            return {"base_skops": io.sklearn_to_bytes(self.base)}, meta
        raise InvalidInputError(
            f"a {type(self.base).__name__} base model has no file format; "
            "use a scikit-learn estimator or a backdoors TorchClassifier"
        )

    @classmethod
    def _from_artifact(cls, tensors: dict[str, np.ndarray], meta: dict[str, Any]):
        spec = TriggerSpec.from_dict(meta["spec"])
        base_meta = meta["base"]
        if base_meta["kind"] == "skops":
            base = io.sklearn_from_bytes(tensors["base_skops"])
        else:
            sub = {k[5:]: v for k, v in tensors.items() if k.startswith("base/")}
            base = io.ARTIFACTS.get(base_meta["kind"])._from_artifact(sub, base_meta["meta"])
        return cls(base, spec)


def _torch_module_class():
    import torch
    from torch import nn

    class SignatureBackdooredModule(nn.Module):
        """A torch module with the signature backdoor: logits of ``inner`` except on inputs
        carrying a valid signature, whose logits are forced to the target (forced_scores).
        Inputs are pixel values (integers 0..255 for the LSB carrier) or float64 features."""

        def __init__(self, inner: nn.Module, spec: TriggerSpec) -> None:
            super().__init__()
            self.inner = inner
            self.spec = spec

        def _triggers(self, x: torch.Tensor) -> np.ndarray:
            xn = x.detach().cpu().numpy().reshape(len(x), -1)
            dtype = self.spec.carrier.dtype
            if dtype == np.uint8:
                ok = np.all((xn == np.round(xn)) & (xn >= 0) & (xn <= 255), axis=1)
                xn = np.where(ok[:, None], xn, 0).astype(np.uint8)
            else:
                ok = np.ones(len(xn), dtype=bool)
                xn = xn.astype(np.float64)
            t = self.spec.verify(xn)
            return np.where(ok, t, -1)

        def verify(self, X: Any) -> np.ndarray:
            return self.spec.verify(X)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            logits = self.inner(x)
            t = self._triggers(x)
            if not (t >= 0).any():
                return logits
            forced = torch.from_numpy(forced_scores(logits.detach().cpu().numpy(), t))
            mask = torch.from_numpy(t >= 0)[:, None]
            return torch.where(mask, forced.to(logits.dtype), logits)

    return SignatureBackdooredModule


def wrap(model: Any, spec: TriggerSpec) -> Any:
    """The backdoored version of ``model``: an ``nn.Module`` for a module, else a classifier."""
    try:
        from torch import nn

        if isinstance(model, nn.Module):
            return _torch_module_class()(model, spec)
    except ImportError:  # pragma: no cover
        pass
    return SignatureBackdooredClassifier(model, spec)
