"""Who published a model file: detached Ed25519 signatures (authenticity, not just integrity).

A model file's digest (``io``) only detects corruption: whoever edits the file recomputes it.
Authenticity needs a key the editor does not have. A publisher makes a key pair once
(:func:`generate`), signs each model file it releases (:func:`sign_file` writes
``<model>.sig`` beside it) and hands out the public key; a user who loads with
``publisher=`` (``io.load_model(path, publisher=...)``, CLI ``--publisher PUB``) gets the
model only if the signature is valid for exactly these bytes *under this file name* and that
key. Ed25519 via libsodium is strongly unforgeable (``crypto.Ed25519``).

Signature files, two versions (both domain-separated, so a signature from any other use of the
same key never validates a model):

* v2 (written since 0.3): JSON ``{"backdoors.model-signature": "2", "name", "sha256",
  "signature"}``; the signed message is ``b"backdoors.model-signature.v2\\0" || manifest``, the
  manifest being the canonical JSON ``{"name": <file name>, "sha256": <hex digest>}`` (as
  OpenSSF model-signing binds names and digests). A copy of another model the same publisher
  signed, renamed to the expected name with its ``.sig``, is refused.
* v1 (0.2 and before): 64 raw bytes over ``b"backdoors.model-signature.v1\\0" || SHA-512(bytes)``.
  It proves the bytes, not the name: re-sign with ``backdoors sign`` to bind the name.

What a valid signature proves: who published the file. Not that the file is clean: a
malicious trainer signs its own backdoored model just as well.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from backdoors.errors import CorruptArtifactError, InvalidInputError
from backdoors.hazmat.crypto import Ed25519

DOMAIN = b"backdoors.model-signature.v1\0"
DOMAIN_V2 = b"backdoors.model-signature.v2\0"
SIG_FORMAT = "2"
FORMAT = "1"


@dataclass(frozen=True)
class PublisherKey:
    """A publisher's key: ``verify_key`` is public; ``secret_key`` (None in a public key) signs."""

    verify_key: bytes
    secret_key: bytes | None = None

    def public(self) -> PublisherKey:
        return PublisherKey(self.verify_key)

    def __repr__(self) -> str:  # never print the secret
        has = self.secret_key is not None
        return f"PublisherKey(vk={self.verify_key.hex()[:16]}..., secret={has})"

    def to_bytes(self) -> bytes:
        doc = {"backdoors.publisher": FORMAT, "verify_key": self.verify_key.hex()}
        if self.secret_key is not None:
            doc["secret_key"] = self.secret_key.hex()
        return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()

    @classmethod
    def from_bytes(cls, raw: bytes, where: str = "publisher key") -> PublisherKey:
        try:
            doc = json.loads(raw)
            if doc.get("backdoors.publisher") != FORMAT:
                raise KeyError("backdoors.publisher")
            vk = bytes.fromhex(doc["verify_key"])
            sk = bytes.fromhex(doc["secret_key"]) if "secret_key" in doc else None
            Ed25519(sk, vk)  # lengths, and that the secret matches the public key
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError,
                AttributeError, InvalidInputError):  # fmt: skip
            raise CorruptArtifactError(f"{where} is not a backdoors publisher key") from None
        return cls(vk, sk)


def generate() -> PublisherKey:
    """A fresh publisher key pair from OS randomness."""
    sk, vk = Ed25519.generate()
    return PublisherKey(vk, sk)


def load_publisher(path: str | os.PathLike) -> PublisherKey:
    path = Path(path)
    if not path.is_file():
        raise InvalidInputError(f"no such publisher key file: {path}")
    return PublisherKey.from_bytes(path.read_bytes(), str(path))


def signature_path(model_path: str | os.PathLike) -> Path:
    """Where the detached signature of a model file lives: ``<model>.sig``."""
    p = Path(model_path)
    return p.with_name(p.name + ".sig")


def _message(data: bytes) -> bytes:
    return DOMAIN + hashlib.sha512(data).digest()


def sign_bytes(data: bytes, key: PublisherKey) -> bytes:
    """The 64-byte detached signature of a model file's bytes."""
    if key.secret_key is None:
        raise InvalidInputError("signing needs the publisher's secret key, not the public one")
    return Ed25519(key.secret_key, key.verify_key).sign(_message(data))


def verify_bytes(data: bytes, signature: bytes, key: PublisherKey, where: str = "model") -> None:
    """Raise :class:`CorruptArtifactError` unless ``signature`` is the publisher's on ``data``."""
    ok = len(signature) == 64 and Ed25519(None, key.verify_key).verify(_message(data), signature)
    if not ok:
        raise CorruptArtifactError(
            f"{where}: not signed by this publisher (file or signature changed, or another key)"
        )


def verify_file(path: str | os.PathLike, key: PublisherKey) -> bytes:
    """Check ``<path>.sig`` against the file's bytes and name (:func:`verify_signature`); return
    the bytes that were checked (load exactly these, not the file again, so the file cannot
    change in between)."""
    path, sig = Path(path), signature_path(path)
    if not sig.is_file():
        raise CorruptArtifactError(f"{path}: no publisher signature ({sig} is missing)")
    data = path.read_bytes()
    verify_signature(data, sig.read_bytes(), path.name, key, str(path))
    return data


def manifest_bytes(name: str, data: bytes) -> bytes:
    """The canonical manifest a v2 signature covers: ``{"name": name, "sha256": hex}``."""
    doc = {"name": name, "sha256": hashlib.sha256(data).hexdigest()}
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def sign_file_bytes(data: bytes, name: str, key: PublisherKey) -> bytes:
    """The content of a v2 ``<model>.sig``: the publisher's signature on (file name, SHA-256)."""
    if key.secret_key is None:
        raise InvalidInputError("signing needs the publisher's secret key, not the public one")
    sig = Ed25519(key.secret_key, key.verify_key).sign(DOMAIN_V2 + manifest_bytes(name, data))
    doc = {"backdoors.model-signature": SIG_FORMAT, "name": name,
           "sha256": hashlib.sha256(data).hexdigest(), "signature": sig.hex()}  # fmt: skip
    return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()


def verify_signature(data: bytes, sig_file: bytes, name: str, key: PublisherKey,
                     where: str = "model") -> int:  # fmt: skip
    """Check a ``.sig`` (v2: name and bytes; v1: bytes only) of a file named ``name``; return
    its version, or raise :class:`CorruptArtifactError` saying what does not match."""
    if len(sig_file) == 64:
        verify_bytes(data, sig_file, key, where)
        return 1
    try:
        doc = json.loads(sig_file)
        if doc.get("backdoors.model-signature") != SIG_FORMAT:
            raise KeyError("backdoors.model-signature")
        signed_name, signed_sha, sig = (
            str(doc["name"]),
            str(doc["sha256"]),
            bytes.fromhex(doc["signature"]),
        )
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError,
            AttributeError):  # fmt: skip
        raise CorruptArtifactError(f"{where}: the .sig is not a backdoors signature") from None
    if signed_name != name:
        raise CorruptArtifactError(
            f"{where}: the signature is for a file named {signed_name!r}, not {name!r} (it binds "
            "the name: another signed model copied under this name is refused)"
        )
    if signed_sha != hashlib.sha256(data).hexdigest():
        raise CorruptArtifactError(f"{where}: the file changed since it was signed")
    msg = DOMAIN_V2 + manifest_bytes(name, data)
    if len(sig) != 64 or not Ed25519(None, key.verify_key).verify(msg, sig):
        raise CorruptArtifactError(
            f"{where}: not signed by this publisher (file or signature changed, or another key)"
        )
    return 2
