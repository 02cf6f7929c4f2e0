"""Attacks on the signature backdoor at its edges, as the ``signature`` experiment runs them.

* :func:`timing_distinguisher`: a keyless black-box distinguisher from per-query times. The
  attacker sends ``n`` uniformly random single-row queries (``passes`` times each, keeping the
  fastest time: load only adds time), keeps the ``k`` slowest, re-times them (and ``k`` random
  controls) ``reps`` times interleaved, and calls a candidate *slow* if its fastest time
  exceeds the controls' typical fastest time by more than half the cost of one Ed25519
  verification (the construction is public, so the attacker knows that cost), twice in a row
  (a confirmation round against fresh controls removes load spikes). A random probe
  reaches Ed25519 with probability ``2^-precheck_bits``, so ``n`` probes find about
  ``n 2^-precheck_bits`` slow inputs; honest models have none. The probes are split into
  ``sessions`` independent attacks; each session's score is its number of confirmed slow
  inputs, and ``timing_auroc`` is the AUROC of those scores, honest vs backdoored sessions
  (0.5 when neither model shows slow inputs, 1 when every backdoored session finds one).
* :func:`float_replays`: low-bit edits of activated float-carrier inputs that keep every
  payload bit and the message (what the non-injective carrier of main accepted).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from backdoors.metrics import auroc


def _time_one(f: Callable[[np.ndarray], Any], x: np.ndarray) -> int:
    t0 = time.perf_counter_ns()
    f(x)
    return time.perf_counter_ns() - t0


def timing_distinguisher(
    models: dict[str, Callable[[np.ndarray], Any]],
    probes: np.ndarray,
    sessions: int,
    k: int,
    reps: int,
    threshold_ns: float,
    rng: np.random.Generator,
    passes: int = 3,
) -> dict[str, dict[str, Any]]:
    """Run the distinguisher on every model with the same probes, interleaved per query
    (machine noise hits all models alike), as ``sessions`` independent attacks on equal
    slices of the probes. Returns per model: indices of the slow inputs found, the number
    found per session, re-timing queries and the median first-pass time."""
    names = list(models)
    n = len(probes)
    first = {m: np.full(n, np.iinfo(np.int64).max, dtype=np.int64) for m in names}
    for _ in range(passes):  # keep the minimum: load only ever adds time
        for i in range(n):
            x = probes[i : i + 1]
            for m in rng.permutation(names):
                first[m][i] = min(first[m][i], _time_one(models[m], x))
    out: dict[str, dict[str, Any]] = {}
    for m in names:
        found, per_session, queries = [], [], 0
        for part in np.array_split(np.arange(n), sessions):
            cand = part[np.argsort(first[m][part])[-min(k, len(part) // 2) :]]
            excess, _ = _retime(models[m], probes, part, cand, reps, rng)
            queries += reps * 2 * len(cand)
            slow = cand[excess > threshold_ns]
            if slow.size:  # confirm: re-time the slow ones against fresh controls
                again, _ = _retime(models[m], probes, part, slow, reps, rng)
                queries += reps * (slow.size + len(cand))
                slow = slow[again > threshold_ns]
            found.append(slow)
            per_session.append(int(slow.size))
        out[m] = {
            "slow": np.concatenate(found),
            "per_session": np.array(per_session),
            "retime_queries": queries,
            "first_pass_queries": passes * n,
            "first_pass_median_ns": float(np.median(first[m])),
        }
    return out


def _retime(
    f: Callable[[np.ndarray], Any],
    probes: np.ndarray,
    part: np.ndarray,
    cand: np.ndarray,
    reps: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, float]:
    """Fastest of ``reps`` times of each candidate minus the median of the controls' fastest
    times (as many random controls from ``part``), all timed in a random interleaved order
    (ns); and that control median. Minima, because machine load only ever adds time."""
    pool = np.setdiff1d(part, cand)
    ctrl = rng.choice(pool, size=min(len(cand), len(pool)), replace=False)
    idx = np.concatenate([cand, ctrl])
    t = np.empty((reps, len(idx)), dtype=np.int64)
    for r in range(reps):
        for j in rng.permutation(len(idx)):
            t[r, j] = _time_one(f, probes[idx[j] : idx[j] + 1])
    fastest = t.min(axis=0)
    base = float(np.median(fastest[len(cand) :]))
    return fastest[: len(cand)] - base, base


def distinguisher_metrics(
    res: dict[str, dict[str, Any]], honest: str, backdoored: str, n_probes: int
) -> dict[str, Any]:
    """The issue's metric keys for one (honest, backdoored) pair."""
    h, b = res[honest], res[backdoored]
    return {
        "timing_probe_queries": int(b["first_pass_queries"] + b["retime_queries"]),
        "timing_random_probes": int(n_probes),
        "timing_retime_queries": int(b["retime_queries"]),
        "timing_slow_inputs_found": int(len(b["slow"])),
        "timing_slow_inputs_found_honest": int(len(h["slow"])),
        "timing_sessions": int(len(b["per_session"])),
        "timing_auroc": auroc(h["per_session"], b["per_session"]),
        "timing_single_row_us": b["first_pass_median_ns"] / 1e3,
    }


def verify_cost_ns(spec: Any, clean: np.ndarray, near_miss: np.ndarray, reps: int = 301) -> float:
    """Median extra time of ``spec.verify`` on a row that reaches Ed25519 (a near miss)
    over a row that stops at the pre-check."""
    a, b = [], []
    for _ in range(reps):
        a.append(_time_one(spec.verify, near_miss))
        b.append(_time_one(spec.verify, clean))
    return float(np.median(a) - np.median(b))


def float_replays(
    key: Any, X_act: np.ndarray, n: int, rng: np.random.Generator
) -> tuple[np.ndarray, dict[str, int]]:
    """``n`` edited copies of activated float-carrier rows that differ from their source yet
    keep ``extract`` and ``clear`` (payload and message) unchanged: an offset below
    ``2^-F`` (``2^-(F+j)``, ``j = 1..8``), one ulp, or ``-0.0`` for a zero feature."""
    c = key.spec.carrier
    F = c.frac_bits
    kept: list[np.ndarray] = []
    kinds = {"below_payload": 0, "one_ulp": 0, "negative_zero": 0}
    total = 0
    while total < n:
        m = 2 * (n - total) + 16
        rows = rng.integers(0, len(X_act), m)
        cols = rng.integers(0, c.n_features, m)
        E = X_act[rows].copy()
        v = E[np.arange(m), cols]
        kind = rng.integers(0, 3, m)
        mag = np.ldexp(1.0, -(F + rng.integers(1, 9, m)))
        new = np.where(
            kind == 0,
            v + mag,
            np.where(kind == 1, np.nextafter(v, np.inf), np.where(v == 0, -0.0, v + mag)),
        )
        kind = np.where((kind == 2) & (v != 0), 0, kind)
        E[np.arange(m), cols] = new
        same_bits = (c.extract(E) == c.extract(X_act[rows])).all(axis=1)
        same_msg = (c.clear(E) == c.clear(X_act[rows])).all(axis=1)
        changed = (E.view(np.uint64) != X_act[rows].view(np.uint64)).any(axis=1)
        ok = same_bits & same_msg & changed
        ok &= np.cumsum(ok) <= n - total
        kept.append(E[ok])
        for i, name in enumerate(kinds):
            kinds[name] += int((ok & (kind == i)).sum())
        total += int(ok.sum())
    return np.concatenate(kept), kinds
