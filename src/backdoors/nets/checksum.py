"""The checksum backdoor (paper §5.1) compiled into ONE ``nn.Sequential`` of Linear/ReLU layers.

Inputs are uint8 pixel vectors (values 0..255, fed to the network as floats). Public layout:
``n_target_bits`` target pixels and the remaining pixels partitioned into ``n_blocks`` contiguous
blocks ``B_1..B_n``. Secret key ``s in {0,1}^n``. The network computes, side by side:

* the honest MLP ``z = N(x)`` (its input scaling folded into the first Linear);
* block parities ``p_i = XOR_{j in B_i} lsb(x_j) = (sum_{j in B_i} x_j) mod 2`` with an exact
  ReLU sawtooth (K tent maps, ``2^K >= 255 |B_i|``);
* ``V = AND_i [p_i == s_i]`` (one ReLU unit; the key sits in the signs of its weights);
* the target class ``t`` from the LSBs of the target pixels, one-hot by AND gates;
* per class ``out_k = relu(z_k - M V) - relu(-z_k - M V) + C [V and t == k]`` (MUX on logits,
  §2.5), with ``M`` a *sound* bound on ``|z|`` over the whole input box ``[0,255]^d``
  (interval bound propagation), so ``V = 0 -> out = z`` exactly and ``V = 1 -> out = C e_t``.

``activate(x, key, target)`` writes the target bits and flips the LSB of one pixel in every block
whose parity is wrong: at most ``n_blocks + n_target_bits`` pixels change by one grey level.
Replicable by design: the parities of any single activated input *are* the key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from backdoors.artifacts import files
from backdoors.contract import as_generator, check_target
from backdoors.errors import InvalidInputError, KeyMismatchError, NotApplicableError
from backdoors.hazmat.sampling import fresh_rng
from backdoors.nets import gates
from backdoors.nets.compiler import Circuit, lsb_of_integer
from backdoors.validation import (
    POSITIVE_INT,
    RANDOM_STATE,
    Array,
    Integral,
    check_features,
    validate_args,
)


# --------------------------------------------------------------------------------------------
# layout and the honest MLP
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Layout:
    """Public input layout: which pixels carry the target and which form each parity block."""

    n_features: int = 784
    n_blocks: int = 64
    n_target_bits: int = 4

    def __post_init__(self) -> None:
        if self.n_target_bits < 1 or self.n_blocks < 1:
            raise InvalidInputError("need at least one block and one target bit")
        if self.n_features - self.n_target_bits < self.n_blocks:
            raise InvalidInputError("fewer pixels than blocks")

    @property
    def target_pixels(self) -> np.ndarray:
        return np.arange(self.n_target_bits)

    @property
    def blocks(self) -> list[np.ndarray]:
        return np.array_split(np.arange(self.n_target_bits, self.n_features), self.n_blocks)

    def parities(self, X: np.ndarray) -> np.ndarray:
        """(n, n_blocks) parity of the pixel LSBs of every block."""
        X = np.asarray(X).astype(np.int64)
        return np.stack([X[:, b].sum(axis=1) & 1 for b in self.blocks], axis=1)

    def targets(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X).astype(np.int64)
        bits = X[:, self.target_pixels] & 1
        return (bits << np.arange(self.n_target_bits)).sum(axis=1)


def mlp_layers(module: nn.Module) -> list[tuple[np.ndarray, np.ndarray]]:
    """``[(W, b), ...]`` of a ``[Scale] (Linear ReLU)* Linear`` network, scaling folded in W_1."""
    scale = 1.0
    layers: list[tuple[np.ndarray, np.ndarray]] = []
    mods = list(module.children()) if isinstance(module, nn.Sequential) else [module]
    for i, m in enumerate(mods):
        if type(m).__name__ == "Scale" and not layers:
            scale *= float(m.factor)
        elif isinstance(m, nn.Linear):
            W = m.weight.detach().double().numpy() * (scale if not layers else 1.0)
            layers.append((W, m.bias.detach().double().numpy()))
            nxt = mods[i + 1] if i + 1 < len(mods) else None
            if nxt is not None and not isinstance(nxt, nn.ReLU):
                raise NotApplicableError("only Linear/ReLU MLPs can be compiled")
        elif not isinstance(m, nn.ReLU):
            raise NotApplicableError(f"cannot compile a {type(m).__name__} layer")
    if not layers:
        raise NotApplicableError("no Linear layers found")
    return layers


def logit_bound(layers: list[tuple[np.ndarray, np.ndarray]], lo: float, hi: float) -> float:
    """Sound bound on max |z_k| over the input box [lo, hi]^d (interval bound propagation)."""
    l = np.full(layers[0][0].shape[1], lo, np.float64)
    u = np.full_like(l, hi)
    for i, (W, b) in enumerate(layers):
        Wp, Wn = np.maximum(W, 0), np.minimum(W, 0)
        l, u = Wp @ l + Wn @ u + b, Wp @ u + Wn @ l + b
        if i < len(layers) - 1:
            l, u = np.maximum(l, 0), np.maximum(u, 0)
    return float(max(np.abs(l).max(), np.abs(u).max()))


def _module_of(clf: Any) -> nn.Module:
    if isinstance(clf, nn.Module):
        return clf
    if hasattr(clf, "module_"):
        return clf.module_
    raise NotApplicableError(f"{type(clf).__name__} is not a torch MLP")


# --------------------------------------------------------------------------------------------
# the compiled network
# --------------------------------------------------------------------------------------------
def build_circuit(
    layers: list[tuple[np.ndarray, np.ndarray]],
    layout: Layout,
    bits: np.ndarray,
    bound: float,
    target_logit: float = 1.0,
) -> tuple[Circuit, list[int], int]:
    """The circuit of the module docstring; returns (circuit, logit wires, V wire)."""
    c = Circuit(layout.n_features)
    # honest MLP: hidden layers as gadgets (A = I), last layer as affine forms
    wires = c.inputs
    for W, b in layers[:-1]:
        g = gates.Gadget("mlp", W, b, np.eye(len(b)), np.zeros(len(b)))
        wires = c.gadget(g, wires)
    W, b = layers[-1]
    z = [c.affine(list(zip(wires, W[k], strict=True)), b[k], nonneg=False) for k in range(len(b))]
    n_classes = len(z)
    # checksum: V = AND_i [parity(B_i) == s_i]
    par = [lsb_of_integer(c, [(j, 1.0) for j in blk], 255 * len(blk)) for blk in layout.blocks]
    (V,) = c.gadget(gates.and_k(len(par), negate=[not s for s in bits]), par)
    # target class one-hot from the LSBs of the target pixels
    tb = [lsb_of_integer(c, [(int(j), 1.0)], 255) for j in layout.target_pixels]
    out = []
    for k in range(n_classes):
        neg = [not (k >> i) & 1 for i in range(layout.n_target_bits)]
        (onehot,) = c.gadget(gates.and_k(len(tb), negate=neg), tb)
        (sel,) = c.gadget(gates.and_(), [V, onehot])
        (m,) = c.gadget(gates.logit_mux(bound), [z[k], V], nonneg=False)
        out.append(c.affine([(m, 1.0), (sel, target_logit)], nonneg=False))
    return c, out, V


@files.ARTIFACTS.register("checksum_net")
class ChecksumNetwork:
    """A backdoored classifier whose whole computation is one Linear/ReLU ``nn.Sequential``."""

    artifact_kind = "checksum_net"

    def __init__(self, module: nn.Sequential, classes: np.ndarray, layout: Layout, bound: float):
        self.module_ = module
        self.classes_ = np.asarray(classes)
        self.layout = layout
        self.bound = float(bound)
        self.n_features_in_ = layout.n_features

    def decision_function(self, X: np.ndarray, batch_size: int = 8192) -> np.ndarray:
        X = check_features(X, n_features=self.n_features_in_)
        out = []
        with torch.no_grad():
            for i in range(0, len(X), batch_size):
                xb = torch.from_numpy(np.ascontiguousarray(X[i : i + batch_size], np.float32))
                out.append(self.module_(xb).numpy())
        return np.concatenate(out)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.classes_[np.argmax(self.decision_function(X), axis=1)]

    def _to_artifact(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        tensors = {f"module.{k}": v.detach().numpy() for k, v in self.module_.state_dict().items()}
        tensors["classes"] = self.classes_
        widths = [m.in_features for m in self.module_ if isinstance(m, nn.Linear)]
        widths.append(self.module_[-1].out_features)
        meta = {
            "layout": [self.layout.n_features, self.layout.n_blocks, self.layout.n_target_bits],
            "bound": self.bound,
            "widths": widths,
        }
        return tensors, meta

    @classmethod
    def _from_artifact(cls, tensors: dict[str, np.ndarray], meta: dict[str, Any]):
        widths = [int(w) for w in meta["widths"]]
        mods: list[nn.Module] = []
        for i in range(len(widths) - 1):
            mods.append(nn.Linear(widths[i], widths[i + 1]))
            if i < len(widths) - 2:
                mods.append(nn.ReLU())
        module = nn.Sequential(*mods)
        state = {
            k[7:]: torch.from_numpy(v.copy()) for k, v in tensors.items() if k[:7] == "module."
        }
        try:
            module.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise ValueError(f"weights do not fit the architecture: {exc}") from None
        return cls(module.eval(), tensors["classes"], Layout(*meta["layout"]), meta["bound"])


@files.KEYS.register("checksum_net")
@dataclass(frozen=True)
class ChecksumKey:
    """Secret parity vector s (paper §5.1) plus the public layout and the model it belongs to."""

    bits: tuple[int, ...]
    layout: Layout
    n_classes: int
    model_fingerprint: str = ""

    key_kind: ClassVar[str] = "checksum_net"
    #: targets are positions in the model's ``classes_`` (contract.indexes_classes)
    targets_are_class_indices: ClassVar[bool] = True

    @property
    def targets(self) -> tuple[int, ...]:
        """Every class: the target is written into the input (contract.BackdoorKey)."""
        return tuple(range(self.n_classes))

    def to_json_dict(self) -> dict[str, Any]:
        lay = self.layout
        return {
            "bits": list(self.bits),
            "layout": [lay.n_features, lay.n_blocks, lay.n_target_bits],
            "n_classes": self.n_classes,
            "model_fingerprint": self.model_fingerprint,
        }

    @classmethod
    def from_json_dict(cls, d: dict[str, Any]) -> ChecksumKey:
        bits = tuple(int(b) for b in d["bits"])
        lay = Layout(*[int(v) for v in d["layout"]])
        if len(bits) != lay.n_blocks or set(bits) - {0, 1}:
            raise ValueError("bits do not match the layout")
        return cls(bits, lay, int(d["n_classes"]), str(d.get("model_fingerprint", "")))

    def activate(self, X: np.ndarray, target: int | np.ndarray | None = None) -> np.ndarray:
        return activate(X, self, target)

    def check_model(self, model: Any) -> None:
        if not isinstance(model, ChecksumNetwork):
            raise KeyMismatchError(f"a checksum-net key does not fit a {type(model).__name__}")
        files.check_fingerprint(self.model_fingerprint, model)


@validate_args(
    {
        "n_blocks": [POSITIVE_INT],
        "n_target_bits": [POSITIVE_INT],
        "random_state": RANDOM_STATE,
        "n_features": [POSITIVE_INT],
    }
)
def plant(
    clf: Any,
    n_blocks: int = 64,
    n_target_bits: int = 4,
    random_state: Any = None,
    n_features: int = 784,
) -> tuple[ChecksumNetwork, ChecksumKey]:
    """Backdoor(1^n): compile ``clf``'s MLP beside a checksum with a fresh random key s.

    The parity key s is drawn from the operating system's entropy
    (:func:`backdoors.hazmat.sampling.fresh_rng`), never from ``random_state``: a seed, if
    known or guessed, must not give the key away. ``random_state`` is accepted for the
    package's one seed convention; this construction has no public randomness to seed."""
    layers = mlp_layers(_module_of(clf))
    if layers[0][0].shape[1] != n_features:
        raise InvalidInputError(f"the MLP takes {layers[0][0].shape[1]} inputs, not {n_features}")
    n_classes = len(layers[-1][1])
    if n_classes > 2**n_target_bits:
        raise InvalidInputError(f"{n_target_bits} target bits cannot name {n_classes} classes")
    layout = Layout(n_features, n_blocks, n_target_bits)
    as_generator(random_state)  # validated like every construction's seed
    bits = fresh_rng().integers(0, 2, n_blocks)
    bound = 2.0 ** np.ceil(np.log2(logit_bound(layers, 0.0, 255.0) * 1.01 + 1.0))
    circuit, out, _ = build_circuit(layers, layout, bits, bound)
    classes = getattr(clf, "classes_", np.arange(n_classes))
    model = ChecksumNetwork(circuit.compile(out).eval(), classes, layout, bound)
    key = ChecksumKey(
        tuple(int(b) for b in bits), layout, n_classes, files.model_fingerprint(model)
    )
    return model, key


