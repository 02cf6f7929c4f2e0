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
    "they are not probabilities. With honest references (`--reference`, `--calibrate N`) each "
    "score gets its percentile among the references and a p-value (1 + #references scoring at "
    "least as high) / (1 + n); the verdict combines the p-values by Holm's procedure. "
    "A low score is not evidence of absence: the signature "
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
    """Report sections: the verdict, the model file, a table of scored detectors (score,
    percentile and p-value among the honest references), those that did not apply and why,
    and the provenance checks (the same content as the ``--json`` document)."""
    rows = result["detectors"]
    scored = [(n, r) for n, r in rows.items() if r["status"] == "scored"]
    skipped = [(n, r) for n, r in rows.items() if r["status"] != "scored"]
    out = []
    v = result.get("verdict")
    if v is not None:
        acc = result["model"].get("accuracy")
        first = "" if acc is None else f"Accuracy on the labelled queries: {acc:.4f}. "
        out.append(report.Section(
            f"Verdict: {v['verdict']}",
            text=f"{first}{v['reason']}. Holm's procedure over {len(v['family'])} detector "
                 f"p-values from {v['n_references']} honest references, family-wise false-alarm "
                 f"rate at most alpha = {v['alpha']:g}.",
        ))  # fmt: skip
    lines = [
        "| detector | needs | score | reference percentile | p-value | flags above | findings "
        "| seconds |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for n, r in scored:
        pct, pv, th = r.get("reference_percentile"), r.get("p_value"), r.get("threshold")
        needs = ", ".join(r["needs"]) or "-"
        found = "; ".join(r.get("findings") or []) or _findings(r)
        lines.append(
            f"| `{n}` | {needs} | {r['score']:.4g} | {'' if pct is None else f'{pct:.0f}'} | "
            f"{'' if pv is None else f'{pv:.3g}'} | {'' if th is None else f'{th:.4g}'} | "
            f"{found} | {r['seconds']:.2f} |"
        )
    text = "\n".join(lines) if scored else "No registered detector applied to this model."
    if not rows:
        text = "No detectors are registered (backdoors.detectors.DETECTORS is empty)."
    out.append(report.Section(
        f"Detectors that scored {model_path}".strip(), text=text + "\n\n" + WHAT_SCORES_MEAN
    ))  # fmt: skip
    means = [(n, r["meaning"]) for n, r in scored if r.get("meaning")]
    if means:
        body = "\n".join(f"- `{n}`: {m}" for n, m in means)
        out.append(report.Section("What each score means", text=body))
    if skipped:
        body = "\n".join(
            f"- `{n}` ({r['status'].replace('_', ' ')}): {r['reason']}" for n, r in skipped
        )
        out.append(report.Section("Detectors that did not apply (and why)", text=body))
    prov = result.get("provenance")
    if prov:
        body = "\n".join(f"- {p['kind']}: {p['message']}" for p in prov)
        out.append(report.Section("Provenance (who published the file, not whether it is clean)",
                                  text=body))  # fmt: skip
    model = {k: v for k, v in result["model"].items() if not isinstance(v, dict)}
    ports = result["model"].get("io_ports")
    if ports:
        model["inputs"] = "; ".join(
            f"{p['name']} {p['shape']} {p['type']}" for p in ports["inputs"]
        )
        model["outputs"] = "; ".join(
            f"{p['name']} {p['shape']} {p['type']}" for p in ports["outputs"]
        )
    out.append(report.Section("Model and data", metrics={**model, **result["data"]}))
    return out
