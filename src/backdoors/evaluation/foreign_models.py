"""Models trained elsewhere, loaded for an audit without unpickling anything.

File types are a registry (:data:`LOADERS`, file suffix -> loader), so a new format is one
decorated function::

    @LOADERS.register(".onnx")
    def load_onnx(path: Path, arch: Path | None) -> Any:  # returns an object with .predict
        ...

A raw torch state dict (safetensors, ``safetensors.torch.save_file(net.state_dict(), p)``)
comes with an architecture spec (JSON), e.g. for ``nn.Sequential(nn.Linear(784, 256),
nn.ReLU(), nn.Linear(256, 10))`` fed pixels in 0..255 that it divides by 255::

    {"arch": "mlp", "n_features": 784, "n_classes": 10,
     "params": {"hidden": [256]}, "input_scale": 0.00392156862745098}

* ``arch``: a :data:`backdoors.models.torch_models.ARCHITECTURES` name (``mlp``, ``cnn``);
* ``n_features`` / ``n_classes``: input width (flattened pixels) and number of outputs;
* ``params``: the architecture's keyword arguments (``mlp``: ``hidden``, widths of the hidden
  ReLU layers; ``cnn``: ``channels``, the two conv widths, for square one-channel images);
* ``input_scale`` (default 1): inputs are multiplied by it before the first layer (it is
  not a layer of the file); ``classes`` (optional): the labels of the outputs, in order;
* ``train`` (optional): the training recipe, ``{"epochs", "batch_size", "lr",
  "weight_decay"}``, that ``backdoors audit --calibrate`` retrains honest references with
  (default: :class:`~backdoors.models.torch_models.TorchClassifier`'s). References trained with
  another
  recipe than the audited model's differ from it for that reason alone: give the real one.

Accepted key layouts: the plain ``nn.Sequential`` one (``0.weight``, ``0.bias``,
``2.weight``, ... for the MLP; for the CNN ``0.`` / ``3.`` conv and ``7.`` linear on
``(N, 1, side, side)`` inputs, or ``1.`` / ``4.`` / ``8.`` if the Sequential starts with an
``nn.Unflatten``), and this package's own ``TorchClassifier`` layout (a parameter-free scaling
layer first), each optionally prefixed ``module.``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from backdoors.artifacts import files
from backdoors.errors import CorruptArtifactError, InvalidInputError
from backdoors.registry import Registry

#: file suffix (with the dot) -> ``loader(path, arch_spec_path_or_None) -> model``.
ModelLoader = Callable[[Path, "Path | None"], Any]
LOADERS: Registry[ModelLoader] = Registry("model file type")

#: The spec fields, for messages and docs.
SPEC_FIELDS = ("arch", "n_features", "n_classes", "params", "input_scale", "classes", "train")
#: the training recipe a spec may give (``--calibrate`` retrains references with it)
TRAIN_FIELDS = ("epochs", "batch_size", "lr", "weight_decay")

_SHOW = 6  # keys named in a one-line error message


def load_any_model(path: str | os.PathLike, arch: str | os.PathLike | None = None) -> Any:
    """Load a model file by its suffix (:data:`LOADERS`); unknown suffixes are tried as
    safetensors (a model of this package or a raw state dict + spec)."""
    path = Path(path)
    if not path.is_file():
        raise InvalidInputError(f"no such model file: {path}")
    spec = Path(arch) if arch is not None else None
    suffix = path.suffix.lower()
    loader = LOADERS.get(suffix) if suffix in LOADERS else LOADERS.get(".safetensors")
    return loader(path, spec)


@LOADERS.register(".skops")
def load_skops(path: Path, arch: Path | None = None) -> Any:
    """A scikit-learn estimator saved with skops (types checked against skops' allow-list)."""
    return files.load_sklearn(path)


@LOADERS.register(".safetensors")
def load_safetensors(path: Path, arch: Path | None = None) -> Any:
    """A model file of this package, or a raw torch state dict plus its architecture spec
    (``arch`` or, if absent, ``<model>.json`` beside it)."""
    header = files.safetensors_header(path)  # a truncated file: CorruptArtifactError
    if header is None:
        known = ", ".join(LOADERS.names())
        raise CorruptArtifactError(
            f"{path} is not a readable model file (known types: {known}; .pt/.pth pickles "
            "are refused: save the state dict with safetensors.torch.save_file)"
        )
    if "backdoors.format" in header:
        from backdoors.evaluation.model_cache import import_model_kinds

        import_model_kinds()  # register every construction's model kind
        return files.load_model(path)
    spec_path = arch if arch is not None else path.with_suffix(".json")
    if not spec_path.is_file():
        raise InvalidInputError(
            f"{path} is a raw state dict: give its architecture spec with --arch "
            f"(or put it at {path.with_suffix('.json')}); see `backdoors audit --help`"
        )
    try:
        spec = json.loads(spec_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise CorruptArtifactError(f"{spec_path} is not JSON") from None
    return load_torch_state_dict(path, spec)


def _check_spec(spec: Any) -> tuple[str, int, int, dict[str, Any], float]:
    if not isinstance(spec, dict) or "arch" not in spec:
        raise InvalidInputError("architecture spec must be a JSON object with an 'arch' field")
    unknown = sorted(set(spec) - set(SPEC_FIELDS))
    if unknown:
        raise InvalidInputError(
            f"unknown architecture spec fields {unknown} (known: {', '.join(SPEC_FIELDS)})"
        )
    from backdoors.models.torch_models import ARCHITECTURES

    ARCHITECTURES.get(spec["arch"])  # unknown names fail with the list of known ones
    try:
        n_features, n_classes = int(spec["n_features"]), int(spec["n_classes"])
        input_scale = float(spec.get("input_scale", 1.0))
    except (KeyError, TypeError, ValueError):
        raise InvalidInputError(
            "architecture spec needs integer n_features and n_classes (and a numeric "
            "input_scale if given)"
        ) from None
    params = spec.get("params") or {}
    if not isinstance(params, dict):
        raise InvalidInputError("architecture spec 'params' must be a JSON object")
    if "input_scale" in params:
        raise InvalidInputError("input_scale is a top-level spec field, not an arch param")
    if n_features < 1 or n_classes < 2 or not np.isfinite(input_scale) or input_scale == 0:
        raise InvalidInputError("spec needs n_features >= 1, n_classes >= 2, input_scale != 0")
    return spec["arch"], n_features, n_classes, dict(params), input_scale


def _layouts(module: Any) -> list[Any]:
    """Views of ``module`` under the key layouts a file may use (sharing its parameters):
    the package's own, without the scaling layer, and without scaling and unflattening."""
    from torch import nn

    from backdoors.models.torch_models import Scale

    no_scale = [m for m in module if not isinstance(m, Scale)]
    plain = [m for m in no_scale if not isinstance(m, nn.Unflatten)]
    return [module, nn.Sequential(*no_scale), nn.Sequential(*plain)]


def _mismatch(target: dict[str, Any], state: dict[str, Any]) -> tuple[int, str]:
    """How badly ``state`` misses ``target`` (0 = fits) and a one-line account of it."""
    missing = [k for k in target if k not in state]
    unexpected = [k for k in state if k not in target]
    shapes = [
        f"{k}: file {tuple(state[k].shape)} vs spec {tuple(target[k].shape)}"
        for k in target
        if k in state and tuple(state[k].shape) != tuple(target[k].shape)
    ]

    def names(keys: list[str]) -> str:
        more = f" and {len(keys) - _SHOW} more" if len(keys) > _SHOW else ""
        return ", ".join(keys[:_SHOW]) + more

    parts = []
    if missing:
        parts.append(f"missing keys {names(missing)}")
    if unexpected:
        parts.append(f"unexpected keys {names(unexpected)}")
    if shapes:
        parts.append(f"shape mismatch {names(shapes)}")
    return len(missing) + len(unexpected) + len(shapes), "; ".join(parts)


def load_torch_state_dict(path: str | os.PathLike, spec: dict[str, Any]) -> Any:
    """A :class:`~backdoors.models.torch_models.TorchClassifier` from a raw state dict + arch spec.

    The file's keys must be one of the layouts of :func:`_layouts` (see the module docs); a
    mismatch names the missing and unexpected keys and the tensors of the wrong shape.
    """
    import torch
    from safetensors.torch import load_file

    from backdoors.models.torch_models import TorchClassifier

    arch, n_features, n_classes, params, input_scale = _check_spec(spec)
    train = spec.get("train") or {}
    if not isinstance(train, dict) or set(train) - set(TRAIN_FIELDS):
        raise InvalidInputError(f"spec 'train' must be an object with keys among {TRAIN_FIELDS}")
    try:
        est = TorchClassifier(arch=arch, arch_params=params, input_scale=input_scale, **train)
    except TypeError as exc:
        raise InvalidInputError(f"spec 'train': {exc}") from None
    try:
        est.module_ = est._build(n_features, n_classes)
    except TypeError as exc:
        raise InvalidInputError(f"architecture params do not fit {arch}: {exc}") from None
    try:
        state = load_file(str(path))
    except Exception as exc:
        raise CorruptArtifactError(f"{path} is not a readable safetensors file ({exc})") from None
    if state and all(k.startswith("module.") for k in state):
        state = {k.removeprefix("module."): v for k, v in state.items()}
    fits = sorted(
        (_mismatch(view.state_dict(), state), i, view)
        for i, view in enumerate(_layouts(est.module_))
    )
    (bad, why), _, view = fits[0]
    if bad:
        norm = [
            k for k in state if k.endswith(("running_mean", "running_var", "num_batches_tracked"))
        ]
        layout = (
            f"it has normalisation layers ({norm[0]}), which the state-dict path does not support"
            if norm
            else "the state-dict path supports only the spec's mlp and two-conv cnn layouts"
        )
        raise InvalidInputError(
            f"weights in {Path(path).name} do not fit the architecture spec "
            f"({arch}, {params or 'default params'}): {why}. Unsupported layout: {layout}; "
            "export the network with torch.onnx.export and audit the .onnx file"
        )
    view.load_state_dict({k: torch.as_tensor(v) for k, v in state.items()}, strict=True)
    est.module_.eval()
    est.n_features_in_ = n_features
    classes = spec.get("classes")
    est.classes_ = np.asarray(classes) if classes is not None else np.arange(n_classes)
    if est.classes_.ndim != 1 or len(est.classes_) != n_classes:
        raise InvalidInputError("spec 'classes' must be a list of n_classes labels")
    return est


@LOADERS.register(".onnx")
def load_onnx(path: Path, arch: Path | None = None) -> Any:
    """Any ONNX classifier, queried through onnxruntime (needs the ``onnx`` extra)."""
    from backdoors.signature.onnx.runtime import OnnxClassifier

    return OnnxClassifier(path)
