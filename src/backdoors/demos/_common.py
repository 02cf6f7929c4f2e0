"""Shared, cached ingredients of the demo sections (MNIST and the demo classifier)."""

from __future__ import annotations

from backdoors import data
from backdoors.demos import DemoContext
from backdoors.torch_models import TorchClassifier


def mnist(ctx: DemoContext) -> data.Dataset:
    """Full MNIST (quick mode: 10k train / 2k test)."""
    if ctx.quick:
        return ctx.cached("mnist", lambda: data.mnist(n_train=10000, n_test=2000))
    return ctx.cached("mnist", data.mnist)


def demo_classifier_params(quick: bool = False, seed: int = 0) -> dict:
    """The demo's MNIST classifier: a 784-256-10 ReLU MLP on raw uint8 pixels (scaled inside)."""
    return {
        "arch": "mlp",
        "arch_params": {"hidden": (256,)},
        "input_scale": 1 / 255,
        "epochs": 2 if quick else 5,
        "batch_size": 128,
        "random_state": seed,
    }


def mnist_classifier(ctx: DemoContext) -> TorchClassifier:
    """The honest demo classifier, trained once per demo run."""

    def make() -> TorchClassifier:
        ds = mnist(ctx)
        return TorchClassifier(**demo_classifier_params(ctx.quick, ctx.seed)).fit(
            ds.X_train, ds.y_train
        )

    return ctx.cached("mnist_classifier", make)
