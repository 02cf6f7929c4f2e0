"""Exact Boolean gates as one-hidden-layer ReLU blocks (paper §2.5, "universality").

Every gadget computes ``y = A @ relu(W @ x + b) + beta``: a ``Linear -> ReLU -> Linear`` block.
On inputs in {0,1} (or the stated integer / bounded ranges) the result is *exact* in floating
point: all weights are small integers or dyadic fractions, so no rounding occurs.

=============  ======================================  ==========================================
gadget         hidden units                            output
=============  ======================================  ==========================================
AND(a,b)       relu(a+b-1)                             h
OR(a,b)        relu(a+b), relu(a+b-1)                  h0 - h1
NOT(a)         relu(1-a)                               h
XOR(a,b)       relu(a+b), relu(a+b-1)                  h0 - 2 h1
MUX(s,a,b)     relu(a-s), relu(b+s-1)                  h0 + h1        (s=0 -> a, s=1 -> b)
AND_k(lits)    relu(sum(lits) - (k-1)), lit = x|1-x    h
PARITY_k(x)    relu(S - j), j = 0..k, S = sum(x)       h0 + sum_j 2(-1)^j h_j
TENT(u)        relu(u), relu(u - 1/2)                  2 h0 - 4 h1    (u in [0,1])
STEP_t(n)      relu(n-t+1), relu(n-t)                  h0 - h1        (n integer: 1[n >= t])
REPEAT(a)      relu(a)                                 h              (a >= 0)
REPEAT+-(z)    relu(z), relu(-z)                       h0 - h1        (any real z)
LOGIT_MUX_M    relu(z - M v), relu(-z - M v)           h0 - h1        (v=0 -> z; v=1 -> 0 if |z|<=M)
=============  ======================================  ==========================================
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from backdoors.errors import InvalidInputError


@dataclass(frozen=True)
class Gadget:
    """``y = A relu(W x + b) + beta`` with ``W: (h, k)``, ``A: (m, h)`` (float64 specs)."""

    name: str
    W: np.ndarray
    b: np.ndarray
    A: np.ndarray
    beta: np.ndarray

    @property
    def n_in(self) -> int:
        return int(self.W.shape[1])

    @property
    def n_out(self) -> int:
        return int(self.A.shape[0])

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Reference evaluation in float64 on rows of ``x`` (shape ``(n, k)``)."""
        h = np.maximum(np.asarray(x, np.float64) @ self.W.T + self.b, 0.0)
        return h @ self.A.T + self.beta


def _g(name: str, W, b, A, beta=None) -> Gadget:
    W = np.atleast_2d(np.asarray(W, np.float64))
    A = np.atleast_2d(np.asarray(A, np.float64))
    beta = np.zeros(A.shape[0]) if beta is None else np.asarray(beta, np.float64).ravel()
    return Gadget(name, W, np.asarray(b, np.float64).ravel(), A, beta)


def and_() -> Gadget:
    return _g("and", [[1, 1]], [-1], [[1]])


def or_() -> Gadget:
    return _g("or", [[1, 1], [1, 1]], [0, -1], [[1, -1]])


def not_() -> Gadget:
    return _g("not", [[-1]], [1], [[1]])


def xor() -> Gadget:
    return _g("xor", [[1, 1], [1, 1]], [0, -1], [[1, -2]])


def mux() -> Gadget:
    """MUX(s, a, b) = a if s == 0 else b (inputs ordered s, a, b)."""
    return _g("mux", [[-1, 1, 0], [1, 0, 1]], [0, -1], [[1, 1]])


def and_k(k: int, negate: Sequence[bool] | None = None) -> Gadget:
    """AND of k literals; literal i is ``1 - x_i`` when ``negate[i]`` (one ReLU unit)."""
    if k < 1:
        raise InvalidInputError("and_k needs k >= 1")
    neg = np.zeros(k, bool) if negate is None else np.asarray(negate, bool)
    if neg.shape != (k,):
        raise InvalidInputError(f"negate must have {k} entries")
    w = np.where(neg, -1.0, 1.0)
    return _g(f"and{k}", [w], [neg.sum() - (k - 1)], [[1]])


def parity(k: int) -> Gadget:
    """XOR of k bits: triangle wave of S = sum(x) with k + 1 ReLU units."""
    if k < 1:
        raise InvalidInputError("parity needs k >= 1")
    W = np.ones((k + 1, k))
    b = -np.arange(k + 1, dtype=np.float64)
    a = np.array([1.0] + [2.0 * (-1) ** j for j in range(1, k + 1)])
    return _g(f"parity{k}", W, b, [a])


def tent() -> Gadget:
    """Tent map t(u) = 2 min(u, 1-u) on [0,1]; K-fold composition at s/2^K gives s mod 2."""
    return _g("tent", [[1], [1]], [0, -0.5], [[2, -4]])


def step_int(t: float) -> Gadget:
    """1[n >= t] for integer n (exact on integers)."""
    return _g(f"step{t}", [[1], [1]], [-(t - 1), -t], [[1, -1]])


def repeat() -> Gadget:
    return _g("repeat", [[1]], [0], [[1]])


def repeat_signed() -> Gadget:
    return _g("repeat+-", [[1], [-1]], [0, 0], [[1, -1]])


def logit_mux(bound: float) -> Gadget:
    """MUX on a real score z with |z| <= M (paper §2.5): inputs (z, v); v=0 -> z, v=1 -> 0."""
    M = float(bound)
    if not M > 0:
        raise InvalidInputError("logit_mux needs a positive bound M")
    return _g("logit_mux", [[1, -M], [-1, -M]], [0, 0], [[1, -1]])


def as_sequential(g: Gadget, dtype: torch.dtype = torch.float32) -> nn.Sequential:
    """The gadget as ``nn.Sequential(Linear, ReLU, Linear)``."""
    l1, l2 = nn.Linear(g.n_in, len(g.b)), nn.Linear(len(g.b), g.n_out)
    with torch.no_grad():
        l1.weight.copy_(torch.as_tensor(g.W))
        l1.bias.copy_(torch.as_tensor(g.b))
        l2.weight.copy_(torch.as_tensor(g.A))
        l2.bias.copy_(torch.as_tensor(g.beta))
    return nn.Sequential(l1, nn.ReLU(), l2).to(dtype)


#: the gadgets with a fixed arity, for exhaustive tests and documentation
BOOLEAN_GATES = {
    "and": (and_, lambda x: x[:, 0] & x[:, 1]),
    "or": (or_, lambda x: x[:, 0] | x[:, 1]),
    "not": (not_, lambda x: 1 - x[:, 0]),
    "xor": (xor, lambda x: x[:, 0] ^ x[:, 1]),
    "mux": (mux, lambda x: np.where(x[:, 0] == 0, x[:, 1], x[:, 2])),
}
