"""Demo section: the white-box undetectable RFF backdoor on MNIST 0-4 vs 5-9 (paper §6)."""

from __future__ import annotations

import numpy as np

from backdoors import progress, rff
from backdoors.demos import DemoContext, section
from backdoors.demos._common import detector_score_table
from backdoors.detectors import DETECTORS, Evidence
from backdoors.errors import NotApplicableError
from backdoors.experiments.rff import flip_stats
from backdoors.report import Section
from backdoors.rff_tasks import mnist_binary


@section("rff", order=20)
def run(ctx: DemoContext) -> Section:
    task = mnist_binary(1500, 500) if ctx.quick else mnist_binary(4000, 2000)
    m = 300 if ctx.quick else 2000
    honest = rff.RandomFourierFeaturesClassifier(
        n_components=m, bandwidth=task.bandwidth, alpha=rff.DEFAULTS.alpha, random_state=ctx.seed
    )
    honest.fit(task.X_train, task.y_train)
    bd, key = rff.plant(honest, task.X_train, task.y_train)  # k = rff.DEFAULT_SPARSITY
    metrics = {
        "accuracy_honest": float(np.mean(honest.predict(task.X_test) == task.y_test)),
        "accuracy_backdoored": float(np.mean(bd.predict(task.X_test) == task.y_test)),
        "phases_bit_identical": bool(np.array_equal(honest.phases_, bd.phases_)),
        **flip_stats(bd, key, task.X_test, ctx.rng(20)),
    }
    scores: dict[str, tuple[float, float]] = {}
    with progress.step("scoring the weight detectors on both models"):
        for name, cls in DETECTORS.items():
            if not cls.needs <= {"weights", "key"}:
                continue
            try:
                h, b = (
                    float(cls().score(model, Evidence(key=key, seed=ctx.seed)))
                    for model in (honest, bd)
                )
            except NotApplicableError:
                continue
            scores[name] = (h, b)
    table = detector_score_table(scores, DETECTORS)
    text = (
        f"Random Fourier Features (m = {m}, median-heuristic bandwidth) with a ridge head, "
        "trained twice on the same data with the same seed: once with Gaussian frequencies, "
        "once with Gaussian-pancake frequencies (a 64-sparse CLWE secret). Only the "
        "frequencies differ. Adding the secret (scaled into pixel space) flips the label of "
        "essentially every input; half the secret or a random 64-sparse direction of the same "
        "norm flips about half. Honest caveat: the perturbation touches 64 pixels but is "
        "large in l2 (see perturbation_l2_over_x) -- 'slight' in the paper is asymptotic.\n\n"
        "Detector scores of the two models (one model each: a population comparison with "
        "AUROCs is `backdoors experiment rff`). The key-aware control holds the secret and "
        "separates them; the key-oblivious weight statistics give the two models similar "
        "scores.\n\n" + table
    )
    return Section("Random Fourier Features with a CLWE backdoor (paper §6)", text, metrics)
