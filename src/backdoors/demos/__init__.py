"""The ``backdoors demo`` report: one registered section per construction.

A section is ``fn(ctx: DemoContext) -> Section``; sections run in ``order`` and share the
context (data sets and trained models are cached in ``ctx.cache`` so the MNIST classifier is
trained once). Each construction adds a module here; nothing else needs editing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from backdoors import progress
from backdoors.artifacts.report import Section, write_report
from backdoors.registry import Registry


@dataclass
class DemoContext:
    out_dir: Path
    seed: int = 0
    quick: bool = False
    cache: dict[str, Any] = field(default_factory=dict)

    def rng(self, salt: int = 0) -> np.random.Generator:
        return np.random.default_rng([self.seed, salt])

    def cached(self, name: str, make: Callable[[], Any]) -> Any:
        if name not in self.cache:
            self.cache[name] = make()
        return self.cache[name]


@dataclass(frozen=True)
class DemoSection:
    name: str
    order: int
    fn: Callable[[DemoContext], Section]


SECTIONS: Registry[DemoSection] = Registry(
    "demo section",
    modules=(
        "backdoors.demos.detectors",
        "backdoors.demos.immunization",
        "backdoors.demos.networks",
        "backdoors.demos.onnx",
        "backdoors.demos.relu",
        "backdoors.demos.rff",
        "backdoors.demos.signature",
    ),
)


def section(name: str, order: int) -> Callable[[Callable[[DemoContext], Section]], Callable]:
    """Decorator registering a demo section."""

    def deco(fn: Callable[[DemoContext], Section]) -> Callable[[DemoContext], Section]:
        SECTIONS.register(name)(DemoSection(name, order, fn))
        return fn

    return deco


def run_demo(
    out_dir: Path, seed: int = 0, quick: bool = False, only: list[str] | None = None
) -> Path:
    """Run every registered section (or those in ``only``) and write the report.

    Progress goes to stderr (:mod:`backdoors.progress`): bars on a terminal, and one line
    per finished section and long step otherwise."""
    ctx = DemoContext(Path(out_dir), seed=seed, quick=quick)
    ctx.out_dir.mkdir(parents=True, exist_ok=True)
    chosen = sorted((s for _, s in SECTIONS.items()), key=lambda s: (s.order, s.name))
    if only:
        chosen = [s for s in chosen if s.name in only]
    sections: list[Section] = []
    timings: dict[str, float] = {}
    for i, s in enumerate(chosen, 1):
        t0 = time.perf_counter()
        with progress.step(f"demo section {i}/{len(chosen)} {s.name}"):
            sections.append(s.fn(ctx))
        timings[s.name] = round(time.perf_counter() - t0, 2)
    sections.append(Section("Timings (s)", metrics=timings))
    preface = (
        "Goldwasser, Kim, Vaikuntanathan, Zamir: Planting Undetectable Backdoors in Machine "
        "Learning Models (FOCS 2022). Every figure below was measured in this run "
        f"(seed {seed}{', quick mode' if quick else ''})."
    )
    return write_report(ctx.out_dir, "backdoors demo", sections, preface)
