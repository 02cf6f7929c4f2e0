"""Black-box disagreement search against a reference model the auditor trained honestly.

With a query budget, compare the audited model f with the auditor's own honest model g on clean
queries and on perturbed versions of them (random square patches of random size, position and
value; salt noise; Gaussian noise). A planted behaviour that g lacks shows as disagreement on
some perturbation family. Score = max over families of the disagreement rate
P[f(x') != g(x')] minus the clean disagreement rate, plus a margin statistic in ``details_``:
the mean probability f gives its own label where f and g disagree. This is the "differential
testing" view of backdoor detection; the signature backdoor is built so that random
perturbations never carry a valid signature (paper §5.2), so it should not show.
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np

from backdoors.detectors import Detector, Evidence, register
from backdoors.detectors._access import proba, value_range
from backdoors.errors import NotApplicableError


def _patches(X: np.ndarray, rng: np.random.Generator, lo: float, top: float) -> np.ndarray:
    side = int(round(np.sqrt(X.shape[1])))
    out = np.array(X, copy=True).reshape(len(X), side, side)
    for i in range(len(X)):
        s = int(rng.integers(2, 7))
        r, c = rng.integers(0, side - s + 1, size=2)
        out[i, r : r + s, c : c + s] = top if rng.random() < 0.8 else lo
    return out.reshape(len(X), -1)


@register
class DisagreementSearch(Detector):
    name = "disagreement_search"
    needs = frozenset({"queries"})

    def __init__(self, budget: int = 2000) -> None:
        self.budget = budget

    def score(self, model: Any, evidence: Evidence) -> float:
        g = evidence.reference
        if g is None:
            raise NotApplicableError(
                "disagreement_search needs an honest reference model to compare with "
                "(--reference or --calibrate)"
            )
        rng = np.random.default_rng(evidence.seed)
        X = np.asarray(evidence.X)
        n = max(1, self.budget // 4)
        X = X[rng.integers(0, len(X), n)]
        lo, top = value_range(X)
        fams = {"clean": X}
        side = int(round(np.sqrt(X.shape[1])))
        if side * side == X.shape[1] and side >= 8:  # square images
            fams["patch"] = _patches(X, rng, lo, top)
        salt = np.array(X, copy=True)
        salt[rng.random(X.shape) < 0.02] = top
        fams["salt"] = salt
        noise = X.astype(np.float64) + rng.normal(0, 0.1 * (top - lo), X.shape)
        fams["noise"] = np.clip(noise, lo, top).astype(X.dtype)
        rates, margins = {}, {}
        for name, Z in fams.items():
            pf, pg = np.asarray(model.predict(Z)), np.asarray(g.predict(Z))
            rates[name] = float(np.mean(pf != pg))
            dis = pf != pg
            if dis.any():
                with contextlib.suppress(NotApplicableError):
                    margins[name] = float(proba(model, Z[dis]).max(axis=1).mean())
        self.details_ = {"disagreement": rates, "margin": margins}
        return max(v - rates["clean"] for k, v in rates.items() if k != "clean")
