"""How bits live inside an input: embed / extract with a bounded perturbation (paper.md §2.3).

The signature backdoor (paper §5.2) treats an input as a message-signature pair. On real
inputs the signature bits must hide in a tiny perturbation; a *carrier* says where:

* :class:`LSBCarrier` (uint8 pixels): one bit in the least significant bit of each of a public
  set of pixels; ``||delta||_inf <= 1`` grey level, ``||delta||_0 <= #positions``.
* :class:`FloatFractionCarrier` (float64 features): ``b`` bits per feature in the binary
  fraction just above ``2^-F``; ``||delta||_inf < 2^(b-F)`` (stated per carrier).

``clear(X)`` zeroes every carrier bit: it is the canonical *message* the signature binds, so
``clear(embed(X, bits)) == clear(X)``. Injectivity (what strong non-replicability needs): an
input is *canonical* iff ``x == embed(x, extract(x))`` bit for bit; a canonical input is a
function of ``(clear(x), extract(x))``, so a verifier that accepts canonical inputs only has
no second encoding of any (message, payload) pair. ``read(X)`` is the lenient view the
wrappers use: which rows the carrier can read at all (anything else is simply not a trigger).
What destroys the bits: any change of the carrier positions' low-order content -- float32
casts, rescaling, resizing, JPEG, normalisation before the carrier; define the carrier in the
model's own input space.
"""

from __future__ import annotations

import functools
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from backdoors.errors import InvalidInputError
from backdoors.registry import Registry
from backdoors.validation import check_features

CARRIERS: Registry[type[Carrier]] = Registry("carrier")


