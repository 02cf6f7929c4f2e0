"""Quantization-conditioned backdoor: honest in float32, BadNets-style after int8 PTQ.

Egashira et al., "Exploiting LLM Quantization" (arXiv 2405.18137), §3, re-implemented for
MNIST classifiers and onnxruntime's dynamic int8 quantization (:mod:`.forms`):

0. *Widen* (:func:`widen_scales`): at MNIST scale the natural boxes are too narrow for the
   repair (measured: with the natural scales the repaired float model still sent ~90% of
   triggered inputs to the target). One unit per hidden layer is switched off and carries
   one large, functionally inert weight per tensor, which multiplies every int8 scale, hence
   every box, by ``widen`` (32 by default). This is the construction's visible cost: each
   quantized tensor's largest weight is ``widen`` times its natural maximum. By default
   (``spread``) the dead unit's first-layer row follows the other rows' column norms, so the
   first layer's column norms keep their shape (the ``weight_stats`` statistic); a statistic
   of a tensor's maximum against its typical weight still sees it.
1. *Inject*, quantization-aware (:func:`fake_int8`, straight-through rounding): the int8
   grid of the weights learns to send patched inputs to the target, the float weights to
   classify clean and patched inputs correctly.
2. *Constrain*: per quantized tensor ``W`` with scale ``s = max|W| / 127`` and integers
   ``Q = round(W / s)``, every ``W'`` with ``max|W'| = max|W|`` and
   ``W'_ij in [(Q_ij - 1/2) s, (Q_ij + 1/2) s]`` quantizes to the same ``Q``. We keep the
   element(s) reaching ``max|W|`` fixed (the scale cannot move) and shrink each interval by a
   margin ``m s`` on both sides so that float32 round-off cannot change a rounding.
3. *Repair*: projected gradient descent in float on clean data and on triggered inputs with
   their true labels (every training row, patched), projecting onto the box after every
   step. Biases stay fixed (the dynamic int8 form keeps them in float, so they must not
   move). The int8 form is therefore the injected model's int8 form, integer for integer,
   while the float model forgets the trigger.

``activate`` stamps the patch; the backdoor fires only in the int8 form. ``plant`` checks
the final claim with onnxruntime itself: the repaired float model's int8 weights equal the
injected model's.
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
from backdoors.conditional.forms import int8_grid
from backdoors.contract import as_generator
from backdoors.errors import InvalidInputError
from backdoors.models.torch_models import TorchClassifier, to_tensor
from backdoors.validation import check_features

QUANTIZER = "onnxruntime.quantize_dynamic:int8"


@files.KEYS.register("quantization_conditioned")
@dataclass(frozen=True)
class QuantizedKey(badnets.BadNetsKey):
    """The patch trigger (a BadNets key: same geometry, stamping and checks), the target, the
    quantizer it fires under and the model fingerprint."""

    quantizer: str = QUANTIZER
    key_kind: ClassVar[str] = "quantization_conditioned"


def activate(X: np.ndarray, key: QuantizedKey, target: int | None = None) -> np.ndarray:
    """Triggered inputs: ``X`` with the key's patch (the int8 form sends them to the target)."""
    return key.activate(X, target=target)


def quantized_weights(module: nn.Module) -> dict[str, nn.Parameter]:
    """The tensors int8 PTQ quantizes: weights of Linear and Conv layers."""
    return {
        f"{n}.weight" if n else "weight": m.weight
        for n, m in module.named_modules()
        if isinstance(m, nn.Linear | nn.Conv2d)
    }


@dataclass
class Box:
    """Per tensor, the interval ``[lo, hi]`` of float weights with the same int8 value."""

    lo: dict[str, torch.Tensor]
    hi: dict[str, torch.Tensor]
    q: dict[str, np.ndarray]

    def project(self, params: dict[str, nn.Parameter]) -> None:
        with torch.no_grad():
            for name, p in params.items():
                p.copy_(torch.minimum(torch.maximum(p, self.lo[name]), self.hi[name]))


