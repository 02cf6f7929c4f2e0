"""Population recipe for the random-ReLU sparse-PCA backdoor (paper Algorithms 7-10).

One member = one learner run on the synthetic norm-threshold task (data from the stream
``[seed, 2]``, shared by the honest and the backdoored member of a seed). Both members' learner
seed is the 128-bit coin seed ``member_seed(seed)`` (:func:`backdoors.contract.member_seed`,
recorded in ``Built.info['coin_seed']``): the honest member draws ``N(0, I)`` coins from it,
the backdoored one the (trace-matched) spiked coins from OS entropy; neither has a small seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from backdoors import relu
from backdoors.contract import member_seed
from backdoors.evaluation.recipes import Attack, Built, register

#: The default (hard-window) point, measured in docs/relu.md.
DEFAULT = {"d": 2000, "m": 100, "k": 100, "theta": 2.5, "lam_rel": 0.4}


@dataclass
class ReLUPoint:
    """Parameters of one grid point."""

    d: int = DEFAULT["d"]
    m: int = DEFAULT["m"]
    k: int = DEFAULT["k"]
    theta: float = DEFAULT["theta"]
    lam_rel: float = DEFAULT["lam_rel"]
    n_train: int = 600
    n_test: int = 1000
    head: str = "threshold"


@lru_cache(maxsize=4)
def task_data(seed: int, n_train: int, n_test: int, d: int) -> tuple[np.ndarray, ...]:
    """The norm-threshold task of seed ``seed`` (stream ``[seed, 2]``), shared by the honest
    and the backdoored member of that seed: generated once per process (the two builds of a
    pair scored in one worker), read-only so that no member can alter the other's data."""
    rng = np.random.default_rng([seed, 2])
    X_tr, y_tr = relu.norm_task(n_train, d, rng)
    X_te, y_te = relu.norm_task(n_test, d, rng)
    out = (X_tr, y_tr, X_te, y_te)
    for a in out:
        a.setflags(write=False)
    return out


@register
class ReLUAttack(Attack):
    """Honest Train-Random-ReLU vs Backdoor-Random-ReLU on the norm-threshold task."""

    name = "relu"
    full_members = 50

    def __init__(self, point: ReLUPoint | None = None) -> None:
        self.point = point or ReLUPoint()

    def build(self, seed: int, backdoored: bool, quick: bool = False) -> Built:
        p = self.point
        X_tr, y_tr, X_te, y_te = task_data(int(seed), p.n_train, p.n_test, p.d)
        key = None
        coin_seed = member_seed(int(seed))
        model = relu.honest_model(p.head, p.m, coin_seed)
        if backdoored:  # the same estimator, spiked coins (secret: fresh OS randomness)
            model, key = relu.plant(model, X_tr, y_tr, sparsity=p.k, theta=p.theta,
                                    lam_rel=p.lam_rel)  # fmt: skip
        else:
            model = model.fit(X_tr, y_tr)
        info = {"point": vars(p).copy(), "coin_seed": coin_seed}
        return Built(model, key, backdoored, seed, X_te, y_te, X_tr, y_tr, info)


class SmallSeedReLUAttack(ReLUAttack):
    """The ``seed_search`` detector's positive control (not registered): honest member ``s``
    seeded with ``s`` itself (the layout before :func:`backdoors.contract.member_seed`),
    planted member ``s`` as in :class:`ReLUAttack`."""

    name = "relu-small-seeds"

    def build(self, seed: int, backdoored: bool, quick: bool = False) -> Built:
        p = self.point
        X_tr, y_tr, X_te, y_te = task_data(int(seed), p.n_train, p.n_test, p.d)
        model, key = relu.honest_model(p.head, p.m, int(seed)), None
        if backdoored:
            model, key = relu.plant(model, X_tr, y_tr, sparsity=p.k, theta=p.theta,
                                    lam_rel=p.lam_rel)  # fmt: skip
        else:
            model = model.fit(X_tr, y_tr)
        return Built(model, key, backdoored, seed, X_te, y_te, X_tr, y_tr,
                     {"point": vars(p).copy(), "coin_seed": int(seed)})  # fmt: skip
