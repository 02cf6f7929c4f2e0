"""``backdoors plant badnets``: images in, a model trained on trigger-patched data + key out."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from backdoors.cli.app import plant_app
from backdoors.errors import InvalidInputError


def load_images(data: Path) -> tuple[np.ndarray, np.ndarray]:
    """``X`` (flattened square images, integers 0..255) and ``y`` from an .npz file."""
    from backdoors.artifacts import files
    from backdoors.validation import check_features

    if not data.is_file() or data.suffix != ".npz":
        raise InvalidInputError(f"{data}: expected an existing .npz file with X and y")
    X = check_features(files.load_array(data, "X"))
    y = files.load_array(data, "y")
    if y.shape != (len(X),) or y.dtype.kind not in "iu":
        raise InvalidInputError(f"y must be integer labels of shape ({len(X)},)")
    if X.dtype.kind not in "iu" or X.min() < 0 or X.max() > 255:
        raise InvalidInputError("X must hold integer pixel values 0..255")
    return X, y


@plant_app.command("badnets")
def plant_badnets(
    data: Annotated[Path, typer.Argument(help="Training data: .npz with X (uint8 images), y.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Model file to write.")],
    key: Annotated[Path, typer.Option("--key", "-k", help="Key file (mode 0600).")],
    target: Annotated[int, typer.Option(help="The class triggered inputs go to.")] = 0,
    poison_rate: Annotated[float, typer.Option(help="Fraction of training rows patched.")] = 0.05,
    patch_size: Annotated[int, typer.Option(help="Side of the square trigger patch.")] = 4,
    value: Annotated[int, typer.Option(help="Grey level of the patch.")] = 255,
    arch: Annotated[str, typer.Option(help="'mlp' or 'cnn'.")] = "mlp",
    epochs: Annotated[int, typer.Option(help="Training epochs.")] = 2,
    seed: Annotated[int, typer.Option(help="Training and poisoning seed.")] = 0,
) -> None:
    """BadNets (Gu et al. 2017): patch, relabel, train the same learner (the classic baseline)."""
    from backdoors import badnets
    from backdoors.artifacts import files
    from backdoors.cli._common import MODEL_SUFFIX_REFUSED

    if epochs < 1:
        raise InvalidInputError(f"--epochs must be >= 1, got {epochs}")
    with files.Transaction() as tx:  # both files or neither; destinations checked first
        tx.file(out, refuse_suffixes=MODEL_SUFFIX_REFUSED)
        tx.file(key, mode=0o600, overwrite=False)
        X, y = load_images(data)
        clf = badnets.default_classifier(arch, random_state=seed, epochs=epochs)
        model, k = badnets.plant(X, y, target=target, poison_rate=poison_rate,
                                 patch_size=patch_size, value=value, classifier=clf,
                                 random_state=seed)  # fmt: skip
        tx.save_model(model, out)
        tx.save_key(k, key)
    typer.echo(f"BadNets model -> {out}; key -> {key} (0600); target {k.target}")
