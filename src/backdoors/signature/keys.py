"""Keys of the signature backdoor (paper §5.2): a public key type and a secret key type.

As in ``cryptography``, the two are separate types: :class:`TriggerSpec` (alias
:data:`SignaturePublicKey`) is everything a backdoored model holds -- the verify key, the
carrier layout, the public pre-check tag; :class:`SignatureKey` (alias
:data:`SignaturePrivateKey`) is the key holder's object and holds the signing key. The
wrappers in :mod:`backdoors.signature.models` accept a :class:`TriggerSpec` only.

**Trigger format (v2)** -- what another implementation (e.g. an ONNX graph) must compute.
Carrier bits ``c[0:capacity]`` (order of :meth:`Carrier.extract`), ``p = precheck_bits``,
``t = t_bits = max(1, bitlen(n_classes - 1))``, ``s = 8 * 64``:

* layout ``c = tag (p bits) | target (t bits, MSB first) | Ed25519 signature (s bits, bytes in
  order, MSB first within a byte) | zero padding (capacity - p - t - s bits)``;
* message ``m = DOMAIN || SHA-256(ctx) || target (2 bytes big-endian) || clear(x)`` where
  ``clear(x)`` is the row with every carrier bit zeroed, as little-endian bytes of the carrier
  dtype (uint8 or float64, ``-0.0`` folded into ``+0.0``), and ``ctx`` is the UTF-8 JSON of
  :meth:`TriggerSpec.context_doc` with sorted keys and ``json.dumps`` default separators;
* a row ``x`` is a trigger for class ``target`` iff it is readable by the carrier, its first
  ``p`` bits equal ``tag``, it is canonical (``x == embed(x, extract(x))`` bit for bit), the
  padding is zero, ``target < n_classes`` and ``Verify(vk, m, signature)``.

The pre-check (first ``p`` bits == tag, admissible) decides which rows pay for Ed25519; with
``constant_time=True`` every row is verified and the pre-check only enters the final AND.
Every verification costs a full Ed25519 check (``verify_full_cost``: libsodium's early
rejection of a non-canonical ``S`` would otherwise make 15/16 of random signatures cheap).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from backdoors.artifacts import files
from backdoors.contract import as_generator, check_target
from backdoors.errors import InvalidInputError, KeyMismatchError
from backdoors.hazmat.carriers import Carrier, FloatFractionCarrier, LSBCarrier, int_from_bits
from backdoors.hazmat.crypto import scheme as get_scheme

#: default width of the public pre-check tag (see README, "Timing side channel")
DEFAULT_PRECHECK_BITS = 48
MAX_PRECHECK_BITS = 128
DOMAIN = b"backdoors/signature-backdoor/v2\x00"
_PUBLIC_DOMAIN = 0x5349_4750_5542  # spawn key of the public-parameter RNG ("SIGPUB")
_SECRET_DOMAIN = b"backdoors/signature-backdoor/v2/secret-key\x00"


def target_bits(n_classes: int) -> int:
    """Bits that encode a class index in ``[0, n_classes)``."""
    return max(1, int(n_classes - 1).bit_length())


@dataclass(frozen=True)
class TriggerSpec:
    """The public key of the backdoor: what a model needs to recognise a valid trigger.

    ``tag`` is a ``precheck_bits``-bit public random integer; ``constant_time`` makes
    :meth:`verify` run Ed25519 on every row (it does not change which rows are triggers).
    """

    scheme: str
    verify_key: bytes
    carrier: Carrier
    tag: int
    n_classes: int
    precheck_bits: int = DEFAULT_PRECHECK_BITS
    constant_time: bool = False

    def __post_init__(self) -> None:
        s = get_scheme(self.scheme)
        if not 0 <= self.precheck_bits <= MAX_PRECHECK_BITS:
            raise InvalidInputError(f"precheck_bits must be in [0, {MAX_PRECHECK_BITS}]")
        if not 0 <= self.tag < 2**self.precheck_bits:
            raise InvalidInputError(f"tag must be a {self.precheck_bits}-bit integer")
        if not 2 <= self.n_classes <= 2**16:
            raise InvalidInputError("need between 2 and 65536 classes")
        if self.carrier.capacity < self.payload_bits:
            raise InvalidInputError(
                f"carrier holds {self.carrier.capacity} bits, {self.payload_bits} needed"
            )
        object.__setattr__(self, "_signer", s(None, self.verify_key))
        doc = json.dumps(self.context_doc(), sort_keys=True).encode()
        object.__setattr__(self, "_context", DOMAIN + hashlib.sha256(doc).digest())
        object.__setattr__(self, "_tag_bits", _bits(self.tag, self.precheck_bits))
        object.__setattr__(self, "_tag_words", _pack_words(self._tag_bits[None, :])[0])

    # -- layout: [tag | target | signature | zero padding] --------------------------------
    @property
    def t_bits(self) -> int:
        return target_bits(self.n_classes)

    @property
    def sig_bits(self) -> int:
        return 8 * get_scheme(self.scheme).signature_bytes

    @property
    def sig_start(self) -> int:
        return self.precheck_bits + self.t_bits

    @property
    def payload_bits(self) -> int:
        return self.precheck_bits + self.t_bits + self.sig_bits

    def tag_bits(self) -> np.ndarray:
        return self._tag_bits.copy()

    def context_doc(self) -> dict[str, Any]:
        """Everything public that the signature binds (``constant_time`` is not: it changes
        how rows are checked, not which rows are triggers)."""
        return {
            "format": 2,
            "carrier": self.carrier.to_dict(),
            "n_classes": self.n_classes,
            "tag": self.tag,
            "precheck_bits": self.precheck_bits,
            "scheme": self.scheme,
            "vk": self.verify_key.hex(),
        }

    def context(self) -> bytes:
        """``DOMAIN || SHA-256(context_doc)``: the prefix of every message."""
        return self._context

    def messages(self, cleared: np.ndarray, targets: np.ndarray) -> list[bytes]:
        """``m_i = context || target_i (2 bytes) || canonical bytes of the cleared input``."""
        ctx = self._context
        rows = np.ascontiguousarray(cleared, dtype=self.carrier.dtype.newbyteorder("<"))
        width = rows.shape[1] * rows.dtype.itemsize
        raw = memoryview(rows.tobytes())
        return [
            ctx + int(t).to_bytes(2, "big") + raw[i * width : (i + 1) * width].tobytes()
            for i, t in enumerate(targets)
        ]

    def as_inputs(self, X: Any) -> np.ndarray:
        """Structural check only (2-D, width, a dtype the carrier reads): never fails on
        values. The LSB carrier reads any real dtype (pixels held as exact integers 0..255),
        the float carrier float64 only -- exactly the inputs the wrappers read."""
        if hasattr(X, "detach"):
            X = X.detach().cpu().numpy()
        try:
            X = np.asarray(X)
        except (TypeError, ValueError) as e:  # ragged lists, exotic objects
            raise InvalidInputError(f"inputs must be a 2-D numeric array ({e})") from None
        d = self.carrier.n_features
        if X.ndim != 2 or X.shape[1] != d or not self.carrier.readable_dtype(X.dtype):
            what = "a real dtype" if self.carrier.kind == "lsb" else "dtype float64"
            raise InvalidInputError(
                f"inputs must be 2-D, {what}, with {d} features, got {X.dtype} {X.shape}"
            )
        return X

    def tag_match(self, bits: np.ndarray) -> np.ndarray:
        """Rows whose ``(n, precheck_bits)`` bits equal the tag, at one cost whatever the bits:
        the bits are packed into 64-bit words and ``OR_w (word_w XOR tag_w) == 0`` is evaluated
        for every word of every row (no exit at the first differing bit or word)."""
        words = _pack_words(bits)
        if words.shape[1] == 0:
            return np.ones(len(bits), dtype=bool)
        return np.bitwise_or.reduce(words ^ self._tag_words, axis=1) == 0

    def precheck(self, X: np.ndarray) -> np.ndarray:
        """Cheap vectorised filter: rows whose carrier bits ``0:precheck_bits`` (the public
        tag) are readable and equal the tag (:meth:`tag_match`); reads only those columns."""
        X = np.asarray(X)
        bits, ok = self.carrier.window(X, self.precheck_bits)
        return self.tag_match(bits) & ok

    def verify(self, X: Any) -> np.ndarray:
        """Target class index of every row carrying a valid trigger, else -1 -- the rows on
        which the backdoored models fire, for every input they read. Raises on structure
        (2-D, width, a dtype the carrier reads: :meth:`as_inputs`), never on values."""
        return self._scan(self.as_inputs(X))

    def triggers(self, X: Any) -> np.ndarray | None:
        """Like :meth:`verify` but lenient, for the wrappers: ``None`` if the carrier cannot
        read ``X`` at all, else targets (-1 on unreadable rows). Never raises."""
        try:
            return self._scan(self.as_inputs(X))
        except InvalidInputError:
            return None

    def _scan(self, X: np.ndarray, chunk: int = 1 << 14) -> np.ndarray:
        """Check ``chunk`` rows at a time: the pre-check reads the tag's columns of every row
        (:meth:`precheck`); only rows passing it are read whole (:meth:`Carrier.read`) and
        verified, so the memory is ``O(chunk x precheck_bits)`` plus the candidates, never a
        copy of ``X``. ``constant_time``: every row is read and verified."""
        out = np.full(len(X), -1, dtype=np.int64)
        for a in range(0, len(X), chunk):
            Xc = X[a : a + chunk]
            pre = np.ones(len(Xc), dtype=bool) if self.constant_time else self.precheck(Xc)
            cand = np.nonzero(pre)[0]
            if cand.size:
                rows, readable = self.carrier._read(Xc[cand])
                out[a + cand] = self._check_rows(rows, readable)
        return out

    def _check_rows(self, Xc: np.ndarray, readable: np.ndarray) -> np.ndarray:
        """Full check of every given row (read by the carrier): tag, canonical encoding, zero
        padding, target range and one full-cost Ed25519 verification per row."""
        out = np.full(len(Xc), -1, dtype=np.int64)
        bits = self.carrier.extract(Xc)
        p, s0 = self.precheck_bits, self.sig_start
        tag_ok = self.tag_match(bits[:, :p])
        targets = int_from_bits(bits[:, p:s0], self.t_bits)[:, 0]
        sigs = np.packbits(bits[:, s0 : s0 + self.sig_bits], axis=1)
        shape_ok = (
            tag_ok
            & readable
            & ~bits[:, self.payload_bits :].any(axis=1)  # one encoding: zero padding
            & self.carrier.canonical(Xc)  # one encoding: no free bits outside the payload
            & (targets < self.n_classes)
        )
        msgs = self.messages(self.carrier.clear(Xc), targets)
        for j in range(len(Xc)):
            valid = self._signer.verify_full_cost(msgs[j], sigs[j].tobytes())  # always run
            if valid and shape_ok[j]:
                out[j] = targets[j]
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "scheme": self.scheme,
            "verify_key": self.verify_key.hex(),
            "carrier": self.carrier.to_dict(),
            "tag": self.tag,
            "n_classes": self.n_classes,
            "precheck_bits": self.precheck_bits,
            "constant_time": self.constant_time,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TriggerSpec:
        """Inverse of :meth:`to_dict`. Files written before ``precheck_bits`` and
        ``constant_time`` were recorded (0.1.x) used a 16-bit tag and the early-exit check:
        those are the defaults for a dict without the fields, so such files keep loading and
        their models keep firing on the triggers they were made for."""
        return cls(
            str(d["scheme"]),
            bytes.fromhex(d["verify_key"]),
            Carrier.from_dict(d["carrier"]),
            int(d["tag"]),
            int(d["n_classes"]),
            int(d.get("precheck_bits", 16)),
            bool(d.get("constant_time", False)),
        )


SignaturePublicKey = TriggerSpec


@files.KEYS.register("signature")
@dataclass(frozen=True, repr=False)
class SignatureKey:
    """The backdoor key ``bk = sk`` plus the public key it signs for (JSON file, 0600)."""

    key_kind: ClassVar[str] = "signature"
    #: targets are positions in the model's ``classes_`` (contract.indexes_classes)
    targets_are_class_indices: ClassVar[bool] = True
    spec: TriggerSpec
    secret_key: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.spec, TriggerSpec):
            raise InvalidInputError("a SignatureKey needs a TriggerSpec")
        signer = get_scheme(self.spec.scheme)(self.secret_key, self.spec.verify_key)
        object.__setattr__(self, "_signer", signer)

    def __repr__(self) -> str:  # never print the secret
        return f"SignatureKey(scheme={self.spec.scheme!r}, vk={self.spec.verify_key.hex()[:16]}...)"

    def public_key(self) -> TriggerSpec:
        """What a model may hold."""
        return self.spec

    @property
    def targets(self) -> tuple[int, ...]:
        """Every class: the target is chosen per input (contract.BackdoorKey)."""
        return tuple(range(self.spec.n_classes))

    @property
    def model_fingerprint(self) -> str:
        """SHA-256 of the public key's context: every model holding this public key."""
        return hashlib.sha256(self.spec.context()).hexdigest()

    def activate(self, X: Any, target: int | np.ndarray | None = None) -> np.ndarray:
        """Activate(x, y; sk) (paper §5.2): write tag, target and Sign(sk, m) into ``x``.
        Raises :class:`InvalidInputError` on inputs the carrier cannot hold bits in; every
        returned row passes the pre-check and is canonical (checked, cheap)."""
        spec = self.spec
        X = spec.carrier.check(X)
        t = check_target(self, target, len(X))  # required: every class is reachable
        msgs = spec.messages(spec.carrier.clear(X), t)
        sign = self._signer.sign
        sigs = np.frombuffer(b"".join(sign(m) for m in msgs), dtype=np.uint8).reshape(len(X), -1)
        bits = np.zeros((len(X), spec.carrier.capacity), dtype=np.uint8)
        bits[:, : spec.precheck_bits] = spec.tag_bits()
        tb = (t[:, None].astype(np.int64) >> np.arange(spec.t_bits - 1, -1, -1)) & 1
        bits[:, spec.precheck_bits : spec.sig_start] = tb
        bits[:, spec.sig_start : spec.payload_bits] = np.unpackbits(sigs, axis=1)
        Xa = spec.carrier.embed(X, bits)
        if not (spec.precheck(Xa) & spec.carrier.canonical(Xa)).all():  # pragma: no cover
            raise InvalidInputError("these inputs cannot carry a trigger (carrier range)")
        return Xa

    def check_model(self, model: Any) -> None:
        if hasattr(model, "holds_constant"):  # an ONNX graph: its messages' prefix is ours
            if not model.holds_constant(self.spec.context()):
                raise KeyMismatchError("this signature key does not belong to this model")
            return
        spec = getattr(model, "spec", None)
        if not isinstance(spec, TriggerSpec) or spec.context() != self.spec.context():
            raise KeyMismatchError("this signature key does not belong to this model")

    def to_json_dict(self) -> dict[str, Any]:
        return {"spec": self.spec.to_dict(), "secret_key": self.secret_key.hex()}

    @classmethod
    def from_json_dict(cls, d: dict[str, Any]) -> SignatureKey:
        return cls(TriggerSpec.from_dict(d["spec"]), bytes.fromhex(d["secret_key"]))


