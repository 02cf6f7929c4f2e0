"""Audit a model trained elsewhere: run every applicable registered detector, no attack needed.

Input formats (never unpickled):

* ``.skops``: a scikit-learn estimator (skops, with scikit-learn/numpy/scipy types trusted);
* a model file of this package (safetensors with a ``backdoors`` header), e.g. a
  ``TorchClassifier`` or a signature-backdoored model;
* a raw torch state dict in safetensors (``safetensors.torch.save_file(net.state_dict(), p)``)
  plus an architecture spec JSON naming a :data:`backdoors.torch_models.ARCHITECTURES` entry::

      {"arch": "mlp", "n_features": 784, "n_classes": 10,
       "params": {"hidden": [256]}, "input_scale": 0.00392156862745098}

Data: ``.npz`` with ``X`` (clean queries) and optionally ``y``, ``X_train``, ``y_train``; or a
bare ``.npy`` of ``X``. A detector's suspicion score has its own scale; an honest ``reference``
model (trained by the auditor on similar data) is scored by the same detectors, giving each
score a baseline, and serves as the disagreement search's comparison model.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from backdoors import io, report
from backdoors.detectors import Detector
from backdoors.errors import CorruptArtifactError, InvalidInputError
from backdoors.scoring import all_detectors, evidence_for, run_detector
from backdoors.validation import check_features

DATA_FIELDS = ("X", "y", "X_train", "y_train")


# ---------------------------------------------------------------------------------------------
# loading
# ---------------------------------------------------------------------------------------------
def _safetensors_header(path: Path) -> dict[str, str] | None:
    """The metadata of a safetensors file, or None if the file is not safetensors (a truncated
    one raises :class:`CorruptArtifactError`)."""
    return io.safetensors_header(path)


def load_torch_state_dict(path: str | os.PathLike, spec: dict[str, Any]) -> Any:
    """A :class:`~backdoors.torch_models.TorchClassifier` from a raw state dict + arch spec."""
    import torch
    from safetensors.torch import load_file

    from backdoors.torch_models import ARCHITECTURES, TorchClassifier

    if not isinstance(spec, dict) or "arch" not in spec:
        raise InvalidInputError("architecture spec must be a JSON object with an 'arch' field")
    ARCHITECTURES.get(spec["arch"])  # unknown names fail with the list of known ones
    try:
        n_features, n_classes = int(spec["n_features"]), int(spec["n_classes"])
    except (KeyError, TypeError, ValueError):
        raise InvalidInputError(
            "architecture spec needs integer n_features and n_classes"
        ) from None
    params = dict(spec.get("params") or {})
    input_scale = float(spec.get("input_scale", params.pop("input_scale", 1.0)))
    params.pop("input_scale", None)
    est = TorchClassifier(arch=spec["arch"], arch_params=params, input_scale=input_scale)
    try:
        est.module_ = est._build(n_features, n_classes)
    except TypeError as exc:
        raise InvalidInputError(f"architecture params do not fit {spec['arch']}: {exc}") from None
    try:
        state = load_file(str(path))
    except Exception as exc:
        raise CorruptArtifactError(f"{path} is not a readable safetensors file ({exc})") from None
    state = {k.removeprefix("module."): v for k, v in state.items()}
    try:
        est.module_.load_state_dict({k: torch.as_tensor(v) for k, v in state.items()}, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise InvalidInputError(f"weights do not fit the architecture spec: {first}") from None
    est.module_.eval()
    est.n_features_in_ = n_features
    classes = spec.get("classes")
    est.classes_ = np.asarray(classes) if classes is not None else np.arange(n_classes)
    if len(est.classes_) != n_classes:
        raise InvalidInputError("spec 'classes' must have n_classes entries")
    return est


def load_any_model(path: str | os.PathLike, arch: str | os.PathLike | None = None) -> Any:
    """Load a .skops estimator, a model of this package, or a torch state dict + spec.

    For a raw state dict the spec comes from ``arch`` or, if absent, ``<model>.json`` beside it.
    """
    path = Path(path)
    if not path.is_file():
        raise InvalidInputError(f"no such model file: {path}")
    if path.suffix == ".skops":
        return io.load_sklearn(path)
    header = _safetensors_header(path)
    if header is None:
        hint = " (.pt/.pth pickles are refused: save the state dict with safetensors)"
        raise CorruptArtifactError(f"{path} is neither .skops nor safetensors{hint}")
    if "backdoors.format" in header:
        from backdoors.model_cache import import_model_kinds

        import_model_kinds()  # register every construction's model kind
        return io.load_model(path)
    spec_path = Path(arch) if arch is not None else path.with_suffix(".json")
    if not spec_path.is_file():
        raise InvalidInputError(
            f"{path} is a raw state dict: give its architecture spec with --arch "
            f"(or put it at {path.with_suffix('.json')})"
        )
    try:
        spec = json.loads(spec_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise CorruptArtifactError(f"{spec_path} is not JSON") from None
    return load_torch_state_dict(path, spec)


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
        out["X"] = io.load_array(path)
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
) -> dict[str, Any]:
    """Run every registered (or given) detector on ``model``; return a JSON-able result.

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
        ev = evidence_for(det, **data, reference=reference, seed=seed)
        out = run_detector(det, model, ev)
        row = {"needs": sorted(det.needs), "per_input": bool(det.per_input), **out.to_dict()}
        if reference is not None and out.ok:
            ref = run_detector(det, reference, evidence_for(det, **data, seed=seed))
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
        "counts": counts,
        "detectors": rows,
    }


WHAT_SCORES_MEAN = (
    "Scores are suspicion scores on each detector's own scale (higher = more suspicious); "
    "they are not probabilities. Compare them with `reference_score` (the same detector on an "
    "honest model you trained: pass `--reference`) or with a population of honest models "
    "(`backdoors experiment detectors`). A low score is not evidence of absence: the signature "
    "backdoor of Goldwasser et al. (2022, §5.2) is undetectable by any black-box detector "
    "without the key; white-box, its verifier is a separate component in the model that "
    "`architecture_inspection` reports."
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
