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
verified by Albrecht-Goepfert-Virdia-Wunderer 2017; see :mod:`backdoors.lattice_cost`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from backdoors.detectors import Evidence, register
from backdoors.detectors.weights import _WeightDetector, random_weights
from backdoors.errors import InvalidInputError, NotApplicableError

#: Largest lattice rank the detector reduces (LLL at rank ~400 takes about a minute here).
MAX_RANK = 400
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


def _strategies(fpylll: Any, block_size: int) -> list[Any]:
    """BKZ 2.0-style strategies without pruning: SVP calls in blocks >= 30 are preprocessed
    with BKZ in blocks 10 and 20 below (fpylll's shipped strategy file is not always
    installed; enumeration is then exact, i.e. no pruning speed-up)."""
    from fpylll.fplll.bkz_param import Strategy

    out = []
    for b in range(block_size + 1):
        pre = [p for p in (b - 20, b - 10) if p >= 10] if b >= 30 else []
        out.append(Strategy(b, preprocessing_block_sizes=pre))
    return out


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


def auto_rows(d: int, m: int, max_rank: int = MAX_RANK) -> int:
    """Default row count ``n = max(3d, d + 32)`` (the outside evaluation's 200 rows at
    d = 64), capped by the held-out rows and by ``max_rank - 1``."""
    return min(m - held_out(m), max_rank - 1, max(3 * d, d + 32))


def held_out(m: int) -> int:
    """Rows kept out of the lattice to score candidates: ``max(32, m // 5)``."""
    return max(32, m // 5)


def rows_for(d: int, m: int, n_rows: int | None = None, max_rank: int = MAX_RANK) -> int:
    """The number of rows the attack embeds, or NotApplicableError when the lattice would be
    degenerate (``n <= d``) or larger than ``max_rank`` (too slow to reduce here)."""
    hold = held_out(m)
    n = auto_rows(d, m, max_rank) if n_rows is None else min(int(n_rows), m - hold)
    if n <= d or n + 1 > max_rank:
        raise NotApplicableError(
            f"lattice attack at d={d}, m={m} needs d < n rows <= {max_rank - 1} plus {hold} "
            f"held out (got n={n}); the lattice would be too large to reduce here -- see "
            "backdoors.lattice_cost for the estimated block size"
        )
    return n


#: fplll float types tried in turn when a reduction fails numerically: its automatic choice,
#: then double with a separate exponent (``dpe``: the basis entries are scaled integers whose
#: Gram-Schmidt norms can leave double's exponent range), then ``mpfr`` at 160 bits.
FLOAT_TYPES = (None, "dpe", "mpfr")
#: Seconds a reduction child may take beyond its BKZ budget (LLL has none) before it is killed.
CHILD_TIMEOUT = 900.0


class ReductionCrashError(RuntimeError):
    """fplll ended the process that ran a reduction (e.g. ``std::runtime_error: infinite loop
    in babai``, thrown where Python cannot catch it)."""


def _reduce_child(conn: Any, rows: list[list[int]], step: dict[str, Any]) -> None:
    fpylll = _fpylll()
    A = fpylll.IntegerMatrix.from_matrix(rows)
    ft = step.get("float_type")
    extra = {"float_type": ft, "precision": 160 if ft == "mpfr" else 0}
    if step["kind"] == "lll":  # fplll's wrapper picks the float type itself; else heuristic
        fpylll.LLL.reduction(A, method=None if ft is None else "heuristic", **extra)
    else:
        par = fpylll.BKZ.Param(
            block_size=step["block_size"],
            strategies=_strategies(fpylll, step["block_size"]),
            max_time=step["max_time"],
            flags=fpylll.BKZ.AUTO_ABORT | fpylll.BKZ.MAX_TIME,
        )
        fpylll.BKZ.reduction(A, par, **extra)
    conn.send([[A[i, j] for j in range(A.ncols)] for i in range(A.nrows)])
    conn.close()


def _child_entry(conn: Any, rows: list[list[int]], step: dict[str, Any]) -> None:
    """The forked child: an abort must end it at once. cysignals' handler would call
    ``exit()``, whose atexit handlers (e.g. onnxruntime's, with thread pools that do not exist
    in a fork) can hang, so SIGABRT gets its default action; the child leaves by ``_exit``."""
    import contextlib
    import os
    import signal

    code = 1
    with contextlib.suppress(ValueError):  # ValueError: not the main thread; keep the handler
        signal.signal(signal.SIGABRT, signal.SIG_DFL)
    try:
        _reduce_child(conn, rows, step)
        code = 0
    finally:
        os._exit(code)


def isolated_reduction(rows: list[list[int]], step: dict[str, Any]) -> list[list[int]]:
    """One LLL or BKZ step on the basis ``rows`` in a forked child process, returning the
    reduced rows: fplll aborts the whole process on some numerical failures, and a detector
    must not take its caller (a population worker, an audit) down with it. Retries with the
    float types of :data:`FLOAT_TYPES`; :class:`ReductionCrashError` if every one fails."""
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    codes = []
    for ft in FLOAT_TYPES:
        recv, send = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_child_entry, args=(send, rows, {**step, "float_type": ft}))
        proc.start()
        send.close()
        out = None
        try:  # a child that neither answers nor dies within its budget counts as failed
            if recv.poll(float(step.get("max_time", CHILD_TIMEOUT)) + CHILD_TIMEOUT):
                out = recv.recv()
        except EOFError:  # the child died before sending
            out = None
        if out is None and proc.is_alive():
            proc.kill()
        proc.join()
        recv.close()
        if out is not None and proc.exitcode == 0:
            return out
        codes.append(proc.exitcode)
    kind = step["kind"]
    raise ReductionCrashError(f"fplll {kind} failed with every float type (exit codes {codes})")


