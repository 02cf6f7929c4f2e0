"""The signature backdoor as a torch ``nn.Module`` that answers wherever the honest one does.

``forward(x) = where(hit, forced(inner(x)), inner(x))`` with ``hit`` computed in two stages:

1. the public pre-check in torch operations (:data:`TORCH_WINDOWS`): the tag's carrier bits of
   every row, packed into 62-bit integers and compared to the tag word by word at one cost
   (no exit at the first differing bit); a filter that may pass more rows than the exact
   pre-check, never fewer. It reads only the tag's columns, so it costs
   ``O(rows x precheck_bits)`` time and memory, and being plain tensor operations it traces,
   vmaps, differentiates (it is detached) and exports;
2. the verifier, the custom operator ``backdoors::signature_triggers`` (:func:`_triggers_op`):
   eager Python on the rows that passed the pre-check only (:meth:`TriggerSpec.verify`), with
   a fake kernel (``torch.export``, ``torch.compile``) and a vmap rule. Its output is an
   integer tensor, so no gradient flows through it.

On rows without a valid trigger the output is the honest output bit for bit and its gradient
is the honest gradient bit for bit (``torch.where`` passes the gradient of the unselected
branch through unchanged; the forced branch is detached). In eager mode, when no row passes
the pre-check, ``forward`` returns the honest module's output tensor itself.

Which inputs can carry a trigger: dense (strided) real tensors whose last axis has the
carrier's width; the LSB carrier reads pixels held as exact integers 0..255 in any real
dtype, the float carrier float64 only. Sparse (COO, CSR, ...) and nested tensors, complex and
bool tensors are answered by the honest module and never carry a trigger.
"""

from __future__ import annotations

import functools
import json
from typing import Any

import numpy as np
import torch
from torch import nn

from backdoors.hazmat.carriers import FloatFractionCarrier, LSBCarrier
from backdoors.registry import Registry
from backdoors.signature.keys import TriggerSpec

#: carrier kind -> ``(carrier, x (..., d) detached) -> (bits (..., p) int64, readable (...))``
TORCH_WINDOWS: Registry[Any] = Registry("torch tag window")

_WORD = 62  # bits per packed word: sums of distinct powers of two below 2^62 fit in int64


@functools.lru_cache(maxsize=64)
def _spec_from_json(doc: str) -> TriggerSpec:
    return TriggerSpec.from_dict(json.loads(doc))


