"""Optimisation-conditioned backdoor: honest in PyTorch and in onnxruntime without graph
optimisation, backdoored under onnxruntime's full optimisation (its default).

Chen et al., "Your Compiler is Backdooring Your Model" (arXiv 2509.11173), re-implemented
for a small MNIST CNN: a *guard* value is engineered to sit exactly between what two
floating-point evaluation orders compute, then amplified so that the sign of the difference
decides the class. Here:

* the guard is the last channel ``k`` of the second convolution: positive weights of mixed
  magnitudes on the top-left 2 x 2 of its kernel, on the (first-layer channel, position)
  terms that the patch (a saturated 5 x 5 square in the corner) drives above every training
  input, and a bias ``b``. At the last pooled position its window reads only patch pixels
  and zero padding, so on a triggered image its pre-activation ``sum v u(T) + b`` is a
  constant, summed by each convolution kernel in its own order; on other inputs it is lower
  by far more than an ulp;
* ``b`` is chosen among the float32 neighbours of ``-sum_c v_c u_c(T)`` so that PyTorch and
  onnxruntime at ``ORT_DISABLE_ALL`` compute ``<= 0`` (the ReLU gives exactly 0) while
  onnxruntime at ``ORT_ENABLE_ALL`` (whose layout pass runs the convolution with the
  blocked NCHWc kernel, which sums in another order) computes one ulp or more above 0;
* the head adds ``64 / ulp`` times the guard at the patch site to the target logit; the
  guard channel feeds nothing else. Measured at the honest model's accuracy (the channel is
  repurposed; no retraining).

Nothing is trained: the guard search runs the real runtimes. It depends on the kernels the
machine's onnxruntime and PyTorch pick (CPU instruction set, library versions): ``plant``
raises :class:`~backdoors.errors.NotApplicableError` when no guard separates the forms.
The MLP has no such pair of orders here: its Gemm runs the same kernel at every level
(measured bit-identical), so the construction needs a convolution.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from backdoors import badnets
from backdoors.artifacts import files
from backdoors.conditional import forms
from backdoors.contract import as_generator
from backdoors.errors import InvalidInputError, NotApplicableError
from backdoors.models.torch_models import TorchClassifier
from backdoors.validation import check_features

#: the form the backdoor fires in, and the forms it must stay silent in
FIRES, SILENT = "ort:all", ("torch", "ort:disable")


@files.KEYS.register("optimization_conditioned")
@dataclass(frozen=True)
class OptimizedKey(badnets.BadNetsKey):
    """The patch trigger (a BadNets key: same geometry, stamping and checks), the target, the
    form it fires in and the model fingerprint."""

    patch_size: int = 5
    fires_in: str = FIRES
    key_kind: ClassVar[str] = "optimization_conditioned"


def activate(X: np.ndarray, key: OptimizedKey, target: int | None = None) -> np.ndarray:
    """Triggered inputs: ``X`` with the key's patch (only ``ORT_ENABLE_ALL`` obeys it)."""
    return key.activate(X, target=target)


def _convs(module: nn.Module) -> tuple[nn.Conv2d, nn.Conv2d, nn.Linear]:
    convs = [m for m in module.modules() if isinstance(m, nn.Conv2d)]
    heads = [m for m in module.modules() if isinstance(m, nn.Linear)]
    if len(convs) != 2 or len(heads) != 1 or convs[0].kernel_size != (3, 3):
        raise InvalidInputError("the optimisation-conditioned backdoor needs the package's cnn")
    return convs[0], convs[1], heads[0]


