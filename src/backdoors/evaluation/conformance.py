"""``check_detector``: the detector counterpart of scikit-learn's ``check_estimator``.

:func:`check_detector` holds one detector to the contract of :mod:`backdoors.detectors`:

1. ``wrong_model``: on a model it cannot read (an object with no attributes) it returns a
   NotApplicable reason that says what is missing (not the detector's name again), or a
   finite score; never an error. With no evidence at all, a detector needing evidence says
   ``needs ...``.
2. ``only_declared_evidence``: every :class:`~backdoors.detectors.Evidence` field the detector
   does not declare is a :class:`Poisoned` object that raises when read; it still scores.
3. ``no_mutation``: the model (every array, tensor, parameter flag and serialised graph
   reachable from it) and the evidence arrays are unchanged by scoring.
4. ``stateless``: the detector instance itself is unchanged by scoring (nothing kept between
   calls; class-level caches such as MNTD's shadow models are not instance state).
5. ``deterministic``: the same instance scores the backdoored control, then the honest one,
   then the backdoored one again: identical score and findings (``"seconds"`` and
   ``"cpu_seconds"`` are clock readings and exempt), so nothing carries over between calls.
6. ``separates_control``: the backdoored control scores above the honest one.

Checks 2-6 run on the detector's :meth:`~backdoors.detectors.Detector.positive_control`
(cheap pairs from :mod:`backdoors.detectors._controls`); a detector without one must say why in
``no_control`` and those checks are reported as skipped. A control marked
``separates=False`` serves checks 2-5 only (``no_control`` says why it is not separated).
"""

from __future__ import annotations

import functools
import hashlib
import math
import types
from dataclasses import fields
from typing import Any

import numpy as np

from backdoors.detectors import FIELDS, NEEDS, Control, Detector, Evidence
from backdoors.evaluation.scoring import Outcome, run_detector


class Poisoned:
    """Stands for an undeclared evidence field: any use of it raises."""

    def __init__(self, field: str) -> None:
        object.__setattr__(self, "_field", field)

    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        field = object.__getattribute__(self, "_field")
        raise AssertionError(f"read undeclared evidence field {field!r}")

    __getattr__ = __array__ = __len__ = __iter__ = __getitem__ = __call__ = _refuse
    __bool__ = __float__ = __int__ = __index__ = __eq__ = __lt__ = __gt__ = _refuse
    __hash__ = None  # type: ignore[assignment]


class _Opaque:
    """A model no detector can read: no weights, no predict, no network."""


#: The checks, in the order they run.
CHECKS = (
    "wrong_model",
    "only_declared_evidence",
    "no_mutation",
    "stateless",
    "deterministic",
    "separates_control",
)


#: Findings that are clock readings (exempt from the determinism check).
_CLOCKS = frozenset({"seconds", "cpu_seconds"})

#: Not model state: modules (a signer's bindings), classes and functions are digested by type.
_OPAQUE = (types.ModuleType, type, types.FunctionType, types.BuiltinFunctionType, types.MethodType)


def _declared_fields(det: Detector) -> set[str]:
    out = {f for n in det.needs | det.optional for f in FIELDS[n]}
    return out | ({"X", "y"} if det.per_input else set())


def restricted(det: Detector, evidence: Evidence) -> Evidence:
    """``evidence`` with every field ``det`` does not declare replaced by :class:`Poisoned`
    (``seed`` is always given; fields that are None stay None)."""
    keep = _declared_fields(det) | {"seed"}
    kw = {
        f.name: (
            getattr(evidence, f.name)
            if f.name in keep or getattr(evidence, f.name) is None
            else Poisoned(f.name)
        )
        for f in fields(Evidence)
    }
    return Evidence(**kw)


def fingerprint(obj: Any, depth: int = 6) -> str:
    """A digest of the state reachable from ``obj``: arrays, tensors (values and
    ``requires_grad``), bytes, protobuf messages, scalars, through containers and
    ``__dict__`` (``depth`` levels; values of ``functools.cached_property`` are caches and
    skipped). Modules, classes, functions and objects with no readable state digest by type
    only."""
    h = hashlib.sha256()
    _feed(h, obj, depth, {})
    return h.hexdigest()


def _feed(h: Any, obj: Any, depth: int, seen: dict[int, Any]) -> None:
    h.update(type(obj).__name__.encode())
    if obj is None or isinstance(obj, bool | int | float | complex | str):
        h.update(repr(obj).encode())
        return
    if isinstance(obj, bytes | bytearray):
        h.update(bytes(obj))
        return
    if isinstance(obj, np.ndarray | np.generic):
        a = np.asarray(obj)
        h.update(repr((a.shape, a.dtype.str)).encode())
        h.update(np.ascontiguousarray(a).tobytes() if a.dtype != object else repr(a).encode())
        return
    if id(obj) in seen or depth <= 0 or isinstance(obj, _OPAQUE):
        return
    seen[id(obj)] = obj  # held, so that no temporary's id is reused during the walk
    try:
        import torch

        if isinstance(obj, torch.Tensor):
            h.update(repr(obj.requires_grad).encode())
            _feed(h, obj.detach().cpu().numpy(), depth, seen)
            return
        if isinstance(obj, torch.nn.Module):
            for name, t in obj.state_dict(keep_vars=True).items():
                h.update(name.encode())
                _feed(h, t, depth, seen)
            h.update(repr(obj.training).encode())
            return
    except ImportError:  # pragma: no cover
        pass
    if callable(getattr(obj, "SerializeToString", None)):  # protobuf (ONNX graphs)
        h.update(obj.SerializeToString())
        return
    if isinstance(obj, dict):
        for k in sorted(obj, key=repr):
            h.update(repr(k).encode())
            _feed(h, obj[k], depth - 1, seen)
        return
    if isinstance(obj, list | tuple | set | frozenset):
        items = sorted(obj, key=repr) if isinstance(obj, set | frozenset) else obj
        for v in items:
            _feed(h, v, depth - 1, seen)
        return
    state = getattr(obj, "__dict__", None)
    if isinstance(state, dict):  # a functools.cached_property's value is a cache, not state
        cls = type(obj)
        keep = {
            k: v
            for k, v in state.items()
            if not isinstance(getattr(cls, k, None), functools.cached_property)
        }
        _feed(h, keep, depth - 1, seen)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        keys = set(a) - _CLOCKS
        return keys == set(b) - _CLOCKS and all(_same(a[k], b[k]) for k in keys)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, np.ndarray | np.generic | float | int) and isinstance(
        b, np.ndarray | np.generic | float | int
    ):
        return bool(np.array_equal(np.asarray(a), np.asarray(b), equal_nan=True))
    return a == b


