"""Backdoor detectors: one contract, one registry (ART-style interfaces, DESIGN.md).

A detector declares what it needs (``weights``, ``queries``, ``training_data``, ``key``) and
what it uses when available (``optional``), and
returns a continuous *suspicion score* (higher = more likely backdoored) per model, or per
input for input filters (``per_input = True``). A detector that does not apply to a model
raises :class:`~backdoors.errors.NotApplicableError` instead of returning a number.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from backdoors.errors import NotApplicableError
from backdoors.registry import Registry

NEEDS = frozenset({"weights", "queries", "training_data", "key"})


@dataclass
class Evidence:
    """What an auditor holds besides the model. Unused fields stay ``None``."""

    X: np.ndarray | None = None  # clean inputs (query access)
    y: np.ndarray | None = None
    X_train: np.ndarray | None = None  # the training data (white-box setting of paper §6)
    y_train: np.ndarray | None = None
    key: Any = None  # only key-aware positive controls may read this
    reference: Any = None  # an honest model the auditor trained (disagreement search)
    seed: int = 0


class Detector(ABC):
    """Base class. Subclasses set ``name``, ``needs`` and implement :meth:`score`."""

    name: ClassVar[str] = ""
    #: What the score computes; two registered detectors may not share it (one test must not
    #: count as two in a table). Empty: the detector's name.
    statistic: ClassVar[str] = ""
    needs: ClassVar[frozenset[str]] = frozenset()
    optional: ClassVar[frozenset[str]] = frozenset()  # used if the auditor has it
    per_input: ClassVar[bool] = False

    def applies_to(self, model: Any) -> bool:
        """Whether this detector can score ``model`` (default: yes)."""
        return True

    def check(self, model: Any, evidence: Evidence) -> None:
        if not self.applies_to(model):
            raise NotApplicableError(f"{self.name} does not apply to {type(model).__name__}")
        missing = [
            n
            for n, field in (("key", "key"), ("training_data", "X_train"), ("queries", "X"))
            if n in self.needs and getattr(evidence, field) is None
        ]
        if missing:
            raise NotApplicableError(f"{self.name} needs {', '.join(missing)}")

    @abstractmethod
    def score(self, model: Any, evidence: Evidence) -> float | np.ndarray:
        """Suspicion score of ``model`` (or one per input of ``evidence.X`` if per_input)."""


DETECTORS: Registry[type[Detector]] = Registry(
    "detector",
    modules=(
        "backdoors.detectors.activation_clustering",
        "backdoors.detectors.architecture_inspection",
        "backdoors.detectors.differential",
        "backdoors.detectors.disagreement_search",
        "backdoors.detectors.key_aware",
        "backdoors.detectors.lattice",
        "backdoors.detectors.mntd",
        "backdoors.detectors.neural_cleanse",
        "backdoors.detectors.onnx_graph_inspection",
        "backdoors.detectors.sdp_sparse_pca",
        "backdoors.detectors.sparse_pca",
        "backdoors.detectors.spectral_signatures",
        "backdoors.detectors.strip",
        "backdoors.detectors.weight_stats",
        "backdoors.detectors.weights",
    ),
)


def statistic_id(cls: type[Detector]) -> str:
    """The declared statistic of a detector class (its name unless it declares one)."""
    return cls.statistic or cls.name


_STATISTICS: dict[str, str] = {}  # statistic id -> detector name


def register(cls: type[Detector]) -> type[Detector]:
    """Class decorator: register a detector under ``cls.name``. Refuses a second detector
    declaring a statistic already registered under another name."""
    if not cls.name or not (cls.needs | cls.optional) <= NEEDS:
        raise ValueError(f"detector {cls.__name__} needs a name and needs within {sorted(NEEDS)}")
    stat = statistic_id(cls)
    owner = _STATISTICS.get(stat)
    if owner is not None and owner != cls.name:
        raise ValueError(f"detector {cls.name!r} computes statistic {stat!r}, already "
                         f"registered as {owner!r}")  # fmt: skip
    out = DETECTORS.register(cls.name)(cls)
    _STATISTICS[stat] = cls.name
    return out


def applicable(model: Any, evidence: Evidence) -> list[Detector]:
    """Instances of every registered detector that can score ``model`` with ``evidence``."""
    out = []
    for _, cls in DETECTORS.items():
        det = cls()
        try:
            det.check(model, evidence)
        except NotApplicableError:
            continue
        out.append(det)
    return out