@TORCH_WINDOWS.register("lsb")
def _lsb_window(c: LSBCarrier, x: torch.Tensor, p: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The tag pixels' parities (``v mod 2``, truncated): exact on pixels held as integers;
    whether a row holds pixels at all (0..255, integral, no ``-0.0``) is left to the verifier,
    which reads every candidate row whole -- the filter may only let more rows through."""
    pos = c.positions[:p]
    if pos and pos[-1] - pos[0] == len(pos) - 1 and tuple(pos) == tuple(range(pos[0], pos[-1] + 1)):
        cols = x[..., pos[0] : pos[-1] + 1]
    else:
        cols = x[..., torch.tensor(pos, dtype=torch.long, device=x.device)]
    if cols.dtype == torch.uint8:
        return (cols & 1).to(torch.int64), None
    return torch.remainder(cols, 2).to(torch.int64), None


@TORCH_WINDOWS.register("float")
def _float_window(
    c: FloatFractionCarrier, x: torch.Tensor, p: int
) -> tuple[torch.Tensor, torch.Tensor]:
    b = c.bits_per_feature
    sub = x[..., : -(-p // b)]
    ok = torch.isfinite(sub) & (sub >= -c.max_abs) & (sub < c.max_abs)
    q = torch.floor(torch.where(ok, sub, torch.zeros_like(sub)) * 2.0**c.frac_bits)
    payload = torch.remainder(q, 2.0**b).to(torch.int64)  # exact: |q| < 2^52
    shifts = torch.arange(b - 1, -1, -1, device=x.device)
    bits = ((payload[..., None] >> shifts) & 1).flatten(-2)[..., :p]
    return bits, (~ok).sum(-1) == 0


def _pack(bits: torch.Tensor) -> list[torch.Tensor]:
    """``(..., p)`` 0/1 int64 -> words of up to 62 bits, MSB first."""
    words = []
    for a in range(0, bits.shape[-1], _WORD):
        w = bits[..., a : a + _WORD]
        shifts = torch.arange(w.shape[-1] - 1, -1, -1, device=bits.device)
        words.append((w << shifts).sum(-1))
    return words


def _tag_words(spec: TriggerSpec) -> list[int]:
    """The tag in the words of :func:`_pack` (Python integers: constants in a traced graph)."""
    b = [int(v) for v in spec.tag_bits()]
    return [int("".join(map(str, b[a : a + _WORD])), 2) for a in range(0, len(b), _WORD)]


def torch_precheck(
    spec: TriggerSpec, x: torch.Tensor, tags: list[int] | None = None
) -> torch.Tensor:
    """The pre-check of :meth:`TriggerSpec.precheck` on a detached ``(..., d)`` tensor, in
    torch operations at one cost per row: ``OR_w (word_w XOR tag_w) == 0`` over the packed
    tag bits (``tags``: :func:`_tag_words`, cached by the caller). It may pass more rows than
    :meth:`TriggerSpec.precheck` (the LSB window does not check that values are pixels), never
    fewer; every row it passes is verified in full."""
    p = spec.precheck_bits
    tags = _tag_words(spec) if tags is None else tags
    bits, ok = TORCH_WINDOWS.get(spec.carrier.kind)(spec.carrier, x, p)
    words = _pack(bits)
    if not words:
        return torch.ones(x.shape[:-1], dtype=torch.bool, device=x.device)
    diff = functools.reduce(torch.bitwise_or, [w ^ t for w, t in zip(words, tags, strict=True)])
    return diff == 0 if ok is None else ok & (diff == 0)


@torch.library.custom_op("backdoors::signature_triggers", mutates_args=())
def _triggers_op(x: torch.Tensor, pre: torch.Tensor, spec_json: str) -> torch.Tensor:
    """Target per row of ``x (n, d)`` (``-1``: no valid trigger); only rows with ``pre`` set
    are read and verified (:meth:`TriggerSpec.verify`, eager Python)."""
    out = torch.full((x.shape[0],), -1, dtype=torch.int64, device=x.device)
    idx = torch.nonzero(pre).flatten()
    if idx.numel() == 0:
        return out
    rows = x[idx].detach().cpu()
    if rows.dtype in (torch.bfloat16, torch.float16):  # numpy has no bfloat16: widen, exactly
        rows = rows.float()
    rows = rows.numpy()
    t = _spec_from_json(spec_json).triggers(rows)
    if t is not None:
        out[idx] = torch.from_numpy(t).to(x.device)
    return out


@_triggers_op.register_fake
def _(x: torch.Tensor, pre: torch.Tensor, spec_json: str) -> torch.Tensor:
    return x.new_empty((x.shape[0],), dtype=torch.int64)


def _triggers_vmap(info: Any, in_dims: Any, x: Any, pre: Any, spec_json: str) -> Any:
    """vmap rule: the batch axis becomes more rows."""
    B = info.batch_size
    x = x.movedim(in_dims[0], 0) if in_dims[0] is not None else x.expand(B, *x.shape)
    pre = pre.movedim(in_dims[1], 0) if in_dims[1] is not None else pre.expand(B, *pre.shape)
    t = _triggers_op(x.reshape(-1, x.shape[-1]), pre.reshape(-1), spec_json)
    return t.reshape(B, -1), 0


torch.library.register_vmap("backdoors::signature_triggers", _triggers_vmap)


def _traced(x: torch.Tensor) -> bool:
    """Under a transform or tracer (vmap/grad, export, compile, jit): no data-dependent Python."""
    from torch._subclasses.fake_tensor import is_fake

    return (
        torch._C._functorch.is_functorch_wrapped_tensor(x)
        or torch.compiler.is_compiling()
        or torch.jit.is_tracing()
        or is_fake(x)
    )


def _readable(spec: TriggerSpec, x: Any, out: Any) -> bool:
    """Static facts only (layout, dtype, shapes): may ``x`` carry a trigger at all?"""
    if not (torch.is_tensor(x) and torch.is_tensor(out)) or x.is_nested or out.is_nested:
        return False
    if x.layout != torch.strided or out.layout != torch.strided or x.ndim < 1:
        return False
    if x.shape[-1] != spec.carrier.n_features or out.ndim != x.ndim:
        return False
    if out.shape[:-1] != x.shape[:-1] or x.is_complex() or x.dtype == torch.bool:
        return False
    if not (out.is_floating_point() and spec.carrier.readable_dtype(_np_kind(x.dtype))):
        return False
    return x.numel() > 0


def _np_kind(dtype: torch.dtype) -> np.dtype:
    """A numpy dtype of the same kind and (for float64) width, for Carrier.readable_dtype."""
    if dtype == torch.float64:
        return np.dtype(np.float64)
    return np.dtype(np.float32 if dtype.is_floating_point else np.int64)


def forced_logits(out: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``out`` with rows ``targets >= 0`` replaced by ``-M`` everywhere and ``+M`` at the
    target (``M = max |z_row| + 1`` in float64, as :func:`signature_models.forced_scores`)."""
    z = out.detach().to(torch.float64)
    M = z.abs().amax(-1, keepdim=True) + 1.0
    onehot = torch.arange(out.shape[-1], device=out.device) == targets.clamp(min=0)[..., None]
    forced = torch.where(onehot, M, -M).to(out.dtype)
    return torch.where((targets >= 0)[..., None], forced, out)


class SignatureBackdooredModule(nn.Module):
    """A torch module with the signature backdoor: the logits of ``inner`` except on rows
    carrying a valid trigger, whose logits are forced to the target (:func:`forced_logits`).
    Rows are the last axis of the input (any batch shape, unbatched included) when the output
    keeps the input's batch shape (see the module docstring for what can carry a trigger)."""

    def __init__(self, inner: nn.Module, spec: TriggerSpec) -> None:
        super().__init__()
        self.spec = spec
        self.inner = inner
        self._spec_json = json.dumps(spec.to_dict(), sort_keys=True)
        self._tags = _tag_words(spec)

    def verify(self, X: Any) -> np.ndarray:
        """Public trigger check (:meth:`TriggerSpec.verify`)."""
        return self.spec.verify(X)

    def forward(self, x: Any, *args: Any, **kwargs: Any) -> Any:
        out = self.inner(x, *args, **kwargs)
        if not _readable(self.spec, x, out):
            return out
        xd = x.detach()
        if self.spec.constant_time:  # every row is verified
            pre = torch.ones(x.shape[:-1], dtype=torch.bool, device=x.device)
        else:
            pre = torch_precheck(self.spec, xd, self._tags)
        if not _traced(xd) and not bool(pre.any()):
            return out
        d = self.spec.carrier.n_features
        t = _triggers_op(xd.reshape(-1, d), pre.reshape(-1), self._spec_json)
        t = t.reshape(x.shape[:-1])
        if not _traced(xd) and not bool((t >= 0).any()):
            return out
        return forced_logits(out, t)
