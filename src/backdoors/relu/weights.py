"""The random ReLU learner's weight stream (paper appendix, Algorithms 7-10): the honest
weights are ``N(0, I_d)`` rows drawn from one stream of the seed, which is what the verifiable
coins defense and the seed search regenerate."""

from __future__ import annotations

from typing import Any

import numpy as np

from backdoors.hazmat.sampling import GaussianCoins


def _weight_rng(random_state: Any) -> np.random.Generator:
    """The honest weights' RNG stream: integer seeds give ``default_rng([seed, 0])``."""
    if isinstance(random_state, np.random.Generator):
        return random_state
    if random_state is None:
        return np.random.default_rng()
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(random_state.randint(0, 2**31 - 1))
    return np.random.default_rng([int(random_state), 0])


def honest_weights(random_state: Any, m: int, d: int) -> np.ndarray:
    """The honest learner's weights for ``random_state``: ``N(0, I_d)`` rows (m x d) from
    the stream ``fit`` uses (integer seeds: ``default_rng([seed, 0])``)."""
    return GaussianCoins().sample(int(m), int(d), _weight_rng(random_state))
