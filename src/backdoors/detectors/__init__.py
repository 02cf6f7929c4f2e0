"""Backdoor detectors: one contract, one registry (ART-style interfaces, DESIGN.md).

The contract, for every registered detector:

* It declares what it needs (``weights``, ``queries``, ``training_data``, ``key``,
  ``reference``) and what it uses when available (``optional``); it reads no other field of
  :class:`Evidence` (``seed`` is always given).
* :meth:`Detector.check` decides applicability once, before scoring: it raises
  :class:`~backdoors.errors.NotApplicableError` whose message says what is missing or wrong
  (``"needs key"``, ``"LogisticRegression exposes no random weight matrix (weights_)"``),
  never a number. :meth:`Detector.score` assumes ``check`` passed and does not call it again.
* :meth:`Detector.score` *returns* everything it found, as ART's ``detect_poison`` returns its
  report: either the bare score (a float; per input, a 1-D array for ``per_input = True``
  filters) when it has nothing else to say, or a :class:`Report` holding that score and a
  dict of findings (per-class statistics, variant scores under ``findings["variants"]``...).
  Nothing is stored on the instance between calls, so one instance can score many models.
  :func:`report` normalises either form; :func:`backdoors.evaluation.scoring.run_detector` reads it.
* Same model, evidence and ``evidence.seed``: the same score and findings (a findings key
  ``"seconds"`` is wall time and exempt). The model and the evidence arrays are not modified.
* A detector may declare a cheap :meth:`Detector.positive_control` (an honest and a backdoored
  model it must score apart), or say in :attr:`Detector.no_control` why it has none.

:func:`backdoors.evaluation.conformance.check_detector` tests all of this; the test suite
runs it on every registered detector. The score is a continuous *suspicion score*
(higher = more likely backdoored).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from backdoors.errors import NotApplicableError
from backdoors.registry import Registry

NEEDS = frozenset({"weights", "queries", "training_data", "key", "reference"})
#: Evidence fields each declared need grants (``weights`` is the model itself).
FIELDS: dict[str, tuple[str, ...]] = {
    "weights": (),
    "queries": ("X", "y"),
    "training_data": ("X_train", "y_train"),
    "key": ("key",),
    "reference": ("reference",),
}
#: What a missing need is, in a not-applicable reason.
NEED_TEXT = {
    "key": "the backdoor's secret key (a positive control only its holder can run)",
    "training_data": "the training data (X_train and y_train)",
    "queries": "clean queries (X)",
    "reference": "an honest reference model to compare with (--reference or --calibrate)",
}


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


@dataclass
class Report:
    """What one :meth:`Detector.score` call found: the score (a float, or one per input for
    input filters) and the detector's findings (JSON-like values; ``"variants"`` maps a
    variant's name to its model score)."""

    score: float | np.ndarray
    findings: dict[str, Any] = field(default_factory=dict)


@dataclass
class Control:
    """A positive control: ``honest`` and ``backdoored`` models a detector must score apart
    (backdoored higher), with the evidence for each (``honest_evidence`` defaults to
    ``evidence``; it holds every field the detector may declare)."""

    honest: Any
    backdoored: Any
    evidence: Evidence
    honest_evidence: Evidence | None = None
    #: False: the pair serves the other checks only; ``no_control`` says why it is not
    #: separated.
    separates: bool = True


def report(raw: Report | float | np.ndarray) -> Report:
    """The :class:`Report` of a ``score`` return value (a bare score has no findings)."""
    return raw if isinstance(raw, Report) else Report(raw)


class Detector(ABC):
    """Base class. Subclasses set ``name``, ``needs`` and implement :meth:`score`; they
    refine :meth:`check` (calling ``super().check``) for what else they require."""

    name: ClassVar[str] = ""
    #: What the score computes; two registered detectors may not share it (one test must not
    #: count as two in a table). Empty: the detector's name.
    statistic: ClassVar[str] = ""
    needs: ClassVar[frozenset[str]] = frozenset()
    optional: ClassVar[frozenset[str]] = frozenset()  # used if the auditor has it
    per_input: ClassVar[bool] = False
    #: Why the detector declares no :meth:`positive_control` (or one it does not separate).
    no_control: ClassVar[str] = ""
    #: What :meth:`applies_to` looks for in a model, for the not-applicable reason.
    requires: ClassVar[str] = ""

    def check_model(self, model: Any) -> None:  # noqa: B027 (optional hook)
        """Raise :class:`NotApplicableError` saying what ``model`` lacks (default: nothing)."""

    def applies_to(self, model: Any) -> bool:
        """Whether this detector can score ``model`` (:meth:`check_model` passes). A subclass
        may override it instead of :meth:`check_model` (its reason is then generic)."""
        try:
            self.check_model(model)
        except NotApplicableError:
            return False
        return True

    def check(self, model: Any, evidence: Evidence) -> None:
        """Raise :class:`NotApplicableError` unless ``evidence`` holds every declared need
        (message ``"needs key, queries"``) and :meth:`check_model` accepts ``model``."""
        missing = [
            n
            for n in ("key", "training_data", "queries", "reference")
            if n in self.needs and getattr(evidence, FIELDS[n][0]) is None
        ]
        if missing:
            raise NotApplicableError("needs " + "; ".join(f"{n} ({NEED_TEXT[n]})" for n in missing))
        self.check_model(model)
        if type(self).applies_to is not Detector.applies_to and not self.applies_to(model):
            if self.requires:
                raise NotApplicableError(
                    f"needs {self.requires}, which a {type(model).__name__} does not have"
                )
            raise NotApplicableError(f"does not apply to {type(model).__name__}")

    @abstractmethod
    def score(self, model: Any, evidence: Evidence) -> Report | float | np.ndarray:
        """Suspicion score of ``model`` (or one per input of ``evidence.X`` if per_input),
        bare or in a :class:`Report` with findings. Assumes :meth:`check` passed."""

    @classmethod
    def positive_control(cls) -> Control | None:
        """A small honest/backdoored pair this detector must score apart (None: see
        :attr:`no_control`)."""
        return None


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
        "backdoors.detectors.seed_search",
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
