"""``backdoors audit MODEL --data DATA.npz``: every applicable detector on a user's model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from backdoors.cli._common import library_errors
from backdoors.cli.app import EPILOG, app
from backdoors.errors import InvalidInputError


@app.command(epilog=EPILOG)
def audit(
    model: Annotated[
        Path,
        typer.Argument(
            help=".skops estimator, backdoors model file, or torch state dict (safetensors)."
        ),
    ],
    data: Annotated[
        Path, typer.Option(help=".npz with X (clean queries) and optionally y, X_train, y_train.")
    ],
    reference: Annotated[
        Path | None,
        typer.Option(help="An honest model you trained (baseline + disagreement search)."),
    ] = None,
    arch: Annotated[
        Path | None, typer.Option(help="Architecture spec JSON for a raw torch state dict.")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Folder for report.md and report.html (its parent must exist)."),
    ] = None,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Write the result here (.json).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed for randomised detectors.")] = 0,
) -> None:
    """Run every applicable registered detector on MODEL and report.

    MODEL: a .skops estimator, a model file of this package, or a torch state
    dict saved with safetensors.torch.save_file(net.state_dict(), "net.st")
    plus an architecture spec JSON (--arch, or net.json beside the weights).

    Plain nn.Sequential key names are accepted. MLP: Linear/ReLU layers
    (0.weight, 0.bias, 2.weight, ...). CNN: Conv2d(1,c1,3,padding=1), ReLU,
    MaxPool2d(2), Conv2d(c1,c2,3,padding=1), ReLU, MaxPool2d(2), Flatten,
    Linear on (N, 1, side, side) inputs (rows of X are flattened images).

    Spec for nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))
    trained on pixels/255 while X holds 0..255 (input_scale multiplies X
    before the first layer; default 1):

      {"arch": "mlp", "n_features": 784, "n_classes": 10,
       "params": {"hidden": [256]}, "input_scale": 0.00392156862745098}

    CNN: {"arch": "cnn", "n_features": 784, "n_classes": 10,
          "params": {"channels": [16, 32]}, "input_scale": 1.0}
    Optional "classes": the labels of the outputs in order (default 0..n-1).
    """
    from backdoors.artifacts.files import Transaction
    from backdoors.artifacts.report import write_report
    from backdoors.evaluation.audit import audit as run_audit
    from backdoors.evaluation.audit import audit_sections, load_any_model, load_audit_data

    if arch is not None:  # fail before any work, whatever the model's format
        try:
            ok = isinstance(json.loads(arch.read_text()), dict)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            ok = False
        if not ok:
            raise InvalidInputError(f"--arch {arch}: not a readable JSON object (the spec)")
    with Transaction() as tx:  # destinations checked before any work; all written or none
        if json_path is not None:
            tx.file(json_path, suffixes=(".json",))
        staged = tx.folder(out) if out is not None else None
        m = load_any_model(model, arch)
        d = load_audit_data(data)
        ref = load_any_model(reference) if reference is not None else None
        for who, mm in (("MODEL", m), ("--reference", ref)):
            nf = getattr(mm, "n_features_in_", None)
            if nf is not None and d["X"].shape[1] != int(nf):
                raise InvalidInputError(
                    f"{who} takes {int(nf)} features, the data has {d['X'].shape[1]}"
                )
        with library_errors():
            result = run_audit(
                m, d["X"], d["y"], d["X_train"], d["y_train"], reference=ref, seed=seed
            )
        result["model"]["path"] = str(model)
        if json_path is not None:
            tx.write_json(json_path, result)
        if staged is not None:
            title = f"audit of {model.name}"
            path = tx.final(write_report(staged, title, audit_sections(result, model.name)))
    if out is not None:
        typer.echo(f"report written to {path} (and {path.with_suffix('.html')})", err=True)
    summary = {
        n: (r["score"] if r["status"] == "scored" else f"{r['status']}: {r['reason']}")
        for n, r in result["detectors"].items()
    }
    typer.echo(json.dumps({"counts": result["counts"], "detectors": summary}, indent=2))
