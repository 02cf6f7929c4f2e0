"""Conditional backdoors against the differential detector and the other detectors.

Populations (:mod:`backdoors.evaluation.recipes.conditional`): the quantization-conditioned MLP and
the optimisation-conditioned CNN, ``n + n`` members each, scored by the differential detector
and every other registered model-level detector twice: at the float model (the model as
given) and at the *deployed form* the backdoor fires in (``int8:dynamic`` for the quantized
MLP, onnxruntime ``ORT_ENABLE_ALL`` for the optimisation CNN), through
``score_population(form="deployed")``
(:func:`backdoors.evaluation.pair_scoring.scoring_target`,
:class:`backdoors.conditional.deployed.DeployedForm`: queries run the deployed ONNX graph,
weights are the deployed weights). The differential detector also on BadNets (both forms
carry the trigger) and on the signature backdoor (forms agree bit for bit), where AUROC 0.5 is
expected; the quantization-conditioned CNN's backdoor quality over a population. Per
backdoored member the measure records clean accuracy and attack success in the float model
and in the form the backdoor fires in.
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
    """Every other registered model-level detector."""
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


#: detectors slow on an attack (~50 s per CNN model): scored in a separate pass on SLOW_N +
#: SLOW_N members at the float model only (they read only the torch module, which the
#: deployed ort:all form leaves as it is, so the deployed score would repeat the float one)
SLOW = {"optimization_conditioned": ("neural_cleanse",)}
FULL_N, SLOW_N, CNN_N = 20, 20, 20
#: members per side for the other detectors where fewer than FULL_N (none: every attack is
#: scored by every detector on FULL_N + FULL_N members)
OTHERS_N: dict[str, int] = {}


def _cache(attack: str, n: int, seed: int, quick: bool) -> str | None:
    """The population cache (environment ``BACKDOORS_CACHE``), filled with the ``n`` seeds of
    ``attack`` from ``seed`` before scoring, so the scoring workers (and a rerun after a
    crash) load the members instead of building them; None without the variable."""
    import os

    from backdoors.evaluation.population import build_populations

    root = os.environ.get("BACKDOORS_CACHE") or None
    if root is not None:
        build_populations([attack], n, seed=seed, quick=quick, cache_dir=root)
    return root


def _table(tables: list[tuple[pair_scoring.PairTable, int]], names: tuple[str, ...],
           suffix: str = "") -> dict[str, Any]:  # fmt: skip
    """Summary (AUROC, CI, ...) of every detector of ``names`` (outcome ``name + suffix``)
    from the first table that scored it, with the population it was scored on."""
    out = {}
    for name in names:
        for table, n in tables:
            if all(name + suffix in p.outcomes for p in table.pairs):
                out[name] = {**table.summary(name + suffix), "n_per_side": n}
                break
    return out


def _auroc_rows(m: dict[str, Any], attacks: tuple[str, ...]) -> dict[str, Any]:
    """Per attack, per detector: ``auroc_float`` and ``auroc_deployed`` with their CIs."""
    rows: dict[str, Any] = {}
    for a in attacks:
        fl, dp = m[a].get("other_detectors_float", {}), m[a].get("other_detectors_deployed", {})
        rows[a] = {
            d: {
                "auroc_float": fl[d].get("auroc"), "auroc_float_ci": fl[d].get("auroc_ci"),
                "auroc_deployed": dp.get(d, {}).get("auroc"),
                "auroc_deployed_ci": dp.get(d, {}).get("auroc_ci"),
                "n_per_side": fl[d]["n_per_side"],
            }
            for d in fl
            if fl[d]["status"] == "scored" or dp.get(d, {}).get("status") == "scored"
        }  # fmt: skip
    return rows


@EXPERIMENTS.register("conditional")
def run(quick: bool, seed: int, out_dir: Any = None) -> dict[str, Any]:
    """Differential detector AUROC vs the two conditional backdoors, BadNets and the signature
    backdoor (``n + n`` each); every other model-level detector at the float model and at
    the deployed form on the conditional backdoors (``n + n``, or ``OTHERS_N``; the slowest
    on ``SLOW_N``, float only);
    backdoor quality in both forms, also for the quantized CNN (``CNN_N`` pairs); cost per
    pair. ``quick``: the differential detector only, at the float model."""
    from backdoors.artifacts.records import Timer, make_record

    timer = Timer()
    n = 3 if quick else FULL_N
    n_jobs = experiment_jobs()
    rest = others()
    m: dict[str, Any] = {"n_per_side": n, "n_others_per_side": 0 if quick else n,
                         "n_others_per_side_by_attack": {} if quick else OTHERS_N}  # fmt: skip
    for attack in ("quantization_conditioned", "optimization_conditioned"):
        n_att = 1 if quick and attack == "optimization_conditioned" else n
        slow = SLOW.get(attack, ())
        fast = tuple(d for d in rest if d not in slow)
        also = () if quick else ("deployed",)
        n_oth = 0 if quick else min(n_att, OTHERS_N.get(attack, n_att))
        n_cache = max(n_att, 0 if quick else SLOW_N * bool(slow))
        with timer(attack):  # the first n_oth seeds with every detector, the rest differential
            kw = dict(seed=seed, quick=quick, n_jobs=n_jobs,
                      cache_dir=_cache(attack, n_cache, seed, quick))  # fmt: skip
            table = pair_scoring.score_population(
                attack, n_oth or n_att,
                ["differential", *fast] if n_oth else ["differential"], measure=measure,
                also_forms=also, label=f"{attack}: {n_oth or n_att} pairs", **kw,
            )  # fmt: skip
            others_table = table
            if n_oth and n_oth < n_att:
                more = pair_scoring.score_population(
                    attack, n_att - n_oth, ["differential"], measure=measure, also_forms=also,
                    label=f"{attack}: {n_att - n_oth} more pairs, differential", **{
                        **kw, "seed": seed + n_oth},
                )  # fmt: skip
                table = table.extend(more)
        m[attack] = {
            "n_per_side": n_att,
            "detectors": _summaries(table, ("differential",)),
            "quality": _mean([p.measured for p in table.pairs]),
            "seconds_per_pair": table.wall_seconds / n_att * n_jobs,
            "differential_scores": [list(map(float, s)) for s in table.scores("differential")],
        }
        if quick:
            continue
        tables = [(table, n_att), (others_table, n_oth)]  # differential from all n_att seeds
        if slow and SLOW_N:
            with timer(f"{attack}_slow"):
                t = pair_scoring.score_population(
                    attack, SLOW_N, list(slow),
                    label=f"{attack}: {', '.join(slow)}, {SLOW_N} pairs", **kw,
                )  # fmt: skip
            tables.append((t, SLOW_N))
        names = ("differential", *rest)
        m[attack]["deployed_form"] = FIRES[attack]
        m[attack]["other_detectors_float"] = _table(tables, names)
        m[attack]["other_detectors_deployed"] = _table(tables, names, "@deployed")
        m[attack]["others_at_float"] = m[attack]["other_detectors_float"]  # the earlier key
    if not quick:
        m["auroc_float_vs_deployed"] = _auroc_rows(m, tuple(FIRES))
        with timer("quantization_conditioned_cnn"):
            t = pair_scoring.score_population(
                "quantization_conditioned_cnn", CNN_N, ["weight_stats"], seed=seed,
                n_jobs=n_jobs, measure=measure, label=f"quantized CNN: {CNN_N} pairs",
                cache_dir=_cache("quantization_conditioned_cnn", CNN_N, seed, False),
            )  # fmt: skip
        m["quantization_conditioned_cnn"] = {
            "n_per_side": CNN_N,
            "quality": _mean([p.measured for p in t.pairs]),
            "quality_per_member": [p.measured for p in t.pairs],
            "detectors": _summaries(t, ("weight_stats",)),
            "seconds_per_pair": t.wall_seconds / CNN_N * n_jobs,
        }
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
    params = {"quick": quick, "n": n, "others": list(rest), "slow": SLOW, "slow_n": SLOW_N,
              "cnn_n": CNN_N, "others_n": OTHERS_N, "n_jobs": n_jobs}  # fmt: skip
    who = (
        f"Other detectors on {OTHERS_N} members per side where fewer than {n} (the first seeds; "
        "the differential detector on all); "
        if OTHERS_N
        else f"The other detectors on {n} + {n} members of each conditional attack, both forms; "
    )
    notes = [
        "Quantized form: onnxruntime quantize_dynamic (int8 per-tensor symmetric weights, "
        "uint8 dynamic activations); optimised form: onnxruntime ORT_ENABLE_ALL vs PyTorch "
        "and ORT_DISABLE_ALL, measured on this machine's CPU and library versions.",
        "other_detectors_float: every detector on the model as given (PyTorch). "
        "other_detectors_deployed: the same detectors on the deployed form named in "
        "deployed_form (backdoors.conditional.deployed.DeployedForm): queries run the "
        "deployed ONNX graph in onnxruntime; the weights a detector reads (and differentiates "
        "through) are the deployed weights in the torch module: for int8:dynamic the int8 "
        "values times their scales, which is the deployed computation except the dynamic "
        "uint8 quantization of activations; for ort:all the float weights (graph "
        "optimisation keeps weight values). The honest twins and the reference models go "
        "through the same view. The differential detector at an int8 form compares it with "
        "its ort forms only (an int8 graph cannot be quantized again).",
        "The optimisation-conditioned backdoor's deployed form is ORT_ENABLE_ALL, not int8: "
        "its int8 form is not where it fires (its guard and head weights wreck the int8 form "
        "of every member), so it is scored at ort:all.",
        who + f"slow detectors ({SLOW}) on {SLOW_N} + {SLOW_N} members in a separate pass at the "
        "float model only (0: not scored), "
        "as they read only the torch module, which the ort:all view leaves unchanged "
        "(activation_clustering, spectral_signatures and weight_stats, which also read only "
        "the module, score the ort:all view exactly as the float model). n_per_side in each "
        "table entry says the population of every figure.",
        "Detectors that do not apply to torch classifiers (or to the deployed view) are listed "
        "as not_scored with the reason.",
        "quick: 3 + 3 quantization-conditioned, 1 + 1 optimisation-conditioned, 3 + 3 BadNets "
        "and 1 + 1 signature members; differential detector only, float model only.",
    ]
    return make_record("conditional", params, seed, m, timer.timings, notes=notes)
