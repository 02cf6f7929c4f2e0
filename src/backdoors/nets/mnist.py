"""Shared ingredients of the nets experiments: a trained MNIST MLP and its checksum network."""

from __future__ import annotations

import numpy as np

from backdoors.models import data
from backdoors.models.torch_models import TorchClassifier, mnist_mlp_params
from backdoors.nets import checksum


def mnist_mlp(quick: bool, seed: int) -> tuple[data.Dataset, TorchClassifier]:
    """MNIST and the demo MLP (quick: 5k train / 2k test, 64 hidden units, 2 epochs)."""
    if quick:
        ds = data.mnist(n_train=5000, n_test=2000)
        params = mnist_mlp_params(True, seed) | {"arch_params": {"hidden": (64,)}}
    else:
        ds = data.mnist()
        params = mnist_mlp_params(False, seed)
    return ds, TorchClassifier(**params).fit(ds.X_train, ds.y_train)


def random_inputs(n: int, seed: int, n_features: int = 784) -> np.ndarray:
    return np.random.default_rng([seed, 7]).integers(0, 256, (n, n_features)).astype(np.uint8)


def planted(quick: bool, seed: int):
    ds, clf = mnist_mlp(quick, seed)
    model, key = checksum.plant(clf, random_state=seed)
    return ds, clf, model, key