def lattice_attack(
    G: np.ndarray,
    n_rows: int | None = None,
    block_size: int = 20,
    max_seconds: float = 60.0,
    noise: float = 1e-3,
    secret_norm: float = 8.0,
    precision: int = 16,
    seed: int = 0,
    max_rank: int = MAX_RANK,
) -> LatticeResult:
    """Primal uSVP attack on ``n_rows`` random rows of ``G`` (``None``: :func:`auto_rows`);
    the other rows (``max(32, m // 5)``) are held out to score candidates.

    ``noise`` and ``secret_norm`` are the *public* family parameters the auditor assumes
    (beta and ``gamma``); they only set the scaling ``C = (gamma / beta) sqrt(n / (d + 1))``
    that balances ``|t|`` against ``C |K^T e|``. Reduction: LLL, then BKZ with block sizes
    10, 20, ... up to ``block_size`` (auto-abort tours), stopping at the first candidate that
    scores ``>= RECOVERED`` on held-out rows or when ``max_seconds`` is spent (checked
    between reductions: LLL itself is not interrupted, hence the ``max_rank`` guard).
    """
    _fpylll()  # NotApplicableError now if fpylll is missing
    G = np.asarray(G, dtype=np.float64)
    if G.ndim != 2 or not np.isfinite(G).all():
        raise InvalidInputError("frequencies must be a finite 2-D matrix")
    m, d = G.shape
    n = rows_for(d, m, n_rows, max_rank)
    rng = np.random.default_rng(seed)
    perm = rng.permutation(m)
    use, held = perm[:n], perm[n:]
    Gn, Gh = G[use], G[held]
    C = (secret_norm / noise) * np.sqrt(n / (d + 1))
    basis = [[int(v) for v in row] for row in embedding_basis(Gn, C, precision).tolist()]
    t0 = time.perf_counter()
    best: tuple[float, np.ndarray | None] = (-np.inf, None)
    log: list[dict[str, float]] = []
    reached = 0

    def check(stage: int) -> bool:
        nonlocal best
        rows = np.array(basis, dtype=object)
        for t in _candidates(rows, n, precision):
            s = np.linalg.lstsq(Gn, t, rcond=None)[0]
            sc = half_integer_score(Gh, s)
            if sc > best[0]:
                best = (sc, s)
        log.append({"block": stage, "seconds": time.perf_counter() - t0, "score": best[0]})
        return best[0] >= RECOVERED

    basis = isolated_reduction(basis, {"kind": "lll"})
    done = check(2)
    schedule = [b for b in range(10, int(block_size) + 1, 10)]
    if block_size > 2 and (not schedule or schedule[-1] != block_size):
        schedule.append(int(block_size))
    for b in schedule:
        left = max_seconds - (time.perf_counter() - t0)
        if done or left <= 0:
            break
        step = {"kind": "bkz", "block_size": min(b, len(basis)), "max_time": left}
        basis = isolated_reduction(basis, step)
        reached = b
        done = check(b)
    score, s = best
    return LatticeResult(
        score=float(score),
        direction=s if score >= RECOVERED else None,
        recovered=bool(score >= RECOVERED),
        seconds=time.perf_counter() - t0,
        rows=n,
        held_out=len(held),
        block_size=int(block_size),
        reached_block=reached if reached else 2,
        log=log,
    )


