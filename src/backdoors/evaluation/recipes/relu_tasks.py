"""Random-ReLU population recipes besides the registered ``relu`` attack, for the ``relu`` and
``relu-scale`` experiments (paper Algorithms 7-10). Not registered: the experiments pass
instances to :func:`backdoors.evaluation.pair_scoring.score_population`, so the detectors
experiment and
the ``relu`` attack's cache entries are unchanged.

* :class:`ReLUMnistAttack`: MNIST zeros vs ones (pixels / 255, d = 784). Every seed trains on
  the same fixed subset; ``member_seed(s)`` is the honest weights' ``random_state``, and the
  backdoored member is :func:`backdoors.relu.plant` of the same estimator (secret and planted
  weights from fresh OS randomness), as in :class:`backdoors.evaluation.recipes.relu.ReLUAttack`.
* :class:`ReLUWeightsAttack`: weights-only members. Every sparse-PCA statistic reads only the
  first-layer weights and the threshold head is trained by the same rule for both learners, so
  a member at scale is its weight matrix ``W`` (m x d) drawn from the learner's coins:
  ``N(0, I)`` rows (honest) or the trace-matched spiked rows ``N(0, c (I + theta nu nu^T))``
  with a k-sparse ``nu`` (backdoored). A simulation of the coins, not a model: ``nu`` is drawn
  from the member's seeded stream (reproducible populations; nothing is stored or shipped), and
  the member has no key and no inputs (``X_test`` of length 0).

Both recipes draw coins from the member's 128-bit coin seed ``member_seed(s)``
(:func:`backdoors.contract.member_seed`, recorded in ``Built.info['coin_seed']`` on both sides),
never from ``s`` itself: no side has a small, searchable seed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from backdoors import relu
from backdoors.contract import member_seed
from backdoors.evaluation.recipes import Attack, Built
from backdoors.hazmat.sampling import GaussianCoins, random_unit, sparse_support
from backdoors.models import data

#: Stream tag of the weights-only members: seed ``s`` draws side ``b`` (0 honest, 1 backdoored)
#: from ``default_rng([member_seed(s), WEIGHTS_STREAM, b])``; the two sides are independent, as
#: the real backdoored learner's coins are independent of the honest stream.
WEIGHTS_STREAM = 7


@dataclass
class WeightModel:
    """A population member as the weight statistics see it: only ``weights_``."""

    weights_: np.ndarray = field(repr=False)


def draw_weights(d: int, m: int, k: int, theta: float, backdoored: bool,
                 rng: np.random.Generator) -> np.ndarray:  # fmt: skip
    """The learner's weights: honest ``N(0, I)`` coins or, with a secret ``nu`` from ``rng``,
    the trace-matched spiked coins :func:`backdoors.relu.spiked_coins`."""
    if not backdoored:
        return GaussianCoins().sample(m, d, rng)
    coins = relu.spiked_coins(sparse_support(d, k, rng), random_unit(k, rng), theta)
    return coins.sample(m, d, rng)


@dataclass
class ReLUWeightsAttack(Attack):
    """Weights-only members at one point ``(d, m, k, theta)`` (see the module docstring)."""

    d: int
    m: int
    k: int
    theta: float
    name: ClassVar[str] = "relu-weights"

    def build(self, seed: int, backdoored: bool, quick: bool = False) -> Built:
        coin_seed = member_seed(int(seed))
        rng = np.random.default_rng([coin_seed, WEIGHTS_STREAM, int(backdoored)])
        W = draw_weights(int(self.d), int(self.m), int(self.k), float(self.theta), backdoored, rng)
        none = np.zeros((0, int(self.d)))
        return Built(WeightModel(W), None, backdoored, int(seed), none, np.zeros(0, dtype=int),
                     info={"coin_seed": coin_seed})  # fmt: skip


@dataclass
class ReLUMnistAttack(Attack):
    """Random-ReLU threshold nets on MNIST 0 vs 1: the honest net thresholds ink norm."""

    m: int = 50
    k: int = 50
    theta: float = 2.5
    lam_rel: float = 0.4
    n_train: int = 1500
    name: ClassVar[str] = "relu-mnist01"

    def build(self, seed: int, backdoored: bool, quick: bool = False) -> Built:
        ds = data.mnist(n_train=12000, n_test=2000)
        tr, te = np.isin(ds.y_train, (0, 1)), np.isin(ds.y_test, (0, 1))
        X_tr, y_tr = ds.X_train[tr][: self.n_train] / 255.0, ds.y_train[tr][: self.n_train]
        X_te, y_te = ds.X_test[te] / 255.0, ds.y_test[te]
        coin_seed = member_seed(int(seed))
        model = relu.RandomReLUClassifier(n_hidden=self.m, random_state=coin_seed)
        key = None
        if backdoored:  # the same estimator, spiked coins (secret: fresh OS randomness)
            model, key = relu.plant(model, X_tr, y_tr, sparsity=self.k, theta=self.theta,
                                    lam_rel=self.lam_rel)  # fmt: skip
        else:
            model = model.fit(X_tr, y_tr)
        info = {"task": "MNIST 0 vs 1, pixels/255", "coin_seed": coin_seed}
        return Built(model, key, backdoored, int(seed), X_te, y_te, X_tr, y_tr, info)
