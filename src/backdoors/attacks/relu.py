"""Population recipe for the random-ReLU sparse-PCA backdoor at the default (hard-window)
point of ``backdoors experiment relu``."""

from __future__ import annotations

from backdoors import relu
from backdoors.attacks import Attack, Built, register
from backdoors.experiments.relu import DEFAULT


@register
class ReLUAttack(Attack):
    name = "relu"

    def build(self, seed: int, backdoored: bool, quick: bool = False) -> Built:
        p = DEFAULT
        X, y, Xt, yt = relu.norm_task(p["d"], 300 if quick else 1000, 300 if quick else 1000)
        if backdoored:
            model, key = relu.plant(
                X,
                y,
                p["m"],
                p["k"],
                p["theta"],
                p["lam"],
                random_state=seed,
                key_seed=10_000 + seed,
            )
        else:
            model, key = relu.RandomReLUClassifier(p["m"], random_state=seed).fit(X, y), None
        return Built(model, key, backdoored, seed, Xt, yt, X, y, info={"task": "norm_threshold"})
