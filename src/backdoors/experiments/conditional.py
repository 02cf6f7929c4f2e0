"""Conditional backdoors against the differential detector and the other detectors.

Populations (:mod:`backdoors.evaluation.recipes.conditional`): the quantization-conditioned MLP and
the
optimisation-conditioned CNN, ``n + n`` members each; the differential detector also on
BadNets (both forms carry the trigger) and on the signature backdoor (forms agree bit for
bit), where AUROC 0.5 is expected. The other registered model-level detectors score the
conditional backdoors at the float model (the model as given). Per backdoored member the
measure records clean accuracy and attack success in the float model and in the form the
backdoor fires in. Scoring: :func:`backdoors.evaluation.pair_scoring.score_population`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from backdoors.conditional import forms
from backdoors.evaluation import pair_scoring
from backdoors.evaluation.population import experiment_jobs
from backdoors.evaluation.recipes import Built
from backdoors.experiments import EXPERIMENTS


def others() -> tuple[str, ...]:
    """Every other registered model-level detector (run at the float model)."""
    from backdoors.detectors import DETECTORS

    return tuple(n for n, c in DETECTORS.items() if not c.per_input and n != "differential")


FIRES = {"quantization_conditioned": "int8:dynamic", "optimization_conditioned": "ort:all"}


def measure(honest: Built, planted: Built) -> dict[str, Any]:
    """Clean accuracy and attack success (non-target inputs sent to the target), float model
    and deployed form, for both members (the honest member with the planted trigger)."""
    out: dict[str, Any] = {"plant_attempts": float(planted.info.get("attempts", 1))}
    form_name = planted.info.get("fires_in", "int8:dynamic")
    X, y = planted.X_test, planted.y_test
    t = int(planted.key.targets[0])
    Xa = planted.activate(X[y != t])
    for side, m in (("honest", honest), ("backdoored", planted)):
        form = forms.FORMS.get(form_name)(forms.onnx_of(m.model), X[:64].astype(np.float32))
        for where, clf, cast in (("float", m.model, X.dtype), ("form", form, np.float32)):
            out[f"{side}_acc_{where}"] = float(np.mean(clf.predict(X.astype(cast)) == y))
            out[f"{side}_asr_{where}"] = float(np.mean(clf.predict(Xa.astype(cast)) == t))
    return out


def _summaries(table: pair_scoring.PairTable, names: tuple[str, ...]) -> dict[str, Any]:
    return {d: table.summary(d) for d in names}


def _mean(rows: list[dict[str, Any]]) -> dict[str, float]:
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]} if rows else {}


@EXPERIMENTS.register("conditional")
def run(quick: bool, seed: int, out_dir: Any = None) -> dict[str, Any]:
    """Differential detector AUROC vs the two conditional backdoors, BadNets and the signature
    backdoor (``n + n`` each); every other model-level detector at the float model on the
    conditional backdoors (``n_others + n_others``: they cost 1-3 min per pair); backdoor
    quality in both forms; cost per pair."""
    from backdoors.artifacts.records import Timer, make_record

    timer = Timer()
    n, n_others = (3, 0) if quick else (20, 3)
    n_jobs = experiment_jobs()
    rest = others()
    m: dict[str, Any] = {"n_per_side": n, "n_others_per_side": n_others}
    for attack in ("quantization_conditioned", "optimization_conditioned"):
        n_att = 1 if quick and attack == "optimization_conditioned" else n
        with timer(attack):
            table = pair_scoring.score_population(
                attack, n_att, ["differential"], seed=seed, quick=quick, n_jobs=n_jobs,
                measure=measure, label=f"{attack}: {n_att} pairs",
            )  # fmt: skip
        m[attack] = {
            "n_per_side": n_att,
            "detectors": _summaries(table, ("differential",)),
            "quality": _mean([p.measured for p in table.pairs]),
            "seconds_per_pair": table.wall_seconds / n_att * n_jobs,
            "differential_scores": [list(map(float, s)) for s in table.scores("differential")],
        }
        if n_others:
            with timer(f"{attack}_others"):
                t2 = pair_scoring.score_population(
                    attack, n_others, list(rest), seed=seed, quick=quick, n_jobs=n_jobs,
                    label=f"{attack}: other detectors, {n_others} pairs",
                )  # fmt: skip
            m[attack]["others_at_float"] = _summaries(t2, rest)
    for attack in ("badnets", "signature"):
        n_att = 1 if quick and attack == "signature" else n  # its ONNX verifier is slow to run
        with timer(attack):
            table = pair_scoring.score_population(
                attack, n_att, ["differential"], seed=seed, quick=quick, n_jobs=n_jobs,
                label=f"{attack}: {n_att} pairs",
            )  # fmt: skip
        m[attack] = {
            "n_per_side": n_att,
            "detectors": _summaries(table, ("differential",)),
            "seconds_per_pair": table.wall_seconds / n_att * n_jobs,
            "differential_scores": [list(map(float, s)) for s in table.scores("differential")],
        }
    params = {"quick": quick, "n": n, "n_others": n_others, "others": list(rest),
              "n_jobs": n_jobs}  # fmt: skip
    notes = [
        "Quantized form: onnxruntime quantize_dynamic (int8 per-tensor symmetric weights, "
        "uint8 dynamic activations); optimised form: onnxruntime ORT_ENABLE_ALL vs PyTorch "
        "and ORT_DISABLE_ALL, measured on this machine's CPU and library versions.",
        "Other detectors score the float model (the model as given); none of them builds "
        "the deployed form. Detectors that do not apply to torch classifiers are listed "
        "as not_scored.",
        "quick: 3 + 3 quantization-conditioned, 1 + 1 optimisation-conditioned, 3 + 3 BadNets "
        "and 1 + 1 signature members; differential detector only.",
    ]
    return make_record("conditional", params, seed, m, timer.timings, notes=notes)
