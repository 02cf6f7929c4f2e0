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
        model = rff.RandomFourierFeaturesClassifier(
            n_components=m, bandwidth=task.bandwidth, alpha=rff.DEFAULTS.alpha, random_state=seed
        )
        if backdoored:  # the same estimator, pancake coins (secret: fresh OS randomness)
            model, key = rff.plant(model, task.X_train, task.y_train)  # default k
        else:
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
