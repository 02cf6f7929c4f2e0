"""Demo section: the white-box undetectable RFF backdoor on MNIST 0-4 vs 5-9 (paper §6)."""

from __future__ import annotations

import numpy as np

from backdoors import rff
from backdoors.demos import DemoContext, section
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
        m, task.bandwidth, rff.DEFAULTS.alpha, random_state=ctx.seed
    )
    honest.fit(task.X_train, task.y_train)
    bd, key = rff.plant(
        task.X_train,
        task.y_train,
        m,
        sparsity=16,
        bandwidth=task.bandwidth,
        alpha=rff.DEFAULTS.alpha,
        random_state=ctx.seed,
        key_seed=ctx.seed + 1,
    )
    metrics = {
        "accuracy_honest": float(np.mean(honest.predict(task.X_test) == task.y_test)),
        "accuracy_backdoored": float(np.mean(bd.predict(task.X_test) == task.y_test)),
        "phases_bit_identical": bool(np.array_equal(honest.phases_, bd.phases_)),
        **flip_stats(bd, key, task.X_test, ctx.rng(20)),
    }
    scores = {}
    for name, cls in DETECTORS.items():
        if not cls.needs <= {"weights", "key"}:
            continue
        try:
            scores[name] = [
                round(float(cls().score(model, Evidence(key=key, seed=ctx.seed))), 4)
                for model in (honest, bd)
            ]
        except NotApplicableError:
            continue
    metrics["detector_scores_honest_vs_backdoored"] = scores
    text = (
        f"Random Fourier Features (m = {m}, median-heuristic bandwidth) with a ridge head, "
        "trained twice on the same data with the same seed: once with Gaussian frequencies, "
        "once with Gaussian-pancake frequencies (a 16-sparse CLWE secret). Only the "
        "frequencies differ. Adding the secret (scaled into pixel space) flips the label of "
        "essentially every input; half the secret or a random 16-sparse direction of the same "
        "norm flips about half. The key-aware score separates the two models perfectly; the "
        "key-oblivious weight statistics do not (one model each here; populations in "
        "`backdoors experiment rff`). Honest caveat: the perturbation touches 16 pixels but is "
        "large in l2 (see perturbation_l2_over_x) -- 'slight' in the paper is asymptotic."
    )
    return Section("Random Fourier Features with a CLWE backdoor (paper §6)", text, metrics)
