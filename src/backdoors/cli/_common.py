"""Validation shared by the commands: inputs, training data, keys, output names.

One policy for every command: input arrays must be numeric, non-empty and
finite (``verify`` refuses what ``predict`` and ``activate`` refuse); an .npz must hold the
array by its name (``X``, ``y``), never a guessed member; a key file readable by others is
used with a warning on stderr, as ssh warns.
"""

from __future__ import annotations

import stat
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from backdoors.artifacts import files
from backdoors.errors import InvalidInputError

ARRAY_SUFFIXES = (".npy", ".npz")
#: model files are safetensors: a name that promises another format is refused
MODEL_SUFFIX_REFUSED = (".skops", ".npy", ".npz", ".json", ".pt", ".pth", ".pkl", ".onnx")


def check_values(X: np.ndarray, what: str) -> np.ndarray:
    """Numeric, non-empty, finite; any shape (the model checks its own shape)."""
    X = np.asarray(X)
    if X.dtype.kind not in "biuf":
        raise InvalidInputError(f"{what} must be numeric, got dtype {X.dtype}")
    if X.ndim == 0 or X.shape[0] == 0 or X.size == 0:
        raise InvalidInputError(f"{what} are empty (shape {X.shape})")
    if X.dtype.kind == "f" and not np.isfinite(X).all():
        raise InvalidInputError(f"{what} contain NaN or inf")
    return X


def load_inputs(path: Path) -> np.ndarray:
    """Inputs of activate/verify/predict: .npy, or ``X`` of an .npz."""
    return check_values(files.load_array(path, "X"), f"inputs in {path}")


def load_training(path: Path, *, min_classes: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """``X`` (2-D numeric finite) and ``y`` (one label per row, >= ``min_classes`` classes)."""
    if path.suffix != ".npz":
        raise InvalidInputError(f"{path}: training data must be an .npz with arrays X and y")
    X = check_values(files.load_array(path, "X"), f"X in {path}")
    y = files.load_array(path, "y")
    if X.ndim != 2:
        raise InvalidInputError(f"X in {path} must be 2-D (n_samples, n_features), got {X.shape}")
    if y.shape != (len(X),):
        raise InvalidInputError(f"y in {path} must have shape ({len(X)},), got {y.shape}")
    if y.dtype.kind not in "biuU" and not (y.dtype.kind == "f" and np.isfinite(y).all()):
        raise InvalidInputError(f"y in {path} must hold class labels, got dtype {y.dtype}")
    n = len(np.unique(y))
    if n < min_classes:
        raise InvalidInputError(f"y in {path} has {n} class(es); need at least {min_classes}")
    return X, y


def load_key(path: Path) -> Any:
    """Load a key file; warn on stderr if others may read it (ssh's rule: mode 0600)."""
    key = files.load_key(path)
    warn_if_readable(path)
    return key


def warn_if_readable(path: Path) -> None:
    """A warning on stderr for a secret file others may read (ssh's rule: mode 0600)."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        print(
            f"backdoors: warning: key file {path} is accessible by others (mode {mode:04o}); "
            f"run: chmod 600 {path}",
            file=sys.stderr,
        )


def finite(*values: float | None) -> bool:
    """All given option values are finite numbers (``None``: not given)."""
    return all(v is None or np.isfinite(v) for v in values)


def require(ok: bool, message: str) -> None:
    """Refuse an out-of-range option value before any work."""
    if not ok:
        raise InvalidInputError(message)


@contextmanager
def library_errors(packages: tuple[str, ...] = ("sklearn",)) -> Iterator[None]:
    """Turn a ``ValueError`` raised inside ``packages`` (scikit-learn's checks of the data a
    user gave: feature count, labels, ...) into :class:`InvalidInputError`. A ValueError
    raised by this package's own code is left alone: that would be a bug, not bad input."""
    try:
        yield
    except ValueError as exc:
        tb = exc.__traceback__
        while tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
        origin = tb.tb_frame.f_globals.get("__name__", "") if tb is not None else ""
        if isinstance(exc, InvalidInputError) or origin.split(".")[0] not in packages:
            raise
        raise InvalidInputError(" ".join(str(exc).split())) from None


def load_model(path: Path, publisher: Path | None = None) -> Any:
    """A model file (an ``.onnx`` file: an onnxruntime-backed classifier); with ``publisher``
    (a public key file) only if that publisher signed it."""
    pub = None
    if publisher is not None:
        from backdoors.artifacts.provenance import load_publisher

        pub = load_publisher(publisher)
    if Path(path).suffix.lower() == ".onnx":
        from backdoors.signature.onnx.runtime import load_classifier

        return load_classifier(path, pub)
    return files.load_model(path) if pub is None else files.load_model(path, publisher=pub)


PUBLISHER_HELP = (
    "Publisher's public key (.pub): refuse MODEL unless MODEL.sig is that publisher's "
    "signature (without it only corruption is detected, not edits)."
)