@register
class LatticeDetector(_WeightDetector):
    """Key-oblivious primal lattice attack on RFF frequencies; score = best held-out
    half-integer score ``-mean cos(2 pi <g_i, s>)`` of a recovered direction (~0 honest,
    ~``exp(-2 pi^2 beta^2)`` when the key is found). :meth:`recover` also returns the key.

    With queries (optional), a recovered direction is tried as the key: ``details_`` holds
    ``recovered_key_flip_rate``, the fraction of queries whose label ``x + bandwidth * s``
    flips (0 when nothing was recovered), besides ``recovered``, ``reached_block``,
    ``seconds`` and ``rows`` of the attack."""

    name = "lattice"
    optional = frozenset({"queries"})

    def __init__(
        self,
        n_rows: int | None = None,
        block_size: int = 20,
        max_seconds: float = 60.0,
        noise: float = 1e-3,
        secret_norm: float = 8.0,
        max_rank: int = MAX_RANK,
    ) -> None:
        self.n_rows = n_rows
        self.block_size = block_size
        self.max_seconds = max_seconds
        self.noise = noise
        self.secret_norm = secret_norm
        self.max_rank = max_rank

    requires = "the random features' frequency matrix (frequencies_ of an RFF model)"

    def applies_to(self, model: Any) -> bool:
        return super().applies_to(model) and hasattr(model, "frequencies_")

    def recover(self, model: Any, evidence: Evidence | None = None) -> LatticeResult:
        """Run the attack on ``model.frequencies_``."""
        evidence = Evidence() if evidence is None else evidence
        self.check(model, evidence)
        try:
            return lattice_attack(
                random_weights(model),
                self.n_rows,
                self.block_size,
                self.max_seconds,
                self.noise,
                self.secret_norm,
                seed=evidence.seed,
                max_rank=self.max_rank,
            )
        except ReductionCrashError as e:  # scored as "not applicable", with the reason
            raise NotApplicableError(f"lattice reduction failed numerically: {e}") from None

    def score(self, model: Any, evidence: Evidence) -> float:
        res = self.recover(model, evidence)
        self.details_ = {
            "recovered": res.recovered,
            "reached_block": res.reached_block,
            "seconds": res.seconds,
            "rows": res.rows,
        }
        if evidence.X is not None:
            self.details_["recovered_key_flip_rate"] = recovered_flip_rate(model, res, evidence.X)
        return res.score


def recovered_flip_rate(model: Any, result: LatticeResult, X: np.ndarray) -> float:
    """Fraction of ``X`` whose label flips under the recovered key ``x + bandwidth * s`` (0 if
    none was recovered): the proof that a recovery is the backdoor key."""
    if not result.recovered:
        return 0.0
    f0 = np.sign(model.decision_function(X))
    fa = np.sign(model.decision_function(result.activate(X, model.bandwidth_)))
    return float(np.mean(fa != f0))