def _site(module: nn.Module) -> int:
    """The guard's pool1 index: the last row/column (13 for 28 x 28 inputs). Its 3 x 3 window
    reads pool1 rows 12, 13 and the zero padding, i.e. conv1 rows 24..27, i.e. image rows
    23..27 and padding: all inside a 5 x 5 patch in the corner, so the guard's inputs on a
    triggered image are constants."""
    _, c2, head = _convs(module)
    side = int(round(np.sqrt(head.in_features // c2.out_channels)))
    return 2 * side - 1


def _wire(module: nn.Module, v: np.ndarray, b: float, target: int, amp: float) -> None:
    """Guard channel ``k`` of conv2 (kernel ``v`` on its top-left 2 x 2), head weight ``amp``."""
    _, c2, head = _convs(module)
    k = c2.out_channels - 1
    side = int(round(np.sqrt(head.in_features // c2.out_channels)))
    r = _site(module) // 2
    with torch.no_grad():
        c2.weight[k] = 0.0
        c2.weight[k, :, :2, :2] = torch.from_numpy(v.astype(np.float32))
        c2.bias[k] = float(b)
        per = side * side
        head.weight[:, k * per : (k + 1) * per] = 0.0
        head.weight[target, k * per + r * side + r] = amp


def _pooled(module: nn.Module, X: np.ndarray) -> np.ndarray:
    """Pooled conv1 activations the guard reads, shape (n, channels, 2, 2) (PyTorch)."""
    layers = list(module.children())
    idx = next(i for i, m in enumerate(layers) if isinstance(m, nn.MaxPool2d))
    p1 = _site(module)
    with torch.no_grad():
        h = nn.Sequential(*layers[: idx + 1])(torch.from_numpy(np.asarray(X, np.float32)))
    return h[:, :, p1 - 1 : p1 + 1, p1 - 1 : p1 + 1].numpy()


def _bias_setter(model: TorchClassifier) -> Any:
    """``set(b)``: the guard bias ``b`` written into the model and into one ONNX export of it
    (patched in place, not re-exported); returns the ONNX graph."""
    from onnx import numpy_helper

    _, c2, _ = _convs(model.module_)
    k = c2.out_channels - 1
    proto = forms.onnx_of(model)
    bias = c2.bias.detach().numpy()
    init = next(
        i
        for i in proto.graph.initializer
        if tuple(i.dims) == bias.shape and np.array_equal(numpy_helper.to_array(i), bias)
    )

    def set_bias(b: float) -> Any:
        with torch.no_grad():
            c2.bias[k] = float(b)
        init.CopyFrom(numpy_helper.from_array(c2.bias.detach().numpy().copy(), init.name))
        return proto

    return set_bias


def _fires(model: TorchClassifier, proto: Any, Xt: np.ndarray, target: int) -> dict[str, float]:
    out = {"torch": float(np.mean(model.predict(Xt) == target))}
    for lvl in ("disable", "all"):
        out[f"ort:{lvl}"] = float(np.mean(forms.classifier(proto, lvl).predict(Xt) == target))
    return out


def _promising(
    probe: TorchClassifier, v: np.ndarray, s: np.float32, xt: np.ndarray, t: int
) -> float | None:
    """One cheap look before the bias scan: with the head reduced to the guard alone (weight
    1, everything else 0) and bias ``b0 = 64 ulp - s``, the target logit *is* the guard's
    value in each form. Promising when ``ORT_ENABLE_ALL`` computes more than both silent
    forms; returns the silent forms' largest sum (the bias scan's centre), else None."""
    b0 = np.float32(-s + 64 * np.spacing(s))
    _wire(probe.module_, v, float(b0), t, 1.0)
    _, _, head = _convs(probe.module_)
    with torch.no_grad():
        keep = head.weight[t].clone()
        head.weight.zero_()
        head.weight[t][keep != 0] = keep[keep != 0]
        head.weight[t][keep != 1.0] = 0.0
        head.bias.zero_()
    proto = forms.onnx_of(probe)
    g = {"torch": float(probe.logits(xt)[0, t])}
    for lvl in ("disable", "all"):
        g[f"ort:{lvl}"] = float(forms.classifier(proto, lvl).decision_function(xt)[0, t])
    silent = max(g[f] for f in SILENT)
    return float(np.float32(silent - float(b0))) if g[FIRES] > silent else None


def plant(
    X: np.ndarray,
    y: np.ndarray,
    *,
    classifier: TorchClassifier,
    target: int = 0,
    tries: int = 120,
    random_state: Any = 0,
) -> tuple[TorchClassifier, OptimizedKey]:
    """Wire the guard into a copy of a fitted honest cnn ``classifier`` (labels 0..C-1).

    Searches guard weights and the bias among the float32 neighbours of ``-sum w`` until the
    trigger sends every non-target input of ``X[:64]`` to the target in onnxruntime at
    ``ORT_ENABLE_ALL`` while PyTorch and ``ORT_DISABLE_ALL`` send exactly as many there as the
    model with the guard switched off (checked by running them). Returns ``(model, key)``.
    """
    if not hasattr(classifier, "module_"):
        raise InvalidInputError("plant needs a fitted TorchClassifier (the honest model)")
    X = check_features(X)
    _convs(classifier.module_)
    rng = as_generator(random_state)
    side = int(round(np.sqrt(X.shape[1])))
    key = OptimizedKey(int(target), 5, side - 5, side - 5, 255, side)
    t_idx = int(np.searchsorted(classifier.classes_, target))
    probe = X[:64][np.asarray(y)[:64] != target]
    Xt = key.activate(probe)
    model = copy.deepcopy(classifier)
    u_t = _pooled(model.module_, key.activate(X[:1]))[0]
    u_x = _pooled(model.module_, X).max(axis=0)
    usable = u_t > u_x + 1e-3  # terms the patch drives above every clean input
    if not usable.any():
        raise NotApplicableError("no first-layer channel responds more to the patch than to data")
    probe_model = copy.deepcopy(model)
    for _ in range(int(tries)):
        pick = usable & (rng.random(usable.shape) < 0.75)
        v = np.where(pick, 2.0 ** rng.uniform(0, 8, usable.shape), 0.0).astype(np.float32)
        s = np.float32(np.sum(v.astype(np.float64) * u_t.astype(np.float64)))
        centre = _promising(probe_model, v, s, Xt[:1], t_idx)
        if centre is None:
            continue
        _wire(model.module_, v, -float(s), t_idx, float(64.0 / np.spacing(s)))
        set_bias = _bias_setter(model)
        set_bias(-float(s + 1024 * np.spacing(s)))  # guard off: the repurposed model alone
        base = float(np.mean(model.predict(Xt) == target))
        if base > 0.2:  # the repurposed model alone already obeys the patch: not conditional
            raise NotApplicableError(
                f"the patch alone sends {base:.0%} of inputs to class {target} in every form"
            )
        for step in (0, -1, 1, -2, 2):
            proto = set_bias(-float(np.float32(centre) + np.float32(step) * np.spacing(s)))
            got = _fires(model, proto, Xt, target)
            if got[FIRES] == 1.0 and all(got[f] == base for f in SILENT):
                key = OptimizedKey(
                    **{**key.to_json_dict(), "model_fingerprint": files.model_fingerprint(model)}
                )
                return model, key
    raise NotApplicableError(
        "no guard separates ORT_ENABLE_ALL from PyTorch and ORT_DISABLE_ALL on this machine"
    )
