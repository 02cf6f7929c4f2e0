"""``backdoors plant signature``: model file in, backdoored model + secret key out."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from backdoors.cli._common import MODEL_SUFFIX_REFUSED, check_values, library_errors, require
from backdoors.cli.app import EPILOG, plant_app
from backdoors.errors import InvalidInputError


@plant_app.command("signature", epilog=EPILOG)
def plant_signature(
    model: Annotated[
        Path, typer.Argument(help="Honest model: .skops (scikit-learn) or a backdoors model file.")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Backdoored model file to write.")],
    key: Annotated[Path, typer.Option("--key", "-k", help="Secret key file to write (mode 0600).")],
    carrier: Annotated[
        str,
        typer.Option(
            help="lsb (uint8 pixels; needs >= 564 features, e.g. MNIST) or float (float64 "
            "features, any width; give --reference)."
        ),
    ] = "lsb",
    n_features: Annotated[
        int | None, typer.Option(help="Input width, if the model doesn't know it.")
    ] = None,
    n_classes: Annotated[
        int | None, typer.Option(help="Number of classes, if the model doesn't know it.")
    ] = None,
    reference: Annotated[
        Path | None,
        typer.Option(
            help="Inputs (.npy, or .npz with X) that set the float carrier's range; without "
            "them the range (and |delta|) assumes |x| up to 1e4."
        ),
    ] = None,
    input_scale: Annotated[
        float, typer.Option(help="ONNX float inputs hold pixel * scale (e.g. 0.00392156862745098).")
    ] = 1.0,
    onnx_output: Annotated[
        str | None,
        typer.Option(help="ONNX: the output holding the class scores (others pass through)."),
    ] = None,
    onnx_verifier: Annotated[
        str,
        typer.Option(
            help="ONNX: the in-graph verifier, fast (onnxruntime, onnx.reference) or portable "
            "(also OpenVINO and tract; docs/onnx.md)."
        ),
    ] = "fast",
) -> None:
    """Plant the signature backdoor (paper §5.2) in any saved classifier (or an .onnx file)."""
    from backdoors import signature
    from backdoors.artifacts import files

    if model.suffix == ".onnx":  # the verifier goes into the graph (backdoors.signature.onnx)
        from backdoors.cli.onnx import plant_onnx

        if carrier != "lsb":
            raise InvalidInputError("ONNX models take the lsb carrier only")
        return plant_onnx(
            model, out, key, n_classes, input_scale, class_output=onnx_output,
            profile=onnx_verifier,
        )  # fmt: skip

    require(n_features is None or n_features >= 1, "--n-features must be >= 1")
    require(n_classes is None or n_classes >= 2, "--n-classes must be >= 2")
    with files.Transaction() as tx:
        tx.file(out, refuse_suffixes=MODEL_SUFFIX_REFUSED)
        tx.file(key, mode=0o600, overwrite=False)
        honest = files.load_model(model)
        X_ref = None
        if reference is not None:
            X_ref = check_values(files.load_array(reference, "X"), f"reference inputs {reference}")
            require(X_ref.ndim == 2, f"reference inputs must be 2-D, got shape {X_ref.shape}")
        with library_errors():
            bd, k = signature.plant(
                honest, carrier=carrier, n_classes=n_classes, n_features=n_features,
                X_reference=X_ref,
            )  # fmt: skip
        tx.save_model(bd, out)  # a base without a file format fails here: nothing written
        tx.save_key(k, key)
    typer.echo(
        f"backdoored model -> {out}; secret key -> {key} (0600). "
        f"carrier: {k.spec.carrier.kind}, {k.spec.carrier.capacity} bits, "
        f"l_inf <= {k.spec.carrier.linf_bound:g}, l0 <= {k.spec.carrier.l0_bound}"
    )
