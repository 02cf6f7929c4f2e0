"""The primal lattice attack on the RFF/CLWE backdoor (white-box, key-oblivious).

Planted frequencies satisfy ``<g_i, s> = z_i + 1/2 + e_i`` (``z_i`` integer, ``|e_i| ~ beta``)
for the secret ``s = bk`` (paper.md §3.3). Take ``n`` rows ``G_n`` (n x d, n > d) and an
orthonormal basis ``K`` (n x (n - d)) of the left null space of ``G_n``. Then
``t = z + 1/2 = G_n s - e`` satisfies ``K^T t = -K^T e``: the half-integer vector ``t`` lies
within ``~beta sqrt(n - d)`` of the column space of ``G_n``, while ``|t| ~ |s| sqrt(n)``.
Kannan's embedding turns this into a unique-SVP instance in the rank-(n+1) lattice spanned by
the rows ``(e_i, C K_i, 0)`` (i < n) and the embedding row ``(1/2, C sum_i K_i, M)``:
the lattice vector with coefficients ``(z, 1)`` is ``(t, -C K^T e, M)``, much shorter than the
Gaussian heuristic ``(C^(n-d))^(1/(n+1)) sqrt((n+1) / (2 pi e))`` when ``C beta`` is small.
The half-integer shift is the embedding coordinate ``M``. LLL, then progressive BKZ (fpylll),
reduce the basis; every reduced vector gives a candidate ``s = argmin |G_n s - t|`` and is
scored on *held-out* rows by ``-mean_i cos(2 pi <g_i, s>)`` (1 at half-integers; for honest
Gaussian rows any fixed direction scores ``N(0, 1/(2 m_hold))``).

This is the attack of Song-Zadik-Bruna (2021) and Zadik-Song-Wein-Bruna (2022) on low-noise
CLWE in its primal-uSVP form (success condition of Alkim-Ducas-Poeppelmann-Schwabe 2016,
verified by Albrecht-Goepfert-Virdia-Wunderer 2017; see :mod:`backdoors.rff.lattice_cost`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from backdoors.detectors import Control, Evidence, Report, _bkz, register
from backdoors.detectors._bkz import ReductionCrashError, isolated_reduction
from backdoors.detectors.weights import _WeightDetector
from backdoors.errors import InvalidInputError, NotApplicableError
from backdoors.rff import default_sparsity
from backdoors.rff.lattice_cost import best_rows, required_block_size

#: Largest lattice rank the detector reduces (LLL at rank ~400 takes about a minute here).
MAX_RANK = 400
_LOG = logging.getLogger(__name__)
#: Default largest BKZ block size: in practice the CPU budget ends the progression first.
DEFAULT_BLOCK = 90
#: Default CPU budget per model (seconds; also what ``backdoors audit`` spends): enough for the
#: d = 64, k = 64, beta = 1e-3 default point (keys at BKZ-43 to 49 after 40-120 CPU s here).
DEFAULT_CPU_SECONDS = 180.0
#: Block sizes tried beyond the one the uSVP estimate needs at this row count (recoveries came
#: 5-10 above the estimate): the progression then ends by itself, not by the clock, so a model
#: whose key the estimate says is easy gets the same answer on a fast or a loaded machine.
BEYOND_ESTIMATE = 20
#: A candidate counts as the recovered key when its held-out score reaches this (the null
#: standard deviation is ``1/sqrt(2 m_hold)``, 0.025 for 800 held-out rows).
RECOVERED = 0.5


def _fpylll() -> Any:
    try:
        import fpylll
    except ImportError as exc:  # pragma: no cover - exercised by monkeypatching the import
        raise NotApplicableError(
            "the lattice detector needs fpylll: pip install 'backdoors[lattice]'"
        ) from exc
    return fpylll


@dataclass
class LatticeResult:
    """Outcome of one attack: the best held-out score, the candidate direction achieving it
    (frequency units; ``x + bandwidth * direction`` activates when ``recovered``), timing."""

    score: float
    direction: np.ndarray | None
    recovered: bool
    seconds: float
    rows: int
    held_out: int
    block_size: int
    reached_block: int
    log: list[dict[str, float]] = field(default_factory=list)
    cpu_seconds: float = 0.0  # CPU of this process and its reduction children
    tours: int = 0  # BKZ tours completed
    stopped: str = "schedule"  # "recovered", "budget" or "schedule" (all block sizes done)
    strategies: str = ""  # where the BKZ 2.0 strategies came from

    def activate(self, X: np.ndarray, scale: float) -> np.ndarray:
        """``x + scale * direction``: Activate-RFF with the recovered key (``scale`` = the
        model's public bandwidth)."""
        if self.direction is None:
            raise NotApplicableError("the lattice attack recovered no key")
        return np.asarray(X, dtype=np.float64) + scale * self.direction

    @property
    def z_score(self) -> float:
        """The score in units of its null standard deviation ``1/sqrt(2 m_hold)``."""
        return self.score * np.sqrt(2 * self.held_out)


def embedding_basis(G: np.ndarray, C: float, precision: int = 16) -> np.ndarray:
    """Integer Kannan basis for rows ``G`` (n x d): rows ``2P (e_i, C K_i, 0)`` and
    ``P (1, C sum_i K_i, 1)`` rounded, ``P = precision`` (rounding error ``1/(2P)`` per entry
    against a noise scale ``C beta``)."""
    n, d = G.shape
    if n <= d:
        raise InvalidInputError(f"the embedding needs more rows than columns, got {n} <= {d}")
    Q, _ = np.linalg.qr(G, mode="complete")
    K = Q[:, d:]  # orthonormal basis of the left null space of G
    P = int(precision)
    B = np.zeros((n + 1, n + (n - d) + 1), dtype=object)
    top = np.rint(2 * P * C * K).astype(np.int64)
    emb = np.rint(P * C * K.sum(axis=0)).astype(np.int64)
    for i in range(n):
        B[i, i] = 2 * P
        B[i, n : 2 * n - d] = [int(v) for v in top[i]]
    B[n, :n] = P
    B[n, n : 2 * n - d] = [int(v) for v in emb]
    B[n, -1] = P
    return B


def _candidates(rows: np.ndarray, n: int, P: int) -> list[np.ndarray]:
    """Half-integer vectors ``t`` from reduced rows. Twice the embedding row is the short
    integer vector ``(0, ~0, 2M)``, so the embedding coefficient ``c = last / P`` only counts
    mod 2: odd ``c`` gives ``t = v / (2P)``; even ``c`` gives an integer vector, a multiple
    ``2t`` when ``t`` is half-integral, hence ``t = v / (4P)``."""
    out = []
    for r in rows:
        c = int(r[-1]) // P
        v = np.asarray(r[:n], dtype=np.float64)
        if not np.any(v):
            continue
        out.append(v / (2 * P) if c % 2 else v / (4 * P))
    return out


def half_integer_score(G: np.ndarray, s: np.ndarray) -> float:
    """``-mean_i cos(2 pi <g_i, s>)``: 1 when every phase sits at a half-integer."""
    return float(-np.mean(np.cos(2 * np.pi * (G @ s))))


def assumed_norm(d: int, secret_norm: float | None) -> float:
    """The secret norm ``gamma`` the auditor assumes: ``secret_norm``, or the construction's
    default ``2 sqrt(k)`` with ``k = min(64, d)`` (public: :func:`backdoors.rff.plant`)."""
    return 2.0 * float(np.sqrt(default_sparsity(d))) if secret_norm is None else secret_norm


def auto_rows(
    d: int, m: int, max_rank: int = MAX_RANK, secret_norm: float | None = None, noise: float = 1e-3
) -> int:
    """Default row count: the ``n`` maximising the uSVP margin at the smallest block size the
    cost model predicts to win (:func:`backdoors.rff.lattice_cost.best_rows`, with the assumed
    ``gamma = secret_norm`` and ``beta = noise``), capped by the held-out rows and by
    ``max_rank - 1``; ``max(3d, d + 32)`` when no block size is predicted to win."""
    cap = min(m - held_out(m), max_rank - 1)
    n = best_rows(d, cap, assumed_norm(d, secret_norm), noise)
    return min(cap, max(3 * d, d + 32) if n is None else n)


def held_out(m: int) -> int:
    """Rows kept out of the lattice to score candidates: ``max(32, m // 5)``."""
    return max(32, m // 5)


def rows_for(
    d: int,
    m: int,
    n_rows: int | None = None,
    max_rank: int = MAX_RANK,
    secret_norm: float | None = None,
    noise: float = 1e-3,
) -> int:
    """The number of rows the attack embeds, or NotApplicableError when the lattice would be
    degenerate (``n <= d``) or larger than ``max_rank`` (too slow to reduce here)."""
    hold = held_out(m)
    if n_rows is None:
        n = auto_rows(d, m, max_rank, secret_norm, noise)
    else:
        n = min(int(n_rows), m - hold)
    if n <= d or n + 1 > max_rank:
        raise NotApplicableError(
            f"lattice attack at d={d}, m={m} needs d < n rows <= {max_rank - 1} plus {hold} "
            f"held out (got n={n}); the lattice would be too large to reduce here -- see "
            "backdoors.rff.lattice_cost for the estimated block size"
        )
    return n


def lattice_attack(
    G: np.ndarray,
    n_rows: int | None = None,
    block_size: int = DEFAULT_BLOCK,
    max_seconds: float = DEFAULT_CPU_SECONDS,
    noise: float = 1e-3,
    secret_norm: float | None = None,
    precision: int = 16,
    seed: int = 0,
    max_rank: int = MAX_RANK,
    tours: int = 2,
    strategy_file: Any = "auto",
) -> LatticeResult:
    """Primal uSVP attack on ``n_rows`` random rows of ``G`` (``None``: :func:`auto_rows`);
    the other rows (``max(32, m // 5)``) are held out to score candidates.

    ``noise`` and ``secret_norm`` are the *public* family parameters the auditor assumes
    (beta and ``gamma``; ``None``: :func:`assumed_norm`); they set the scaling
    ``C = (gamma / beta) sqrt(n / (d + 1))`` that balances ``|t|`` against ``C |K^T e|``, and
    the row count. Reduction: LLL, then
    progressive BKZ 2.0 (pruned enumeration, preprocessing; :mod:`backdoors.detectors._bkz`)
    with block sizes :func:`backdoors.detectors._bkz.schedule` up to ``block_size`` (and to at
    most :data:`BEYOND_ESTIMATE` past the block size the uSVP estimate needs here), at most
    ``tours`` tours each, stopping at the first basis with a candidate scoring
    ``>= RECOVERED`` on held-out rows or before the first tour that starts after
    ``max_seconds`` CPU seconds (LLL and a started tour are not interrupted, hence the
    ``max_rank`` guard). ``strategy_file``: ``"auto"`` (:func:`_bkz.find_strategy_file`), a
    path, or ``None`` (strategies computed here).
    """
    _fpylll()  # NotApplicableError now if fpylll is missing
    G = np.asarray(G, dtype=np.float64)
    if G.ndim != 2 or not np.isfinite(G).all():
        raise InvalidInputError("frequencies must be a finite 2-D matrix")
    m, d = G.shape
    secret_norm = assumed_norm(d, secret_norm)
    n = rows_for(d, m, n_rows, max_rank, secret_norm, noise)
    rng = np.random.default_rng(seed)
    perm = rng.permutation(m)
    use, held = perm[:n], perm[n:]
    Gn, Gh = G[use], G[held]
    pinv = np.linalg.pinv(Gn)  # s = argmin |G_n s - t| for every candidate t at once
    C = (secret_norm / noise) * np.sqrt(n / (d + 1))
    basis = [[int(v) for v in row] for row in embedding_basis(Gn, C, precision).tolist()]
    path = _bkz.find_strategy_file() if strategy_file == "auto" else strategy_file
    t0, c0 = time.perf_counter(), time.process_time()
    best: tuple[float, np.ndarray | None] = (-np.inf, None)
    log: list[dict[str, float]] = []
    stats: dict[str, Any] = {"cpu_seconds": 0.0}

    def check(rows: list[list[int]], stage: int) -> bool:
        nonlocal best
        cands = _candidates(np.array(rows, dtype=object), n, precision)
        if cands:
            S = np.array(cands) @ pinv.T
            sc = -np.mean(np.cos(2 * np.pi * (S @ Gh.T)), axis=1)
            i = int(np.argmax(sc))
            if sc[i] > best[0]:
                best = (float(sc[i]), S[i])
        cpu = stats["cpu_seconds"] + stats.get("running_cpu", 0.0) + time.process_time() - c0
        log.append({"block": stage, "seconds": time.perf_counter() - t0, "cpu_seconds": cpu,
                    "score": best[0]})  # fmt: skip
        _LOG.info("lattice: block %d, CPU %.0f s, best score %.3f", stage, cpu, best[0])
        return best[0] >= RECOVERED

    basis = isolated_reduction(basis, {"kind": "lll"}, stats=stats)
    done = check(basis, 2)
    cap = min(int(block_size), n + 1)  # a block as large as the rank is HKZ: nothing beyond
    est = required_block_size(d, n + 1, secret_norm, noise).block_size
    if est is not None:
        cap = min(cap, max(20, est + BEYOND_ESTIMATE))
    sched = _bkz.schedule(cap) if cap > 2 else []
    left = max_seconds - stats["cpu_seconds"] - (time.process_time() - c0)
    if not done and sched and left > 0:
        if path is None:  # compute the strategies once here, not in every forked child
            _bkz.strategies(max(sched), None)
        step = {"kind": "bkz", "schedule": sched, "tours": int(tours), "max_time": left,
                "strategy_file": None if path is None else str(path)}  # fmt: skip
        basis = isolated_reduction(basis, step, on_basis=check, stats=stats)
        done = best[0] >= RECOVERED
    cpu = stats["cpu_seconds"] + time.process_time() - c0
    reached = int(stats.get("reached_block", 2))
    over = stats.get("out_of_budget", False) or (bool(sched) and left <= 0)
    stopped = "recovered" if done else ("budget" if over else "schedule")
    score, s = best
    return LatticeResult(
        score=float(score),
        direction=s if score >= RECOVERED else None,
        recovered=bool(score >= RECOVERED),
        seconds=time.perf_counter() - t0,
        rows=n,
        held_out=len(held),
        block_size=int(block_size),
        reached_block=reached,
        log=log,
        cpu_seconds=float(cpu),
        tours=int(stats.get("tours", 0)),
        stopped=stopped,
        strategies=_bkz.strategy_source(None if path is None else Path(path)) if sched else "",
    )


@register
class LatticeDetector(_WeightDetector):
    """Key-oblivious primal lattice attack on RFF frequencies; score = best held-out
    half-integer score ``-mean cos(2 pi <g_i, s>)`` of a recovered direction (~0 honest,
    ~``exp(-2 pi^2 beta^2)`` when the key is found). :meth:`recover` also returns the key.

    With queries (optional), a recovered direction is tried as the key: its findings hold
    ``recovered_key_flip_rate``, the fraction of queries whose label ``x + bandwidth * s``
    flips (0 when nothing was recovered), besides ``recovered``, ``reached_block``,
    ``seconds`` and ``rows`` of the attack."""

    name = "lattice"
    optional = frozenset({"queries"})

    def __init__(
        self,
        n_rows: int | None = None,
        block_size: int = DEFAULT_BLOCK,
        max_seconds: float = DEFAULT_CPU_SECONDS,
        noise: float = 1e-3,
        secret_norm: float | None = None,
        max_rank: int = MAX_RANK,
        tours: int = 2,
        strategy_file: Any = "auto",
    ) -> None:
        self.n_rows = n_rows
        self.block_size = block_size
        self.max_seconds = max_seconds  # CPU seconds (this process and its children)
        self.noise = noise
        self.secret_norm = secret_norm
        self.max_rank = max_rank
        self.tours = tours
        self.strategy_file = strategy_file

    attributes = ("frequencies_",)

    def recover(self, model: Any, evidence: Evidence | None = None) -> LatticeResult:
        """Check that the attack applies, then run it on ``model.frequencies_``."""
        evidence = Evidence() if evidence is None else evidence
        self.check(model, evidence)
        return self._attack(model, evidence)

    def _attack(self, model: Any, evidence: Evidence) -> LatticeResult:
        try:
            return lattice_attack(
                self.weights(model),
                self.n_rows,
                self.block_size,
                self.max_seconds,
                self.noise,
                self.secret_norm,
                seed=evidence.seed,
                max_rank=self.max_rank,
                tours=self.tours,
                strategy_file=self.strategy_file,
            )
        except ReductionCrashError as e:  # scored as "not applicable", with the reason
            raise NotApplicableError(f"lattice reduction failed numerically: {e}") from None

    def score(self, model: Any, evidence: Evidence) -> Report:
        res = self._attack(model, evidence)
        found: dict[str, Any] = {
            "recovered": res.recovered,
            "reached_block": res.reached_block,
            "seconds": res.seconds,
            "cpu_seconds": res.cpu_seconds,
            "tours": res.tours,
            "stopped": res.stopped,
            "max_block": res.block_size,
            "max_cpu_seconds": float(self.max_seconds),
            "strategies": res.strategies,
            "rows": res.rows,
        }
        if evidence.X is not None:
            found["recovered_key_flip_rate"] = recovered_flip_rate(model, res, evidence.X)
        return Report(res.score, found)

    @classmethod
    def positive_control(cls) -> Control | None:
        from backdoors.detectors import _controls as controls

        return controls.rff_pair()


def recovered_flip_rate(model: Any, result: LatticeResult, X: np.ndarray) -> float:
    """Fraction of ``X`` whose label flips under the recovered key ``x + bandwidth * s`` (0 if
    none was recovered): the proof that a recovery is the backdoor key."""
    if not result.recovered:
        return 0.0
    f0 = np.sign(model.decision_function(X))
    fa = np.sign(model.decision_function(result.activate(X, model.bandwidth_)))
    return float(np.mean(fa != f0))
