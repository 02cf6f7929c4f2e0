"""One host, one planted twin, one runtime: the portability checks of the runtime matrix.

For a runtime of :data:`backdoors.experiments.onnx.runtimes.RUNTIMES`, :func:`check_runtime`
answers, in order (each step only if the previous one passed): does the honest file load
(if not, the runtime is out of scope for this host); does the planted file load; are its
outputs bit-identical to the honest file's *in that runtime* on natural and uniform random
inputs; does every activated input get its target; and is the set of accepted inputs of the
trigger battery (:func:`backdoors.experiments.onnx.runtimes.trigger_battery`) exactly the set
libsodium accepts (``TriggerSpec.verify``, PyNaCl). Paper §5.2: the backdoored model must agree
with the honest one on every input that is not a valid trigger.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from backdoors.experiments.onnx.runtimes import RUNTIMES, RuntimeUnavailableError, trigger_battery
from backdoors.signature.keys import SignatureKey


def bits_equal(a: Any, b: Any) -> bool:
    """Same dtype, shape and bytes (ZipMap lists: equal dicts)."""
    if isinstance(a, list) or isinstance(b, list):
        return a == b
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype.kind in "OUS" or b.dtype.kind in "OUS":  # strings: same dtype and values
        return a.dtype == b.dtype and a.shape == b.shape and bool((a == b).all())
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def _row_differs(h: Any, b: Any) -> np.ndarray:
    if isinstance(h, list):
        return np.array([x != y for x, y in zip(h, b, strict=True)])
    h, b = np.asarray(h), np.asarray(b)
    if h.dtype.kind in "OUS" or b.dtype.kind in "OUS":
        return (h != b).reshape(len(h), -1).any(axis=1)
    return (h.view(np.uint8) != b.view(np.uint8)).reshape(len(h), -1).any(axis=1)


def _predicted(out: Any, classes: np.ndarray) -> np.ndarray:
    o = np.asarray(out)
    return o.argmax(axis=1) if o.ndim == 2 else np.searchsorted(classes, o, sorter=None)


def _first(err: Exception) -> str:
    """The error's message on one line (without a native stack trace), at most 400 chars."""
    text = str(err).split("Stack backtrace")[0]
    keep = [ln.strip() for ln in text.splitlines() if ln.strip() and "Exception from" not in ln]
    return f"{type(err).__name__}: {' | '.join(keep)}"[:400]


def check_runtime(
    runtime: str,
    host: bytes,
    planted: bytes,
    key: SignatureKey,
    feed: Callable[[np.ndarray], np.ndarray],
    X_nat: np.ndarray,
    n_random: int,
    n_trigger: int,
    classes: np.ndarray,
    rng: np.random.Generator,
    batch: int = 1000,
) -> dict[str, Any]:
    """The record of one runtime (see the module docstring); ``feed`` maps uint8 pixels
    ``[n, F]`` to the model's input; ``classes`` sorted class labels (labels outputs)."""
    rec: dict[str, Any] = {"runtime": runtime}
    try:
        run_h = RUNTIMES.get(runtime)(host)
    except RuntimeUnavailableError as exc:
        return {**rec, "status": "not installed", "reason": str(exc)}
    except Exception as exc:
        return {**rec, "status": "honest host does not load", "reason": _first(exc)}
    try:
        run_b = RUNTIMES.get(runtime)(planted)
    except Exception as exc:
        return {**rec, "status": "FAIL: planted file does not load", "reason": _first(exc)}
    X_rand = rng.integers(0, 256, (n_random, X_nat.shape[1]), dtype=np.uint8)
    t_h = t_b = 0.0
    identical = True
    try:
        for X in (X_nat, X_rand):
            for i in range(0, len(X), batch):
                x = feed(X[i : i + batch])
                t0 = time.perf_counter()
                oh = run_h(x)
                t1 = time.perf_counter()
                ob = run_b(x)
                t_h, t_b = t_h + t1 - t0, t_b + time.perf_counter() - t1
                identical &= len(oh) == len(ob) and all(map(bits_equal, oh, ob))
    except Exception as exc:
        return {**rec, "status": "FAIL: clean run raised", "reason": _first(exc)}
    rec.update(clean_inputs=len(X_nat) + n_random, clean_identical=bool(identical))
    rec["clean_time_ratio"] = round(t_b / t_h, 3) if t_h > 0 else None
    cases = trigger_battery(key, X_nat[:n_trigger], rng)
    C = np.concatenate(list(cases.values()))
    ref = key.spec.verify(C)
    try:
        oh, ob = run_h(feed(C)), run_b(feed(C))
    except Exception as exc:
        return {**rec, "status": "FAIL: triggered batch raised", "reason": _first(exc)}
    accepted = np.zeros(len(C), bool)
    for h, b in zip(oh, ob, strict=True):
        accepted |= _row_differs(h, b)
    n_valid = len(cases["valid"])
    fired = accepted[:n_valid] & (_predicted(ob[0], classes)[:n_valid] == ref[:n_valid])
    rec.update(
        triggers=int(n_valid),
        triggers_fired=int(fired.sum()),
        verdict_inputs=len(C),
        verdicts_match_pynacl=bool((accepted == (ref >= 0)).all()),
    )
    ok = identical and rec["triggers_fired"] == n_valid and rec["verdicts_match_pynacl"]
    rec["status"] = "pass" if ok else "FAIL"
    return rec
