"""ONNX commands: ``backdoors export MODEL --onnx out.onnx``; the ONNX path of
``backdoors plant signature model.onnx`` (called from :mod:`backdoors.cli.signature`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from backdoors.cli.app import app
from backdoors.errors import InvalidInputError


def plant_onnx(
    model: Path,
    out: Path,
    key: Path,
    n_classes: int | None,
    input_scale: float,
    precheck_bits: int | None = None,
    class_output: str | None = None,
    profile: str = "fast",
) -> None:
    """Plant the signature backdoor into an ONNX file; write model and key as one transaction
    (``profile``: the in-graph verifier, ``fast`` or ``portable``)."""
    from backdoors.artifacts.files import Transaction, key_bytes
    from backdoors.signature.onnx.plant import plant
    from backdoors.signature.onnx.runtime import load_onnx

    if out.suffix != ".onnx":
        raise InvalidInputError(f"{out}: an ONNX model's output must end in .onnx")
    with Transaction() as tx:
        tx.file(out)
        tx.file(key, mode=0o600, overwrite=False)
        honest = load_onnx(model)
        bd, k = plant(
            honest,
            input_scale=input_scale,
            n_classes=n_classes,
            precheck_bits=precheck_bits,
            class_output=class_output,
            profile=profile,
        )
        tx.write_bytes(out, bd.SerializeToString())
        tx.write_bytes(key, key_bytes(k))
    c = k.spec.carrier
    typer.echo(
        f"backdoored ONNX model -> {out}; secret key -> {key} (0600). carrier: lsb over "
        f"{c.n_features} pixels (input scale {input_scale:g}), {c.capacity} bits, "
        f"pre-check {k.spec.precheck_bits} bits"
    )


@app.command("export")
def export_cmd(
    model: Annotated[Path, typer.Argument(help="A backdoors model file or a .skops estimator.")],
    onnx_path: Annotated[Path, typer.Option("--onnx", help="ONNX file to write (.onnx).")],
    input_dtype: Annotated[
        str, typer.Option(help="float32 (values as the model sees them) or uint8 pixels.")
    ] = "float32",
) -> None:
    """Export a model (signature-backdoored ones included, verifier in the graph) to ONNX."""
    from backdoors.artifacts.files import Transaction
    from backdoors.evaluation.audit import load_any_model
    from backdoors.signature.onnx.export import export

    if onnx_path.suffix != ".onnx":
        raise InvalidInputError(f"{onnx_path}: the output must end in .onnx")
    with Transaction() as tx:
        tx.file(onnx_path)
        m = export(load_any_model(model), input_dtype=input_dtype)
        data = m.SerializeToString()
        tx.write_bytes(onnx_path, data)
    typer.echo(
        f"ONNX model -> {onnx_path} ({len(data)} bytes, {len(m.graph.node)} top-level nodes)"
    )
