"""Published cost model of the primal uSVP attack, applied to the RFF embedding lattice.

Root-Hermite factor of BKZ with block size ``b`` (the "2016 estimate", Chen's thesis /
Albrecht et al.): ``delta(b) = ((b / (2 pi e)) (pi b)^(1/b))^(1/(2 (b - 1)))``, used for
``b >= 40``. Below 40 we interpolate linearly in ``b`` between the experimentally measured
values the lattice-estimator of Albrecht et al. tabulates (``SMALL_DELTA``; LLL = 1.0219).

Success condition (Alkim-Ducas-Poeppelmann-Schwabe 2016, checked experimentally by
Albrecht-Goepfert-Virdia-Wunderer 2017): BKZ-``b`` recovers a unique short vector ``v`` of a
rank-``D`` lattice ``L`` when ``sqrt(b / D) |v| <= delta(b)^(2b - D) vol(L)^(1/D)``.

For the embedding of :mod:`backdoors.detectors.lattice` with ``n`` rows, scaling ``C`` and
embedding height ``M = 1/2``: ``D = n + 1``, ``vol = (1 + C^2)^((n - d)/2) M`` and
``|v|^2 = n gamma^2 + (n - d) C^2 beta^2 + M^2`` (``<g, s> ~ N(0, gamma^2)``, phase noise
std ``beta``). Cost: ``2^(0.292 b)`` operations for one SVP call (classical sieving,
Becker-Ducas-Gama-Laarhoven 2016), the "core-SVP" convention. Everything here is an
*estimate*; :mod:`backdoors.experiments.rff_map` says where it was checked against runs.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

LLL_DELTA = 1.0219
SMALL_DELTA = (
    (2, 1.02190),
    (5, 1.01862),
    (10, 1.01616),
    (15, 1.01485),
    (20, 1.01420),
    (25, 1.01342),
    (28, 1.01331),
    (40, 1.01295),
)


def delta_formula(b: float) -> float:
    """The 2016 asymptotic root-Hermite factor (meaningful for ``b >= 40``)."""
    return ((b / (2 * math.pi * math.e)) * (math.pi * b) ** (1 / b)) ** (1 / (2 * (b - 1)))


def delta(b: float) -> float:
    """Root-Hermite factor of BKZ-``b`` (``b <= 2``: LLL; see the module docstring)."""
    if b <= 2:
        return LLL_DELTA
    if b >= 40:
        return delta_formula(b)
    for (b0, d0), (b1, d1) in itertools.pairwise(SMALL_DELTA):
        if b0 <= b <= b1:
            return d0 + (d1 - d0) * (b - b0) / (b1 - b0)
    raise AssertionError("unreachable")  # pragma: no cover


def usvp_margin(d: int, n: int, gamma: float, beta: float, b: float) -> float:
    """``log(delta^(2b-D) vol^(1/D)) - log(sqrt(b/D) |v|)`` at the balanced scaling
    ``C = (gamma / beta) sqrt(n / (d + 1))``; ``>= 0`` means BKZ-``b`` is predicted to win."""
    D = n + 1
    C = (gamma / beta) * math.sqrt(n / (d + 1))
    M = 0.5
    log_vol = 0.5 * (n - d) * math.log1p(C * C) + math.log(M)
    v2 = n * gamma**2 + (n - d) * (C * beta) ** 2 + M * M
    lhs = 0.5 * math.log(max(b, 2) / D) + 0.5 * math.log(v2)
    rhs = (2 * max(b, 2) - D) * math.log(delta(b)) + log_vol / D
    return rhs - lhs


@dataclass(frozen=True)
class Estimate:
    block_size: int | None  # smallest predicted-successful b (None: none up to max_block)
    rows: int | None  # the row count n achieving it
    log2_cost: float  # 0.292 b (core-SVP, classical); inf when block_size is None


def required_block_size(
    d: int, m: int, gamma: float, beta: float, max_block: int = 1000, held_out: int = 0
) -> Estimate:
    """Smallest BKZ block size predicted to recover the secret from at most ``m - held_out``
    rows (the row count is optimised over ``d + 1 ... m - held_out``)."""
    n_max = m - held_out
    if n_max <= d + 1:
        return Estimate(None, None, math.inf)
    ns = np.array(sorted({int(x) for x in _geom(d + 2, n_max, 60)}), dtype=np.float64)
    D = ns + 1
    C2 = (gamma / beta) ** 2 * ns / (d + 1)
    log_vol = 0.5 * (ns - d) * np.log1p(C2) + math.log(0.5)
    half_log_v2 = 0.5 * np.log(ns * gamma**2 + (ns - d) * C2 * beta**2 + 0.25)
    for b in [2, *range(5, max_block + 1, 5)]:
        bb = max(b, 2)
        margin = (2 * bb - D) * math.log(delta(b)) + log_vol / D
        margin -= 0.5 * np.log(bb / D) + half_log_v2
        ok = np.flatnonzero((margin >= 0) & (b <= D))
        if len(ok):
            return Estimate(b, int(ns[ok[0]]), 0.292 * b)
    return Estimate(None, None, math.inf)


def finite(x: float) -> float | None:
    """``x``, or ``None`` for an infinite cost (JSON has no infinity)."""
    return None if math.isinf(x) else float(x)


def _geom(lo: int, hi: int, k: int) -> list[float]:
    if hi <= lo:
        return [float(hi)]
    r = (hi / lo) ** (1 / (k - 1))
    return [lo * r**i for i in range(k)] + [float(hi)]


def log2_support_odds(d: int, k: int, d_sub: int) -> float:
    """``log2 (C(d, d_sub) / C(d - k, d_sub - k))``: expected trials until ``d_sub`` random
    columns contain the whole k-sparse support (the other columns do not affect
    ``<g_i, bk>``, so the attack can drop them)."""
    if not 1 <= k <= d_sub <= d:
        raise ValueError(f"need 1 <= k <= d_sub <= d, got k={k}, d_sub={d_sub}, d={d}")
    lg = lambda a, b: math.lgamma(a + 1) - math.lgamma(b + 1) - math.lgamma(a - b + 1)  # noqa: E731
    return (lg(d, d_sub) - lg(d - k, d_sub - k)) / math.log(2)


@dataclass(frozen=True)
class HybridEstimate:
    log2_cost: float  # log2(trials) + 0.292 b (core-SVP per trial, at least 1 per trial)
    d_sub: int | None
    block_size: int | None
    log2_trials: float


def sparse_hybrid(
    d: int, k: int, m: int, gamma: float, beta: float, max_block: int = 1000
) -> HybridEstimate:
    """Support-guessing hybrid: keep ``d_sub`` random columns (k <= d_sub <= d), run the
    primal attack on the ``d_sub``-dimensional instance; minimise expected total cost."""
    best = HybridEstimate(math.inf, None, None, math.inf)
    subs = sorted({int(x) for x in _geom(max(k, 2), d, 40)} | {d})
    for ds in subs:
        est = required_block_size(ds, m, gamma, beta, max_block)
        if est.block_size is None:
            continue
        trials = log2_support_odds(d, k, ds)
        cost = trials + max(est.log2_cost, 0.0)
        if cost < best.log2_cost:
            best = HybridEstimate(cost, ds, est.block_size, trials)
    return best


#: What runs here (2 shared cores): BKZ-30 on a rank <= 400 lattice (the outside evaluation's
#: BKZ-30 on 200 rows took 20-70 s), after at most 2^10 support guesses.
RUNNABLE = {"max_block": 30, "max_log2_trials": 10.0, "max_rank": 400}


def feasible_here(
    d: int,
    k: int,
    m: int,
    gamma: float,
    beta: float,
    max_block: int = 30,
    max_log2_trials: float = 10.0,
    max_rank: int = 400,
) -> bool:
    """Whether the estimate predicts a win for an attack of the size that runs on this
    machine: BKZ block size <= ``max_block`` on a lattice of rank <= ``max_rank``, after at
    most ``2^max_log2_trials`` support guesses (``d_sub = d``: no guessing)."""
    return runnable_attack(d, k, m, gamma, beta, max_block, max_log2_trials, max_rank) is not None


def runnable_attack(
    d: int,
    k: int,
    m: int,
    gamma: float,
    beta: float,
    max_block: int = 30,
    max_log2_trials: float = 10.0,
    max_rank: int = 400,
) -> tuple[int, float, Estimate] | None:
    """The first attack :func:`feasible_here` accepts, as ``(d_sub, log2 trials, estimate)``
    (columns kept, support guesses, BKZ block size and rows), or ``None``."""
    subs = sorted({int(x) for x in _geom(max(k, 2), d, 40)} | {d})
    for ds in subs:
        trials = log2_support_odds(d, k, ds)
        if trials > max_log2_trials:
            continue
        est = required_block_size(ds, min(m, max_rank - 1), gamma, beta, max_block)
        if est.block_size is not None and est.rows is not None and est.rows + 1 <= max_rank:
            return ds, trials, est
    return None


def attack_seconds(block_size: int, rows: int, log2_trials: float = 0.0) -> float:
    """Order of magnitude of the CPU time of the primal attack here: per trial
    ``20 s x (D / 200)^3 x 2^(0.25 (b - 30))`` for BKZ-``b`` on rank ``D = rows + 1``, at
    least ``(D / 55)^3`` s (LLL), times ``2^log2_trials``. Calibrated on runs on a 2-core
    machine (LLL at d <= 30: ~1 s; BKZ-30 on 200 rows: 20-70 s; BKZ-40 at d = 64: 13-23 s;
    BKZ-55 to 65 on rank 224: 160-1,400 s); an estimate, not a promise."""
    D = rows + 1
    bkz = 20.0 * (D / 200) ** 3 * 2 ** (0.25 * (block_size - 30))
    return float(max(bkz, (D / 55) ** 3) * 2**log2_trials)


@dataclass(frozen=True)
class Exposure:
    """How exposed an RFF key is to the lattice attack, by the cost model: ``feasible_here``
    (:func:`feasible_here` with :data:`RUNNABLE`), the predicted BKZ ``block_size`` and
    ``rows`` (of the runnable attack when feasible, else of the primal attack on all ``d``
    columns; ``None`` when none is predicted to win) and the rough CPU ``seconds``
    (:func:`attack_seconds`; ``None`` when not feasible here)."""

    feasible_here: bool
    block_size: int | None
    rows: int | None
    seconds: float | None

    def to_dict(self) -> dict[str, object]:
        return {"feasible_here": self.feasible_here, "block_size": self.block_size,
                "rows": self.rows, "seconds": self.seconds}  # fmt: skip

    def message(self, d: int) -> str:
        """One line saying what the estimate predicts (for warnings and the CLI)."""
        if self.feasible_here:
            algo = "LLL" if (self.block_size or 0) <= 2 else f"BKZ-{self.block_size}"
            return (f"this RFF key is predicted recoverable on this machine: lattice attack "
                    f"with {algo} on {self.rows} rows, about "
                    f"{self.seconds:.2g} CPU s (lattice_cost estimate; d = {d} is below the "
                    f"window, which starts near d = {WINDOW_D} at k = 64, beta = 1e-3, "
                    f"m = 1000)")  # fmt: skip
        return f"no lattice attack predicted feasible here (estimated BKZ-{self.block_size})"


#: Smallest input dimension from which the default point (k = min(64, d), beta = 1e-3,
#: m = 1000) is not :func:`feasible_here` (estimate: BKZ-30 up to d = 67, BKZ-40 at 68, BKZ-60
#: at 80). Stronger attacks than the runnable BKZ-30 reach further: an outside evaluation's
#: pruned BKZ 2.0 recovered a key at d = 80 (BKZ-65, ~1,400 CPU s).
WINDOW_D = 68


def exposure(d: int, k: int, m: int, gamma: float, beta: float) -> Exposure:
    """The :class:`Exposure` of an RFF key with ``d, k, m, gamma, beta``."""
    hit = runnable_attack(d, k, m, gamma, beta, **RUNNABLE)  # type: ignore[arg-type]
    if hit is not None:
        _, trials, est = hit
        assert est.block_size is not None and est.rows is not None
        secs = attack_seconds(est.block_size, est.rows, trials)
        return Exposure(True, est.block_size, est.rows, secs)
    est = required_block_size(d, m, gamma, beta)
    return Exposure(False, est.block_size, est.rows, None)


def best_rows(d: int, n_max: int, gamma: float, beta: float, max_block: int = 1000) -> int | None:
    """Row count for the primal attack with at most ``n_max`` rows: at the smallest block size
    ``b`` predicted to win (:func:`required_block_size`), the ``n`` in ``d + 2 ... n_max``
    maximising :func:`usvp_margin` -- the middle of the winning range rather than its edge.
    ``None`` when no ``b <= max_block`` is predicted to win."""
    est = required_block_size(d, n_max, gamma, beta, max_block)
    if est.block_size is None or n_max < d + 2:
        return None
    ns = range(d + 2, n_max + 1)
    return max(ns, key=lambda n: usvp_margin(d, n, gamma, beta, max(est.block_size, 2)))
