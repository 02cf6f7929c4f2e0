"""Breaking the toy regime of the RFF backdoor: support search + periodicity search.

Security of paper §6 rests on (sparse) CLWE, which needs the secret dimension k in the
hundreds. At toy sizes a white-box auditor can simply search: for every support S of size k
(``C(d, k)`` of them) and every direction u on a grid of S^{k-1} fine enough that
``gamma |u' - u| < 0.2``, score ``|mean_i exp(2 pi i gamma <g_i|S, u>)|``. The secret scores
``~ exp(-2 pi^2 beta^2) ~ 1`` (every phase at a half-integer); anything else ``~ 1/sqrt(m)``.
Cost ``C(d, k) * N_grid(k) * m`` with ``N_grid ~ (5 gamma)^(k-1)``: the search is instant at
k = 1, 2, seconds at k = 3, and hopeless beyond. That cost bounds *this* search only, not the
backdoor's security: the primal lattice attack (:mod:`backdoors.detectors.lattice`) needs no
support search and recovers k = 16 secrets at d = 64, beta = 1e-3 in under a minute, and
:mod:`backdoors.rff.lattice_cost` estimates it (and a support-guessing hybrid) elsewhere.
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass

import numpy as np


def sphere_grid(k: int, spacing: float) -> np.ndarray:
    """Unit vectors of R^k (up to sign) with neighbours about ``spacing`` apart."""
    if k == 1:
        return np.ones((1, 1))
    n = max(4, int(math.ceil(math.pi / spacing)))
    if k == 2:
        th = np.linspace(0, np.pi, n, endpoint=False)
        return np.stack([np.cos(th), np.sin(th)], axis=1)
    # k = 3: Fibonacci lattice on the upper hemisphere
    count = max(16, int(2 * math.pi / spacing**2))
    i = np.arange(count) + 0.5
    z = i / count
    phi = i * math.pi * (3 - math.sqrt(5))
    r = np.sqrt(1 - z**2)
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1)


SPACING = 0.2  # grid spacing times gamma: phase error per unit |g| stays below ~0.2 cycles


def grid_size(k: int, gamma: float) -> float:
    """Directions needed on S^{k-1} for spacing SPACING / gamma (volume estimate)."""
    spacing = SPACING / gamma
    area = 2 * math.pi ** (k / 2) / math.gamma(k / 2) / 2  # half sphere
    return area / spacing ** (k - 1)


@dataclass
class AttackResult:
    support: tuple[int, ...]
    direction: np.ndarray
    score: float
    evaluations: float
    seconds: float


def search_secret(
    G: np.ndarray, k: int, gamma: float, max_evaluations: float = 5e9
) -> AttackResult | None:
    """Exhaustive support + direction search; ``None`` when the cost exceeds the budget."""
    m, d = G.shape
    cost = math.comb(d, k) * grid_size(k, gamma) * m
    if k > 3 or cost > max_evaluations:
        return None
    U = sphere_grid(k, SPACING / gamma).T  # (k, n_dir)
    t0 = time.perf_counter()
    best = (0.0, (), None)
    for S in itertools.combinations(range(d), k):
        phases = np.exp(2j * np.pi * gamma * (G[:, S] @ U))
        scores = np.abs(phases.mean(axis=0))
        j = int(scores.argmax())
        if scores[j] > best[0]:
            best = (float(scores[j]), S, U[:, j])
    return AttackResult(best[1], best[2], best[0], cost, time.perf_counter() - t0)


def recovered(result: AttackResult | None, support: tuple[int, ...], direction: np.ndarray) -> bool:
    """Whether the attack found the secret direction ``w`` in R^d, up to sign.

    ``w`` is compared as a vector of R^d (support and direction together): a secret whose
    direction is nearly one axis, e.g. ``(0.99998, 0.006)`` on support ``(0, 6)``, is found by
    ``(1, 0)`` on any support containing that axis, and that answer activates the backdoor.
    """
    if result is None or result.direction is None:
        return False
    found = dict(zip(map(int, result.support), np.asarray(result.direction, float), strict=True))
    secret = dict(zip(map(int, support), np.asarray(direction, float), strict=True))
    dot = sum(v * found.get(i, 0.0) for i, v in secret.items())
    norms = math.sqrt(sum(v * v for v in found.values()) * sum(v * v for v in secret.values()))
    return bool(norms > 0 and abs(abs(dot) / norms - 1) < 0.1)
