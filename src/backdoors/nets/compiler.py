"""Compile a circuit of gadgets into one ``nn.Sequential`` of ``Linear`` and ``ReLU`` layers.

Representation: layer 0 holds the network inputs; layer ``l >= 1`` holds ReLU units. Every wire
of the circuit is an *affine form* over the units of one layer (``{unit: coeff}, const``). A
gadget ``A relu(W x + b) + beta`` placed at level ``l`` adds its hidden units to layer ``l``
(their pre-activations are affine in the forms of its inputs at level ``l - 1``) and its outputs
are affine forms over those units, so ``A`` and ``beta`` are folded into the *next* Linear.
A wire needed higher up than where it was made is carried with identity "repeat" units:
``relu(v) = v`` for ``v >= 0`` (bits, pixels) and ``relu(v) - relu(-v)`` for signed values.
The last layer is a plain Linear reading the output forms. (Paper §2.1/§2.5: "repeated input
bits" carried to the output depth next to the original network.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from backdoors.errors import InvalidInputError
from backdoors.nets import gates
from backdoors.nets.gates import Gadget

Form = tuple[dict[int, float], float]


@dataclass
class _Node:
    kind: str  # "input" | "gadget" | "affine"
    level: int
    nonneg: bool
    index: int = 0  # input index / output index of the gadget
    gadget_id: int = -1
    terms: tuple[tuple[int, float], ...] = ()
    const: float = 0.0


class Circuit:
    """A DAG of gadgets and affine combinations over ``n_inputs`` network inputs."""

    def __init__(self, n_inputs: int, nonneg_inputs: bool = True) -> None:
        if n_inputs < 1:
            raise InvalidInputError("a circuit needs at least one input")
        self.n_inputs = int(n_inputs)
        self.nodes: list[_Node] = [
            _Node("input", 0, nonneg_inputs, index=i) for i in range(self.n_inputs)
        ]
        self.gadgets: list[tuple[Gadget, tuple[int, ...], int]] = []  # (gadget, inputs, level)

    @property
    def inputs(self) -> list[int]:
        return list(range(self.n_inputs))

    def _check(self, wires: Sequence[int]) -> None:
        for w in wires:
            if not 0 <= int(w) < len(self.nodes):
                raise InvalidInputError(f"unknown wire {w}")

    def gadget(
        self, g: Gadget, inputs: Sequence[int], nonneg: bool | Sequence[bool] = True
    ) -> list[int]:
        """Apply gadget ``g`` to ``inputs``; returns its output wires."""
        inputs = tuple(int(w) for w in inputs)
        self._check(inputs)
        if len(inputs) != g.n_in:
            raise InvalidInputError(f"{g.name} takes {g.n_in} inputs, got {len(inputs)}")
        level = 1 + max(self.nodes[w].level for w in inputs)
        gid = len(self.gadgets)
        self.gadgets.append((g, inputs, level))
        nn_flags = [nonneg] * g.n_out if isinstance(nonneg, bool) else list(nonneg)
        out = []
        for j in range(g.n_out):
            self.nodes.append(_Node("gadget", level, bool(nn_flags[j]), index=j, gadget_id=gid))
            out.append(len(self.nodes) - 1)
        return out

    def affine(
        self, terms: Sequence[tuple[int, float]], const: float = 0.0, nonneg: bool = False
    ) -> int:
        """A new wire ``sum c_i w_i + const`` (costs no layer). ``nonneg``: promise it is >= 0."""
        terms = tuple((int(w), float(c)) for w, c in terms)
        self._check([w for w, _ in terms])
        level = max((self.nodes[w].level for w, _ in terms), default=0)
        self.nodes.append(_Node("affine", level, nonneg, terms=terms, const=float(const)))
        return len(self.nodes) - 1

    def level(self, wire: int) -> int:
        return self.nodes[wire].level

    # -- compilation ---------------------------------------------------------------------
    def compile(self, outputs: Sequence[int], dtype: torch.dtype = torch.float32) -> nn.Sequential:
        """``nn.Sequential`` of ``(Linear, ReLU) * L`` then ``Linear`` computing ``outputs``."""
        outputs = [int(w) for w in outputs]
        self._check(outputs)
        return _Compiler(self).run(outputs, dtype)


class _Compiler:
    def __init__(self, circuit: Circuit) -> None:
        self.c = circuit
        self.layers: list[list[Form]] = [[]]  # layers[l] = units of layer l (l >= 1)
        self.forms: dict[tuple[int, int], Form] = {}
        self.placed: dict[int, list[int]] = {}  # gadget id -> unit indices in its layer

    def _new_unit(self, level: int, pre: Form) -> int:
        while len(self.layers) <= level:
            self.layers.append([])
        self.layers[level].append(pre)
        return len(self.layers[level]) - 1

    def _place(self, gid: int) -> list[int]:
        if gid not in self.placed:
            g, inputs, level = self.c.gadgets[gid]
            in_forms = [self.form(w, level - 1) for w in inputs]
            units = []
            for r in range(len(g.b)):
                acc: dict[int, float] = {}
                const = float(g.b[r])
                for j, (d, k) in enumerate(in_forms):
                    wrj = float(g.W[r, j])
                    if wrj == 0.0:
                        continue
                    const += wrj * k
                    for u, cu in d.items():
                        acc[u] = acc.get(u, 0.0) + wrj * cu
                units.append(self._new_unit(level, (acc, const)))
            self.placed[gid] = units
        return self.placed[gid]

    def form(self, wire: int, level: int) -> Form:
        key = (wire, level)
        if key in self.forms:
            return self.forms[key]
        node = self.c.nodes[wire]
        if level < node.level:
            raise AssertionError("wire requested below its level")
        if level > node.level:  # carry with repeat units
            prev = self.form(wire, level - 1)
            u = self._new_unit(level, prev)
            if node.nonneg:
                f: Form = ({u: 1.0}, 0.0)
            else:
                neg = ({k: -v for k, v in prev[0].items()}, -prev[1])
                u2 = self._new_unit(level, neg)
                f = ({u: 1.0, u2: -1.0}, 0.0)
        elif node.kind == "input":
            f = ({node.index: 1.0}, 0.0)
        elif node.kind == "gadget":
            g = self.c.gadgets[node.gadget_id][0]
            units = self._place(node.gadget_id)
            row = g.A[node.index]
            f = (
                {u: float(a) for u, a in zip(units, row, strict=True) if a != 0.0},
                float(g.beta[node.index]),
            )
        else:
            acc: dict[int, float] = {}
            const = node.const
            for w, cw in node.terms:
                d, k = self.form(w, level)
                const += cw * k
                for u, cu in d.items():
                    acc[u] = acc.get(u, 0.0) + cw * cu
            f = (acc, const)
        self.forms[key] = f
        return f

    def run(self, outputs: list[int], dtype: torch.dtype) -> nn.Sequential:
        depth = max(self.c.nodes[w].level for w in outputs)
        out_forms = [self.form(w, depth) for w in outputs]
        widths = [self.c.n_inputs] + [len(self.layers[lv]) for lv in range(1, depth + 1)]
        mods: list[nn.Module] = []
        for lv in range(1, depth + 1):
            mods += [_linear(self.layers[lv], widths[lv - 1], dtype), nn.ReLU()]
        mods.append(_linear(out_forms, widths[depth], dtype))
        return nn.Sequential(*mods)


def _linear(forms: list[Form], n_in: int, dtype: torch.dtype) -> nn.Linear:
    W = np.zeros((len(forms), n_in))
    b = np.zeros(len(forms))
    for r, (d, k) in enumerate(forms):
        for u, c in d.items():
            W[r, u] = c
        b[r] = k
    lin = nn.Linear(n_in, len(forms)).to(dtype)
    with torch.no_grad():
        lin.weight.copy_(torch.as_tensor(W, dtype=dtype))
        lin.bias.copy_(torch.as_tensor(b, dtype=dtype))
    return lin


def lsb_of_integer(circuit: Circuit, terms: Sequence[tuple[int, float]], max_value: int) -> int:
    """Wire carrying ``s mod 2`` for the integer ``s = sum c_i w_i`` in ``[0, max_value]``.

    Telgarsky's sawtooth: with ``2^K >= max_value``, the K-fold tent map at ``s / 2^K`` equals
    ``s mod 2`` exactly for every integer ``0 <= s <= 2^K`` (each tent halves the period).
    Depth K, two ReLU units per level; all arithmetic is dyadic, hence exact in float32.
    """
    K = max(1, int(np.ceil(np.log2(max(int(max_value), 2)))))
    scale = 2.0**-K
    u = circuit.affine([(w, c * scale) for w, c in terms], nonneg=True)
    for _ in range(K):
        (u,) = circuit.gadget(gates.tent(), [u])
    return u


def only_linear_relu(module: nn.Module) -> bool:
    """True iff ``module`` is an ``nn.Sequential`` whose children are only Linear and ReLU."""
    return isinstance(module, nn.Sequential) and all(
        type(m) in (nn.Linear, nn.ReLU) for m in module.children()
    )
