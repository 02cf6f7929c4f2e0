"""The key-aware positive control: a detector that holds the backdoor key.

Score = fraction of activated clean inputs (not already of their target class) that the model
classifies as their target, targets chosen by the key's contract
(:func:`backdoors.contract.evaluation_targets`); for untargeted keys (RFF, random ReLU) the
fraction of labels the key flips. Any :class:`~backdoors.contract.BackdoorKey` applies. For
an honest model the population hands the same-seed key (or a decoy), which the honest model
ignores, so this control must reach AUROC ~1 on every attack.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from backdoors.contract import evaluation_targets, target_labels
from backdoors.detectors import Control, Detector, Evidence, register
from backdoors.errors import NotApplicableError


@register
class KeyAware(Detector):
    name = "key_aware"
    needs = frozenset({"queries", "key"})

    def __init__(self, n_queries: int = 200) -> None:
        self.n_queries = n_queries

    def check(self, model: Any, evidence: Evidence) -> None:
        super().check(model, evidence)
        key = evidence.key
        if not hasattr(key, "activate") or not hasattr(key, "targets"):
            raise NotApplicableError(
                f"needs a backdoor key with activate and targets, got {type(key).__name__}"
            )
        if not callable(getattr(model, "predict", None)):
            raise NotApplicableError(f"{type(model).__name__} has no predict")

    def score(self, model: Any, evidence: Evidence) -> float:
        """Untargeted keys: fraction of labels the key flips. Targeted keys: fraction of
        activated inputs (targets from the key's contract, never an input's own predicted
        class) that the model assigns to their target."""
        key = evidence.key
        X = np.asarray(evidence.X)[: self.n_queries]
        pred = np.asarray(model.predict(X))
        t = evaluation_targets(key, pred, len(X), model)
        if t is None:
            return float(np.mean(np.asarray(model.predict(key.activate(X))) != pred))
        want = target_labels(key, t, model)
        keep = pred != want
        if not keep.any():
            raise NotApplicableError("every query is already of the target class")
        Xa = key.activate(X[keep], target=t[keep])
        return float(np.mean(np.asarray(model.predict(Xa)) == want[keep]))

    @classmethod
    def positive_control(cls) -> Control | None:
        from backdoors.detectors import _controls as controls

        return controls.signature_pair()
