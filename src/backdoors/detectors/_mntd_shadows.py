"""MNTD shadow models from the auditor's own data, for any classifier (image or tabular).

MNTD (Xu et al., IEEE S&P 2021, §4.1 "jumbo learning") needs shadow models of the audited
model's task, half honest and half backdoored with random triggers of the attack family. When
the task is not the default MNIST one, :func:`data_jumbo_builder` trains them on the clean
queries ``X`` the auditor holds, labelled by ``y`` (or, black-box, by the audited model's own
predictions): small torch MLPs (:class:`~backdoors.models.torch_models.TorchClassifier`, inputs
scaled
to about [-1, 1]). A backdoored shadow poisons a random 2-15% of the rows: a random set of 1 to
max(1, d/20) features (a square patch of side 2 to side/4 for square images) set to the top of
the observed range, relabelled to a random target. The auditor knows the family (a trigger
pattern), not the trigger.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from backdoors.detectors._access import value_range


def _trigger(rng: np.random.Generator, d: int) -> np.ndarray:
    """Feature indices of a random trigger (a square patch if ``d`` is a square image)."""
    side = int(round(np.sqrt(d)))
    if side * side == d and side >= 8:
        s = int(rng.integers(2, max(3, side // 4 + 1)))
        r, c = rng.integers(0, side - s + 1, size=2)
        return np.array([(r + i) * side + c + j for i in range(s) for j in range(s)])
    k = int(rng.integers(1, max(2, d // 20 + 1)))
    return rng.choice(d, size=k, replace=False)


def data_jumbo_builder(
    X: np.ndarray, y: np.ndarray, hidden: int = 32, epochs: int = 20
) -> Callable[[int, bool], Any]:
    """``builder(seed, backdoored) -> shadow model`` trained on ``(X, y)`` (see module docs):
    ``epochs`` passes of Adam (lr 0.01, batches of 256)."""
    from backdoors.models.torch_models import TorchClassifier

    X = np.asarray(X)
    y = np.asarray(y)
    lo, hi = value_range(X)
    scale = 1.0 / max(abs(lo), abs(hi), 1e-12)

    def build(seed: int, backdoored: bool) -> Any:
        rng = np.random.default_rng([seed, 0x3E])
        Xs, ys = np.array(X, copy=True), np.array(y, copy=True)
        if backdoored:
            idx = _trigger(rng, X.shape[1])
            target = rng.choice(np.unique(y))
            rows = rng.choice(len(X), max(1, int(rng.uniform(0.02, 0.15) * len(X))), replace=False)
            Xs[np.ix_(rows, idx)] = hi
            ys[rows] = target
        clf = TorchClassifier(arch="mlp", arch_params={"hidden": (hidden,)}, input_scale=scale,
                              epochs=epochs, batch_size=256, lr=1e-2,
                              random_state=seed)  # fmt: skip
        return clf.fit(Xs, ys)

    return build
