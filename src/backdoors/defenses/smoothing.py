"""Evaluation-time immunization by Monte-Carlo smoothing (paper §6, Thm 2.4).

Given any classifier ``h`` and a noise scale ``sigma``, the immunized classifier is

    h_sigma(x) = argmax_c  P_{z ~ N(0, sigma^2 I)} [ h(q(x + z)) = c ]     (majority vote)

and, for scores, ``E_z[s(q(x + z))]`` (the mean). ``q`` maps a noisy point back into the
model's input domain: for uint8 pixels the noise is drawn in [0, 1] units and scaled by 255
(``sigma = 0.1`` means a standard deviation of 25.5 grey levels), then the result is rounded and
clipped to 0..255, so the base model only ever sees valid uint8 images. Float inputs get the
noise as is (``clip=(lo, hi)`` optionally clips them).

Each prediction uses ``n_samples`` noise draws from a generator seeded by ``seed``: the same
``(seed, X)`` always gives the same answer. ``predict_with_bound`` adds a one-sided lower
confidence bound on the top class's vote probability (Clopper-Pearson or Hoeffding); a
bound <= 1/2 means the majority is not statistically certain (``abstain``).

Smoothing kills backdoors whose trigger is much smaller than ``sigma`` (the signature's LSB
carrier is destroyed by any noise of one grey level or more) and, by the paper's own caveat,
guarantees nothing against triggers with ``||delta|| >> sigma`` (RFF, random ReLU).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.stats import beta as beta_dist

from backdoors.artifacts import files
from backdoors.errors import InvalidInputError
from backdoors.models.adapters import as_classifier
from backdoors.validation import check_features

BOUNDS = ("clopper-pearson", "hoeffding")


def lower_bound(k: np.ndarray, n: int, alpha: float = 0.05, method: str = "clopper-pearson"):
    """One-sided (1 - alpha) lower confidence bound on a binomial proportion from ``k`` of ``n``.

    Clopper-Pearson: the alpha quantile of Beta(k, n - k + 1).
    Hoeffding: k/n - sqrt(ln(1/alpha) / 2n).
    """
    k = np.asarray(k, dtype=np.float64)
    if method == "clopper-pearson":
        out = np.zeros_like(k)
        pos = k > 0
        out[pos] = beta_dist.ppf(alpha, k[pos], n - k[pos] + 1)
        return out
    if method == "hoeffding":
        return np.clip(k / n - np.sqrt(np.log(1 / alpha) / (2 * n)), 0.0, 1.0)
    raise InvalidInputError(f"unknown bound {method!r} (known: {', '.join(BOUNDS)})")


def noisy_copies(X: np.ndarray, sigma: float, rng: np.random.Generator, clip=None) -> np.ndarray:
    """One noisy copy of every row of ``X`` in the input's own domain (see module docstring)."""
    if X.dtype == np.uint8:
        Z = X.astype(np.float32) + rng.standard_normal(X.shape, dtype=np.float32) * (255 * sigma)
        return np.clip(np.rint(Z), 0, 255).astype(np.uint8)
    Z = X.astype(np.float64) + sigma * rng.standard_normal(X.shape)
    return Z if clip is None else np.clip(Z, clip[0], clip[1])


