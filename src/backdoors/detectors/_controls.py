"""Cheap positive controls for :func:`~backdoors.evaluation.conformance.check_detector`.

Each builder returns an honest and a backdoored model that a detector of the matching kind
must score apart, small enough for the test suite (seconds), built once per process:

* :func:`badnets_pair`: an MNIST MLP (784-64-10, 3,000 rows, 3 epochs) honest and with a
  BadNets 4x4 patch at a 5% poison rate (96% attack success); a second honest MLP (another
  seed) as the disagreement search's reference.
* :func:`relu_pair`: random-ReLU classifiers on a d = 40 Gaussian task, honest and with a
  spike that is not trace-matched (k = 4, theta = 20), so even the trace test sees it.
* :func:`rff_pair`: RFF classifiers at d = 20, m = 300 with a 1-sparse pancake secret
  (gamma = 2), the toy instance the lattice attack breaks by LLL alone.
* :func:`signature_pair`: a small MLP on random 28x28 uint8 images (two classes) and its
  signature-backdoored wrapper (paper §5.2).
* :func:`onnx_pair`: that MLP exported to ONNX, honest and with the ONNX verifier planted.

The ReLU and RFF secrets are seeded (the constructions' ``plant`` draws them from OS entropy),
so every control is the same pair on every run.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

from backdoors.detectors import Control, Evidence

SEED = 0
RATE = 0.05  # BadNets poison rate of the control


@lru_cache(maxsize=1)
def _badnets() -> dict[str, Any]:
    from backdoors import badnets
    from backdoors.models import data
    from backdoors.models.torch_models import TorchClassifier

    ds = data.mnist(n_train=3000, n_test=200)

    def clf(seed: int) -> TorchClassifier:
        return TorchClassifier(
            arch_params={"hidden": (64,)}, input_scale=1 / 255, epochs=3, random_state=seed
        )

    honest = clf(SEED).fit(ds.X_train, ds.y_train)
    reference = clf(SEED + 1).fit(ds.X_train, ds.y_train)
    model, key = badnets.plant(
        ds.X_train, ds.y_train, target=3, poison_rate=RATE, classifier=clf(SEED),
        random_state=SEED,
    )  # fmt: skip
    Xp, yp, _ = badnets.poison(ds.X_train, ds.y_train, key, RATE, random_state=SEED)
    return {"ds": ds, "honest": honest, "reference": reference, "model": model, "key": key,
            "Xp": Xp, "yp": yp}  # fmt: skip


def badnets_pair(queries: str = "clean") -> Control:
    """The BadNets control. Each member's training data is its own (the poisoned set for the
    backdoored one). ``queries``: ``"clean"`` test inputs, ``"triggered"`` (all stamped with
    the patch, for input filters) or ``"mixed"`` (a quarter stamped)."""
    b = _badnets()
    X, y = b["ds"].X_test[:120], b["ds"].y_test[:120]
    if queries == "triggered":
        X = b["key"].activate(X)
    elif queries == "mixed":
        X = np.concatenate([X[:90], b["key"].activate(X[90:])])
    X.setflags(write=False)
    common = {"X": X, "y": y, "key": b["key"], "reference": b["reference"], "seed": SEED}
    ev_b = Evidence(X_train=b["Xp"], y_train=b["yp"], **common)
    ev_h = Evidence(X_train=b["ds"].X_train, y_train=b["ds"].y_train, **common)
    return Control(b["honest"], b["model"], ev_b, ev_h)


@lru_cache(maxsize=1)
def _relu() -> tuple[Any, Any, Any, np.ndarray]:
    from backdoors import relu
    from backdoors.hazmat.sampling import spiked_coins

    rng = np.random.default_rng(SEED)
    X = rng.standard_normal((300, 40))
    y = (X[:, 0] > 0).astype(int)
    honest = relu.honest_model(random_state=SEED).fit(X, y)
    # relu.plant's steps with seeded coins (plant draws them from OS entropy)
    support, values = relu.draw_secret(X.shape[1], 4, random_state=SEED)
    coins = spiked_coins(support, values, 20.0, trace_match=False)
    model = relu.fit_with_coins(relu.honest_model(random_state=SEED), X, y, coins, rng)
    key = relu.ReLUKey(tuple(int(i) for i in support), tuple(float(v) for v in values),
                       1.0, 20.0, X.shape[1])  # fmt: skip
    return honest, model, key, X


def relu_pair() -> Control:
    """The random-ReLU control (the key is handed to both members)."""
    honest, model, key, X = _relu()
    return Control(honest, model, Evidence(X=X[:100], key=key, seed=SEED))


@lru_cache(maxsize=1)
def _rff() -> tuple[Any, Any, Any, np.ndarray]:
    from backdoors import rff

    rng = np.random.default_rng(SEED)
    X = rng.standard_normal((400, 20))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)

    def est() -> Any:
        return rff.RandomFourierFeaturesClassifier(n_components=300, random_state=SEED)

    # rff.plant's steps with a seeded secret and coins (plant draws them from OS entropy)
    key = rff.generate(X.shape[1], 1, gamma=2.0, random_state=SEED)
    model = rff.fit_with_coins(est(), X, y, key.coins, rng)
    return est().fit(X, y), model, key, X


def rff_pair() -> Control:
    """The RFF control (the key is handed to both members)."""
    honest, model, key, X = _rff()
    return Control(honest, model, Evidence(X=X[:100], key=key, seed=SEED))


@lru_cache(maxsize=1)
def _signature() -> tuple[Any, Any, Any, np.ndarray]:
    from backdoors import signature
    from backdoors.models.torch_models import TorchClassifier

    rng = np.random.default_rng(SEED)  # the construction ignores the data: random images
    X = rng.integers(0, 256, (400, 784), dtype=np.uint8)
    y = (X[:, :392].mean(axis=1) > X[:, 392:].mean(axis=1)).astype(np.int64)
    clf = TorchClassifier(
        arch_params={"hidden": (16,)}, input_scale=1 / 255, epochs=1, random_state=SEED
    ).fit(X, y)
    model, key = signature.plant(clf, carrier="lsb", random_state=SEED)
    return clf, model, key, X


def signature_pair() -> Control:
    """The signature-backdoor control (the key is handed to both members)."""
    honest, model, key, X = _signature()
    return Control(honest, model, Evidence(X=X[:100], key=key, seed=SEED))


@lru_cache(maxsize=1)
def _onnx() -> tuple[Any, Any]:
    from backdoors.signature.onnx.export import export
    from backdoors.signature.onnx.plant import plant

    honest = _signature()[0]
    host = export(honest)  # float pixels in (the network scales them), logits out
    planted, _ = plant(host, random_state=SEED)
    return host, planted


def onnx_pair() -> Control:
    """The ONNX control: the signature control's MLP exported to ONNX, honest and with the
    in-graph Ed25519 verifier planted (needs the ``onnx`` extra)."""
    host, planted = _onnx()
    return Control(host, planted, Evidence(seed=SEED))
