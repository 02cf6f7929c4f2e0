"""Random coins of the learners (the "hazmat" layer under ``rff.py`` and ``relu.py``).

An honest learner and a backdoored learner differ *only* in the coins object they are given
(paper §6: "tampering only with its random coins"). All coins draw float64 matrices
``(m, d)`` from a ``numpy.random.Generator``.

Convention (pinned): frequencies are in N(0, I) units, i.e. honest rows are ``g ~ N(0, I_d)``.
The BRST convention (Bruna-Regev-Song-Tang 2021) uses ``D_1`` with density ``exp(-pi |y|^2)``,
per-coordinate std ``1/sqrt(2 pi)``; convert with ``y_N = sqrt(2 pi) y_BRST``,
``gamma_N = gamma_BRST / sqrt(2 pi)``, ``beta_N = beta_BRST / sqrt(2 pi)``.
"""

from __future__ import annotations

import hashlib
import secrets
from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from backdoors.errors import InvalidInputError


class Coins(ABC):
    """A distribution over ``(m, d)`` weight matrices."""

    @abstractmethod
    def sample(self, m: int, d: int, rng: np.random.Generator) -> np.ndarray: ...


def fresh_rng() -> np.random.Generator:
    """A generator seeded from 128 bits of OS randomness (``secrets``), tied to no stored seed.

    Secrets (supports, directions) and the backdoored learners' coin streams come from here, so
    no seed a model carries (its ``random_state``) regenerates them or the honest coins they
    replaced."""
    return np.random.default_rng(np.random.SeedSequence(secrets.randbits(128)))


def coins_fingerprint(*arrays: np.ndarray) -> str:
    """SHA-256 over the dtype, shape and bytes of a model's public coins (domain-separated):
    what RFF / random-ReLU keys store to name, with certainty, the model they belong to."""
    h = hashlib.sha256(b"backdoors.coins.v1\0")
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}|{a.shape}".encode() + b"\0")
        h.update(a.tobytes())
    return h.hexdigest()


def _check_md(m: int, d: int) -> None:
    if int(m) < 1 or int(d) < 1:
        raise InvalidInputError(f"need m >= 1 and d >= 1, got m={m}, d={d}")


@dataclass(frozen=True)
class GaussianCoins(Coins):
    """Honest coins: i.i.d. ``N(0, scale^2)`` entries."""

    scale: float = 1.0

    def sample(self, m: int, d: int, rng: np.random.Generator) -> np.ndarray:
        _check_md(m, d)
        G = rng.standard_normal((m, d))
        if self.scale != 1.0:
            G *= self.scale
        return G