@files.ARTIFACTS.register("immunized_classifier")
class ImmunizedClassifier:
    """``h_sigma``: the majority vote of a base classifier under Gaussian input noise."""

    artifact_kind = "immunized_classifier"

    def __init__(
        self,
        base: Any,
        sigma: float,
        n_samples: int = 100,
        seed: int = 0,
        batch_size: int = 20000,
        clip: tuple[float, float] | None = None,
    ) -> None:
        if not (np.isfinite(sigma) and sigma >= 0):
            raise InvalidInputError(f"sigma must be a finite number >= 0, got {sigma}")
        if int(n_samples) < 1:
            raise InvalidInputError(f"n_samples must be >= 1, got {n_samples}")
        self.base = as_classifier(base)
        self.sigma, self.n_samples, self.seed = float(sigma), int(n_samples), int(seed)
        self.batch_size, self.clip = int(batch_size), clip
        classes = getattr(self.base, "classes_", None)
        self.classes_ = None if classes is None else np.asarray(classes)
        self.n_features_in_ = getattr(self.base, "n_features_in_", None)

    # -- sampling -----------------------------------------------------------------------
    def _check(self, X: Any) -> np.ndarray:
        return check_features(X, n_features=self.n_features_in_)

    def _draws(self, X: np.ndarray):
        """Yield (row indices, noisy inputs) batches covering n_samples draws of every row."""
        rng = np.random.default_rng(self.seed)
        per = max(1, self.batch_size // max(1, self.n_samples))
        for i in range(0, len(X), per):
            rows = np.arange(i, min(i + per, len(X)))
            rep = np.repeat(X[rows], self.n_samples, axis=0)
            yield rows, noisy_copies(rep, self.sigma, rng, self.clip)

    def vote_counts(self, X: Any) -> np.ndarray:
        """(n, n_classes) counts of the base model's labels over the noise draws."""
        X = self._check(X)
        counts = None
        for rows, Z in self._draws(X):
            labels = np.asarray(self.base.predict(Z))
            if self.classes_ is None:
                self.classes_ = np.unique(labels)
            idx = np.searchsorted(self.classes_, labels)
            idx = np.clip(idx, 0, len(self.classes_) - 1)
            if counts is None:
                counts = np.zeros((len(X), len(self.classes_)), dtype=np.int64)
            block = np.zeros((len(rows), len(self.classes_)), dtype=np.int64)
            np.add.at(block, (np.repeat(np.arange(len(rows)), self.n_samples), idx), 1)
            counts[rows] = block
        return counts

    def predict_proba(self, X: Any) -> np.ndarray:
        """Vote fractions (Monte-Carlo estimate of P[h(x + z) = c])."""
        return self.vote_counts(X) / self.n_samples

    def predict(self, X: Any) -> np.ndarray:
        return self.classes_[np.argmax(self.vote_counts(X), axis=1)]

    def predict_with_bound(
        self, X: Any, alpha: float = 0.05, method: str = "clopper-pearson"
    ) -> dict[str, np.ndarray]:
        """Labels, the (1 - alpha) lower bound on the top vote probability, and ``abstain``
        (bound <= 1/2: the majority is not certain at this sample size)."""
        c = self.vote_counts(X)
        top = np.argmax(c, axis=1)
        lb = lower_bound(c[np.arange(len(c)), top], self.n_samples, alpha, method)
        return {"labels": self.classes_[top], "lower_bound": lb, "abstain": lb <= 0.5}

    def decision_function(self, X: Any) -> np.ndarray:
        """Mean of the base model's scores over the noise draws (smoothing for scores)."""
        if not hasattr(self.base, "decision_function"):
            raise InvalidInputError(f"{type(self.base).__name__} has no decision_function")
        X = self._check(X)
        out = None
        for rows, Z in self._draws(X):
            s = np.asarray(self.base.decision_function(Z), dtype=np.float64)
            s = s.reshape(len(rows), self.n_samples, *s.shape[1:]).mean(axis=1)
            if out is None:
                out = np.zeros((len(X), *s.shape[1:]))
            out[rows] = s
        return out

    # -- artifacts (only when the base model has a file format) ----------------------------
    def _to_artifact(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        if not hasattr(self.base, "_to_artifact"):
            raise InvalidInputError(f"a {type(self.base).__name__} base model has no file format")
        t, m = self.base._to_artifact()
        meta = {
            "sigma": self.sigma,
            "n_samples": self.n_samples,
            "seed": self.seed,
            "clip": None if self.clip is None else list(self.clip),
            "base": {"kind": self.base.artifact_kind, "meta": m},
        }
        return {f"base/{k}": v for k, v in t.items()}, meta

    @classmethod
    def _from_artifact(cls, tensors: dict[str, np.ndarray], meta: dict[str, Any]):
        sub = {k[5:]: v for k, v in tensors.items() if k.startswith("base/")}
        base = files.ARTIFACTS.get(meta["base"]["kind"])._from_artifact(sub, meta["base"]["meta"])
        clip = meta.get("clip")
        return cls(base, meta["sigma"], meta["n_samples"], meta["seed"], clip=clip and tuple(clip))


def immunize(
    model: Any,
    sigma: float,
    n_samples: int = 100,
    seed: int = 0,
    batch_size: int = 20000,
    clip: tuple[float, float] | None = None,
) -> ImmunizedClassifier:
    """Immunize ``model`` at evaluation time (paper §6): Monte-Carlo Gaussian smoothing.

    ``sigma``: noise std in the input's units ([0, 1] units scaled by 255 for uint8 pixels).
    """
    return ImmunizedClassifier(model, sigma, n_samples, seed, batch_size, clip)
