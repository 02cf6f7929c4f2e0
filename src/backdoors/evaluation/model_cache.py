"""The population cache: one folder per member, named by a content hash, never pickled.

``members/<sha256>/`` holds ``model.safetensors`` (:func:`backdoors.artifacts.files.save_model`) or
``model.skops`` (scikit-learn), ``key.json`` (:func:`backdoors.artifacts.files.save_key`, 0600),
model-valued
``info`` entries as further model files, and ``member.json`` (written last: an entry without
it is incomplete). ``arrays/<blake2b>.safetensors`` holds data arrays by content, so a data set
shared by every member is stored (and held in memory) once.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from backdoors.artifacts import files
from backdoors.errors import CorruptArtifactError, InvalidInputError
from backdoors.evaluation.recipes import ATTACKS, Built

ARRAY_FIELDS = ("X_test", "y_test", "X_train", "y_train")
CACHE_FORMAT = "1"


def import_model_kinds() -> None:
    """Import every top-level module of the package and every attack module, so that all
    model-artifact and key kinds are registered before loading files (``files.ARTIFACTS`` and
    ``files.KEYS`` are filled by import side effects, and some modules are imported lazily)."""
    from backdoors.artifacts.files import import_kinds

    import_kinds()
    ATTACKS.names()


def _array_digest(a: np.ndarray) -> str:
    a = np.ascontiguousarray(a)
    h = hashlib.blake2b(digest_size=20)
    h.update(f"{a.dtype.str}|{a.shape}".encode())
    h.update(memoryview(a).cast("B"))
    return h.hexdigest()


class ArrayPool:
    """Content-addressed arrays: one copy in memory (and on disk) per distinct array."""

    def __init__(self, root: Path | None) -> None:
        self.root = root
        self.mem: dict[str, np.ndarray] = {}

    def intern(self, a: np.ndarray) -> tuple[str, np.ndarray]:
        d = _array_digest(a)
        return d, self.mem.setdefault(d, a)

    def save(self, d: str) -> None:
        from safetensors.numpy import save

        assert self.root is not None
        path = self.root / "arrays" / f"{d}.safetensors"
        if not path.exists():
            files.atomic_write(path, save({"a": np.ascontiguousarray(self.mem[d])}))

    def load(self, d: str) -> np.ndarray:
        if d not in self.mem:
            from safetensors.numpy import load_file

            assert self.root is not None
            path = self.root / "arrays" / f"{d}.safetensors"
            try:
                a = load_file(str(path))["a"]
            except Exception as exc:
                raise CorruptArtifactError(f"cached array {path} unreadable ({exc})") from None
            if _array_digest(a) != d:
                raise CorruptArtifactError(f"cached array {path} fails its digest")
            a.setflags(write=False)
            self.mem[d] = a
        return self.mem[d]


def _is_sklearn(model: Any) -> bool:
    from sklearn.base import BaseEstimator

    return isinstance(model, BaseEstimator) and not isinstance(model, files.Artifact)


def _savable(model: Any) -> bool:
    return isinstance(model, files.Artifact) or _is_sklearn(model)


def _save_any_model(model: Any, folder: Path, stem: str) -> str:
    """Write ``model`` as ``stem.safetensors`` (package models) or ``stem.skops``; return name."""
    if isinstance(model, files.Artifact):
        files.save_model(model, folder / f"{stem}.safetensors")
        return f"{stem}.safetensors"
    files.save_sklearn(model, folder / f"{stem}.skops")
    return f"{stem}.skops"


def _split_info(info: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(JSON part, model-valued entries such as the honest base model of a wrapper)."""
    plain = {k: v for k, v in info.items() if not _savable(v)}
    models = {k: v for k, v in info.items() if _savable(v)}
    return plain, models


def cache_plan(built: Built) -> str | None:
    """Why ``built`` cannot be cached (None when it can)."""
    if not _savable(built.model):
        return f"model type {type(built.model).__name__} has no artifact format"
    if built.key is not None and not hasattr(built.key, "key_kind"):
        return f"key type {type(built.key).__name__} has no key format"
    plain, _ = _split_info(built.info)
    try:
        json.dumps(plain, default=files._json_default)
    except (TypeError, ValueError) as exc:
        return f"info is neither JSON nor models ({exc})"
    for name in ARRAY_FIELDS:
        a = getattr(built, name)
        if a is not None and (not isinstance(a, np.ndarray) or a.dtype.hasobject):
            return f"{name} is not a numeric numpy array"
    return None


def save_member(root: Path, h: str, built: Built, pool: ArrayPool) -> None:
    folder = root / "members" / h
    folder.mkdir(parents=True, exist_ok=True)
    model_file = _save_any_model(built.model, folder, "model")
    if built.key is not None:
        files.save_key(built.key, folder / "key.json", overwrite=True)
    arrays = {}
    for name in ARRAY_FIELDS:
        a = getattr(built, name)
        if a is not None:
            d, _ = pool.intern(a)
            pool.save(d)
            arrays[name] = d
    plain, models = _split_info(built.info)
    info_models = {
        k: _save_any_model(v, folder, f"info-{i}") for i, (k, v) in enumerate(models.items())
    }
    doc = {
        "format": CACHE_FORMAT,
        "seed": int(built.seed),
        "backdoored": bool(built.backdoored),
        "model": model_file,
        "key": "key.json" if built.key is not None else None,
        "arrays": arrays,
        "info": plain,
        "info_models": info_models,
    }
    files.write_json(folder / "member.json", doc)  # written last: marks the entry complete


def load_member(root: Path, h: str, pool: ArrayPool) -> Built | None:
    folder = root / "members" / h
    meta_path = folder / "member.json"
    if not meta_path.is_file():
        return None
    try:
        doc = json.loads(meta_path.read_text())
        if doc.get("format") != CACHE_FORMAT:
            return None
        model = files.load_model(folder / doc["model"])
        key = files.load_key(folder / doc["key"]) if doc["key"] else None
        arrays = {name: pool.load(d) for name, d in doc["arrays"].items()}
        info = dict(doc.get("info") or {})
        info.update(
            {k: files.load_model(folder / f) for k, f in doc.get("info_models", {}).items()}
        )
        return Built(
            model=model,
            key=key,
            backdoored=bool(doc["backdoored"]),
            seed=int(doc["seed"]),
            info=info,
            **{name: arrays.get(name) for name in ARRAY_FIELDS},
        )
    except (CorruptArtifactError, InvalidInputError, KeyError, TypeError, ValueError):
        return None  # unreadable entry: rebuild and overwrite it
