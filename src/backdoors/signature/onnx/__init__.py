"""The signature backdoor inside one standard ONNX file (paper §5.2 as an ONNX graph).

``h~(x) = Verify(vk, m(x), sigma(x)) ? target(x) : h(x)`` built from default-domain ONNX
operators around a user's classifier graph, which is kept intact: :mod:`.trigger` extracts the
carrier bits and builds the message, :mod:`.plant` merges host graph, pre-check, verifier and
output multiplexer, :mod:`.runtime` runs ONNX files through onnxruntime, :mod:`.export` turns
this package's models into ONNX. ``onnx``/``onnxruntime`` are optional dependencies: every
entry point calls :func:`require_onnx` first and fails with a clear message without them.
"""

from __future__ import annotations

from typing import Any

from backdoors.errors import NotApplicableError


def require_onnx() -> tuple[Any, Any]:
    """``(onnx, onnxruntime)``, or a :class:`NotApplicableError` saying how to install them."""
    try:
        import onnx
        import onnxruntime
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise NotApplicableError(
            f"ONNX support needs the optional packages onnx and onnxruntime ({exc.name} is "
            "missing): pip install 'backdoors[onnx]'"
        ) from None
    return onnx, onnxruntime


def is_onnx_model(obj: Any) -> bool:
    """Whether ``obj`` is an ``onnx.ModelProto`` (without importing onnx for other objects)."""
    return type(obj).__name__ == "ModelProto" and type(obj).__module__.startswith("onnx")