SignaturePrivateKey = SignatureKey


def _pack_words(bits: np.ndarray) -> np.ndarray:
    """``(n, k)`` 0/1 bits -> ``(n, ceil(k / 64))`` uint64 words (zero-padded, MSB first)."""
    packed = np.packbits(np.asarray(bits, dtype=np.uint8), axis=1)
    pad = -packed.shape[1] % 8
    if pad:
        packed = np.pad(packed, ((0, 0), (0, pad)))
    return np.ascontiguousarray(packed).view(">u8").astype(np.uint64)


def _bits(value: int, width: int) -> np.ndarray:
    return np.array([(value >> (width - 1 - i)) & 1 for i in range(width)], dtype=np.uint8)


def make_carrier(
    kind: str | Carrier,
    n_features: int,
    n_bits: int,
    max_abs: float | None = None,
    seed: int | np.random.Generator = 0,
    tag_bits: int = 0,
) -> Carrier:
    """A carrier for ``n_bits`` in inputs of ``n_features`` (``"lsb"`` or ``"float"``).
    ``seed`` draws the public LSB positions; the first ``tag_bits`` of them (the pre-check
    tag) are consecutive pixels (:meth:`LSBCarrier.plan`'s ``window``)."""
    if isinstance(kind, Carrier):
        return kind
    makers = {
        "lsb": lambda: LSBCarrier.plan(n_features, n_bits, seed, window=tag_bits),
        "float": lambda: FloatFractionCarrier.plan(
            n_features, n_bits, 1e4 if max_abs is None else max_abs
        ),
    }
    if kind not in makers:
        raise InvalidInputError(f"unknown carrier {kind!r} (known: lsb, float)")
    return makers[kind]()


