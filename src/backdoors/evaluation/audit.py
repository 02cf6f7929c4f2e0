"""Audit a model trained elsewhere: run every applicable registered detector, no attack needed.

Input formats (never unpickled; one loader per file type in
:data:`backdoors.evaluation.foreign_models.LOADERS`):

* ``.skops``: a scikit-learn estimator (skops, with scikit-learn/numpy/scipy types trusted);
* ``.onnx``: any ONNX classifier, queried through onnxruntime
  (:class:`backdoors.signature.onnx.runtime.OnnxClassifier`);
* a model file of this package (safetensors with a ``backdoors`` header), e.g. a
  ``TorchClassifier`` or a signature-backdoored model;
* a raw torch state dict in safetensors (``safetensors.torch.save_file(net.state_dict(), p)``)
  of a plain ``nn.Sequential`` MLP or CNN, plus an architecture spec JSON (format in
  :mod:`backdoors.evaluation.foreign_models`)::

      {"arch": "mlp", "n_features": 784, "n_classes": 10,
       "params": {"hidden": [256]}, "input_scale": 0.00392156862745098}

Data: ``.npz`` with ``X`` (clean queries) and optionally ``y``, ``X_train``, ``y_train``; or a
bare ``.npy`` of ``X``. A detector's suspicion score has its own scale; an honest ``reference``
model (trained by the auditor on similar data) is scored by the same detectors, giving each
score a baseline, and serves as the disagreement search's comparison model.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from backdoors.artifacts import files, report
from backdoors.detectors import Detector
from backdoors.errors import CorruptArtifactError, InvalidInputError
from backdoors.evaluation.evidence_policy import DEFAULT_POLICY, EvidencePolicy
from backdoors.evaluation.foreign_models import LOADERS, load_any_model, load_torch_state_dict
from backdoors.evaluation.scoring import all_detectors, run_detector
from backdoors.validation import check_features

DATA_FIELDS = ("X", "y", "X_train", "y_train")
__all__ = ["LOADERS", "audit", "audit_sections", "load_any_model", "load_audit_data",
           "load_torch_state_dict"]  # fmt: skip


# ---------------------------------------------------------------------------------------------
# loading
# ---------------------------------------------------------------------------------------------
def load_audit_data(path: str | os.PathLike) -> dict[str, np.ndarray | None]:
    """``X`` (required), ``y``, ``X_train``, ``y_train`` from .npz (or ``X`` from .npy)."""
    path = Path(path)
    if not path.is_file():
        raise InvalidInputError(f"no such data file: {path}")
    out: dict[str, np.ndarray | None] = dict.fromkeys(DATA_FIELDS)
    if path.suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as z:
                names = set(z.files)
                if "X" not in names:
                    raise InvalidInputError(f"{path} has no array 'X' (has {sorted(names)})")
                for k in DATA_FIELDS:
                    if k in names:
                        out[k] = z[k]
        except InvalidInputError:
            raise
        except Exception as exc:
            raise CorruptArtifactError(f"{path} is not a readable .npz ({exc})") from None
    else:
        out["X"] = files.load_array(path)
    out["X"] = check_features(out["X"])
    if out["X_train"] is not None:
        out["X_train"] = check_features(out["X_train"], n_features=out["X"].shape[1])
    for xs, ys in (("X", "y"), ("X_train", "y_train")):
        bad = out[ys] is not None and (
            out[xs] is None or len(out[ys]) != len(out[xs]) or np.ndim(out[ys]) != 1
        )
        if bad:
            raise InvalidInputError(f"{ys} must be 1-D with one label per row of {xs}")
    return out


# ---------------------------------------------------------------------------------------------
# audit
# ---------------------------------------------------------------------------------------------
def audit(
    model: Any,
    X: np.ndarray,
    y: np.ndarray | None = None,
    X_train: np.ndarray | None = None,
    y_train: np.ndarray | None = None,
    reference: Any = None,
    seed: int = 0,
    detectors: list[Detector] | None = None,
    policy: EvidencePolicy = DEFAULT_POLICY,
) -> dict[str, Any]:
    """Run every registered (or given) detector on ``model``; return a JSON-able result.

    Each detector sees the evidence of ``policy`` (:mod:`backdoors.evaluation.evidence_policy`, the
    rule
    every experiment uses), applied to the user's data: the first ``n_queries`` rows of ``X``,
    a random subset of ``n_train`` rows of ``X_train`` drawn with ``seed``, the
    ``reference`` model for detectors that declare one. So a score here equals the score the
    experiments report for a population member with the same data and seed.

    ``result["detectors"][name]`` holds ``status`` (scored / not_applicable / error), the
    ``score``, the ``reason`` a detector did not apply, and ``reference_score`` (the same
    detector on the honest reference model) when a reference is given.
    """
    X = check_features(X)
    if not hasattr(model, "predict"):
        raise InvalidInputError(f"{type(model).__name__} has no predict method")
    try:
        pred = np.asarray(model.predict(X[: min(len(X), 8)]))
    except Exception as exc:
        raise InvalidInputError(f"the model cannot predict on these inputs: {exc}") from None
    dets = all_detectors() if detectors is None else list(detectors)
    data = {"X": X, "y": y, "X_train": X_train, "y_train": y_train}
    rows: dict[str, Any] = {}
    for det in dets:
        ev = policy.evidence(det, **data, reference=reference, seed=seed)
        out = run_detector(det, model, ev)
        row = {"needs": sorted(det.needs), "per_input": bool(det.per_input), **out.to_dict()}
        if reference is not None and out.ok:
            ref = run_detector(det, reference, policy.evidence(det, **data, seed=seed))
            row["reference_score"] = ref.score if ref.ok else None
        rows[det.name] = row
    counts = {
        s: sum(r["status"] == s for r in rows.values())
        for s in ("scored", "not_applicable", "error")
    }
    return {
        "model": {
            "type": f"{type(model).__module__}.{type(model).__qualname__}",
            "n_features": int(X.shape[1]),
            "prediction_dtype": str(pred.dtype),
        },
        "data": {k: None if v is None else list(np.shape(v)) for k, v in data.items()},
        "reference": None if reference is None else type(reference).__qualname__,
        "evidence_policy": {"n_queries": policy.n_queries, "n_train": policy.n_train},
        "counts": counts,
        "detectors": rows,
    }


WHAT_SCORES_MEAN = (
    "Scores are suspicion scores on each detector's own scale (higher = more suspicious); "
    "they are not probabilities. Compare them with `reference_score` (the same detector on an "
    "honest model you trained: pass `--reference`) or with a population of honest models "
    "(`backdoors experiment detectors`). A low score is not evidence of absence: the signature "
    "backdoor of Goldwasser et al. (2022, §5.2) went undetected by these key-oblivious "
    "black-box detectors at the population sizes of `docs/detectors-experiment.md` (the "
    "paper's guarantee is computational: no efficient detector without the key, under the "
    "signature scheme's security); white-box, its verifier is a separate component of the "
    "model that `architecture_inspection` reports."
)


def _findings(row: dict[str, Any]) -> str:
    """The scalar details a detector reported (e.g. Neural Cleanse's flagged class and its
    norm-ratio variant), for the report's table."""
    d = dict(row.get("details") or {})
    flat = {k: v for k, v in d.items() if isinstance(v, int | float | str) and k != "seed"}
    flat.update(d.get("variants") or {})
    parts = [f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in flat.items()]
    return ", ".join(parts)