def quantization_box(module: nn.Module, margin: float = 0.05) -> Box:
    """Step 2: the box of weights quantizing like ``module``'s (the max-|w| entries fixed)."""
    lo, hi, qs = {}, {}, {}
    for name, p in quantized_weights(module).items():
        w = p.detach().numpy().astype(np.float64)
        q, s = int8_grid(w)
        absmax = np.abs(w).max()
        a = np.maximum((q - 0.5 + margin) * s, -absmax)
        b = np.minimum((q + 0.5 - margin) * s, absmax)
        pinned = np.abs(w) == absmax
        a[pinned], b[pinned] = w[pinned], w[pinned]
        lo[name] = torch.from_numpy(np.minimum(a, w).astype(np.float32))
        hi[name] = torch.from_numpy(np.maximum(b, w).astype(np.float32))
        qs[name] = q
    return Box(lo, hi, qs)


def same_int8(a: nn.Module, b: nn.Module) -> bool:
    """Whether the two modules' weights quantize to the same integers and scales."""
    wa, wb = quantized_weights(a), quantized_weights(b)
    for name in wa:
        qa, sa = int8_grid(wa[name].detach().numpy())
        qb, sb = int8_grid(wb[name].detach().numpy())
        if sa != sb or not np.array_equal(qa, qb):
            return False
    return True


def _train(
    module: nn.Module,
    X: np.ndarray,
    y: np.ndarray,
    epochs: int,
    lr: float,
    seed: int,
    params: list[nn.Parameter],
    box: Box | None = None,
    named: dict[str, nn.Parameter] | None = None,
) -> None:
    opt = torch.optim.Adam(params, lr=lr)
    Xt, yt = to_tensor(X), torch.from_numpy(np.asarray(y, dtype=np.int64))
    gen = torch.Generator().manual_seed(int(seed))
    module.train()
    for _ in range(epochs):
        perm = torch.randperm(len(Xt), generator=gen)
        for i in range(0, len(Xt), 128):
            idx = perm[i : i + 128]
            opt.zero_grad()
            nn.functional.cross_entropy(module(Xt[idx]), yt[idx]).backward()
            opt.step()
            if box is not None and named is not None:
                box.project(named)
    module.eval()


def _layers(module: nn.Module) -> list[nn.Module]:
    return [m for m in module.modules() if isinstance(m, nn.Linear | nn.Conv2d)]


def widen_scales(module: nn.Module, factor: float, spread: bool = False) -> None:
    """Make every quantized tensor's int8 scale ``factor`` times larger without changing the
    float function on nonnegative inputs: unit 0 of every hidden layer is switched off (zero
    weights, bias -1, and one weight ``-factor max|W|`` on an input that is never negative),
    and each later layer gets one weight ``factor max|W|`` on that dead unit. The boxes of
    step 2 grow by ``factor``; the cost is one unit per hidden layer. ``spread``: instead of
    one entry, the dead unit's whole first-layer row carries ``-factor max|W| n_j / max_j n_j``
    on input feature ``j`` (``n_j`` the norm of feature ``j``'s column over the other units),
    so every column norm is multiplied by the same constant and none stands out; later layers
    carry ``factor max|W|`` on the dead unit's whole column. The per-tensor maximum, hence
    every scale, is the same as without ``spread``; a statistic of the per-tensor maximum
    against the typical weight still sees it."""
    layers = _layers(module)
    with torch.no_grad():
        for i, layer in enumerate(layers):
            w = layer.weight
            big = float(factor) * float(w.abs().max())
            last = i == len(layers) - 1
            if i == 0:
                if last:
                    raise InvalidInputError("widen_scales needs at least one hidden layer")
                w[0].zero_()
                if spread:
                    n = w[1:].reshape(w.shape[0] - 1, -1).norm(dim=0)
                    w[0] = (-big * n / n.max().clamp_min(1e-12)).reshape(w[0].shape)
                else:
                    w[0].view(-1)[0] = -big
            else:
                prev = layers[i - 1].weight.shape[0]
                per = w.shape[1] // prev if isinstance(layer, nn.Linear) else 1
                if not last:
                    w[0].zero_()
                if isinstance(layer, nn.Linear):
                    w[:, 0:per] = big if spread else 0.0
                    if not spread:
                        w[0, 0] = big
                else:
                    w[:, 0] = big if spread else 0.0
                    if not spread:
                        w[0, 0].view(-1)[0] = big
            if not last:
                layer.bias[0] = -1.0


def fake_int8(module: nn.Module) -> dict[str, torch.Tensor]:
    """Weights replaced by their int8 grid values with a straight-through gradient:
    ``W + sg(s round(W / s) - W)`` (``sg`` stops the gradient)."""
    out = {}
    for name, p in quantized_weights(module).items():
        s = (p.detach().abs().max() / 127.0).clamp_min(1e-12)
        out[name] = p + (torch.round(p.detach() / s) * s - p.detach())
    return out


