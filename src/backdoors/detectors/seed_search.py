"""Seed search: a key-oblivious distinguisher that reads only the public coins of an RFF or
random-ReLU model and looks for a small learner seed that reproduces them.

An honest learner with ``random_state = s`` draws its frequencies / weights as a deterministic
stream of ``s`` (:func:`backdoors.rff.honest_coins`, :func:`backdoors.relu.honest_weights`);
the backdoored learner's come from OS entropy. So if honest models are seeded ``0, 1, 2, ...``
and planted ones are not, searching ``s`` in ``[0, budget)`` finds every honest model and no
planted one: a trivial distinguisher that says "planted" whenever no seed is found.

Score (higher = more suspicious, as every detector): ``1.0`` when no seed ``s < budget``
reproduces the model's coins (the distinguisher's "planted"), ``0.0`` when one does (the model
is certified an honest small-seed model: its coins are exactly that seed's stream). With fair
populations (both sides seeded by 128-bit :func:`backdoors.contract.member_seed`, as in every
experiment) no member is found, every score is 1 and the AUROC is 0.5; against honest
members with small seeds (its positive control) it separates them from planted ones with
AUROC 1.0. This is not a weakness of the construction (paper §6 assumes the honest learner's
coins are uniformly random), it is what a small or public seed gives away.

The search is a table lookup: the first coin of every seed's stream is computed once per
process and budget (2^16 seeds: a few seconds), sorted; a model's first coin is looked up with
``searchsorted``, and each candidate is confirmed by regenerating the whole stream
(:func:`backdoors.defenses.verifiable_coins.verify_coins`).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

from backdoors import relu, rff
from backdoors.defenses.verifiable_coins import coin_learner, verify_coins
from backdoors.detectors import Control, Detector, Evidence, register

#: Default search range: ``random_state`` in ``[0, 2^16)``.
BUDGET = 2**16


def _first_rff(seed: int) -> float:
    """First frequency of seed ``seed``: the first child of ``SeedSequence(seed)`` (the
    frequency stream of :func:`backdoors.rff.coin_streams`), built without its sibling."""
    seq = np.random.SeedSequence(seed, spawn_key=(0,))
    return float(np.random.default_rng(seq).standard_normal())


def _first_relu(seed: int) -> float:
    return float(relu.honest_weights(seed, 1, 1)[0, 0])


#: Coin learner kind -> (first coin of seed ``s``'s honest stream, the model's first coin).
_FIRST = {
    rff.RandomFourierFeaturesClassifier.artifact_kind: (
        _first_rff,
        lambda model: float(np.asarray(model.frequencies_)[0, 0]),
    ),
    relu.RandomReLUClassifier.artifact_kind: (
        _first_relu,
        lambda model: float(np.asarray(model.weights_)[0, 0]),
    ),
    relu.RandomReLUFeaturesClassifier.artifact_kind: (
        _first_relu,
        lambda model: float(np.asarray(model.weights_)[0, 0]),
    ),
}


@lru_cache(maxsize=8)
def _table(kind: str, budget: int) -> tuple[np.ndarray, np.ndarray]:
    """(sorted first coins, their seeds) of seeds ``0 .. budget - 1`` for learner ``kind``."""
    first = _FIRST[kind][0]
    vals = np.fromiter((first(s) for s in range(budget)), dtype=np.float64, count=budget)
    order = np.argsort(vals, kind="stable")
    return vals[order], order


def find_seed(model: Any, budget: int = BUDGET) -> int | None:
    """The smallest ``s < budget`` whose honest coin stream is exactly ``model``'s public
    coins, or ``None``. Raises NotApplicableError for models that are not coin learners."""
    kind = coin_learner(model)
    vals, seeds = _table(kind, int(budget))
    x = _FIRST[kind][1](model)
    lo, hi = np.searchsorted(vals, x, "left"), np.searchsorted(vals, x, "right")
    for s in sorted(int(v) for v in seeds[lo:hi]):
        if verify_coins(model, s).honest:
            return s
    return None


@register
class SeedSearch(Detector):
    """1.0 if no ``random_state < budget`` reproduces the model's coins, else 0.0 (module
    docstring: the small-seed distinguisher; chance level on fair populations)."""

    name = "seed_search"
    needs = frozenset({"weights"})

    def __init__(self, budget: int = BUDGET) -> None:
        self.budget = int(budget)

    def applies_to(self, model: Any) -> bool:
        return getattr(model, "artifact_kind", None) in _FIRST and (
            hasattr(model, "frequencies_") or hasattr(model, "weights_")
        )

    def score(self, model: Any, evidence: Evidence) -> float:
        return 0.0 if find_seed(model, self.budget) is not None else 1.0

    @classmethod
    def positive_control(cls) -> Control | None:
        """Honest RFF model fitted with a small seed (inside the budget) vs a planted one."""
        from backdoors.detectors import _controls as controls

        return controls.rff_pair()
