"""Provenance checks of ``backdoors audit``: the signatures that sit beside the model file.

Two kinds, both looked for at ``<model>.sig`` (and ``model.sig`` in the model's folder, the
default name of the OpenSSF ``model_signing`` tool):

* an OpenSSF model-signing bundle (a Sigstore bundle, JSON ``mediaType``
  ``application/vnd.dev.sigstore.bundle...``) verified offline in public-key mode with
  ``--signing-key PUB.pem`` (pip ``model-signing``); the signer is the key's SHA-256
  fingerprint; the name the bundle signed is compared with the file's name (for a single file
  model-signing's verifier itself checks only the bytes);
* this package's publisher signature (:mod:`backdoors.artifacts.provenance`), verified with
  ``--publisher PUB``.

Each check is a dict ``{kind, valid, signer, signature_path, message}``; ``valid`` is None when a
signature is present but no key was given to check it. A valid signature proves who published
the file, not that the model is clean: a malicious trainer signs its own backdoor just as well
(:data:`NOT_CLEAN`); the detectors' verdict is reported separately.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

from backdoors.artifacts import provenance
from backdoors.errors import CorruptArtifactError, InvalidInputError

NOT_CLEAN = "a valid signature proves who published the file, not that it is clean"
BUNDLE_MEDIA = "application/vnd.dev.sigstore.bundle"


def _candidates(model: Path) -> list[Path]:
    out = [provenance.signature_path(model), model.parent / "model.sig"]
    return [p for p in dict.fromkeys(out) if p.is_file()]


def _bundle(raw: bytes) -> dict[str, Any] | None:
    try:
        doc = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    ok = isinstance(doc, dict) and str(doc.get("mediaType", "")).startswith(BUNDLE_MEDIA)
    return doc if ok else None


def _signed_names(bundle: dict[str, Any]) -> list[str]:
    """The subject names of the bundle's in-toto statement (unverified until the bundle is)."""
    try:
        stmt = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
        return [str(s["name"]) for s in stmt.get("subject", [])]
    except (KeyError, TypeError, ValueError):
        return []


def key_fingerprint(pem: bytes) -> str:
    """SHA-256 of a PEM public key's DER encoding (SubjectPublicKeyInfo), hex."""
    from cryptography.hazmat.primitives import serialization

    try:
        key = serialization.load_pem_public_key(pem)
    except ValueError:
        raise InvalidInputError("--signing-key is not a PEM public key") from None
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()


def check_model_signing(model: Path, sig: Path, bundle: dict, key: Path | None) -> dict:
    """Verify an OpenSSF model-signing bundle offline with a public key (elliptic curve)."""
    names = _signed_names(bundle)
    out = {"kind": "model-signing", "signature_path": str(sig), "signer": None}
    if key is None:
        return {**out, "valid": None,
                "message": f"model-signing bundle {sig.name} found, not verified: give its "
                           "publisher's public key with --signing-key"}  # fmt: skip
    if not key.is_file():
        raise InvalidInputError(f"no such --signing-key file: {key}")
    fp = key_fingerprint(key.read_bytes())
    try:
        from model_signing import verifying
    except ImportError as exc:
        raise InvalidInputError(
            f"verifying {sig} needs the model-signing package (pip install "
            f"'backdoors[signing]'): {exc}"
        ) from None
    try:
        verifying.Config().use_elliptic_key_verifier(public_key=str(key)).verify(model, sig)
    except Exception as exc:  # the library raises ValueError and others for a bad signature
        why = " ".join(str(exc).split())[:200]
        msg = f"model-signing signature INVALID for key {fp[:16]}...: {why}"
        return {**out, "valid": False, "signer": f"ecdsa-sha256:{fp}", "message": msg}
    named = not names or model.name in names
    msg = (f"model-signing signature valid: signed by the holder of public key {fp[:16]}... "
           f"(sha256 fingerprint); signed name(s) {names}")  # fmt: skip
    if not named:
        msg += f" -- NOT this file's name {model.name!r} (a renamed copy of a signed model)"
    return {**out, "valid": bool(named), "signer": f"ecdsa-sha256:{fp}",
            "message": f"{msg}. {NOT_CLEAN}"}  # fmt: skip


def check_publisher(model: Path, sig: Path, key: Path | None) -> dict[str, Any]:
    """Verify this package's publisher signature (v2: name + bytes; v1: bytes only)."""
    out = {"kind": "backdoors-publisher", "signature_path": str(sig), "signer": None}
    if key is None:
        return {**out, "valid": None,
                "message": f"publisher signature {sig.name} found, not verified: give the "
                           "publisher's public key with --publisher"}  # fmt: skip
    pub = provenance.load_publisher(key)
    signer = f"ed25519:{pub.verify_key.hex()}"
    try:
        v = provenance.verify_signature(
            model.read_bytes(), sig.read_bytes(), model.name, pub, model.name
        )
    except CorruptArtifactError as exc:
        return {**out, "valid": False, "signer": signer, "message": f"INVALID: {exc}"}
    what = "name and bytes (v2)" if v == 2 else "bytes only (v1: not the file name)"
    return {**out, "valid": True, "signer": signer,
            "message": f"publisher signature valid ({what}) for key "
                       f"{pub.verify_key.hex()[:16]}.... {NOT_CLEAN}"}  # fmt: skip


def check(model: Path, publisher: Path | None, signing_key: Path | None) -> list[dict[str, Any]]:
    """Every signature beside ``model``, verified with the keys given (see module docs). A key
    given without a signature of its kind is a failed check (the publisher said it signs)."""
    model = Path(model)
    found: list[dict[str, Any]] = []
    for sig in _candidates(model):
        raw = sig.read_bytes()
        bundle = _bundle(raw)
        if bundle is not None:
            found.append(check_model_signing(model, sig, bundle, signing_key))
        elif sig == provenance.signature_path(model):
            found.append(check_publisher(model, sig, publisher))
    kinds = {f["kind"] for f in found}
    for kind, key, opt in (("model-signing", signing_key, "--signing-key"),
                           ("backdoors-publisher", publisher, "--publisher")):  # fmt: skip
        if key is not None and kind not in kinds:
            msg = (f"{opt} given but no {kind} signature beside {model.name} "
                   f"(looked for {model.name}.sig, model.sig)")  # fmt: skip
            found.append({"kind": kind, "valid": False, "signer": None, "message": msg})
    return found
