"""Hazmat: SHA-512 and Ed25519 verification as default-domain ONNX operators (issue 12)."""

from .verify import ed25519_verify_model, ed25519_verify_nodes, sha512_nodes

__all__ = ["ed25519_verify_model", "ed25519_verify_nodes", "sha512_nodes"]
