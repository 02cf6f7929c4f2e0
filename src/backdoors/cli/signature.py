"""``backdoors plant signature``: model file in, backdoored model + secret key out."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from backdoors.cli.app import plant_app
from backdoors.errors import InvalidInputError


@plant_app.command("signature")
def plant_signature(
    model: Annotated[
        Path, typer.Argument(help="Honest model: .skops (scikit-learn) or a backdoors model file.")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Backdoored model file to write.")],
    key: Annotated[Path, typer.Option("--key", "-k", help="Secret key file to write (mode 0600).")],
    carrier: Annotated[
        str, typer.Option(help="lsb (uint8 pixels) or float (float64 features).")
    ] = "lsb",
    n_features: Annotated[
        int | None, typer.Option(help="Input width, if the model doesn't know it.")
    ] = None,
    n_classes: Annotated[
        int | None, typer.Option(help="Number of classes, if the model doesn't know it.")
    ] = None,
    reference: Annotated[
        Path | None, typer.Option(help="Inputs (.npy/.npz) that set the float carrier's range.")
    ] = None,
    input_scale: Annotated[
        float, typer.Option(help="ONNX float inputs hold pixel * scale (e.g. 0.00392156862745098).")
    ] = 1.0,
) -> None:
    """Plant the signature backdoor (paper §5.2) in any saved classifier (or an .onnx file)."""
    from backdoors import io, signature

    if model.suffix == ".onnx":  # the verifier goes into the graph (backdoors.onnx_backdoor)
        from backdoors.cli.onnx import plant_onnx

        if carrier != "lsb":
            raise InvalidInputError("ONNX models take the lsb carrier only")
        return plant_onnx(model, out, key, n_classes, input_scale)

    io.check_outputs(out, key)
    honest = io.load_model(model)
    X_ref = io.load_array(reference) if reference is not None else None
    bd, k = signature.plant(
        honest, carrier=carrier, n_classes=n_classes, n_features=n_features, X_reference=X_ref
    )
    bd._to_artifact()  # fails early (nothing written) if the base has no file format
    io.save_model(bd, out)
    io.save_key(k, key)
    typer.echo(
        f"backdoored model -> {out}; secret key -> {key} (0600). "
        f"carrier: {k.spec.carrier.kind}, {k.spec.carrier.capacity} bits, "
        f"l_inf <= {k.spec.carrier.linf_bound:g}, l0 <= {k.spec.carrier.l0_bound}"
    )
