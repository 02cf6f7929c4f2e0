"""Random Fourier features (Rahimi-Recht), as the RFF learner of paper §6 draws and applies
them: the two coin streams of one seed (frequencies and phases), the honest learner's public
coins, the median-distance bandwidth and the feature map ``cos(2 pi (X G^T / scale + b))``."""

from __future__ import annotations

from typing import Any

import numpy as np

from backdoors.hazmat.sampling import GaussianCoins

__all__ = ["coin_streams", "honest_coins", "median_bandwidth", "rff_features"]


def coin_streams(random_state: Any) -> tuple[np.random.Generator, np.random.Generator]:
    """Two independent generators from one seed: frequencies (the coins) and phases b.
    Keeping them apart makes honest and backdoored learners identical except for G."""
    if isinstance(random_state, np.random.Generator):
        seq = np.random.SeedSequence(int(random_state.integers(0, 2**63)))
    elif isinstance(random_state, np.random.RandomState):
        seq = np.random.SeedSequence(int(random_state.randint(0, 2**31)))
    else:
        seq = np.random.SeedSequence(None if random_state is None else int(random_state))
    g_seq, b_seq = seq.spawn(2)
    return np.random.default_rng(g_seq), np.random.default_rng(b_seq)


def honest_coins(random_state: Any, m: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    """The honest learner's public coins for ``random_state``: frequencies ``G`` (m x d,
    ``N(0, I)`` rows from the first stream of :func:`coin_streams`) and phases ``b`` (m,
    ``U[0, 1)`` from the second), exactly what ``fit`` draws (verifiable coins, seed search)."""
    g_rng, b_rng = coin_streams(random_state)
    return GaussianCoins().sample(int(m), int(d), g_rng), b_rng.random(int(m))


def median_bandwidth(X: np.ndarray) -> float:
    """``2 pi`` x the median pairwise distance of the first 400 rows (deterministic); 1.0 if
    all those rows coincide."""
    A = np.asarray(X, dtype=np.float64)[:400]
    sq = (A * A).sum(1)
    D2 = np.maximum(sq[:, None] + sq[None, :] - 2 * A @ A.T, 0)
    med = float(np.sqrt(np.median(D2[np.triu_indices(len(A), 1)]))) if len(A) > 1 else 0.0
    return 2 * np.pi * med if med > 0 else 1.0


def rff_features(X: np.ndarray, G: np.ndarray, b: np.ndarray, scale: float) -> np.ndarray:
    """``cos(2 pi (X G^T / scale + b))`` in float64 (in place: one m-column buffer, so two
    workers fitting side by side do not contend for memory bandwidth on temporaries)."""
    Z = (X / scale) @ G.T
    Z += b
    Z *= 2 * np.pi
    return np.cos(Z, out=Z)
