"""Honest reference models for a calibrated audit: load them, or train them, and score them.

``--reference`` takes model files or folders of them (every file of a known model type in the
folder, sorted by name). ``--calibrate N`` trains N honest references from the auditor's
training data with the audited model's own architecture and hyper-parameters (scikit-learn
``get_params``, which :class:`~backdoors.models.torch_models.TorchClassifier` also has), changing
only
the seed (``random_state = seed + 1 + i``): the null hypothesis of
:mod:`backdoors.evaluation.calibration`
is that the audited model is one more draw of that training recipe.

Each detector scores every reference with the evidence the audited model gets (the audit's
:class:`~backdoors.evaluation.evidence_policy.EvidencePolicy`). The disagreement search compares
two models: the audited model is compared with reference 0, and reference i with reference
``(i + 1) mod n``, so every score in the comparison is an honest-vs-honest (or
audited-vs-honest) disagreement.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from backdoors.detectors import Detector
from backdoors.errors import InvalidInputError
from backdoors.evaluation import calibration
from backdoors.evaluation.evidence_policy import DEFAULT_POLICY, EvidencePolicy
from backdoors.evaluation.foreign_models import LOADERS, load_any_model
from backdoors.evaluation.scoring import run_detector

#: suffixes of a reference folder's model files
MODEL_SUFFIXES = (".onnx", ".skops", ".safetensors", ".st")


def reference_paths(paths: Sequence[str | os.PathLike]) -> list[Path]:
    """Model files named, or found in the named folders (sorted; signatures and specs skipped)."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.is_file() and f.suffix in MODEL_SUFFIXES)
            if not found:
                raise InvalidInputError(
                    f"--reference {p}: no model files in the folder "
                    f"(looked for {', '.join(MODEL_SUFFIXES)}; known types: {LOADERS.names()})"
                )
            out.extend(found)
        elif p.is_file():
            out.append(p)
        else:
            raise InvalidInputError(f"--reference {p}: no such file or folder")
    return out


def load_references(paths: Sequence[str | os.PathLike]) -> list[Any]:
    """Every reference model of :func:`reference_paths` (loaded without unpickling)."""
    return [load_any_model(p) for p in reference_paths(paths)]


def calibrate(model: Any, X_train: np.ndarray, y_train: np.ndarray, n: int, seed: int = 0) -> list:
    """``n`` honest references: ``clone(model)`` refit on ``(X_train, y_train)`` with
    ``random_state = seed + 1 + i``. Needs a scikit-learn-style estimator (``get_params``)."""
    from sklearn.base import clone

    if n < 1:
        raise InvalidInputError(f"--calibrate needs N >= 1, got {n}")
    if not hasattr(model, "get_params"):
        raise InvalidInputError(
            f"--calibrate retrains the model's recipe, which a {type(model).__name__} does not "
            "carry (scikit-learn estimators and spec'd torch state dicts do); for an ONNX file, "
            "train honest references yourself and pass them with --reference"
        )
    if X_train is None or y_train is None:
        raise InvalidInputError("--calibrate needs X_train and y_train in --data")
    refs = []
    for i in range(n):
        est = clone(model)
        params = est.get_params(deep=True)
        seeded = {k: seed + 1 + i for k in params if k.split("__")[-1] == "random_state"}
        if seeded:
            est.set_params(**seeded)
        refs.append(est.fit(X_train, y_train))
    return refs


def reference_scores(
    detectors: Sequence[Detector],
    references: Sequence[Any],
    data: dict[str, Any],
    seed: int = 0,
    policy: EvidencePolicy = DEFAULT_POLICY,
) -> dict[str, list[float]]:
    """Each detector's scores on the references (only references it scored), with the
    evidence ``policy`` gives the audited model (:func:`backdoors.evaluation.audit.audit`), so
    that the model's score and the references' are the same statistic on the same inputs."""
    out: dict[str, list[float]] = {d.name: [] for d in detectors}
    n = len(references)
    for i, ref in enumerate(references):
        partner = references[(i + 1) % n] if n > 1 else None
        for det in detectors:
            ev = policy.evidence(det, **data, reference=partner, seed=seed)
            o = run_detector(det, ref, ev)
            if o.ok and o.score is not None:
                out[det.name].append(float(o.score))
    return out


def calibrate_result(
    result: dict[str, Any], scores: dict[str, list[float]], n_references: int, alpha: float
) -> dict[str, Any]:
    """Add ``reference_scores``, ``reference_percentile``, ``p_value`` to each scored detector
    of an :func:`backdoors.evaluation.audit.audit` result, and the Holm ``verdict``
    (:mod:`backdoors.evaluation.calibration`). Detectors that scored fewer than all references are
    left
    out of the family (their p-values would rest on other numbers of references)."""
    pvals: dict[str, float] = {}
    for name, row in result["detectors"].items():
        ref = scores.get(name) or []
        row["reference_scores"] = ref
        if row["status"] != "scored" or not ref:
            row["reference_percentile"] = row["p_value"] = None
            continue
        row["reference_percentile"] = calibration.percentile(row["score"], ref)
        row["p_value"] = calibration.p_value(row["score"], ref)
        if len(ref) == n_references:
            pvals[name] = row["p_value"]
    for name in pvals:  # the score each detector of the family must exceed on its own
        row = result["detectors"][name]
        row["threshold"] = calibration.threshold(row["reference_scores"], len(pvals), alpha)
    result["verdict"] = calibration.verdict(pvals, n_references, alpha).to_dict()
    return result


def recipe(model: Any) -> dict[str, Any]:
    """The hyper-parameters ``--calibrate`` retrains with (JSON-able ``get_params``)."""
    params = model.get_params(deep=False) if hasattr(model, "get_params") else {}
    return {k: v if isinstance(v, int | float | str | bool | None) else repr(v)
            for k, v in params.items()}  # fmt: skip
