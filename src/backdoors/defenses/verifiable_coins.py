"""Verifiable coins: the defense the coin backdoors' threat model suggests (paper §6 and
Appendix: the backdoored learner "tampers only with its random coins").

A user who delegates training but not randomness chooses the learner's seed ``S`` (or
commits to it) and requires the learner to draw its coins from that seed's stream. The
delivered model is then checkable: its public coins must equal, bit for bit, what the honest
learner draws from ``S``:

* RFF (:class:`~backdoors.rff.RandomFourierFeaturesClassifier`): frequencies ``G`` and phases
  ``b`` = :func:`backdoors.rff.honest_coins` ``(S, m, d)``;
* random ReLU (both heads): weights ``W`` = :func:`backdoors.relu.honest_weights` ``(S, m, d)``.

A planted model's frequencies / weights come from the pancake or spiked sampler driven by OS
entropy, so they are not the seeded stream: Backdoor-RFF and Backdoor-Random-ReLU are caught
with certainty (a collision of float64 Gaussian streams), and an honest model of seed ``S``
always passes. Cost: regenerating ``m x d`` Gaussians and one comparison.

What it needs: a learner that accepts user-chosen coins and a delivered model that exposes
them (these learners' ``random_state``; the seed is not stored in model files). What it does
not do: say anything about the signature backdoor (paper §5), BadNets or checksum networks,
whose backdoors do not live in random coins; nor about the trained part (ridge head,
threshold), which the user re-checks by retraining if needed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from backdoors import relu, rff
from backdoors.errors import NotApplicableError


def _rff_coins(model: Any, seed: Any) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    G = np.asarray(model.frequencies_)
    honest_G, honest_b = rff.honest_coins(seed, *G.shape)
    return {"frequencies": (G, honest_G), "phases": (np.asarray(model.phases_), honest_b)}


def _relu_coins(model: Any, seed: Any) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    W = np.asarray(model.weights_)
    return {"weights": (W, relu.honest_weights(seed, *W.shape))}


#: Artifact kind of a coin learner -> ``(model, seed) -> {name: (delivered, seeded)}``.
COIN_LEARNERS: dict[str, Callable[[Any, Any], dict[str, tuple[np.ndarray, np.ndarray]]]] = {
    rff.RandomFourierFeaturesClassifier.artifact_kind: _rff_coins,
    relu.RandomReLUClassifier.artifact_kind: _relu_coins,
    relu.RandomReLUFeaturesClassifier.artifact_kind: _relu_coins,
}


def coin_learner(model: Any) -> str:
    """The artifact kind of a fitted RFF / random-ReLU model; NotApplicableError otherwise."""
    kind = getattr(model, "artifact_kind", None)
    fitted = hasattr(model, "frequencies_") or hasattr(model, "weights_")
    if kind not in COIN_LEARNERS or not fitted:
        raise NotApplicableError(
            f"verifiable coins check RFF and random-ReLU models, not {type(model).__name__}"
        )
    return kind


@dataclass(frozen=True)
class CoinsVerdict:
    """``honest``: every public coin array is exactly the seeded stream; ``mismatched``: the
    names of those that are not (``frequencies``, ``phases``, ``weights``)."""

    kind: str
    honest: bool
    mismatched: tuple[str, ...]


def verify_coins(model: Any, seed: int) -> CoinsVerdict:
    """Check that ``model``'s public coins are the honest learner's stream of ``seed``
    (bitwise equality; see the module docstring)."""
    kind = coin_learner(model)
    pairs = COIN_LEARNERS[kind](model, int(seed))
    bad = tuple(n for n, (got, want) in pairs.items() if not np.array_equal(got, want))
    return CoinsVerdict(kind, not bad, bad)