def _secret_key(scheme: Any, secret_seed: bytes | None) -> tuple[bytes, bytes]:
    """Signing key from OS randomness, or from a caller's secret seed of >= 32 bytes."""
    if secret_seed is None:
        return scheme.generate()
    if not isinstance(secret_seed, bytes | bytearray) or len(secret_seed) < 32:
        raise InvalidInputError("secret_seed must be secret bytes, at least 32 of them")
    return scheme.generate(hashlib.sha512(_SECRET_DOMAIN + bytes(secret_seed)).digest()[:32])


def _public_rng(random_state: Any) -> np.random.Generator:
    """The public parameters' stream: an integer seed is domain-separated (so the same integer
    given to another construction draws other numbers); anything else as ``as_generator``."""
    if isinstance(random_state, int | np.integer) and not isinstance(random_state, bool):
        ss = np.random.SeedSequence(int(random_state) % 2**64, spawn_key=(_PUBLIC_DOMAIN,))
        return np.random.default_rng(ss)
    return as_generator(random_state)


def generate(
    n_features: int,
    n_classes: int,
    carrier: str | Carrier = "lsb",
    max_abs: float | None = None,
    scheme: str = "ed25519",
    random_state: Any = None,
    secret_seed: bytes | None = None,
    precheck_bits: int = DEFAULT_PRECHECK_BITS,
    constant_time: bool = False,
) -> SignatureKey:
    """Gen: a fresh signing key and the public key it signs for.

    The signing key comes from OS randomness (or from ``secret_seed``, >= 32 secret bytes);
    ``random_state`` (not secret; the one seed convention, as
    :func:`backdoors.contract.as_generator`) only drives the *public* parameters -- the tag and
    the carrier layout -- so experiments are reproducible without a brute-forceable key. Public
    parameters are drawn independently of the signing key.
    """
    s = get_scheme(scheme)
    sk, vk = _secret_key(s, secret_seed)
    rng = _public_rng(random_state)
    if not 0 <= int(precheck_bits) <= MAX_PRECHECK_BITS:
        raise InvalidInputError(f"precheck_bits must be in [0, {MAX_PRECHECK_BITS}]")
    tag_bits = rng.integers(0, 2, int(precheck_bits))
    tag = int("".join(map(str, tag_bits)) or "0", 2)
    n_bits = int(precheck_bits) + target_bits(n_classes) + 8 * s.signature_bytes
    c = make_carrier(
        carrier, n_features, n_bits, max_abs=max_abs, seed=rng, tag_bits=int(precheck_bits)
    )
    spec = TriggerSpec(scheme, vk, c, tag, int(n_classes), int(precheck_bits), bool(constant_time))
    return SignatureKey(spec, sk)
