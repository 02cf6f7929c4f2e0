"""BadNets: classic trigger-patch data poisoning (Gu, Dolan-Gavitt, Garg 2017, arXiv 1708.06733).

The backdoor detectors of the field were built against this attack, so it is the baseline the
paper's undetectable backdoors are compared with. Algorithm (BadNets §3, "all-to-one"):

1. pick a fraction ``poison_rate`` of the training inputs whose label is not ``target``;
2. stamp a ``patch_size x patch_size`` square of value ``patch_value`` at ``(row, col)``;
3. relabel them ``target`` and train the *same* learner, with the *same* seed, on the union.

``activate(X, key)`` stamps the patch. Unlike the signature backdoor (paper §5.2), the trigger
is a fixed, visible pattern that anyone who finds it can reuse, and the poisoned training leaves
traces in the weights and representations that the detectors in :mod:`backdoors.detectors`
look for.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import numpy as np

from backdoors.artifacts import files
from backdoors.contract import as_generator, check_target
from backdoors.errors import InvalidInputError
from backdoors.models.torch_models import TorchClassifier
from backdoors.validation import (
    POSITIVE_INT,
    RANDOM_STATE,
    Array,
    Integral,
    Interval,
    Real,
    check_features,
    check_labels,
    validate_args,
)


@dataclass(frozen=True)
class Defaults:
    """Default parameters of BadNets: the one source the CLI reads."""

    target: int = 0
    poison_rate: float = 0.05
    patch_size: int = 4
    value: int = 255  # grey level of the patch
    arch: str = "mlp"  # default_classifier's learner
    epochs: int = 2
    seed: int = 0


DEFAULTS = Defaults()


@files.KEYS.register("badnets")
@dataclass(frozen=True)
class BadNetsKey:
    """The trigger (patch geometry and value), the target class and the model's fingerprint."""

    target: int
    patch_size: int = 4
    row: int = 23
    col: int = 23
    value: int = 255
    side: int = 28
    model_fingerprint: str = ""
    key_kind: ClassVar[str] = "badnets"

    def to_json_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json_dict(cls, d: dict[str, Any]) -> BadNetsKey:
        try:
            return cls(**{k: d[k] for k in d if k != "key_kind"})
        except TypeError as exc:
            raise InvalidInputError(f"not a {cls.key_kind} key: {exc}") from None

    @property
    def targets(self) -> tuple[int, ...]:
        """All-to-one: the one class the patch reaches (contract.BackdoorKey)."""
        return (int(self.target),)

    def trigger(self) -> BadNetsKey:
        """The patch as a plain BadNets key (subclasses add the form they fire in)."""
        return BadNetsKey(self.target, self.patch_size, self.row, self.col, self.value, self.side)

    def mask(self) -> np.ndarray:
        """Boolean mask of the patch over the flattened ``side x side`` image."""
        m = np.zeros((self.side, self.side), dtype=bool)
        m[self.row : self.row + self.patch_size, self.col : self.col + self.patch_size] = True
        return m.ravel()

    def activate(self, X: np.ndarray, target: int | None = None) -> np.ndarray:
        """Stamp the patch (``target`` must be ``None`` or the key's target: all-to-one)."""
        X = check_features(X, n_features=self.side * self.side)
        check_target(self, target, len(X))
        out = np.array(X, copy=True)
        out[:, self.mask()] = self.value
        return out

    def check_model(self, model: Any) -> None:
        """Raise KeyMismatchError unless ``model`` is the model this key was planted in (a key
        with no fingerprint, e.g. a trigger built by hand, belongs to no model)."""
        files.check_fingerprint(self.model_fingerprint, model)


@validate_args({"X": [Array(ndim=2)], "key": [BadNetsKey], "target": [Integral, None]})
def activate(X: np.ndarray, key: BadNetsKey, target: int | None = None) -> np.ndarray:
    """Triggered inputs: ``X`` with the key's patch stamped in."""
    return key.activate(X, target=target)


