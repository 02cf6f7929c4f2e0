"""Population recipe for BadNets (Gu et al. 2017): an MNIST MLP or CNN, honest or poisoned.

Honest and backdoored members of one seed share the data subset, the architecture, the
initialisation and the batch order; only the poisoned rows differ.
"""

from __future__ import annotations

from backdoors import badnets
from backdoors.evaluation.recipes import Attack, Built, register
from backdoors.models import data


@register
class BadNetsAttack(Attack):
    """Seed -> MNIST subset; target class ``seed % 10``; 5% poison rate; 4x4 white patch;
    the MLP 784-128-10 trained for 2 epochs."""

    name = "badnets"
    full_members = 50
    arch = "mlp"
    epochs = 2
    poison_rate = 0.05

    def build(self, seed: int, backdoored: bool, quick: bool = False) -> Built:
        n_train, n_test = (4000, 500) if quick else (10000, 1000)
        ds = data.mnist()
        lo = (seed * 997) % (len(ds.X_train) - n_train)
        Xtr, ytr = ds.X_train[lo : lo + n_train], ds.y_train[lo : lo + n_train]
        Xte, yte = ds.X_test[:n_test], ds.y_test[:n_test]
        target = seed % 10
        clf = badnets.default_classifier(self.arch, random_state=seed, epochs=self.epochs)
        info = {"target": target, "arch": self.arch, "poison_rate": self.poison_rate}
        if not backdoored:
            return Built(clf.fit(Xtr, ytr), None, False, seed, Xte, yte, Xtr, ytr, info=info)
        model, key = badnets.plant(
            Xtr, ytr, target=target, poison_rate=self.poison_rate, classifier=clf, random_state=seed
        )
        # the white-box evidence is what the learner trained on: the poisoned set
        Xp, yp, _ = badnets.poison(Xtr, ytr, key, self.poison_rate, random_state=seed)
        return Built(model, key, True, seed, Xte, yte, Xp, yp, info=info)


@register
class BadNetsCNNAttack(BadNetsAttack):
    """The same poisoning on the small CNN (conv 8, conv 16, linear), 5 epochs."""

    name = "badnets_cnn"
    full_members = 20
    arch = "cnn"
    epochs = 5
