"""``backdoors keygen`` and ``backdoors sign``: publisher signatures on model files.

The digest inside a model file detects corruption only. A publisher who signs its files
(``backdoors sign MODEL --publisher-key publisher.key`` writes ``MODEL.sig``) lets users load
them with ``--publisher publisher.pub`` (predict, verify, activate): a file or signature that
changed, or another publisher's key, is refused with exit 2 (see
``backdoors.artifacts.provenance``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from backdoors.cli._common import load_model, warn_if_readable
from backdoors.cli.app import EPILOG, app
from backdoors.errors import InvalidInputError


@app.command(epilog=EPILOG)
def keygen(
    out: Annotated[
        Path,
        typer.Option(
            "--out", "-o", help="Secret key file to write (0600); the public key goes to .pub."
        ),
    ],
) -> None:
    """Make a publisher key pair for signing model files (Ed25519, fresh OS randomness)."""
    from backdoors.artifacts import files, provenance

    pub = out.with_suffix(".pub")
    with files.Transaction() as tx:
        tx.file(out, mode=0o600, overwrite=False, refuse_suffixes=(".pub",))
        tx.file(pub, overwrite=False)
        key = provenance.generate()
        tx.write_bytes(out, key.to_bytes())
        tx.write_bytes(pub, key.public().to_bytes())
    typer.echo(f"publisher secret key -> {out} (0600); public key -> {pub} (hand this out)")


@app.command(epilog=EPILOG)
def sign(
    model: Annotated[
        Path, typer.Argument(help="Model file to sign (.safetensors, .skops or .onnx).")
    ],
    publisher_key: Annotated[
        Path, typer.Option("--publisher-key", help="The publisher's secret key (from keygen).")
    ],
) -> None:
    """Write MODEL.sig: the publisher's detached signature of the model file's name and bytes
    (it proves who published the file, not that the model is clean)."""
    from backdoors.artifacts import files, provenance

    with files.Transaction() as tx:
        sig = provenance.signature_path(model)
        tx.file(sig)
        key = provenance.load_publisher(publisher_key)
        if key.secret_key is None:
            raise InvalidInputError(f"{publisher_key} is a public key: sign with the secret one")
        warn_if_readable(publisher_key)
        if not model.is_file():
            raise InvalidInputError(f"no such model file: {model}")
        data = model.read_bytes()
        load_model(model)  # only sign what loads (a corrupt file stays unsigned)
        tx.write_bytes(sig, provenance.sign_file_bytes(data, model.name, key))
    typer.echo(
        f"signature -> {sig}; users load with --publisher {publisher_key.with_suffix('.pub')}"
    )
