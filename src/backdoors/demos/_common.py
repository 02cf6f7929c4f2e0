"""Shared, cached ingredients of the demo sections (MNIST and the demo classifier)."""

from __future__ import annotations

from typing import Any

from backdoors import progress
from backdoors.demos import DemoContext
from backdoors.models import data
from backdoors.models.torch_models import TorchClassifier, mnist_mlp_params


def mnist(ctx: DemoContext) -> data.Dataset:
    """Full MNIST (quick mode: 10k train / 2k test)."""

    def load() -> data.Dataset:
        with progress.step("loading MNIST"):
            return data.mnist(n_train=10000, n_test=2000) if ctx.quick else data.mnist()

    return ctx.cached("mnist", load)


def mnist_classifier(ctx: DemoContext) -> TorchClassifier:
    """The honest demo classifier, trained once per demo run."""

    def make() -> TorchClassifier:
        ds = mnist(ctx)
        params = mnist_mlp_params(ctx.quick, ctx.seed)
        what = (
            f"training the MNIST classifier ({len(ds.X_train)} images, {params['epochs']} epochs)"
        )
        with progress.step(what):
            return TorchClassifier(**params).fit(ds.X_train, ds.y_train)

    return ctx.cached("mnist_classifier", make)


def detector_meaning(name: str, cls: type) -> str:
    """What a detector's score measures: the records' unit note, else its docstring's first
    sentence."""
    import sys

    from backdoors.artifacts.records import UNITS

    if name in UNITS:
        return UNITS[name]
    doc = cls.__doc__ or getattr(sys.modules.get(cls.__module__), "__doc__", "") or ""
    first = " ".join(doc.strip().split("\n\n")[0].split())
    return first.split(". ")[0].rstrip(".") + "." if first else ""


def detector_score_table(scores: dict[str, tuple[float, float]], registry: Any) -> str:
    """Markdown table: key-aware controls first, then one row per key-oblivious detector."""
    known = dict(registry.items())
    keyed = [n for n in scores if "key" in known[n].needs]
    rows = [*keyed, *(n for n in scores if n not in keyed)]
    lines = [
        "| detector | needs the key | honest | backdoored | what the score measures |",
        "|---|---|---|---|---|",
    ]
    for n in rows:
        h, b = scores[n]
        meaning = detector_meaning(n, known[n]).replace("|", "\\|")
        lines.append(f"| `{n}` | {'yes' if n in keyed else 'no'} | {h:.4g} | {b:.4g} | {meaning} |")
    return "\n".join(lines)
