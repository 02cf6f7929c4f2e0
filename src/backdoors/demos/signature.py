"""Demo section: the signature backdoor on the demo's MNIST classifier (paper §5.2)."""

from __future__ import annotations

import numpy as np

from backdoors import progress, signature
from backdoors.artifacts.report import Section
from backdoors.breaks.forgery import Oracle, attempt_all
from backdoors.demos import DemoContext, section
from backdoors.demos._common import mnist, mnist_classifier
from backdoors.experiments.signature import plot_examples
from backdoors.metrics import perturbation_norms, summarize


@section("signature", order=10)
def run(ctx: DemoContext) -> Section:
    ds = mnist(ctx)
    honest = mnist_classifier(ctx)
    bd, key = signature.plant(honest, carrier="lsb", random_state=ctx.seed)
    rng = ctx.rng(10)
    n = 300 if ctx.quick else 2000
    X = ds.X_test[:n]
    targets = rng.integers(0, 10, n)
    with progress.step(f"signing {n} images (Ed25519, lsb carrier)"):
        X_act = key.activate(X, target=targets)
    norms = perturbation_norms(X, X_act)
    oracle = Oracle(ds.X_test, X_act, targets)
    n_forge = 50 if ctx.quick else 500
    with progress.step(f"forgery attempts ({n_forge} per strategy)"):
        forged = attempt_all(key.spec, oracle, n_forge, rng)
    with progress.step("predictions on the test set (honest and backdoored)"):
        y_h, y_b = honest.predict(ds.X_test), bd.predict(ds.X_test)
        on_act_b, on_act_h = bd.predict(X_act), honest.predict(X_act)
    metrics = {
        "honest_test_accuracy": float(np.mean(y_h == ds.y_test)),
        "clean_agreement": float(np.mean(y_b == y_h)),
        "activation_success": float(np.mean(on_act_b == targets)),
        "honest_model_on_activated_says_target": float(np.mean(on_act_h == targets)),
        "perturbation_linf_grey_levels": float(norms["linf"].max()),
        "perturbation_l0": summarize(norms["l0"]),
        "perturbation_l2_over_x": summarize(norms["l2_over_x"]),
        "forgery_attempts": int(sum(len(a.candidates) for a in forged.values())),
        "forgery_successes": int(sum(a.successes for a in forged.values())),
    }
    images = []
    if ctx.out_dir is not None:
        ex = {"X": X[:8], "X_act": X_act[:8], "targets": targets[:8], "l0": norms["l0"]}
        with progress.step("plotting examples"):
            images = [p.split("/")[-1] for p in plot_examples(ctx.out_dir, ex, bd)]
    text = (
        "A 784-256-10 MLP trained on MNIST, wrapped by the signature backdoor: the model "
        "answers like the honest one unless the input's LSBs carry an Ed25519 signature of "
        "the rest of the image and the requested class. The key holder moves any image to "
        "any class by changing at most one grey level in at most "
        f"{key.spec.carrier.l0_bound} public pixel positions (about half of them change). "
        "Forgery strategies with access to every activated example above (replay with a "
        "swapped target, transplanting a signature, bit flips, splicing, S+L malleation, "
        "random signatures) never produce a new backdoored input. Undetectability is "
        "black-box: the verifier is a visible part of the model."
    )
    return Section("Signature backdoor on MNIST (paper §5.2)", text, metrics, images)
