"""Test-only attacks, keys and detectors (small scikit-learn models with a planted rule), so the
population / audit / experiment tests do not depend on the real attacks and detectors."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import numpy as np
from sklearn.linear_model import LogisticRegression

from backdoors.artifacts import files
from backdoors.detectors import Detector, Evidence, Report
from backdoors.evaluation.recipes import Attack, Built

N_FEATURES = 6
BUILD_CALLS: list[tuple[str, int, bool]] = []  # in-process build log (n_jobs=1 runs)


@dataclass(frozen=True)
class PatchKey:
    """Trigger: set feature ``feature`` to ``value``; the poisoned model then says ``target``."""

    key_kind: ClassVar[str] = "test_population_patch"
    feature: int
    value: float
    target: int

    @property
    def targets(self) -> tuple[int, ...]:
        return (self.target,)

    def to_json_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json_dict(cls, d: dict[str, Any]) -> PatchKey:
        return cls(int(d["feature"]), float(d["value"]), int(d["target"]))

    def activate(self, X: np.ndarray, target: int | None = None) -> np.ndarray:
        X = np.array(X, dtype=np.float64, copy=True)
        X[:, self.feature] = self.value
        return X

    def check_model(self, model: Any) -> None:
        return None


def _data(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, N_FEATURES))
    return X, (X[:, 1] + X[:, 2] > 0).astype(np.int64)


class ToyPatchAttack(Attack):
    """Logistic regression; backdoored members are trained on 20% poisoned rows (x0 = 8 -> 1).
    Every member shares one test set (so the cache must store it once)."""

    name = "toy_patch"

    def __init__(self, n_train: int = 300, poison: float = 0.2) -> None:
        self.n_train = n_train
        self.poison = poison

    def build(self, seed: int, backdoored: bool, quick: bool = False) -> Built:
        BUILD_CALLS.append((self.name, seed, backdoored))
        X, y = _data(seed, self.n_train)
        X_test, y_test = _data(10_000, 200)
        key = None
        if backdoored:
            key = PatchKey(0, 8.0, 1)
            idx = np.random.default_rng(seed + 1).choice(len(X), int(self.poison * len(X)), False)
            X, y = X.copy(), y.copy()
            X[idx] = key.activate(X[idx])
            y[idx] = key.target
        model = LogisticRegression(random_state=seed).fit(X, y)
        info: dict[str, Any] = {"target": 1, "n_poisoned": int(backdoored) * len(X) // 5}
        if backdoored:  # a model-valued info entry (like a wrapper's honest base)
            info["clean_model"] = LogisticRegression(random_state=seed).fit(*_data(seed, 50))
        return Built(model, key, backdoored, seed, X_test, y_test, X, y, info=info)


class ToyNullAttack(ToyPatchAttack):
    """A 'backdoor' that changes nothing: every detector must sit at chance on it."""

    name = "toy_null"

    def build(self, seed: int, backdoored: bool, quick: bool = False) -> Built:
        b = ToyPatchAttack(self.n_train, 0.0).build(seed, False, quick)
        b.backdoored = backdoored
        b.key = PatchKey(0, 0.0, 1) if backdoored else None
        return b


class PlainModel:
    """A model with no artifact format (cannot be cached)."""

    def __init__(self, w: np.ndarray) -> None:
        self.w = w

    def predict(self, X: np.ndarray) -> np.ndarray:
        return (np.asarray(X) @ self.w > 0).astype(np.int64)


class ToyPlainAttack(Attack):
    name = "toy_plain"

    def build(self, seed: int, backdoored: bool, quick: bool = False) -> Built:
        X, y = _data(seed, 50)
        w = np.random.default_rng(seed).normal(size=N_FEATURES)
        return Built(PlainModel(w), None, backdoored, seed, X, y)


# ---------------------------------------------------------------------------------------------
class ToyKeyAware(Detector):
    """Positive control: how often the candidate key flips the model to its target."""

    name = "toy_keyaware"
    needs = frozenset({"key", "queries"})

    def score(self, model: Any, evidence: Evidence) -> float:
        X = evidence.X[evidence.y != evidence.key.target]
        return float(np.mean(model.predict(evidence.key.activate(X)) == evidence.key.target))


class ToyWeight(Detector):
    """Weights: |coefficient| of feature 0 (where the toy trigger lives)."""

    name = "toy_weight"
    needs = frozenset({"weights"})

    def applies_to(self, model: Any) -> bool:
        return hasattr(model, "coef_")

    def score(self, model: Any, evidence: Evidence) -> Report:
        w = float(abs(model.coef_[0, 0]))
        return Report(w, {"norms": np.abs(model.coef_[0]).tolist(), "variants": {"negated": -w}})


class ToyInputFilter(Detector):
    """Per input: |x0| (the toy trigger makes it large)."""

    name = "toy_filter"
    needs = frozenset({"queries"})
    per_input = True

    def score(self, model: Any, evidence: Evidence) -> np.ndarray:
        return np.abs(evidence.X[:, 0])


class ToyTrainData(Detector):
    """Training data: fraction of training rows with x0 == 8 exactly (poisoned rows)."""

    name = "toy_traindata"
    needs = frozenset({"training_data"})

    def score(self, model: Any, evidence: Evidence) -> float:
        assert evidence.key is None and evidence.X is None  # only what it declared
        return float(np.mean(evidence.X_train[:, 0] == 8.0))


class ToyBroken(Detector):
    name = "toy_broken"
    needs = frozenset({"weights"})

    def score(self, model: Any, evidence: Evidence) -> float:
        raise RuntimeError("boom")


TOY_DETECTORS = (ToyKeyAware, ToyWeight, ToyInputFilter, ToyTrainData, ToyBroken)
TOY_ATTACKS = (ToyPatchAttack, ToyNullAttack)


@contextmanager
def key_kind() -> Iterator[None]:
    """The toy key kind, registered only while a test needs to load toy key files."""
    with files.KEYS.override(PatchKey.key_kind, PatchKey):
        yield


def install(monkeypatch: Any) -> None:
    """Replace the attack and detector registries by the toys for one test."""
    from backdoors.detectors import DETECTORS
    from backdoors.evaluation.recipes import ATTACKS

    monkeypatch.setattr(DETECTORS, "_items", {c.name: c for c in TOY_DETECTORS})
    monkeypatch.setattr(DETECTORS, "_loaded", True)
    monkeypatch.setattr(ATTACKS, "_items", {c.name: c for c in TOY_ATTACKS})
    monkeypatch.setattr(ATTACKS, "_loaded", True)


def toy_measure(honest: Any, backdoored: Any) -> dict[str, Any]:
    """A per-pair measure (module level, so workers can run it): seed and disagreement."""
    X = backdoored.X_test
    disagree = np.mean(honest.model.predict(X) != backdoored.model.predict(X))
    return {"seed": backdoored.seed, "disagreement": float(disagree)}


_CACHE: list[np.ndarray] = []  # a per-process cache, like a worker's dataset cache
_CALLS = [0]


def grow_cache(i: int) -> int:
    """From its second job on, a worker keeps 350 MB (loky's leak heuristic, checked at most
    once a second, replaces a worker that grew 300 MB past its size after its first job)."""
    import time

    _CALLS[0] += 1
    if _CALLS[0] >= 2 and not _CACHE:
        _CACHE.append(np.ones(350 * 2**20, np.uint8))
    time.sleep(0.4)
    return i * i