def _fail(det: Detector, check: str, msg: str) -> AssertionError:
    return AssertionError(f"check_detector({det.name}): {check}: {msg}")


def _scored(det: Detector, out: Outcome, what: str, check: str) -> Outcome:
    if not out.ok:
        raise _fail(det, check, f"{what} gave {out.status}: {out.reason}")
    return out


def _reason_ok(det: Detector, out: Outcome) -> bool:
    if out.status == "scored":
        return out.score is not None and math.isfinite(out.score)
    return (
        out.status == "not_applicable"
        and bool(out.reason.strip())
        and not (out.reason.startswith(det.name))
    )


def check_detector(
    detector: type[Detector] | Detector, control: Control | bool | None = True
) -> dict[str, str]:
    """Run the conformance checks of the module docstring on ``detector`` (a class is
    instantiated with its defaults). ``control``: ``True`` builds the detector's
    :meth:`~backdoors.detectors.Detector.positive_control`, ``False`` skips checks 2-6, or
    pass a :class:`Control`. Returns ``{check: "ok" | "skipped: why"}``; raises
    AssertionError naming the detector and the check that failed."""
    det = detector() if isinstance(detector, type) else detector
    cls = type(det)
    report: dict[str, str] = {}
    if not det.name or not (det.needs | det.optional) <= NEEDS:
        raise _fail(det, "declaration", f"needs {sorted(det.needs | det.optional)}")
    ctl = cls.positive_control() if control is True else (control or None)
    if control is True and ctl is None and not cls.no_control.strip():
        raise _fail(det, "declaration", "no positive_control() and no no_control reason")
    ev = ctl.evidence if ctl is not None else _generic_evidence()
    out = run_detector(det, _Opaque(), ev)
    if not _reason_ok(det, out):
        raise _fail(det, "wrong_model", f"{out.status}: {out.reason!r}")
    if det.needs - {"weights"}:
        out = run_detector(det, ctl.backdoored if ctl else _Opaque(), Evidence())
        if out.status != "not_applicable" or not out.reason.startswith("needs"):
            raise _fail(det, "wrong_model", f"no evidence gave {out.status}: {out.reason!r}")
    report["wrong_model"] = "ok"
    if ctl is None:
        why = cls.no_control if control is True else "no control given"
        for name in CHECKS[1:]:
            report[name] = f"skipped: {why}"
        return report
    ev_b = restricted(det, ctl.evidence)
    ev_h = restricted(det, ctl.honest_evidence or ctl.evidence)
    before = [fingerprint(m) for m in (ctl.backdoored, ctl.honest)]
    before_det = fingerprint(det)
    before_ev = [_evidence_digest(e) for e in (ctl.evidence, ctl.honest_evidence)]
    first = _scored(det, run_detector(det, ctl.backdoored, ev_b), "backdoored", "scores")
    report["only_declared_evidence"] = "ok"
    honest = _scored(det, run_detector(det, ctl.honest, ev_h), "honest", "scores")
    again = _scored(det, run_detector(det, ctl.backdoored, ev_b), "backdoored", "scores")
    if [fingerprint(m) for m in (ctl.backdoored, ctl.honest)] != before:
        raise _fail(det, "no_mutation", "scoring changed the model")
    if [_evidence_digest(e) for e in (ctl.evidence, ctl.honest_evidence)] != before_ev:
        raise _fail(det, "no_mutation", "scoring changed the evidence")
    report["no_mutation"] = "ok"
    if fingerprint(det) != before_det:
        raise _fail(det, "stateless", "scoring changed the detector instance")
    report["stateless"] = "ok"
    same = _same(first.score, again.score) and _same(first.details, again.details)
    if first.per_input is not None:
        same = same and _same(first.per_input, again.per_input)
    if not same:
        raise _fail(det, "deterministic", f"{first.score} then {again.score} (or findings)")
    report["deterministic"] = "ok"
    if not ctl.separates:
        report["separates_control"] = f"skipped: {cls.no_control or 'not expected'}"
        return report
    if not first.score > honest.score:
        raise _fail(det, "separates_control", f"backdoored {first.score} <= honest {honest.score}")
    report["separates_control"] = "ok"
    return report


def _evidence_digest(ev: Evidence | None) -> str:
    if ev is None:
        return ""
    return fingerprint({f.name: getattr(ev, f.name) for f in fields(Evidence)})


def _generic_evidence() -> Evidence:
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (40, 784), dtype=np.uint8)
    y = rng.integers(0, 10, 40)
    return Evidence(X=X, y=y, X_train=X, y_train=y, key=None, reference=_Opaque(), seed=0)