def audit_sections(result: dict[str, Any], model_path: str = "") -> list[report.Section]:
    """Report sections: a table of scored detectors, then those that did not apply and why."""
    rows = result["detectors"]
    scored = [(n, r) for n, r in rows.items() if r["status"] == "scored"]
    skipped = [(n, r) for n, r in rows.items() if r["status"] != "scored"]
    lines = [
        "| detector | needs | score | reference score | findings | seconds |",
        "|---|---|---|---|---|---|",
    ]
    for n, r in scored:
        ref = r.get("reference_score")
        ref_s = "" if ref is None else f"{ref:.4g}"
        needs = ", ".join(r["needs"]) or "-"
        lines.append(
            f"| `{n}` | {needs} | {r['score']:.4g} | {ref_s} | {_findings(r)} | "
            f"{r['seconds']:.2f} |"
        )
    text = "\n".join(lines) if scored else "No registered detector applied to this model."
    if not rows:
        text = "No detectors are registered (backdoors.detectors.DETECTORS is empty)."
    out = [
        report.Section(
            f"Detectors that scored {model_path}".strip(), text=text + "\n\n" + WHAT_SCORES_MEAN
        )
    ]
    if skipped:
        body = "\n".join(
            f"- `{n}` ({r['status'].replace('_', ' ')}): {r['reason']}" for n, r in skipped
        )
        out.append(report.Section("Detectors that did not apply (and why)", text=body))
    out.append(report.Section("Model and data", metrics={**result["model"], **result["data"]}))
    return out
