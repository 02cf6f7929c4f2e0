"""Population recipe for the signature backdoor: an MNIST MLP, honest or wrapped (paper §5.2)."""

from __future__ import annotations

from backdoors import signature
from backdoors.evaluation.recipes import Attack, Built, register
from backdoors.models import data
from backdoors.models.torch_models import TorchClassifier


@register
class SignatureAttack(Attack):
    """Seed -> MNIST subset + 784-128-10 MLP; the backdoored member wraps the same MLP."""

    name = "signature"
    full_members = 50

    def build(self, seed: int, backdoored: bool, quick: bool = False) -> Built:
        n_train, n_test = (4000, 500) if quick else (12000, 1000)
        ds = data.mnist()
        lo = (seed * 997) % (len(ds.X_train) - n_train)
        Xtr, ytr = ds.X_train[lo : lo + n_train], ds.y_train[lo : lo + n_train]
        Xte, yte = ds.X_test[:n_test], ds.y_test[:n_test]
        clf = TorchClassifier(
            arch_params={"hidden": (128,)},
            input_scale=1 / 255,
            epochs=1 if quick else 2,
            random_state=seed,
        ).fit(Xtr, ytr)
        model, key = clf, None
        if backdoored:
            model, key = signature.plant(clf, carrier="lsb", random_state=seed)
        return Built(
            model, key, backdoored, seed, Xte, yte, Xtr, ytr, info={"honest": clf, "carrier": "lsb"}
        )
