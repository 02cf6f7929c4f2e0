"""TEST-ONLY: small torch modules exported to ONNX hosts for the ONNX backdoor tests."""

from __future__ import annotations

import io
import warnings

import onnx
import torch


def torch_onnx(module: torch.nn.Module, shape: tuple[int, ...], dynamo: bool = False):
    """``module`` exported by ``torch.onnx.export``: input ``x`` of shape ``[N, *shape]``
    (dynamic batch), output ``logits``."""
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module.eval(),
            (torch.zeros(2, *shape),),
            buf,
            input_names=["x"],
            output_names=["logits"],
            dynamic_axes={"x": {0: "N"}, "logits": {0: "N"}},
            dynamo=dynamo,
        )
    return onnx.load_from_string(buf.getvalue())