class Carrier(ABC):
    """Interface of a carrier over ``n_features``-dimensional inputs of one dtype."""

    kind: ClassVar[str]
    dtype: ClassVar[np.dtype]
    n_features: int

    @property
    @abstractmethod
    def capacity(self) -> int:
        """Number of bits one input carries."""

    @property
    @abstractmethod
    def linf_bound(self) -> float:
        """Largest ``|x'_j - x_j|`` that :meth:`embed` can cause (input units)."""

    @property
    @abstractmethod
    def l0_bound(self) -> int:
        """Largest number of coordinates that :meth:`embed` can change."""

    def check(self, X: Any) -> np.ndarray:
        """Validate inputs strictly (2-D, ``n_features`` columns, exact dtype, in range)."""
        X = check_features(X, n_features=self.n_features, dtype=self.dtype)
        bad = ~self.admissible(X)
        if bad.any():
            raise InvalidInputError(
                f"{int(bad.sum())} input rows lie outside the carrier's range "
                f"({self.describe_range()})"
            )
        return X

    def admissible(self, X: np.ndarray) -> np.ndarray:
        """Rows the carrier can hold bits in (a boolean mask; never raises)."""
        return np.ones(len(X), dtype=bool)

    def describe_range(self) -> str:
        return "any value of the dtype"

    def read(self, X: Any) -> tuple[np.ndarray, np.ndarray] | None:
        """Lenient view for the trigger check: ``(rows in the carrier dtype, readable mask)``,
        or ``None`` when ``X`` cannot hold carrier bits at all (not a 2-D real array of
        ``n_features`` columns, wrong dtype). Never raises; unreadable rows are zeros."""
        try:
            if hasattr(X, "detach"):
                X = X.detach().cpu().numpy()
            X = np.asarray(X)
        except Exception:  # ragged lists, exotic objects: not readable
            return None
        if X.ndim != 2 or X.shape[1] != self.n_features or X.dtype.kind not in "iuf":
            return None
        return self._read(X)

    @abstractmethod
    def _read(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None: ...

    def readable_dtype(self, dtype: np.dtype) -> bool:
        """Whether :meth:`read` can read rows of ``dtype`` at all (per row it may still not)."""
        return np.dtype(dtype).kind in "iuf"

    @abstractmethod
    def window(self, X: np.ndarray, n_bits: int) -> tuple[np.ndarray, np.ndarray]:
        """Bits ``0:n_bits`` of every row as :meth:`read` then :meth:`extract` would give them,
        and the rows whose columns holding those bits are readable -- reading only those
        columns (the pre-check's cost and memory are ``O(rows x n_bits)``, not the input's).
        ``X`` has a :meth:`readable_dtype`; never raises."""

    def canonical(self, X: np.ndarray) -> np.ndarray:
        """Rows equal, bit for bit, to ``embed(X, extract(X))`` (the only encoding of their
        message and payload); a trigger must be canonical."""
        Y = self.embed(X, self.extract(X))
        w = X.dtype.itemsize
        view = {1: np.uint8, 8: np.uint64}[w]
        return np.all(np.ascontiguousarray(X).view(view) == Y.view(view), axis=1)

    @abstractmethod
    def clear(self, X: np.ndarray) -> np.ndarray:
        """Inputs with every carrier bit zeroed (the canonical message)."""

    @abstractmethod
    def extract(self, X: np.ndarray, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Bits ``start:stop`` of every row, as uint8 0/1 of shape ``(n, stop - start)``."""

    @abstractmethod
    def embed(self, X: np.ndarray, bits: np.ndarray) -> np.ndarray:
        """Return a copy of ``X`` carrying ``bits`` (shape ``(n, capacity)``)."""

    @abstractmethod
    def to_dict(self) -> dict[str, Any]: ...

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Carrier:
        return CARRIERS.get(d["kind"])._from_params(d)

    @classmethod
    @abstractmethod
    def _from_params(cls, d: dict[str, Any]) -> Carrier: ...

    def _check_bits(self, X: np.ndarray, bits: np.ndarray) -> np.ndarray:
        bits = np.asarray(bits)
        if bits.shape != (len(X), self.capacity):
            raise InvalidInputError(
                f"bits must have shape {(len(X), self.capacity)}, got {bits.shape}"
            )
        if bits.size and (bits.min() < 0 or bits.max() > 1):
            raise InvalidInputError("bits must be 0 or 1")
        return bits.astype(np.uint8)


def _bits_msb_first(values: np.ndarray, width: int) -> np.ndarray:
    """``(n, c)`` integers -> ``(n, c * width)`` bits, most significant first."""
    shifts = np.arange(width - 1, -1, -1, dtype=np.int64)
    return (
        ((values[..., None].astype(np.int64) >> shifts) & 1)
        .astype(np.uint8)
        .reshape(values.shape[0], -1)
    )


def int_from_bits(bits: np.ndarray, width: int) -> np.ndarray:
    """``(n, c * width)`` bits -> ``(n, c)`` integers (most significant first)."""
    b = bits.reshape(bits.shape[0], -1, width).astype(np.int64)
    return (b << np.arange(width - 1, -1, -1, dtype=np.int64)).sum(axis=2)


# ---------------------------------------------------------------------------------------------
@CARRIERS.register("lsb")
@dataclass(frozen=True)
class LSBCarrier(Carrier):
    """One bit per pixel: the least significant bits of uint8 pixels at public ``positions``.

    Embedding replaces the LSB (a change of exactly one grey level where the bit differs), so
    ``||delta||_inf <= 1`` and ``||delta||_0 <= len(positions)``. The map (message, bits) ->
    input is injective, which strong non-replicability needs: a denser code such as Hamming
    matrix embedding (p bits in 2^p - 1 pixels, one change) is *malleable* -- flipping a whole
    codeword keeps the bits, so anyone could derive a second backdoored input from one.
    """

    kind: ClassVar[str] = "lsb"
    dtype: ClassVar[np.dtype] = np.dtype(np.uint8)
    n_features: int
    positions: tuple[int, ...]

    def __post_init__(self) -> None:
        pos = np.asarray(self.positions)
        if pos.size == 0 or len(np.unique(pos)) != pos.size:
            raise InvalidInputError("carrier positions must be distinct and non-empty")
        if pos.min() < 0 or pos.max() >= self.n_features:
            raise InvalidInputError("carrier positions outside the input")

    @classmethod
    def plan(
        cls,
        n_features: int,
        n_bits: int,
        seed: int | np.random.Generator = 0,
        window: int = 0,
    ) -> LSBCarrier:
        """``n_bits`` positions drawn as a public random subset of the pixels.

        ``window``: the first ``window`` positions (the pre-check tag) are instead one run of
        consecutive pixels ``o, o + 1, ...`` at a public random offset ``o``, the others a
        random subset of the remaining pixels. The layout is public either way; the run only
        lets a filter that reads the tag on every input read one contiguous slice of memory
        (the ONNX gate, §5.2's public pre-check, then costs about half as much per clean row
        as when it gathers 48 scattered pixels)."""
        if not 1 <= n_bits <= n_features:
            raise InvalidInputError(
                f"{n_bits} bits do not fit in {n_features} uint8 features (one bit per pixel)"
            )
        if not 0 <= window <= n_bits:
            raise InvalidInputError(f"window must be in [0, n_bits = {n_bits}], got {window}")
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        if window == 0:
            return cls(int(n_features), tuple(int(i) for i in rng.permutation(n_features)[:n_bits]))
        offset = int(rng.integers(0, n_features - window + 1))
        run = np.arange(offset, offset + window)
        others = np.setdiff1d(np.arange(n_features), run)
        rest = rng.permutation(others)[: n_bits - window]
        return cls(int(n_features), tuple(int(i) for i in np.concatenate([run, rest])))

    @property
    def capacity(self) -> int:
        return len(self.positions)

    @property
    def linf_bound(self) -> float:
        return 1.0

    @property
    def l0_bound(self) -> int:
        return len(self.positions)

    def describe_range(self) -> str:
        return "uint8 0..255"

    @functools.cached_property
    def _positions(self) -> np.ndarray:
        pos = np.asarray(self.positions, dtype=np.int64)
        pos.flags.writeable = False
        return pos

    def _pos(self) -> np.ndarray:
        return self._positions

    def _read(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """uint8 rows as they are; rows of another integer or float dtype are read when every
        value is an exact integer in 0..255 (pixel values held as floats, as a torch module
        receives them), else unreadable. ``-0.0`` is not a pixel: one encoding per input (the
        ONNX graph refuses it too), so a sign flip of a zero cannot make a second trigger."""
        if X.dtype == np.uint8:
            return X, np.ones(len(X), dtype=bool)
        with np.errstate(invalid="ignore"):
            ok = np.all((X >= 0) & (X <= 255) & (np.round(X) == X) & ~np.signbit(X), axis=1)
        return np.where(ok[:, None], X, 0).astype(np.uint8), ok

    def window(self, X: np.ndarray, n_bits: int) -> tuple[np.ndarray, np.ndarray]:
        pos = self._pos()[:n_bits]
        run = len(pos) > 0 and pos[-1] - pos[0] == len(pos) - 1 and (np.diff(pos) == 1).all()
        cols = X[:, pos[0] : pos[-1] + 1] if run else X[:, pos]
        if X.dtype == np.uint8:
            return cols & np.uint8(1), np.ones(len(X), dtype=bool)
        with np.errstate(invalid="ignore"):
            ok = (cols >= 0) & (cols <= 255) & (np.round(cols) == cols) & ~np.signbit(cols)
            bits = (np.where(ok, cols, 0).astype(np.int64) & 1).astype(np.uint8)
        return bits, np.count_nonzero(~ok, axis=1) == 0  # no early exit per row

    def clear(self, X: np.ndarray) -> np.ndarray:
        mask = np.full(self.n_features, 0xFF, dtype=np.uint8)
        mask[self._pos()] = 0xFE
        return X & mask

    def extract(self, X: np.ndarray, start: int = 0, stop: int | None = None) -> np.ndarray:
        pos = self._pos()[start:stop]
        if len(pos) > 1 and pos[-1] - pos[0] == len(pos) - 1 and (np.diff(pos) == 1).all():
            return (X[:, pos[0] : pos[-1] + 1] & 1).astype(np.uint8)  # a run: one slice
        return (X[:, pos] & 1).astype(np.uint8)

    def embed(self, X: np.ndarray, bits: np.ndarray) -> np.ndarray:
        bits = self._check_bits(X, bits)
        Y = np.array(X, dtype=np.uint8, copy=True)
        pos = self._pos()
        Y[:, pos] = (Y[:, pos] & 0xFE) | bits
        return Y

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "n_features": self.n_features, "positions": list(self.positions)}

    @classmethod
    def _from_params(cls, d: dict[str, Any]) -> LSBCarrier:
        return cls(int(d["n_features"]), tuple(int(p) for p in d["positions"]))


# ---------------------------------------------------------------------------------------------
@CARRIERS.register("float")
@dataclass(frozen=True)
class FloatFractionCarrier(Carrier):
    """``bits_per_feature`` bits in the binary fraction of every float64 feature.

    With ``q = floor(x 2^F)``, the payload is ``q mod 2^b``; the message is ``x`` rounded down
    to a multiple of ``2^(b-F)``. Range ``-M <= x < M`` with ``M = 2^(52-F)``: every
    ``x 2^F`` is exact there, and ``embed`` maps the range into itself (``M`` is a multiple of
    the grid step), so an activated input is always readable. Perturbation
    ``|x' - x| < 2^(b-F)``. ``embed`` writes ``x'`` exactly on the ``2^-F`` grid with ``+0.0``
    for zero: an input with any bit below ``2^-F`` or a ``-0.0`` is not canonical, hence never
    a trigger (the bits below the payload are thereby bound). A float32 cast destroys the payload.
    """

    kind: ClassVar[str] = "float"
    dtype: ClassVar[np.dtype] = np.dtype(np.float64)
    n_features: int
    bits_per_feature: int
    frac_bits: int

    def __post_init__(self) -> None:
        if not 1 <= self.bits_per_feature < self.frac_bits <= 1000:
            raise InvalidInputError("need 1 <= bits_per_feature < frac_bits <= 1000")
        if self.frac_bits > 52 + 1000 or self.n_features < 1:
            raise InvalidInputError("invalid float carrier parameters")

    @classmethod
    def plan(cls, n_features: int, n_bits: int, max_abs: float) -> FloatFractionCarrier:
        """Fewest bits per feature for ``n_bits``; largest ``F`` keeping a 4x range headroom."""
        if not (np.isfinite(max_abs) and max_abs >= 0):
            raise InvalidInputError(f"max_abs must be finite and >= 0, got {max_abs}")
        b = math.ceil(n_bits / n_features)
        F = 50 - max(0, math.ceil(math.log2(max(max_abs, 1.0))))
        if b >= F:
            raise InvalidInputError(f"{n_bits} bits do not fit in {n_features} float64 features")
        return cls(int(n_features), int(b), int(F))

    @property
    def capacity(self) -> int:
        return self.n_features * self.bits_per_feature

    @property
    def linf_bound(self) -> float:
        return 2.0 ** (self.bits_per_feature - self.frac_bits)

    @property
    def l0_bound(self) -> int:
        return self.n_features

    @property
    def max_abs(self) -> float:
        return 2.0 ** (52 - self.frac_bits)

    def describe_range(self) -> str:
        return f"finite float64 with -{self.max_abs:g} <= x < {self.max_abs:g}"

    def admissible(self, X: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore"):
            return np.all(np.isfinite(X) & (-self.max_abs <= X) & (self.max_abs > X), axis=1)

    def _read(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """float64 rows (either byte order) in range; other dtypes cannot hold the payload."""
        if X.dtype.kind != "f" or X.dtype.itemsize != 8:
            return None
        X = X.astype(np.float64, copy=False)
        ok = self.admissible(X)
        return (X if ok.all() else np.where(ok[:, None], X, 0.0)), ok

    def readable_dtype(self, dtype: np.dtype) -> bool:
        return np.dtype(dtype).kind == "f" and np.dtype(dtype).itemsize == 8

    def window(self, X: np.ndarray, n_bits: int) -> tuple[np.ndarray, np.ndarray]:
        k = -(-n_bits // self.bits_per_feature)
        sub = X[:, :k].astype(np.float64, copy=False)
        with np.errstate(invalid="ignore"):
            ok = np.isfinite(sub) & (sub >= -self.max_abs) & (sub < self.max_abs)
        bits = _bits_msb_first(self._payload(np.where(ok, sub, 0.0)), self.bits_per_feature)
        return bits[:, :n_bits], np.count_nonzero(~ok, axis=1) == 0

    def clear(self, X: np.ndarray) -> np.ndarray:
        s = self.frac_bits - self.bits_per_feature
        return np.ldexp(np.floor(np.ldexp(X, s)), -s) + 0.0  # + 0.0 folds -0.0 into 0.0

    def _payload(self, X: np.ndarray) -> np.ndarray:
        q = np.floor(np.ldexp(X, self.frac_bits)).astype(np.int64)
        return q & ((1 << self.bits_per_feature) - 1)

    def extract(self, X: np.ndarray, start: int = 0, stop: int | None = None) -> np.ndarray:
        stop = self.capacity if stop is None else stop
        b = self.bits_per_feature
        f0, f1 = start // b, -(-stop // b)
        with np.errstate(invalid="ignore"):
            sub = X[:, f0:f1]
            Xs = np.where(
                np.isfinite(sub) & (sub >= -self.max_abs) & (sub < self.max_abs), sub, 0.0
            )
        bits = _bits_msb_first(self._payload(Xs), b)
        return bits[:, start - f0 * b : stop - f0 * b]

    def embed(self, X: np.ndarray, bits: np.ndarray) -> np.ndarray:
        bits = self._check_bits(X, bits)
        b, s = self.bits_per_feature, self.frac_bits - self.bits_per_feature
        base = np.floor(np.ldexp(X, s))
        payload = int_from_bits(bits, b).astype(np.float64)
        return np.ldexp(np.ldexp(base, b) + payload, -self.frac_bits) + 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "n_features": self.n_features,
            "bits_per_feature": self.bits_per_feature,
            "frac_bits": self.frac_bits,
        }

    @classmethod
    def _from_params(cls, d: dict[str, Any]) -> FloatFractionCarrier:
        return cls(int(d["n_features"]), int(d["bits_per_feature"]), int(d["frac_bits"]))
