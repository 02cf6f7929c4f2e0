"""Signature schemes behind one small interface (the "hazmat" layer of the signature backdoor).

Paper §5.2 needs a signature scheme (Gen, Sign, Verify); non-replicability in its strong form
(no new backdoored input, not even a second signature on an old message) needs *strong*
unforgeability (sUF-CMA). Ed25519 as implemented by libsodium (PyNaCl) rejects non-canonical
``S >= L`` and small-order points, which makes it strongly unforgeable; ECDSA would not be
(``s -> n - s``), and HMAC is not a signature at all (the verifier could sign).
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod

from backdoors.errors import InvalidInputError
from backdoors.registry import Registry

SCHEMES: Registry[type[SignatureScheme]] = Registry("signature scheme")

#: order of the Ed25519 base point (RFC 8032)
L_ED25519 = 2**252 + 27742317777372353535851937790883648493


class SignatureScheme(ABC):
    """Deterministic, strongly unforgeable signatures over byte strings."""

    name: str
    signature_bytes: int
    secret_bytes: int
    public_bytes: int

    @classmethod
    @abstractmethod
    def generate(cls, seed: bytes | None = None) -> tuple[bytes, bytes]:
        """Return ``(secret_key, verify_key)``; ``seed`` makes it reproducible (tests only)."""

    @abstractmethod
    def __init__(self, secret_key: bytes | None, verify_key: bytes) -> None: ...

    @abstractmethod
    def sign(self, message: bytes) -> bytes: ...

    @abstractmethod
    def verify(self, message: bytes, signature: bytes) -> bool:
        """True iff ``signature`` is valid for ``message``; never raises on bad signatures."""

    def verify_full_cost(self, message: bytes, signature: bytes) -> bool:
        """:meth:`verify`, with the same cost for every well-formed signature however early a
        bad one could be rejected (the answer is identical)."""
        return self.verify(message, signature)


@SCHEMES.register("ed25519")
class Ed25519(SignatureScheme):
    """Ed25519 (RFC 8032) via libsodium: 32-byte seeds, 32-byte keys, 64-byte signatures."""

    name = "ed25519"
    signature_bytes = 64
    secret_bytes = 32
    public_bytes = 32

    def __init__(self, secret_key: bytes | None, verify_key: bytes) -> None:
        from nacl import bindings

        self._b = bindings
        if len(verify_key) != 32:
            raise InvalidInputError("an Ed25519 verify key has 32 bytes")
        self.verify_key = bytes(verify_key)
        self._sk64: bytes | None = None
        if secret_key is not None:
            if len(secret_key) != 32:
                raise InvalidInputError("an Ed25519 secret seed has 32 bytes")
            pk, sk64 = bindings.crypto_sign_seed_keypair(bytes(secret_key))
            if pk != self.verify_key:
                raise InvalidInputError("the secret key does not match the verify key")
            self._sk64 = sk64

    @classmethod
    def generate(cls, seed: bytes | None = None) -> tuple[bytes, bytes]:
        from nacl import bindings

        seed = os.urandom(32) if seed is None else bytes(seed)
        if len(seed) != 32:
            raise InvalidInputError("an Ed25519 seed has 32 bytes")
        pk, _ = bindings.crypto_sign_seed_keypair(seed)
        return seed, pk

    def sign(self, message: bytes) -> bytes:
        if self._sk64 is None:
            raise InvalidInputError("this signer holds only the verify key")
        return self._b.crypto_sign(message, self._sk64)[:64]

    def verify_full_cost(self, message: bytes, signature: bytes) -> bool:
        """libsodium rejects a non-canonical ``S >= L`` before any group operation (15 of
        16 random signatures), which makes verification time depend on the signature. Here
        such a signature is refused all the same, after a full verification of ``S mod L``
        whose result is discarded."""
        if len(signature) != 64:
            return False
        S = int.from_bytes(signature[32:], "little")
        if S < L_ED25519:
            return self.verify(message, signature)
        self.verify(message, bytes(signature[:32]) + (S % L_ED25519).to_bytes(32, "little"))
        return False

    def verify(self, message: bytes, signature: bytes) -> bool:
        if len(signature) != 64:
            return False
        try:
            self._b.crypto_sign_open(bytes(signature) + message, self.verify_key)
        except Exception:  # BadSignatureError, ValueError on malformed points
            return False
        return True


def scheme(name: str) -> type[SignatureScheme]:
    """The signature scheme registered as ``name``."""
    return SCHEMES.get(name)
