"""Shared fixtures. Registries are never mutated for good: tests use ``Registry.override``
or monkeypatch, so one test's kinds do not leak into another's. The MNIST subset and its small
MLP are built once per session: a test that changes the model works on a ``copy.deepcopy``."""

from __future__ import annotations

import pytest

import population_toys
from backdoors.models import data
from backdoors.models.torch_models import TorchClassifier


@pytest.fixture
def toy_key_kind():
    """The toy population key kind, registered for one test."""
    with population_toys.key_kind():
        yield


@pytest.fixture(scope="session")
def mnist_small() -> data.Dataset:
    """The first 3000 MNIST training and 500 test images (uint8, flattened to 784)."""
    return data.mnist(n_train=3000, n_test=500)


@pytest.fixture(scope="session")
def mnist_mlp(mnist_small: data.Dataset) -> TorchClassifier:
    """A 784-32-10 MLP on pixels / 255, 3 seeded epochs on :func:`mnist_small` (about 85%
    test accuracy). Shared by the session: never train or mutate it in place."""
    clf = TorchClassifier(arch_params={"hidden": (32,)}, input_scale=1 / 255, epochs=3,
                          lr=3e-3, random_state=0)  # fmt: skip
    return clf.fit(mnist_small.X_train, mnist_small.y_train)


@pytest.fixture
def standin():
    """Plant ONNX signature backdoors with the TEST-ONLY table verifier (accepts nothing):
    small graphs, fast loads. Overrides the ``fast`` entry of the verifier registry, which is
    what every plant path (API and CLI) reads."""
    from backdoors.signature.onnx.plant import VERIFIERS
    from onnx_standin import table_verifier

    with VERIFIERS.override("fast", lambda: table_verifier([])):
        yield
