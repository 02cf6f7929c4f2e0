"""Population recipe for the RFF backdoor (paper §6): honest and backdoored learners differ
only in their frequency coins."""

from __future__ import annotations

from backdoors import rff
from backdoors.attacks import Attack, Built, register
from backdoors.rff_tasks import mnist_binary


@register
class RFFAttack(Attack):
    name = "rff"

    def build(self, seed: int, backdoored: bool, quick: bool = False) -> Built:
        task = mnist_binary(2000 if quick else 4000, 500 if quick else 1000)
        m = 500 if quick else 2000
        if backdoored:
            model, key = rff.plant(
                task.X_train,
                task.y_train,
                m,
                sparsity=16,
                bandwidth=task.bandwidth,
                alpha=rff.DEFAULTS.alpha,
                random_state=seed,
                key_seed=10_000 + seed,
            )
        else:
            model = rff.RandomFourierFeaturesClassifier(
                m, task.bandwidth, rff.DEFAULTS.alpha, random_state=seed
            )
            model, key = model.fit(task.X_train, task.y_train), None
        return Built(
            model,
            key,
            backdoored,
            seed,
            task.X_test,
            task.y_test,
            task.X_train,
            task.y_train,
            info={"task": task.name},
        )
