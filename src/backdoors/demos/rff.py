"""Demo section: the white-box undetectable RFF backdoor on MNIST 0-4 vs 5-9 (paper §6).

One pair (seed ``ctx.seed``) through the evaluation pipeline
(:func:`backdoors.evaluation.pair_scoring.score_population` with ``n = 1``, in-process): the honest
learner and :func:`backdoors.rff.plant` of the same estimator, every weight detector run
through :func:`backdoors.evaluation.scoring.run_detector` with the evidence it declares (the honest
model's control key: the planted key of the same seed).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from backdoors import progress
from backdoors.artifacts.report import Section
from backdoors.demos import DemoContext, section
from backdoors.demos._common import detector_score_table
from backdoors.detectors import DETECTORS
from backdoors.evaluation.pair_scoring import score_population
from backdoors.evaluation.recipes import Built
from backdoors.evaluation.recipes.rff import RFFAttack, RFFPoint
from backdoors.experiments.rff import measure_flips


def measure(honest: Built, backdoored: Built) -> dict[str, Any]:
    """Accuracies on every test input, phase identity and the flip statistics."""
    acc = [float(np.mean(b.model.predict(b.X_test) == b.y_test)) for b in (honest, backdoored)]
    return {
        "accuracy_honest": acc[0],
        "accuracy_backdoored": acc[1],
        "phases_bit_identical": bool(
            np.array_equal(honest.model.phases_, backdoored.model.phases_)
        ),
        **measure_flips(honest, backdoored),
    }


@section("rff", order=20)
def run(ctx: DemoContext) -> Section:
    n_train, n_test, m = (1500, 500, 300) if ctx.quick else (4000, 2000, 2000)
    # k = rff.DEFAULT_SPARSITY
    attack = RFFAttack(RFFPoint("mnist", n_train=n_train, n_test=n_test, n_components=m))
    names = [n for n, cls in DETECTORS.items() if cls.needs <= {"weights", "key"}]
    with progress.step("training both models and scoring the weight detectors"):
        table = score_population(attack, 1, names, seed=ctx.seed, measure=measure)
    pair = table.pairs[0]
    metrics = dict(pair.measured)
    scores: dict[str, tuple[float, float]] = {}
    for name in names:  # a detector that does not apply to RFF models is left out
        h, b = pair.outcomes[name]
        if h["status"] == b["status"] == "scored":
            scores[name] = (h["score"], b["score"])
    table_md = detector_score_table(scores, DETECTORS)
    text = (
        f"Random Fourier Features (m = {m}, median-heuristic bandwidth) with a ridge head, "
        "trained twice on the same data with the same seed: once with Gaussian frequencies, "
        "once with Gaussian-pancake frequencies (a 64-sparse CLWE secret). Only the "
        "frequencies differ. Adding the secret (scaled into pixel space) flips the label of "
        "essentially every input; half the secret or a random 64-sparse direction of the same "
        "norm flips about half. Honest caveat: the perturbation touches 64 pixels but is "
        "large in l2 (see perturbation_l2_over_x) -- 'slight' in the paper is asymptotic.\n\n"
        "Detector scores of the two models (one model each: a population comparison with "
        "AUROCs and distinguishing advantages is `backdoors experiment rff`). The key-aware "
        "control holds the secret and separates them; the key-oblivious weight statistics "
        "give the two models similar scores.\n\n" + table_md
    )
    return Section("Random Fourier Features with a CLWE backdoor (paper §6)", text, metrics)