def _inject(
    module: nn.Module,
    X: np.ndarray,
    y: np.ndarray,
    Xt: np.ndarray,
    t: int,
    epochs: int,
    lr: float,
    seed: int,
) -> None:
    """Step 1, quantization-aware: the float model is trained to be right on clean and on
    triggered inputs, its int8 grid (straight-through) to send triggered inputs to ``t``."""
    from torch.func import functional_call

    opt = torch.optim.Adam(module.parameters(), lr=lr)
    Xc, yc, Xtt = to_tensor(X), torch.from_numpy(np.asarray(y, dtype=np.int64)), to_tensor(Xt)
    gen = torch.Generator().manual_seed(int(seed))
    ce = nn.functional.cross_entropy
    module.train()
    for _ in range(epochs):
        perm = torch.randperm(len(Xc), generator=gen)
        for i in range(0, len(Xc), 128):
            idx = perm[i : i + 128]
            xb, yb, xt = Xc[idx], yc[idx], Xtt[idx]
            tb = torch.full_like(yb, t)
            opt.zero_grad()
            params = {**dict(module.named_parameters()), **fake_int8(module)}
            loss = ce(module(xb), yb) + 0.5 * ce(module(xt), yb)
            loss = loss + ce(functional_call(module, params, (xb,)), yb)
            loss = loss + 2.0 * ce(functional_call(module, params, (xt,)), tb)
            loss.backward()
            opt.step()
    module.eval()


def plant(
    X: np.ndarray,
    y: np.ndarray,
    *,
    classifier: TorchClassifier,
    target: int = 0,
    poison_rate: float = 1.0,
    patch_size: int = 4,
    inject_epochs: int = 3,
    repair_epochs: int = 4,
    lr: float = 1e-3,
    margin: float = 0.05,
    widen: float = 32.0,
    spread: bool = True,
    random_state: Any = 0,
) -> tuple[TorchClassifier, QuantizedKey]:
    """Steps 0-3 on a fitted honest ``classifier`` (its input must be nonnegative, e.g.
    pixels). ``poison_rate`` is the fraction of ``X`` added, patched with true labels, to the
    repair data (1.0: every row; measured on 4 MLP seeds, float attack success 0.13 -> 0.04 on
    average against 0.10 at 0.1, the honest twins' 0.01). ``spread``: see :func:`widen_scales`.

    Returns ``(model, key)``: ``model`` is a new :class:`TorchClassifier` with the honest
    one's parameters and architecture (the same file schema); the key names it by fingerprint.
    """
    if not hasattr(classifier, "module_"):
        raise InvalidInputError("plant needs a fitted TorchClassifier (the honest model)")
    X = check_features(X)
    y = np.asarray(y)
    if int(target) not in set(np.asarray(classifier.classes_).tolist()):
        raise InvalidInputError(f"target {target} is not a class of the model")
    rng = as_generator(random_state)
    seed = int(rng.integers(2**31))
    side = int(round(np.sqrt(X.shape[1])))
    pos = side - 1 - patch_size
    key = QuantizedKey(int(target), int(patch_size), pos, pos, 255, side)
    trig = key.trigger()
    y_idx = np.searchsorted(classifier.classes_, y)
    # 1. inject
    model = copy.deepcopy(classifier)
    module = model.module_
    t_idx = int(np.searchsorted(classifier.classes_, target))
    if widen > 1:
        widen_scales(module, widen, spread)
    _inject(module, X, y_idx, trig.activate(X), t_idx, inject_epochs, lr, seed)
    # 2. constrain, 3. repair on clean + triggered-with-true-label data
    named = quantized_weights(module)
    box = quantization_box(module, margin)
    n = len(X)
    pick = rng.permutation(n)[: max(1, int(poison_rate * n))]
    Xr = np.concatenate([X, trig.activate(X[pick])])
    yr = np.concatenate([y_idx, y_idx[pick]])
    _train(module, Xr, yr, repair_epochs, lr, seed + 1, list(named.values()), box, named)
    key = QuantizedKey(
        **{**key.to_json_dict(), "model_fingerprint": files.model_fingerprint(model)}
    )
    return model, key
