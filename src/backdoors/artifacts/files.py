"""Artifacts on disk: models, keys and arrays, without unpickling anything a user hands us.

* Models are one safetensors file: arrays as tensors, everything else as JSON in the header,
  plus a SHA-256 digest over both so truncation and tampering are detected
  (:class:`~backdoors.errors.CorruptArtifactError`). A scikit-learn estimator inside a model is
  stored as skops bytes (a uint8 tensor) and loaded with skops' type allow-list.
* Keys are JSON files created with mode 0600; they never enter a model artifact.
* Every write is atomic: a temporary file in the target folder, fsync, ``os.replace``; a
  command with several outputs writes them as one :class:`Transaction` (all or none).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

# re-exported: every command writes its outputs as one Transaction
from backdoors.artifacts.transaction import OutputError as OutputError
from backdoors.artifacts.transaction import Transaction as FileTransaction
from backdoors.errors import CorruptArtifactError, InvalidInputError, KeyMismatchError
from backdoors.registry import Registry

# re-exported: every command writes its outputs as one Transaction
from backdoors.validation import PATH, Array, HasMethods, validate_args

FORMAT_VERSION = "1"

#: kind name -> class with ``_from_artifact(tensors, meta)``; filled by ``@ARTIFACTS.register``.
#: Modules that register model or key kinds, imported before a file is loaded (so that files
#: load in a fresh process). A new construction adds its module here.
KIND_MODULES = (
    "backdoors.models.torch_models",
    "backdoors.signature",
    "backdoors.signature.models",
    "backdoors.rff",
    "backdoors.relu",
    "backdoors.badnets",
    "backdoors.nets.checksum",
    "backdoors.defenses.smoothing",
    "backdoors.conditional.quantized",
    "backdoors.conditional.optimized",
)
ARTIFACTS: Registry[Any] = Registry("model artifact kind", modules=KIND_MODULES)
#: kind name -> key class with ``from_json_dict``.
KEYS: Registry[Any] = Registry("key kind", modules=KIND_MODULES)


@runtime_checkable
class Artifact(Protocol):
    """What a savable model implements."""

    artifact_kind: str

    def _to_artifact(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]: ...


class Transaction(FileTransaction):
    """:class:`backdoors.artifacts.transaction.Transaction` (all outputs of one command, or none)
    with
    this module's serialisers: models, keys (0600, never overwritten), arrays and JSON."""

    def save_model(self, model: object, path: str | os.PathLike) -> Path:
        """:func:`save_model` inside the transaction."""
        return self.write_bytes(path, model_bytes(model))

    def save_key(self, key: object, path: str | os.PathLike) -> Path:
        """:func:`save_key` inside the transaction (mode 0600, never overwrites)."""
        final = Path(os.path.abspath(path))
        if final not in self._files:
            self.file(path, mode=0o600, overwrite=False)
        elif self._files[final][1] != 0o600 or self._files[final][2]:
            raise ValueError(f"{path} was reserved without mode=0o600, overwrite=False")
        return self.write_bytes(path, key_bytes(key))

    def save_array(self, path: str | os.PathLike, X: object, **extra: object) -> Path:
        """:func:`save_array` inside the transaction (.npy, or .npz with extras)."""
        return self.write_bytes(path, array_bytes(path, X, **extra))

    def write_json(self, path: str | os.PathLike, obj: object) -> Path:
        """:func:`write_json` inside the transaction."""
        return self.write_bytes(path, json_bytes(obj))


def import_kinds() -> None:
    """Import every module listed in :data:`KIND_MODULES` (kinds register by import side
    effect), so that model and key files load in a fresh process."""
    ARTIFACTS.load()
    KEYS.load()


# --------------------------------------------------------------------------------------------
# atomic files
# --------------------------------------------------------------------------------------------
def atomic_write(path: str | os.PathLike, data: bytes, mode: int = 0o644) -> Path:
    """Write ``data`` to ``path`` atomically with permission ``mode``; return the path.
    A one-file :class:`Transaction`; commands with several outputs use one transaction."""
    with Transaction() as tx:
        tx.file(path, mode=mode)
        tx.write_bytes(path, data)
    return Path(path)


def atomic_writer(
    path: str | os.PathLike, writer: Callable[[Path], None], mode: int = 0o644
) -> Path:
    """Let ``writer(tmp_path)`` produce a file, then move it to ``path`` atomically."""
    with Transaction() as tx:
        writer(tx.file(path, mode=mode))
    return Path(path)


def json_bytes(obj: Any) -> bytes:
    """``obj`` as indented JSON (numpy scalars and arrays converted), the bytes written."""
    text = json.dumps(obj, indent=2, sort_keys=True, default=_json_default, allow_nan=True)
    return (text + "\n").encode()


