"""Primitives with sharp edges, as in the ``cryptography`` package: Ed25519 behind one
interface, how bits live in inputs (carriers), the coin samplers, SHA-512/Ed25519 as ONNX ops."""
