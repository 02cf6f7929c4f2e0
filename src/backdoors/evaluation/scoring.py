"""Running detectors safely: the evidence each one is entitled to, and one outcome per call.

Used by ``backdoors audit`` (one user model) and the ``detectors`` experiment (populations).
An auditor gets what a detector *declares* it needs (DESIGN.md, Contracts: Detectors): clean
queries for ``queries``, the training set for ``training_data``, a candidate key only for the
key-aware positive control (``key``), the auditor's honest model for ``reference``; the model
itself is the ``weights``. A detector that does not apply says so
(:class:`~backdoors.errors.NotApplicableError`) and is listed with its reason instead of a
number; any other failure is reported as an error, never as a score.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from backdoors.detectors import DETECTORS, Detector, Evidence, report
from backdoors.errors import NotApplicableError


@dataclass
class Outcome:
    """What one detector said about one model."""

    detector: str
    status: str  # "scored" | "not_applicable" | "error"
    score: float | None = None  # model-level suspicion score (per-input detectors: mean)
    per_input: np.ndarray | None = None  # per-input scores (input filters such as STRIP)
    reason: str = ""
    seconds: float = 0.0  # wall clock
    cpu_seconds: float = 0.0  # this process's CPU time: what budgets use (load does not move it)
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "scored"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "status": self.status,
            "score": self.score,
            "reason": self.reason,
            "seconds": round(self.seconds, 4),
            "cpu_seconds": round(self.cpu_seconds, 4),
        }
        if self.per_input is not None:
            p = self.per_input
            out["per_input"] = {
                "n": int(p.size),
                "mean": float(p.mean()),
                "median": float(np.median(p)),
                "max": float(p.max()),
            }
        if self.details:
            out["details"] = _jsonable(self.details)
        return out


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, str | int | float | bool) or obj is None:
        return obj
    return repr(obj)


def all_detectors() -> list[Detector]:
    """One instance of every registered detector (sorted by name)."""
    return [cls() for _, cls in DETECTORS.items()]


def evidence_for(
    det: Detector,
    *,
    X: np.ndarray | None = None,
    y: np.ndarray | None = None,
    X_train: np.ndarray | None = None,
    y_train: np.ndarray | None = None,
    key: Any = None,
    reference: Any = None,
    seed: int = 0,
) -> Evidence:
    """The evidence ``det`` is entitled to: only the fields its ``needs`` and ``optional``
    declare (an input filter always gets the inputs it scores)."""
    needs = det.needs | det.optional
    queries = "queries" in needs or det.per_input  # an input filter's inputs are its queries
    return Evidence(
        X=X if queries else None,
        y=y if queries else None,
        X_train=X_train if "training_data" in needs else None,
        y_train=y_train if "training_data" in needs else None,
        key=key if "key" in needs else None,
        reference=reference if "reference" in needs else None,
        seed=seed,
    )


def run_detector(det: Detector, model: Any, evidence: Evidence) -> Outcome:
    """Check applicability once, score, validate the score; ``details`` are the findings the
    detector returned (:class:`~backdoors.detectors.Report`). Never raises for detector
    failures."""
    t0 = (time.perf_counter(), time.process_time())
    try:
        det.check(model, evidence)
        found = report(det.score(model, evidence))
    except NotApplicableError as exc:
        return Outcome(det.name, "not_applicable", reason=str(exc), **_since(t0))
    except Exception as exc:  # a broken detector must not take the audit down
        msg = f"{type(exc).__name__}: {exc}"
        return Outcome(det.name, "error", reason=msg, **_since(t0))
    clock = _since(t0)
    raw, details = found.score, dict(found.findings)
    arr = np.asarray(raw, dtype=np.float64)
    if det.per_input:
        n = None if evidence.X is None else len(evidence.X)
        if arr.ndim != 1 or (n is not None and arr.size != n):
            return Outcome(
                det.name, "error", reason=f"per-input scores of shape {arr.shape}", **clock
            )
        if not np.isfinite(arr).all():
            return Outcome(det.name, "error", reason="non-finite score", **clock)
        return Outcome(det.name, "scored", float(arr.mean()), arr, **clock, details=details)
    if arr.size != 1 or not np.isfinite(arr).all():
        return Outcome(det.name, "error", reason=f"bad score {raw!r}", **clock)
    return Outcome(det.name, "scored", float(arr.ravel()[0]), **clock, details=details)


def _since(t0: tuple[float, float]) -> dict[str, float]:
    return {"seconds": time.perf_counter() - t0[0], "cpu_seconds": time.process_time() - t0[1]}
