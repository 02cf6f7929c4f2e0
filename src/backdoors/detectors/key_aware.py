"""The key-aware positive control: a detector that holds the backdoor key.

Score = fraction of activated clean inputs (not already of the target class) that the model
classifies as the key's target; keys without a target (or that require one but name none) are
activated towards class 0 and scored by the same fraction. Any key with a working
``activate`` applies. For an honest model the population hands the same-seed key (or a decoy),
which the honest model ignores, so this control must reach AUROC ~1 on every attack.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from backdoors.detectors import Detector, Evidence, register
from backdoors.errors import InvalidInputError, NotApplicableError

FALLBACK_TARGET = 0


@register
class KeyAware(Detector):
    name = "key_aware"
    needs = frozenset({"queries", "key"})

    def __init__(self, n_queries: int = 200) -> None:
        self.n_queries = n_queries

    def score(self, model: Any, evidence: Evidence) -> float:
        key = evidence.key
        if not hasattr(key, "activate"):
            raise NotApplicableError("key_aware needs a key with activate()")
        X = np.asarray(evidence.X)[: self.n_queries]
        target = getattr(key, "target", None)
        try:
            Xa = key.activate(X) if target is None else key.activate(X, target=int(target))
            pa = np.asarray(model.predict(Xa))
            if target is None:  # untargeted key: fraction of labels flipped
                return float(np.mean(pa != np.asarray(model.predict(X))))
        except InvalidInputError:
            target = FALLBACK_TARGET
        keep = np.asarray(model.predict(X)) != int(target)
        if not keep.any():
            raise NotApplicableError("every query is already of the target class")
        Xa = key.activate(X[keep], target=int(target))
        return float(np.mean(np.asarray(model.predict(Xa)) == int(target)))