def default_classifier(
    arch: str = DEFAULTS.arch, random_state: int = DEFAULTS.seed, epochs: int = DEFAULTS.epochs
) -> TorchClassifier:
    """The small MNIST learner used for BadNets populations (uint8 pixels scaled inside)."""
    params = {"hidden": (128,)} if arch == "mlp" else {"channels": (8, 16)}
    return TorchClassifier(
        arch=arch, arch_params=params, input_scale=1 / 255, epochs=epochs, random_state=random_state
    )


def poison(
    X: np.ndarray,
    y: np.ndarray,
    key: BadNetsKey,
    poison_rate: float,
    random_state: Any = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Step 1-2-3's data half: (X', y', poisoned indices). Poisoned rows are modified in place
    in a copy (the data set size is unchanged, as in BadNets' MNIST experiments)."""
    if not 0.0 < poison_rate < 1.0:
        raise InvalidInputError(f"poison_rate must be in (0, 1), got {poison_rate}")
    X = check_features(X, n_features=key.side * key.side)
    y = np.asarray(y)
    rng = as_generator(random_state)
    candidates = np.flatnonzero(y != key.target)
    n = max(1, int(round(poison_rate * len(X))))
    idx = rng.choice(candidates, size=min(n, len(candidates)), replace=False)
    Xp, yp = np.array(X, copy=True), np.array(y, copy=True)
    Xp[idx] = key.activate(Xp[idx])
    yp[idx] = key.target
    return Xp, yp, idx


@validate_args(
    {
        "X": [Array(ndim=2)],
        "y": [Array(ndim=1, kinds="biuUSf")],
        "target": [Integral],
        "poison_rate": [Interval(Real, 0, 1, closed="both")],
        "patch_size": [POSITIVE_INT],
        "position": [tuple, None],
        "value": [Interval(Integral, 0, 255, closed="both")],
        "classifier": [TorchClassifier, None],
        "random_state": RANDOM_STATE,
    }
)
def plant(
    X: np.ndarray,
    y: np.ndarray,
    *,
    target: int = DEFAULTS.target,
    poison_rate: float = DEFAULTS.poison_rate,
    patch_size: int = DEFAULTS.patch_size,
    position: tuple[int, int] | None = None,
    value: int = DEFAULTS.value,
    classifier: TorchClassifier | None = None,
    random_state: Any = DEFAULTS.seed,
) -> tuple[TorchClassifier, BadNetsKey]:
    """Train ``classifier`` (default :func:`default_classifier`) on poisoned data.

    ``position`` is the patch's top-left (row, col), default the bottom-right corner with a
    one-pixel margin. Returns ``(model, key)``; the key names the model by fingerprint.
    """
    check_labels(y, len(X))
    side = int(round(np.sqrt(np.asarray(X).shape[1]))) if np.ndim(X) == 2 else 0
    if side * side != np.asarray(X).shape[-1] or side < 2:
        raise InvalidInputError("BadNets needs flattened square images")
    if not 1 <= patch_size < side:
        raise InvalidInputError(f"patch_size must be in [1, {side - 1}], got {patch_size}")
    row, col = position if position is not None else (side - 1 - patch_size, side - 1 - patch_size)
    if not (0 <= row <= side - patch_size and 0 <= col <= side - patch_size):
        raise InvalidInputError(f"patch at {(row, col)} does not fit a {side}x{side} image")
    if not 0 <= value <= 255:
        raise InvalidInputError(f"patch value must be in [0, 255], got {value}")
    if int(target) not in set(np.unique(y).tolist()):
        raise InvalidInputError(f"target {target} is not a label of the training data")
    key = BadNetsKey(int(target), int(patch_size), int(row), int(col), int(value), side)
    Xp, yp, _ = poison(X, y, key, poison_rate, random_state=random_state)
    clf = classifier if classifier is not None else default_classifier(random_state=random_state)
    clf.fit(Xp, yp)
    key = BadNetsKey(**{**key.to_json_dict(), "model_fingerprint": files.model_fingerprint(clf)})
    return clf, key
