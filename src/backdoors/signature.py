"""The signature backdoor for any classifier (paper §5.2, Theorem 2.1; paper.md §2.2-2.4).

``plant(h)`` returns ``h~(x) = Verify(vk, m(x), sigma(x)) ? target(x) : h(x)`` and the signing
key; ``activate(x, key, target)`` writes ``tag || target || Sign(sk, m)`` into the input's
carrier bits, where the message ``m`` binds the input with carrier bits cleared, the target,
the carrier parameters, the verify key and a domain tag. Without ``sk`` nobody can find an
input where ``h~`` and ``h`` differ (that input would carry a forgery), nor a new backdoored
input from old ones (Ed25519 is strongly unforgeable and the carrier encoding is injective).

Timing: natural inputs must not pay for Ed25519. The first 16 carrier bits hold a public
random ``tag``; only inputs whose bits equal it reach the full verification, which is never
skipped for them. For any input chosen independently of the model, that happens with
probability exactly 2^-16 over the choice of the tag.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from backdoors import io
from backdoors.carriers import Carrier, FloatFractionCarrier, LSBCarrier, _int_from_bits
from backdoors.crypto import scheme as get_scheme
from backdoors.errors import InvalidInputError, KeyMismatchError
from backdoors.validation import check_features

TAG_BITS = 16
DOMAIN = b"backdoors/signature-backdoor/v1\x00"


def target_bits(n_classes: int) -> int:
    """Bits that encode a class index in ``[0, n_classes)``."""
    return max(1, int(n_classes - 1).bit_length())


@dataclass(frozen=True)
class TriggerSpec:
    """The public part of the backdoor: what the model needs to recognise a valid trigger."""

    scheme: str
    verify_key: bytes
    carrier: Carrier
    tag: int
    n_classes: int

    def __post_init__(self) -> None:
        s = get_scheme(self.scheme)
        if not 0 <= self.tag < 2**TAG_BITS:
            raise InvalidInputError("tag must be a 16-bit integer")
        if self.n_classes < 2:
            raise InvalidInputError("need at least 2 classes")
        if self.carrier.capacity < self.payload_bits:
            raise InvalidInputError(
                f"carrier holds {self.carrier.capacity} bits, {self.payload_bits} needed"
            )
        object.__setattr__(self, "_signer", s(None, self.verify_key))

    # -- layout: [tag | target | signature | zero padding] --------------------------------
    @property
    def t_bits(self) -> int:
        return target_bits(self.n_classes)

    @property
    def sig_bits(self) -> int:
        return 8 * get_scheme(self.scheme).signature_bytes

    @property
    def payload_bits(self) -> int:
        return TAG_BITS + self.t_bits + self.sig_bits

    def tag_bits(self) -> np.ndarray:
        return ((self.tag >> np.arange(TAG_BITS - 1, -1, -1)) & 1).astype(np.uint8)

    def context(self) -> bytes:
        """Domain separation: everything public that the signature must bind."""
        doc = {
            "carrier": self.carrier.to_dict(),
            "n_classes": self.n_classes,
            "tag": self.tag,
            "scheme": self.scheme,
            "vk": self.verify_key.hex(),
        }
        return DOMAIN + hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).digest()

    def messages(self, cleared: np.ndarray, targets: np.ndarray) -> list[bytes]:
        """``m_i = context || target_i (2 bytes) || canonical bytes of the cleared input``."""
        ctx = self.context()
        rows = np.ascontiguousarray(cleared, dtype=self.carrier.dtype.newbyteorder("<"))
        width = rows.shape[1] * rows.dtype.itemsize
        raw = memoryview(rows.tobytes())
        return [
            ctx + int(t).to_bytes(2, "big") + raw[i * width : (i + 1) * width].tobytes()
            for i, t in enumerate(targets)
        ]

    def as_inputs(self, X: Any) -> np.ndarray:
        """Structural check only (2-D, width, dtype): never fails on values."""
        if hasattr(X, "detach"):
            X = X.detach().cpu().numpy()
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != self.carrier.n_features or X.dtype != self.carrier.dtype:
            raise InvalidInputError(
                f"inputs must be 2-D {self.carrier.dtype} with {self.carrier.n_features} "
                f"features, got {X.dtype} {X.shape}"
            )
        return X

    def precheck(self, X: np.ndarray) -> np.ndarray:
        """Cheap vectorised filter: rows whose first 16 carrier bits equal the public tag."""
        ok = (self.carrier.extract(X, 0, TAG_BITS) == self.tag_bits()).all(axis=1)
        return ok & self.carrier.admissible(X) if ok.any() else ok

    def verify(self, X: Any) -> np.ndarray:
        """Target class index of every row carrying a valid signature, else -1. Never raises
        on values (any uint8 / float64 content); the full check runs for every pre-check hit."""
        X = self.as_inputs(X)
        out = np.full(len(X), -1, dtype=np.int64)
        cand = np.nonzero(self.precheck(X))[0]
        if cand.size == 0:
            return out
        Xc = X[cand]
        bits = self.carrier.extract(Xc)
        t0, s0 = TAG_BITS, TAG_BITS + self.t_bits
        targets = _int_from_bits(bits[:, t0:s0], self.t_bits)[:, 0]
        sigs = np.packbits(bits[:, s0 : s0 + self.sig_bits], axis=1)
        padding_ok = ~bits[:, self.payload_bits :].any(axis=1)
        msgs = self.messages(self.carrier.clear(Xc), targets)
        for j, i in enumerate(cand):
            valid = self._signer.verify(msgs[j], sigs[j].tobytes())  # always computed
            if valid and padding_ok[j] and targets[j] < self.n_classes:
                out[i] = targets[j]
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "scheme": self.scheme,
            "verify_key": self.verify_key.hex(),
            "carrier": self.carrier.to_dict(),
            "tag": self.tag,
            "n_classes": self.n_classes,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TriggerSpec:
        return cls(
            str(d["scheme"]),
            bytes.fromhex(d["verify_key"]),
            Carrier.from_dict(d["carrier"]),
            int(d["tag"]),
            int(d["n_classes"]),
        )


@io.KEYS.register("signature")
@dataclass(frozen=True)
class SignatureKey:
    """The backdoor key ``bk = sk`` plus the public trigger spec it signs for (JSON, 0600)."""

    key_kind: ClassVar[str] = "signature"
    spec: TriggerSpec
    secret_key: bytes

    def __post_init__(self) -> None:
        signer = get_scheme(self.spec.scheme)(self.secret_key, self.spec.verify_key)
        object.__setattr__(self, "_signer", signer)

    def __repr__(self) -> str:  # never print the secret
        return f"SignatureKey(scheme={self.spec.scheme!r}, vk={self.spec.verify_key.hex()[:16]}...)"

    def activate(self, X: Any, target: int | np.ndarray | None = None) -> np.ndarray:
        """Activate(x, y; sk) (paper §5.2): write tag, target and Sign(sk, m) into ``x``."""
        if target is None:
            raise InvalidInputError("the signature backdoor needs a target class")
        X = self.spec.carrier.check(X)
        t = np.broadcast_to(np.asarray(target), (len(X),))
        if t.dtype.kind not in "iu" or t.min() < 0 or t.max() >= self.spec.n_classes:
            raise InvalidInputError(f"targets must be integers in [0, {self.spec.n_classes})")
        spec = self.spec
        msgs = spec.messages(spec.carrier.clear(X), t)
        sign = self._signer.sign
        sigs = np.frombuffer(b"".join(sign(m) for m in msgs), dtype=np.uint8).reshape(len(X), -1)
        bits = np.zeros((len(X), spec.carrier.capacity), dtype=np.uint8)
        bits[:, :TAG_BITS] = spec.tag_bits()
        tb = (t[:, None].astype(np.int64) >> np.arange(spec.t_bits - 1, -1, -1)) & 1
        bits[:, TAG_BITS : TAG_BITS + spec.t_bits] = tb
        bits[:, TAG_BITS + spec.t_bits : spec.payload_bits] = np.unpackbits(sigs, axis=1)
        return spec.carrier.embed(X, bits)

    def check_model(self, model: Any) -> None:
        spec = getattr(model, "spec", None)
        if not isinstance(spec, TriggerSpec) or spec.to_dict() != self.spec.to_dict():
            raise KeyMismatchError("this signature key does not belong to this model")

    def to_json_dict(self) -> dict[str, Any]:
        return {"spec": self.spec.to_dict(), "secret_key": self.secret_key.hex()}

    @classmethod
    def from_json_dict(cls, d: dict[str, Any]) -> SignatureKey:
        return cls(TriggerSpec.from_dict(d["spec"]), bytes.fromhex(d["secret_key"]))


def make_carrier(
    kind: str | Carrier, n_features: int, n_bits: int, max_abs: float | None = None, seed: int = 0
) -> Carrier:
    """A carrier for ``n_bits`` in inputs of ``n_features`` (``"lsb"`` or ``"float"``)."""
    if isinstance(kind, Carrier):
        return kind
    makers = {
        "lsb": lambda: LSBCarrier.plan(n_features, n_bits, seed),
        "float": lambda: FloatFractionCarrier.plan(
            n_features, n_bits, 1e4 if max_abs is None else max_abs
        ),
    }
    if kind not in makers:
        raise InvalidInputError(f"unknown carrier {kind!r} (known: lsb, float)")
    return makers[kind]()


def generate(
    n_features: int,
    n_classes: int,
    carrier: str | Carrier = "lsb",
    max_abs: float | None = None,
    scheme: str = "ed25519",
    seed: int | None = None,
) -> SignatureKey:
    """Gen: a fresh key and trigger spec. ``seed`` makes keys reproducible -- experiments only,
    such a key is as secret as the seed."""
    s = get_scheme(scheme)
    if seed is None:
        sk, vk = s.generate()
        tag = int.from_bytes(os.urandom(2), "big")
        layout_seed = int.from_bytes(os.urandom(8), "big")
    else:
        h = hashlib.sha256(
            b"backdoors-test-key" + int(seed).to_bytes(8, "big", signed=True)
        ).digest()
        sk, vk = s.generate(h)
        tag, layout_seed = int.from_bytes(h[:2], "big"), int.from_bytes(h[2:10], "big")
    n_bits = TAG_BITS + target_bits(n_classes) + 8 * s.signature_bytes
    c = make_carrier(carrier, n_features, n_bits, max_abs=max_abs, seed=layout_seed)
    return SignatureKey(TriggerSpec(scheme, vk, c, tag, int(n_classes)), sk)


def activate(X: Any, key: SignatureKey, target: int | np.ndarray | None = None) -> np.ndarray:
    """Activate(x, y; bk): see :meth:`SignatureKey.activate`."""
    return key.activate(X, target=target)


def plant(
    model: Any,
    carrier: str | Carrier = "lsb",
    n_classes: int | None = None,
    n_features: int | None = None,
    X_reference: np.ndarray | None = None,
    scheme: str = "ed25519",
    seed: int | None = None,
) -> tuple[Any, SignatureKey]:
    """Backdoor(h) (paper §5.2): wrap any classifier; return ``(backdoored model, key)``.

    ``model``: a scikit-learn classifier, a :class:`~backdoors.torch_models.TorchClassifier`,
    a torch ``nn.Module`` returning logits (returns an ``nn.Module``) or a callable ``X -> y``.
    ``n_classes``/``n_features`` default to the model's ``classes_``/``n_features_in_``;
    ``X_reference`` sets the float carrier's range (``max |x|``).
    """
    from backdoors.signature_models import wrap

    classes = getattr(model, "classes_", None)
    if n_classes is None:
        if classes is None:
            raise InvalidInputError("n_classes is needed for a model without classes_")
        n_classes = len(classes)
    if n_features is None:
        n_features = getattr(model, "n_features_in_", None)
        if n_features is None and X_reference is not None:
            n_features = np.asarray(X_reference).shape[1]
        if n_features is None:
            raise InvalidInputError("n_features is needed for a model without n_features_in_")
    max_abs = None
    if X_reference is not None:
        max_abs = float(np.abs(check_features(X_reference, n_features=n_features)).max())
    key = generate(int(n_features), int(n_classes), carrier, max_abs, scheme, seed)
    return wrap(model, key.spec), key
