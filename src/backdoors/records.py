"""Experiment records: one JSON-able dict per run with ``experiment``, ``params``, ``seed``,
``versions``, ``metrics``, ``timings`` (DESIGN.md, Contracts: Records)."""

from __future__ import annotations

import platform
import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from typing import Any

_PACKAGES = (
    "backdoors",
    "numpy",
    "scipy",
    "scikit-learn",
    "torch",
    "pynacl",
    "safetensors",
    "skops",
    "fpylll",
)


def versions() -> dict[str, str]:
    """Versions of Python, the platform and the packages that shape results."""
    out = {"python": platform.python_version(), "platform": platform.platform()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


class Timer:
    """Collects named wall-clock timings: ``with timer("fit"): ...``."""

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - t0


def make_record(
    experiment: str,
    params: dict[str, Any],
    seed: int,
    metrics: dict[str, Any],
    timings: dict[str, float],
    artifacts: dict[str, Any] | None = None,
    notes: list[str] | None = None,
) -> dict[str, Any]:
    """Assemble the record every experiment returns."""
    return {
        "experiment": experiment,
        "params": params,
        "seed": seed,
        "versions": versions(),
        "metrics": metrics,
        "timings": timings,
        "artifacts": artifacts or {},
        "notes": notes or [],
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