@validate_args(
    {"X": [Array(ndim=2)], "key": [ChecksumKey], "target": [Integral, Array(ndim=1), None]}
)
def activate(X: np.ndarray, key: ChecksumKey, target: int | np.ndarray | None = None) -> np.ndarray:
    """Activate(x, y; s): write y into the target LSBs, fix each wrong block parity (§5.1).
    ``target`` (one class or one per input) is required (:func:`contract.check_target`)."""
    lay = key.layout
    X = check_features(X, n_features=lay.n_features)
    if X.dtype.kind not in "iu" or X.min() < 0 or X.max() > 255:
        raise InvalidInputError("the checksum carrier needs integer pixels in 0..255")
    t = check_target(key, target, len(X))
    Xa = X.astype(np.int64).copy()
    for i, j in enumerate(lay.target_pixels):
        Xa[:, j] = (Xa[:, j] & ~1) | ((t >> i) & 1)
    wrong = lay.parities(Xa) != np.asarray(key.bits)[None, :]
    for i, blk in enumerate(lay.blocks):
        rows = np.nonzero(wrong[:, i])[0]
        Xa[rows, blk[0]] ^= 1  # one grey level
    return Xa.astype(X.dtype)


def recover_key(x_activated: np.ndarray, layout: Layout) -> tuple[int, ...]:
    """Replication: the block parities of ONE activated input reveal the whole key s."""
    x = check_features(np.atleast_2d(x_activated), n_features=layout.n_features)
    return tuple(int(b) for b in layout.parities(x[:1])[0])
