"""Progressive BKZ 2.0 for the lattice detector: fplll's BKZ with pruned enumeration and
recursive preprocessing (Chen-Nguyen 2011), driven one tour at a time so that a caller can
test every intermediate basis and stop on a CPU budget.

Strategies (per block size: preprocessing block sizes and pruning coefficients) come from
fplll's default strategy file when one is installed -- looked up at run time, never shipped
or downloaded: ``$BACKDOORS_FPLLL_STRATEGIES``, fpylll's ``BKZ.DEFAULT_STRATEGY``, then the
usual system paths (Debian's ``libfplll8-data``: ``/usr/share/libfplll8/strategies``). Without
one, :func:`computed_strategy` derives them here: preprocessing with BKZ-``(b - 20)`` for
``b >= 30``, exact enumeration up to ``b = 44``, and from 45 on pruning coefficients optimised
by fplll's pruner (``fpylll.Pruning.run``) on the geometric-series-assumption (GSA) profile
of the preprocessed block, radius ``1.1 GH`` squared, success probability ``0.5``.

Every reduction runs in a forked child (:func:`isolated_reduction`): fplll can abort the
process it runs in, and the child's CPU time is measured exactly (``wait4``).
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

#: Environment variable naming an fplll strategy file (JSON) to use.
STRATEGY_ENV = "BACKDOORS_FPLLL_STRATEGIES"
#: System locations of fplll's default strategy file, tried after the variable and fpylll's own.
SYSTEM_STRATEGY_FILES = (
    "/usr/share/libfplll8/strategies/default.json",
    "/usr/share/libfplll9/strategies/default.json",
    "/usr/share/fplll/strategies/default.json",
    "/usr/local/share/fplll/strategies/default.json",
)
#: Block sizes at and below this run exact (unpruned) enumeration in the computed strategies:
#: pruning without preprocessing drives the pruner to tiny success probabilities, and BKZ then
#: repeats enumerations on LLL-quality blocks (BKZ-40 at d = 64 did not finish in 10 minutes).
EXACT_UP_TO = 44
#: Radius of the pruned enumeration relative to the Gaussian heuristic (squared norms).
GH_FACTOR = 1.1
#: Target success probability of one pruned enumeration in the computed strategies.
PRUNING_TARGET = 0.5


def strategy_candidates() -> list[Path]:
    """Where fplll's strategy file is looked up, in order: the environment variable, fpylll's
    compiled-in ``BKZ.DEFAULT_STRATEGY``, then :data:`SYSTEM_STRATEGY_FILES`."""
    out = []
    env = os.environ.get(STRATEGY_ENV)
    if env:
        out.append(Path(env))
    try:
        from fpylll import BKZ

        raw = BKZ.DEFAULT_STRATEGY
        out.append(Path(raw.decode() if isinstance(raw, bytes) else str(raw)))
    except ImportError:  # pragma: no cover - the detector needs fpylll anyway
        pass
    out.extend(Path(p) for p in SYSTEM_STRATEGY_FILES)
    return out


def find_strategy_file(candidates: list[Path] | None = None) -> Path | None:
    """The first readable strategy file among ``candidates`` (default
    :func:`strategy_candidates`), or ``None``."""
    for p in strategy_candidates() if candidates is None else candidates:
        if p.is_file() and os.access(p, os.R_OK):
            return p
    return None


def _nodes_log2(k: int) -> float:
    """log2 of the enumeration nodes of one pruned SVP call in dimension ``k`` after BKZ 2.0
    preprocessing (Chen-Nguyen's fit: ``0.000784 k^2 + 0.366 k - 0.9``)."""
    return 0.000784 * k * k + 0.366 * k - 0.9


def preprocessing_block(b: int) -> int | None:
    """Preprocessing block size of the computed strategy for block size ``b`` (``None``: LLL
    only): ``b - 20`` from ``b = 30`` on (fplll's default file uses about ``b - 20`` from
    ``b ~ 45`` on)."""
    return b - 20 if b >= 30 else None


@cache
def computed_strategy(b: int) -> Any:
    """Our own BKZ 2.0 strategy for block size ``b``: :func:`preprocessing_block`, and pruning
    coefficients from ``fpylll.Pruning.run`` on a GSA profile ``r_i = delta^(-4 i)`` (squared
    Gram-Schmidt norms; ``delta`` the root-Hermite factor of the preprocessing) with squared
    radius ``GH_FACTOR * GH^2``, ``GH^2 = Gamma(b/2 + 1)^(2/b) / pi * prod(r_i)^(1/b)``."""
    from fpylll import Pruning
    from fpylll.fplll.bkz_param import Strategy
    from fpylll.fplll.pruner import PruningParams

    from backdoors.rff.lattice_cost import delta

    pre = preprocessing_block(b)
    if b <= EXACT_UP_TO:
        return Strategy(b, [] if pre is None else [pre])
    dl = delta(pre if pre is not None else 2)
    r = [dl ** (-4 * i) for i in range(b)]
    log_vol = sum(math.log(x) for x in r) / b
    gh2 = math.exp(2 * math.lgamma(b / 2 + 1) / b + log_vol) / math.pi
    pre_cost = b * 2 ** _nodes_log2(pre if pre is not None else 10)
    pr = Pruning.run(GH_FACTOR * gh2, pre_cost, [r], PRUNING_TARGET, float_type="double")
    params = PruningParams(GH_FACTOR, list(pr.coefficients), pr.expectation)
    return Strategy(b, [] if pre is None else [pre], [params])


@lru_cache(maxsize=8)
def _loaded(path: str) -> tuple[Any, ...]:
    from fpylll import load_strategies_json

    return tuple(load_strategies_json(path.encode()))


def strategies(max_block: int, path: Path | None) -> list[Any]:
    """Strategies for block sizes ``0 .. max_block``: those of the file at ``path`` (block sizes
    beyond the file, or ``path=None``: :func:`computed_strategy`)."""
    loaded = _loaded(str(path)) if path is not None else ()
    return [loaded[b] if b < len(loaded) else computed_strategy(b) for b in range(max_block + 1)]


def strategy_source(path: Path | None) -> str:
    """How the strategies were obtained, for reports."""
    if path is not None:
        return f"fplll strategy file {path}"
    return (f"computed: preprocessing BKZ-(b-20) from b=30, exact enumeration up to "
            f"b={EXACT_UP_TO}, then fpylll.Pruning on a GSA profile (radius {GH_FACTOR} GH, "
            f"p={PRUNING_TARGET})")  # fmt: skip


def schedule(max_block: int, start: int = 20) -> list[int]:
    """Progressive block sizes: ``start, start + 5, ...`` up to 40, then steps of 3 up to
    ``max_block`` (which is always the last one when ``> 2``)."""
    out: list[int] = []
    b = start
    while b < max_block:
        out.append(b)
        b += 5 if b < 40 else 3
    if max_block > 2:
        out.append(int(max_block))
    return out


def next_tour_seconds(last_block: int, last_seconds: float, block: int) -> float:
    """Predicted CPU seconds of a tour at ``block`` after one at ``last_block`` took
    ``last_seconds``: ``x 2^(0.25 (block - last_block))`` (the growth
    :func:`backdoors.rff.lattice_cost.attack_seconds` uses; measured here: x1.7 per +3 from
    BKZ-43 to 49 at rank 264). 0 before the first tour."""
    return last_seconds * 2 ** (0.25 * (block - last_block)) if last_block else 0.0


def run_progressive(conn: Any, rows: list[list[int]], step: dict[str, Any]) -> None:
    """In the reduction child: LLL, then for each block size of ``step['schedule']`` up to
    ``step['tours']`` BKZ 2.0 tours (fewer when a tour changes nothing or the basis stops
    improving: fpylll's ``AutoAbort``), sending ``("basis", rows, block, tour, child CPU s)``
    after each tour and ``("done", ...)`` at the end (tour ``-1``: out of budget). Does not
    start a tour that :func:`next_tour_seconds` predicts to end past ``step['max_time']``
    CPU seconds of the child (a started tour is not interrupted)."""
    from fpylll import BKZ, GSO, LLL, IntegerMatrix
    from fpylll.fplll.bkz import BKZReduction

    ft = step.get("float_type")
    t0 = time.process_time()
    A = IntegerMatrix.from_matrix(rows)
    prec = {"float_type": ft, "precision": 160 if ft == "mpfr" else 0}
    LLL.reduction(A, method=None if ft is None else "heuristic", **prec)

    def dump() -> list[list[int]]:
        return [[A[i, j] for j in range(A.ncols)] for i in range(A.nrows)]

    conn.send(("basis", dump(), 2, 0, time.process_time() - t0))
    gso_ft = "ld" if ft is None else ft  # double: "infinite loop in babai" from rank ~260
    if gso_ft == "mpfr":
        from fpylll import FPLLL

        FPLLL.set_precision(160)
    M = GSO.Mat(A, float_type=gso_ft, flags=GSO.ROW_EXPO if gso_ft == "ld" else GSO.DEFAULT)
    M.update_gso()
    lll = LLL.Reduction(M)
    sched = [min(b, A.nrows) for b in step["schedule"]]
    path = step.get("strategy_file")
    strat = strategies(max(sched, default=2), Path(path) if path else None)
    flags = BKZ.GH_BND | BKZ.MAX_LOOPS
    last = (0, 0.0)  # block size and CPU seconds of the last tour
    for b in sched:
        par = BKZ.Param(block_size=b, strategies=strat, max_loops=step["tours"], flags=flags)
        bkz = BKZReduction(M, lll, par)
        abort = BKZ.AutoAbort(M, A.nrows)
        for tour in range(step["tours"]):
            spent = time.process_time() - t0
            if spent + next_tour_seconds(*last, b) >= step["max_time"]:
                conn.send(("done", dump(), b, -1, spent))
                return
            clean = bkz.tour(tour, par, 0, A.nrows)[0]
            last = (b, time.process_time() - t0 - spent)
            conn.send(("basis", dump(), b, tour + 1, time.process_time() - t0))
            if clean or abort.test_abort():
                break
    conn.send(("done", dump(), sched[-1] if sched else 2, 0, time.process_time() - t0))


#: fplll float types tried in turn when a reduction fails numerically: its automatic choice
#: (``long double`` Gram-Schmidt with row exponents for the tours), then double with a
#: separate exponent (``dpe``: the basis entries are scaled integers whose Gram-Schmidt norms
#: can leave double's exponent range), then ``mpfr`` at 160 bits. A retry resumes from the
#: last basis the child sent.
FLOAT_TYPES = (None, "dpe", "mpfr")
#: Wall seconds a reduction child may take beyond its CPU budget (LLL has none) before it is
#: killed as hung (LLL at rank 400 takes minutes of CPU, more wall time on a shared machine).
CHILD_TIMEOUT = 1800.0
#: The child is killed once its wall time exceeds this multiple of its CPU budget (plus
#: :data:`CHILD_TIMEOUT`): the machine may be shared, so wall time runs ahead of CPU time.
WALL_FACTOR = 3.0


class ReductionCrashError(RuntimeError):
    """fplll ended the process that ran a reduction (e.g. ``std::runtime_error: infinite loop
    in babai``, thrown where Python cannot catch it)."""


def _reduce_child(conn: Any, rows: list[list[int]], step: dict[str, Any]) -> None:
    """Child side of :func:`isolated_reduction`: ``step['kind']`` is ``"lll"`` (one message
    ``("done", rows, 2, 0)``) or ``"bkz"`` (:func:`run_progressive`)."""
    if step["kind"] == "lll":
        from fpylll import LLL, IntegerMatrix

        A = IntegerMatrix.from_matrix(rows)
        ft = step.get("float_type")
        extra = {"float_type": ft, "precision": 160 if ft == "mpfr" else 0}
        LLL.reduction(A, method=None if ft is None else "heuristic", **extra)
        rows = [[A[i, j] for j in range(A.ncols)] for i in range(A.nrows)]
        conn.send(("done", rows, 2, 0, time.process_time()))
    else:
        run_progressive(conn, rows, step)
    conn.close()


def _child_entry(conn: Any, rows: list[list[int]], step: dict[str, Any]) -> None:
    """The forked child: an abort must end it at once. cysignals' handler would call
    ``exit()``, whose atexit handlers (e.g. onnxruntime's, with thread pools that do not exist
    in a fork) can hang, so SIGABRT gets its default action; the child leaves by ``_exit``."""
    import signal

    code = 1
    with contextlib.suppress(ValueError):  # ValueError: not the main thread; keep the handler
        signal.signal(signal.SIGABRT, signal.SIG_DFL)
    try:
        _reduce_child(conn, rows, step)
        code = 0
    finally:
        os._exit(code)


def _run_child(
    rows: list[list[int]], step: dict[str, Any], on_basis: Any, stats: dict[str, Any]
) -> tuple[str, list[list[int]] | None, int]:
    """Fork one reduction child and follow its messages: ``("finished" | "stopped" |
    "failed", last basis received or None, exit code)``; its CPU time (``wait4``) is added to
    ``stats['cpu_seconds']``."""
    import multiprocessing as mp
    import signal

    recv, send = mp.Pipe(duplex=False)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child leaves by os._exit in _child_entry
        recv.close()
        _child_entry(send, rows, step)
    send.close()
    deadline = time.monotonic() + WALL_FACTOR * float(step.get("max_time", 0)) + CHILD_TIMEOUT
    last, outcome = None, "failed"
    try:
        while recv.poll(max(0.0, deadline - time.monotonic())):
            kind, basis, block, tour, stats["running_cpu"] = recv.recv()
            last = basis
            if block > 2 and kind == "basis":  # a "done" may name a block it did not start
                stats["reached_block"] = max(stats.get("reached_block", 2), block)
                stats["tours"] = stats.get("tours", 0) + 1
            if kind == "done":
                stats["out_of_budget"] = tour < 0
                outcome = "finished"
                break
            if on_basis is not None and on_basis(basis, block):
                outcome = "stopped"
                break
    except EOFError:  # the child died before sending
        pass
    if outcome != "finished":
        with contextlib.suppress(ProcessLookupError):  # it may be gone already
            os.kill(pid, signal.SIGKILL)
    _, status, usage = os.wait4(pid, 0)
    recv.close()
    stats["running_cpu"] = 0.0
    stats["cpu_seconds"] = stats.get("cpu_seconds", 0.0) + usage.ru_utime + usage.ru_stime
    return outcome, last, os.waitstatus_to_exitcode(status)


def isolated_reduction(
    rows: list[list[int]],
    step: dict[str, Any],
    on_basis: Any = None,
    stats: dict[str, Any] | None = None,
) -> list[list[int]]:
    """An LLL (``step['kind'] == "lll"``) or progressive BKZ 2.0 reduction (``"bkz"``, with
    ``schedule``, ``tours``, ``max_time`` CPU seconds, ``strategy_file``) of the basis ``rows``
    in a forked child, returning the last basis it produced: fplll aborts the whole process
    on some numerical failures, and a detector must not take its caller (a population worker,
    an audit) down with it. ``on_basis(rows, block)`` sees every intermediate basis and stops
    the reduction by returning True. Retries with the float types of :data:`FLOAT_TYPES`
    (resuming from the last basis received); :class:`ReductionCrashError` if every one fails.
    ``stats`` accumulates ``cpu_seconds`` (children), ``reached_block`` and ``tours``."""
    stats = {} if stats is None else stats
    current, codes = rows, []
    sched = list(step.get("schedule", ()))
    base = stats.get("cpu_seconds", 0.0)  # spent before this call: not this call's budget
    for ft in FLOAT_TYPES:
        left = float(step.get("max_time", 0)) - (stats.get("cpu_seconds", 0.0) - base)
        sub = {**step, "float_type": ft, "schedule": sched, "max_time": max(left, 0.0)}
        outcome, last, code = _run_child(current, sub, on_basis, stats)
        if last is not None:
            current = last
            sched = [b for b in sched if b >= stats.get("reached_block", 2)]
        if outcome != "failed":
            return current
        codes.append(code)
    kind = step["kind"]
    raise ReductionCrashError(f"fplll {kind} failed with every float type (exit codes {codes})")
