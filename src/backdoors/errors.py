"""One exception hierarchy for the whole package (DESIGN.md, Contracts: Errors).

The CLI maps every :class:`BackdoorsError` to a one-line message and exit code 2.
"""

from __future__ import annotations


class BackdoorsError(Exception):
    """Base class of every error this package raises on purpose."""


class InvalidInputError(BackdoorsError, ValueError):
    """Wrong shape, dtype, NaN/inf, out-of-range values or invalid parameters."""


class InvalidParameterError(InvalidInputError, TypeError):
    """An estimator parameter outside its declared constraints (scikit-learn's convention:
    both a ValueError and a TypeError), raised by ``fit``."""


class KeyMismatchError(BackdoorsError):
    """A backdoor key that does not belong to the model it is used with."""


class CorruptArtifactError(BackdoorsError):
    """A model, key or data file that is truncated, tampered with or of an unknown format."""


class NotApplicableError(BackdoorsError):
    """A detector or defense that does not apply to the model it was given."""


class BackdoorsWarning(UserWarning):
    """Base of the package's warnings (filter them with ``warnings.simplefilter``)."""


class WeakParametersWarning(BackdoorsWarning):
    """The parameters a construction was asked for are predicted breakable on this machine
    (e.g. an RFF key whose lattice attack the cost model puts within reach)."""
