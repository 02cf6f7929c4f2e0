"""backdoors: undetectable backdoors in machine-learning models, measured.

Reference implementation of Goldwasser, Kim, Vaikuntanathan and Zamir, "Planting Undetectable
Backdoors in Machine Learning Models" (FOCS 2022, arXiv 2204.06974).  Every construction exposes
the paper's pair ``plant(...) -> (model, key)`` and ``activate(X, key, target=None) -> X'``.
"""

from backdoors.errors import (
    BackdoorsError,
    CorruptArtifactError,
    InvalidInputError,
    KeyMismatchError,
    NotApplicableError,
)

__version__ = "0.2.0"

__all__ = [
    "BackdoorsError",
    "CorruptArtifactError",
    "InvalidInputError",
    "KeyMismatchError",
    "NotApplicableError",
    "__version__",
]
