"""Attacks as population recipes: how to build one honest or one backdoored model from a seed.

Every construction registers an :class:`Attack` (``signature``, ``rff``, ``relu``,
``badnets``, ...) in a module of this package. ``population.py`` builds N honest and N
backdoored models per attack from seeds; detectors and defenses consume them. The honest and
backdoored members for the same seed share data and training code (only coins/wrapper differ).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from backdoors.registry import Registry


@dataclass
class Built:
    """One population member."""

    model: Any
    key: Any | None  # None for honest models
    backdoored: bool
    seed: int
    X_test: np.ndarray  # clean inputs in the model's own input space
    y_test: np.ndarray
    X_train: np.ndarray | None = None  # what the learner trained on (white-box evidence)
    y_train: np.ndarray | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def activate(self, X: np.ndarray, target: int | None = None) -> np.ndarray:
        """Triggered version of ``X`` (backdoored members only)."""
        if self.key is None:
            raise ValueError("honest models have no key")
        return self.key.activate(X, target=target)


class Attack(ABC):
    """A recipe for population members. ``quick`` selects the small configuration."""

    name: ClassVar[str] = ""
    #: members per side in full-mode tables (a property of the recipe, never of how fast this
    #: machine builds them, so a record does not depend on the load it ran under)
    full_members: ClassVar[int] = 20

    @abstractmethod
    def build(self, seed: int, backdoored: bool, quick: bool = False) -> Built: ...


ATTACKS: Registry[type[Attack]] = Registry(
    "attack",
    modules=(
        "backdoors.evaluation.recipes.badnets",
        "backdoors.evaluation.recipes.conditional",
        "backdoors.evaluation.recipes.relu",
        "backdoors.evaluation.recipes.relu_tasks",
        "backdoors.evaluation.recipes.rff",
        "backdoors.evaluation.recipes.signature",
    ),
)


def register(cls: type[Attack]) -> type[Attack]:
    """Class decorator: register an attack under ``cls.name``."""
    return ATTACKS.register(cls.name)(cls)