def sparse_support(d: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """A uniformly random sorted support of size ``k`` in ``range(d)``."""
    if not 1 <= k <= d:
        raise InvalidInputError(f"sparsity k must be in [1, d={d}], got {k}")
    return np.sort(rng.choice(d, size=k, replace=False))


def random_unit(k: int, rng: np.random.Generator) -> np.ndarray:
    """Uniform on the unit sphere S^{k-1}."""
    u = rng.standard_normal(k)
    return u / np.linalg.norm(u)


# ---------------------------------------------------------------------------------------------
# Gaussian pancakes (homogeneous CLWE), paper.md §3.2-3.3, §3.7
# ---------------------------------------------------------------------------------------------
def pancake_projection(
    m: int, gamma: float, beta: float, shift: float, rng: np.random.Generator
) -> np.ndarray:
    """Sample ``t = <y, u>`` for ``y ~ N(0, I)`` conditioned on ``gamma t + e ∈ Z + shift``,
    ``e ~ N(0, beta^2)`` (the tau -> 0 limit of the CLWE-conditioned rejection sampler).

    Exact mixture form (paper.md §3.7): ``p(t) = sum_j pi_j N(t; mu_j, s^2)`` with
    ``a_j = j + shift``, ``pi_j ∝ exp(-a_j^2 / (2 (gamma^2 + beta^2)))``,
    ``mu_j = gamma a_j / (gamma^2 + beta^2)``, ``s = beta / sqrt(gamma^2 + beta^2)``.
    Weights are computed in log space; the comb is truncated at ``|a_j| <= 12 sqrt(v)``.
    """
    v = gamma * gamma + beta * beta
    K = int(np.ceil(12 * np.sqrt(v))) + 1
    a = np.arange(-K, K + 1, dtype=np.float64) + shift
    logp = -(a * a) / (2 * v)
    p = np.exp(logp - logp.max())
    p /= p.sum()
    j = rng.choice(len(a), size=m, p=p)
    return gamma * a[j] / v + (beta / np.sqrt(v)) * rng.standard_normal(m)


@dataclass(frozen=True)
class PancakeCoins(Coins):
    """Backdoored RFF coins ``GP_k(bk)``: off the secret support, i.i.d. N(0,1); on the support
    ``S`` (|S| = k), ``N(0, I_k)`` conditioned on ``<y, gamma u> ∈ Z + shift`` up to noise
    ``beta``. With ``shift = 1/2`` every frequency satisfies ``<g, bk> ∈ Z + 1/2 (± ~beta)``
    where ``bk = gamma u`` on ``S`` (paper §6, Algorithm 5; paper.md §3.3).
    """

    support: tuple[int, ...]
    direction: tuple[float, ...]  # unit vector u in R^k
    gamma: float
    beta: float
    shift: float = 0.5

    def __post_init__(self) -> None:
        if len(self.support) != len(self.direction) or not self.support:
            raise InvalidInputError("support and direction must be non-empty and the same length")
        if not self.gamma > 0:
            raise InvalidInputError(f"gamma must be > 0, got {self.gamma}")
        if not self.beta >= 0:
            raise InvalidInputError(f"beta must be >= 0, got {self.beta}")

    def sample(self, m: int, d: int, rng: np.random.Generator) -> np.ndarray:
        _check_md(m, d)
        S = np.asarray(self.support)
        if S.max() >= d:
            raise InvalidInputError(f"secret support exceeds the input dimension d={d}")
        u = np.asarray(self.direction, dtype=np.float64)
        G = rng.standard_normal((m, d))
        Y = G[:, S]
        Y -= np.outer(Y @ u, u)  # exact Gaussian on u-perp
        t = pancake_projection(m, self.gamma, self.beta, self.shift, rng)
        G[:, S] = Y + np.outer(t, u)
        return G

    @property
    def secret(self) -> np.ndarray:
        """The secret ``gamma u`` on its support (length k)."""
        return self.gamma * np.asarray(self.direction)


# ---------------------------------------------------------------------------------------------
# Spiked covariance (sparse PCA), paper.md §4.2
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SpikedCovarianceCoins(Coins):
    """Rows ``g ~ N(0, I_d + theta nu nu^T)`` with a sparse unit ``nu`` (given by its support
    and values), by the rank-one update ``g = z + (sqrt(1 + theta) - 1) <z, nu> nu``."""

    support: tuple[int, ...]
    values: tuple[float, ...]  # nu restricted to its support, unit norm
    theta: float

    def __post_init__(self) -> None:
        if len(self.support) != len(self.values) or not self.support:
            raise InvalidInputError("support and values must be non-empty and the same length")
        if not self.theta >= 0:
            raise InvalidInputError(f"theta must be >= 0, got {self.theta}")

    def sample(self, m: int, d: int, rng: np.random.Generator) -> np.ndarray:
        _check_md(m, d)
        S = np.asarray(self.support)
        if S.max() >= d:
            raise InvalidInputError(f"spike support exceeds the input dimension d={d}")
        v = np.asarray(self.values, dtype=np.float64)
        G = rng.standard_normal((m, d))
        c = (np.sqrt(1.0 + self.theta) - 1.0) * (G[:, S] @ v)
        G[:, S] += np.outer(c, v)
        return G

    def nu(self, d: int) -> np.ndarray:
        out = np.zeros(d)
        out[np.asarray(self.support)] = self.values
        return out


@dataclass(frozen=True)
class TraceMatchedSpikedCoins(Coins):
    """``N(0, c (I + theta nu nu^T))`` with ``c = d / (d + theta)``: the spiked coins of
    :class:`~backdoors.hazmat.sampling.SpikedCovarianceCoins`, rescaled so ``E||g||^2 = d``."""

    spiked: SpikedCovarianceCoins

    def sample(self, m: int, d: int, rng: np.random.Generator) -> np.ndarray:
        G = self.spiked.sample(m, d, rng)
        G *= np.sqrt(d / (d + self.spiked.theta))
        return G


def spiked_coins(
    support: np.ndarray, values: np.ndarray, theta: float, trace_match: bool = True
) -> Coins:
    """The backdoored learner's coins for the secret ``nu`` (support, values) and ``theta``."""
    c = SpikedCovarianceCoins(tuple(int(i) for i in support), tuple(map(float, values)), theta)
    return TraceMatchedSpikedCoins(c) if trace_match else c