def write_json(path: str | os.PathLike, obj: Any, mode: int = 0o644) -> Path:
    """Write ``obj`` as indented JSON atomically (numpy scalars and arrays are converted)."""
    return atomic_write(path, json_bytes(obj), mode=mode)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


# --------------------------------------------------------------------------------------------
# models
# --------------------------------------------------------------------------------------------
def _digest(kind: str, meta_json: str, tensors: Mapping[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    h.update(FORMAT_VERSION.encode() + b"\0" + kind.encode() + b"\0" + meta_json.encode() + b"\0")
    for name in sorted(tensors):
        arr = np.ascontiguousarray(tensors[name])
        h.update(f"{name}|{arr.dtype.str}|{arr.shape}".encode() + b"\0")
        h.update(arr.tobytes())
    return h.hexdigest()


def model_fingerprint(model: Artifact) -> str:
    """SHA-256 of a model's artifact content: what keys use to name the model they belong to."""
    tensors, meta = model._to_artifact()
    return _digest(model.artifact_kind, json.dumps(meta, sort_keys=True), tensors)


def check_fingerprint(expected: str, model: Any, what: str = "this key") -> None:
    """Raise :class:`KeyMismatchError` unless ``model`` is a model of this package whose
    :func:`model_fingerprint` is ``expected``. A key that names no model (empty fingerprint)
    belongs to none: the one rule every key's ``check_model`` follows."""
    if not expected or not hasattr(model, "_to_artifact") or model_fingerprint(model) != expected:
        raise KeyMismatchError(f"{what} does not belong to the given model")


@validate_args({"path": PATH})
def save_model(model: Any, path: str | os.PathLike) -> Path:
    """Save a model of this package (anything with ``_to_artifact``) as one safetensors file."""
    return atomic_write(path, model_bytes(model))


def model_bytes(model: Any) -> bytes:
    """The safetensors bytes :func:`save_model` writes (header: kind, JSON meta, digest)."""
    from safetensors.numpy import save

    if not isinstance(model, Artifact):
        raise InvalidInputError(
            f"{type(model).__name__} cannot be saved: only models of this package "
            "(or scikit-learn estimators via save_sklearn) have an artifact format"
        )
    tensors, meta = model._to_artifact()
    tensors = {k: np.ascontiguousarray(v) for k, v in tensors.items()}
    if not tensors:  # safetensors needs at least one tensor to carry the header reliably
        tensors = {"__empty__": np.zeros(1, dtype=np.uint8)}
    meta_json = json.dumps(meta, sort_keys=True, default=_json_default)
    header = {
        "backdoors.format": FORMAT_VERSION,
        "backdoors.kind": model.artifact_kind,
        "backdoors.meta": meta_json,
        "backdoors.digest": _digest(model.artifact_kind, meta_json, tensors),
    }
    return save(tensors, metadata=header)


def safetensors_header(path: str | os.PathLike) -> dict[str, str] | None:
    """The metadata of a safetensors file; ``None`` if the file is not safetensors at all;
    :class:`CorruptArtifactError` if it is one that is truncated or corrupt."""
    from safetensors import safe_open

    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(9)
    n = int.from_bytes(head[:8], "little") if len(head) >= 8 else -1
    if len(head) < 9 or head[8:9] != b"{" or not 0 < n < 100 * 2**20:
        return None  # no safetensors header: some other format
    try:
        with safe_open(str(path), framework="numpy") as fh:
            return fh.metadata() or {}
    except Exception as exc:
        what = "truncated" if size < 8 + n else "truncated or corrupt"
        raise CorruptArtifactError(f"{path} is a {what} safetensors file ({exc})") from None


def read_artifact(path: str | os.PathLike) -> tuple[str, dict[str, np.ndarray], dict[str, Any]]:
    """Read and integrity-check a model file; return ``(kind, tensors, meta)``."""
    path = Path(path)
    if not path.is_file():
        raise InvalidInputError(f"no such model file: {path}")
    if safetensors_header(path) is None:
        raise CorruptArtifactError(f"{path} is not a model file (no safetensors header)")
    return _parse_artifact(path.read_bytes(), str(path))


def _parse_artifact(data: bytes, where: str) -> tuple[str, dict[str, np.ndarray], dict[str, Any]]:
    from safetensors.numpy import load

    try:
        n = int.from_bytes(data[:8], "little")
        header = json.loads(data[8 : 8 + n]).get("__metadata__") or {}
        tensors: dict[str, np.ndarray] = load(data)
    except Exception as exc:  # safetensors raises several types on garbage
        raise CorruptArtifactError(
            f"{where} is a truncated or corrupt model file ({exc})"
        ) from None
    if header.get("backdoors.format") != FORMAT_VERSION:
        raise CorruptArtifactError(f"{where} is not a backdoors model file (format header missing)")
    kind, meta_json = header.get("backdoors.kind", ""), header.get("backdoors.meta", "")
    if _digest(kind, meta_json, tensors) != header.get("backdoors.digest"):
        raise CorruptArtifactError(
            f"{where} fails its integrity check (truncated or corrupted; the digest detects "
            "accidents, not deliberate edits)"
        )
    tensors.pop("__empty__", None)
    try:
        meta = json.loads(meta_json)
    except json.JSONDecodeError:
        raise CorruptArtifactError(f"{where}: metadata is not JSON") from None
    return kind, tensors, meta


@validate_args({"path": PATH})
def load_model(path: str | os.PathLike, publisher: Any = None) -> Any:
    """Load a model saved by :func:`save_model` (or a .skops scikit-learn model).

    ``publisher`` (a :class:`~backdoors.artifacts.provenance.PublisherKey`): refuse the file unless
    ``<path>.sig`` is that publisher's signature on exactly these bytes (authenticity; the
    digest alone only detects corruption)."""
    path = Path(path)
    if not path.is_file():
        raise InvalidInputError(f"no such model file: {path}")
    data = None
    if publisher is not None:
        from backdoors.artifacts.provenance import verify_file

        data = verify_file(path, publisher)  # the bytes checked are the bytes loaded
    if path.suffix == ".skops":
        return sklearn_from_bytes(path.read_bytes() if data is None else data)
    if path.suffix.lower() == ".onnx":
        raise InvalidInputError(
            f"{path} is an ONNX file: load it with backdoors.signature.onnx.runtime.load_classifier"
        )
    if data is None:
        if safetensors_header(path) is None:
            raise CorruptArtifactError(f"{path} is not a model file (no safetensors header)")
        data = path.read_bytes()
    kind, tensors, meta = _parse_artifact(data, str(path))
    import_kinds()
    cls = ARTIFACTS.get(kind)
    try:
        return cls._from_artifact(tensors, meta)
    except (KeyError, ValueError, TypeError) as exc:
        raise CorruptArtifactError(f"{path}: inconsistent {kind} artifact ({exc})") from None


# --------------------------------------------------------------------------------------------
# scikit-learn estimators (skops, never pickle)
# --------------------------------------------------------------------------------------------
_TRUSTED_PREFIXES = ("sklearn.", "numpy.", "scipy.")


def sklearn_to_bytes(estimator: Any) -> np.ndarray:
    """Serialize a scikit-learn estimator with skops into a uint8 array."""
    import skops.io as sio

    return np.frombuffer(sio.dumps(estimator), dtype=np.uint8).copy()


def sklearn_from_bytes(data: np.ndarray | bytes, trusted: Iterable[str] = ()) -> Any:
    """Load skops bytes, trusting scikit-learn/numpy/scipy types and those named in ``trusted``."""
    import skops.io as sio

    raw = data.tobytes() if isinstance(data, np.ndarray) else bytes(data)
    extra = set(trusted)
    try:
        untrusted = sio.get_untrusted_types(data=raw)
        bad = [t for t in untrusted if not t.startswith(_TRUSTED_PREFIXES) and t not in extra]
        if bad:
            raise CorruptArtifactError(
                f"refusing to load types that are not scikit-learn/numpy/scipy: {bad} "
                "(pass them as trusted if you know where the file comes from)"
            )
        return sio.loads(raw, trusted=untrusted)
    except CorruptArtifactError:
        raise
    except Exception as exc:
        raise CorruptArtifactError(f"not a readable skops model ({exc})") from None


def save_sklearn(estimator: Any, path: str | os.PathLike) -> Path:
    """Save a scikit-learn estimator as a .skops file, atomically."""
    return atomic_write(path, sklearn_to_bytes(estimator).tobytes())


def load_sklearn(path: str | os.PathLike, trusted: Iterable[str] = ()) -> Any:
    path = Path(path)
    if not path.is_file():
        raise InvalidInputError(f"no such model file: {path}")
    return sklearn_from_bytes(path.read_bytes(), trusted)


# --------------------------------------------------------------------------------------------
# keys
# --------------------------------------------------------------------------------------------
def check_outputs(model_path: str | os.PathLike, key_path: str | os.PathLike) -> None:
    """Before planting: distinct paths, existing folders, and no key file to overwrite (so a
    failure leaves nothing half-written and never destroys a key)."""
    model_path, key_path = Path(model_path), Path(key_path)
    if model_path.resolve() == key_path.resolve():
        raise InvalidInputError("the model and key paths must differ")
    for p in (model_path, key_path):
        if not p.parent.is_dir():
            raise InvalidInputError(f"folder {p.parent} does not exist")
    if key_path.exists():
        raise InvalidInputError(f"{key_path} exists; refusing to overwrite a key file")


@validate_args({"key": [HasMethods(["to_json_dict"])], "path": PATH, "overwrite": ["boolean"]})
def save_key(key: Any, path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write a key as JSON with mode 0600; refuse to replace an existing key unless asked."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise InvalidInputError(f"{path} exists; refusing to overwrite a key file")
    return atomic_write(path, key_bytes(key), mode=0o600)


def key_bytes(key: Any) -> bytes:
    """The JSON bytes :func:`save_key` writes."""
    doc = {"backdoors.key": FORMAT_VERSION, "kind": key.key_kind, "key": key.to_json_dict()}
    text = json.dumps(doc, indent=2, sort_keys=True, default=_json_default)
    return (text + "\n").encode()


@validate_args({"path": PATH})
def load_key(path: str | os.PathLike) -> Any:
    """Load a key file written by :func:`save_key`."""
    path = Path(path)
    if not path.is_file():
        raise InvalidInputError(f"no such key file: {path}")
    try:
        doc = json.loads(path.read_text())
        kind = doc["kind"]
        body = doc["key"]
        if doc.get("backdoors.key") != FORMAT_VERSION:
            raise KeyError("backdoors.key")
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError):
        raise CorruptArtifactError(f"{path} is not a backdoors key file") from None
    import_kinds()
    cls = KEYS.get(kind)
    try:
        return cls.from_json_dict(body)
    except (KeyError, ValueError, TypeError) as exc:
        raise CorruptArtifactError(f"{path}: corrupt {kind} key ({exc})") from None


# --------------------------------------------------------------------------------------------
# arrays (.npy / .npz, never with pickle)
# --------------------------------------------------------------------------------------------
_NPY_MAGIC, _ZIP_MAGIC = b"\x93NUMPY", b"PK\x03\x04"


@validate_args({"path": PATH, "name": [str]})
def load_array(path: str | os.PathLike, name: str = "X") -> np.ndarray:
    """Load an array from .npy, or the member ``name`` (default ``X``) of an .npz; never
    guesses another member, never unpickles, and names what is wrong with a file that is not
    numpy's (text, truncated, pickled objects)."""
    path = Path(path)
    if not path.is_file():
        raise InvalidInputError(f"no such input file: {path}")
    with open(path, "rb") as fh:
        magic = fh.read(6)
    if not (magic.startswith(_NPY_MAGIC) or magic.startswith(_ZIP_MAGIC)):
        raise CorruptArtifactError(
            f"{path} is not a .npy/.npz file (no numpy header; save arrays with numpy.save)"
        )
    try:
        obj = np.load(path, allow_pickle=False)
        if isinstance(obj, np.lib.npyio.NpzFile):
            with obj:
                if name not in obj.files:
                    raise InvalidInputError(f"{path} has no array {name!r} (has {obj.files})")
                return obj[name]
        return obj
    except InvalidInputError:
        raise
    except ValueError as exc:
        if "pickle" in str(exc):
            raise CorruptArtifactError(
                f"{path} holds Python objects (pickled), which are never loaded"
            ) from None
        raise CorruptArtifactError(f"{path} is truncated or corrupt ({exc})") from None
    except Exception as exc:
        raise CorruptArtifactError(f"{path} is truncated or corrupt ({exc})") from None


@validate_args({"path": PATH, "X": [Array()]})
def save_array(path: str | os.PathLike, X: np.ndarray, **extra: np.ndarray) -> Path:
    """Save ``X`` to .npy (or .npz with ``X`` and extra arrays), atomically."""
    return atomic_write(path, array_bytes(path, X, **extra))


def array_bytes(path: str | os.PathLike, X: np.ndarray, **extra: np.ndarray) -> bytes:
    """The bytes :func:`save_array` writes to ``path``: .npz holds ``X`` and ``extra``, any
    other name .npy content (pickle never allowed)."""
    import io as _io

    buf = _io.BytesIO()
    if Path(path).suffix == ".npz":
        np.savez(buf, X=X, **extra)
    else:
        if extra:
            raise InvalidInputError("extra arrays need an .npz output")
        np.save(buf, X, allow_pickle=False)
    return buf.getvalue()
