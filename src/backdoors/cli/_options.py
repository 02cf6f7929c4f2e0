"""The command-line options' constraints, declared once by option name (scikit-learn's
declarative form, as the learners' ``_parameter_constraints``) and checked before a command
runs: a value outside them is a one-line user error (exit 2), never a traceback deep in the
library. Every command's callback is wrapped by :func:`install` (``backdoors.cli.main``)."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from numbers import Integral, Real
from typing import Any

from sklearn.utils._param_validation import Interval, Options, make_constraint

from backdoors.errors import InvalidParameterError
from backdoors.validation import NONNEGATIVE_INT, NONNEGATIVE_REAL, POSITIVE_INT, POSITIVE_REAL

_ALL_CORES = Options(Integral, {-1})
_FRACTION = Interval(Real, 0, 1, closed="both")
_PIXEL = Interval(Integral, 0, 255, closed="both")

#: option (callback parameter) name -> accepted values, for every command that has it.
OPTION_CONSTRAINTS: dict[str, list[Any]] = {
    "seed": [NONNEGATIVE_INT, None],
    "n": [POSITIVE_INT],
    "jobs": [POSITIVE_INT, _ALL_CORES],
    "epochs": [POSITIVE_INT],
    "blocks": [POSITIVE_INT, None],
    "samples": [POSITIVE_INT, None],
    "n_components": [POSITIVE_INT],
    "hidden": [POSITIVE_INT],
    "sparsity": [POSITIVE_INT, None],
    "patch_size": [POSITIVE_INT],
    "n_features": [POSITIVE_INT, None],
    "n_classes": [Interval(Integral, 2, 2**16, closed="both"), None],
    "target": [NONNEGATIVE_INT, None],
    "value": [_PIXEL],
    "poison_rate": [_FRACTION],
    "alpha": [POSITIVE_REAL],
    "beta": [POSITIVE_REAL],
    "bandwidth": [POSITIVE_REAL, None],
    "lam": [POSITIVE_REAL, None],
    "theta": [NONNEGATIVE_REAL],
    "sigma": [POSITIVE_REAL],
    "input_scale": [Real],
}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def validated(callback: Callable[..., Any]) -> Callable[..., Any]:
    """``callback`` checking its options against :data:`OPTION_CONSTRAINTS` first."""
    names = [n for n in inspect.signature(callback).parameters if n in OPTION_CONSTRAINTS]
    if not names or getattr(callback, "_options_validated", False):
        return callback
    checks = {n: [make_constraint(c) for c in OPTION_CONSTRAINTS[n]] for n in names}

    @functools.wraps(callback)
    def run(*args: Any, **kwargs: Any) -> Any:
        for name, accepted in checks.items():
            if name in kwargs and not any(c.is_satisfied_by(kwargs[name]) for c in accepted):
                shown = " or ".join(str(c) for c in accepted if str(c) != "None")
                raise InvalidParameterError(f"{_flag(name)} must be {shown}; got {kwargs[name]!r}")
        return callback(*args, **kwargs)

    run._options_validated = True  # type: ignore[attr-defined]
    return run


def install(command: Any) -> None:
    """Wrap the callback of ``command`` and of every subcommand (:func:`validated`)."""
    for sub in getattr(command, "commands", {}).values():
        install(sub)
    if getattr(command, "callback", None) is not None:
        command.callback = validated(command.callback)
