"""Hazmat: SHA-512 and Ed25519 verification as default-domain ONNX operators.

Everything runs in stock onnxruntime (CPU provider) with opset >= 18, no custom op:
:func:`ed25519_verify_nodes` / :func:`ed25519_verify_model` accept or reject exactly as
libsodium's ``crypto_sign_verify_detached`` (PyNaCl ``VerifyKey.verify``) for a public key fixed
at build time; :func:`sha512_nodes` hashes fixed-length byte rows. Modules: ``builder`` (node
builder with prefixed names, Loop bodies), ``sha512`` (uint64 words), ``field`` (GF(2^255 - 19)
in exact float64 limbs), ``ed25519`` (window tables, point addition tree, encoding), ``scalar``
(hash reduction mod L), ``ref`` (build-time Python arithmetic and key checks), ``verify``.
The *portable* verifier (``portable_sha512``, ``portable_field``, ``portable_verify``) computes
the same verdicts in int32 below 2^24 with ``Scan`` instead of ``Loop`` and no bitwise
operator, for OpenVINO and tract as well.
"""

from .portable_verify import (
    ed25519_verify_model_portable,
    ed25519_verify_nodes_portable,
    sha512_model_portable,
)
from .verify import (
    MIN_OPSET,
    ed25519_verify_model,
    ed25519_verify_nodes,
    sha512_model,
    sha512_nodes,
)

__all__ = [
    "MIN_OPSET",
    "ed25519_verify_model",
    "ed25519_verify_model_portable",
    "ed25519_verify_nodes",
    "ed25519_verify_nodes_portable",
    "sha512_model",
    "sha512_model_portable",
    "sha512_nodes",
]
