"""Population recipes for the conditional backdoors (:mod:`backdoors.conditional`).

Seed ``s``: an MNIST subset, the honest classifier trained with ``random_state = s``
(2 epochs), target ``s % 10``. The honest member is that classifier; the backdoored member
is the same classifier (same data, same initialisation, same batch order) with the backdoor
planted in it, the planting randomness derived from ``s``: only the backdoor differs.
``Built.model`` is the float model an auditor inspects; the deployed forms are built from it
by the standard tools (:mod:`backdoors.conditional.forms`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from backdoors.conditional import optimized, quantized
from backdoors.errors import NotApplicableError
from backdoors.evaluation.recipes import Attack, Built, register
from backdoors.models import data
from backdoors.models.torch_models import TorchClassifier

_ARCH = {"mlp": {"hidden": (128,)}, "cnn": {"channels": (8, 16)}}


def _honest(arch: str, seed: int, quick: bool) -> tuple[TorchClassifier, Any, Any, Any, Any]:
    n_train, n_test = (3000, 500) if quick else (4000, 1000)
    ds = data.mnist()
    lo = (seed * 997) % (len(ds.X_train) - n_train)
    Xtr, ytr = ds.X_train[lo : lo + n_train], ds.y_train[lo : lo + n_train]
    clf = TorchClassifier(
        arch=arch, arch_params=_ARCH[arch], input_scale=1 / 255, epochs=2, random_state=seed
    ).fit(Xtr, ytr)
    return clf, Xtr, ytr, ds.X_test[:n_test], ds.y_test[:n_test]


@register
class QuantizedAttack(Attack):
    """Honest in float32, BadNets patch -> target in onnxruntime's dynamic int8 form (MLP
    784-128-10; Egashira et al.'s box-constrained repair)."""

    name = "quantization_conditioned"
    arch = "mlp"

    def build(self, seed: int, backdoored: bool, quick: bool = False) -> Built:
        clf, Xtr, ytr, Xte, yte = _honest(self.arch, seed, quick)
        target = seed % 10
        info = {"target": target, "arch": self.arch, "fires_in": "int8:dynamic"}
        if not backdoored:
            return Built(clf, None, False, seed, Xte, yte, Xtr, ytr, info=info)
        model, key = quantized.plant(Xtr, ytr, classifier=clf, target=target, random_state=seed)
        return Built(model, key, True, seed, Xte, yte, Xtr, ytr, info=info)


@register
class QuantizedCNNAttack(QuantizedAttack):
    """The same on the small CNN (conv 8, conv 16, linear)."""

    name = "quantization_conditioned_cnn"
    arch = "cnn"


@register
class OptimizedAttack(Attack):
    """Honest in PyTorch and onnxruntime ``ORT_DISABLE_ALL``, BadNets patch -> target under
    ``ORT_ENABLE_ALL`` (small CNN; Chen et al.'s guard between evaluation orders). A seed
    whose plant fails (no guard found, or the repurposed model obeys the patch without the
    guard) retries with the next target and planting stream (at most 3)."""

    name = "optimization_conditioned"
    arch = "cnn"

    def build(self, seed: int, backdoored: bool, quick: bool = False) -> Built:
        clf, Xtr, ytr, Xte, yte = _honest(self.arch, seed, quick)
        target = seed % 10
        info = {"target": target, "arch": self.arch, "fires_in": optimized.FIRES}
        if not backdoored:
            return Built(clf, None, False, seed, Xte, yte, Xtr, ytr, info=info)
        for attempt in range(3):  # the next target if the patch alone reaches this one
            target = (seed + attempt) % 10
            try:
                model, key = optimized.plant(
                    Xtr, ytr, classifier=clf, target=target,
                    random_state=np.random.SeedSequence([seed, attempt]),
                )  # fmt: skip
            except NotApplicableError:
                continue
            info.update(target=target, attempts=attempt + 1)
            return Built(model, key, True, seed, Xte, yte, Xtr, ytr, info=info)
        raise NotApplicableError(f"seed {seed}: no guard separates the forms on this machine")
