"""``backdoors audit MODEL --data DATA.npz``: every applicable detector on a user's model.

Exit codes: 0 no finding at the ``--fail-on`` level (or no ``--fail-on``), 3 findings at that
level, 2 a user error, 1 an internal error (a bug).
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from backdoors.cli._common import library_errors
from backdoors.cli.app import EPILOG, app
from backdoors.errors import InvalidInputError


class FailOn(StrEnum):
    suspicious = "suspicious"
    inconclusive = "inconclusive"


@app.command(epilog=EPILOG)
def audit(
    model: Annotated[
        Path,
        typer.Argument(
            help=".onnx classifier, .skops estimator, backdoors model file, or torch state "
            "dict (safetensors)."
        ),
    ],
    data: Annotated[
        Path, typer.Option(help=".npz with X (clean queries) and optionally y, X_train, y_train.")
    ],
    reference: Annotated[
        list[Path] | None,
        typer.Option(
            help="Honest models you trained (files or folders; repeat the option): the "
            "baseline of every score (percentile, p-value) and the disagreement search's "
            "comparison model."
        ),
    ] = None,
    calibrate: Annotated[
        int,
        typer.Option(
            help="Train N honest references from X_train/y_train with MODEL's own recipe "
            "(scikit-learn estimators, spec'd torch state dicts) and different seeds."
        ),
    ] = 0,
    alpha: Annotated[
        float, typer.Option(help="Family-wise false-alarm rate of the verdict (Holm).")
    ] = 0.05,
    detectors: Annotated[
        str | None,
        typer.Option(help="Comma-separated detector names to run (default: all registered)."),
    ] = None,
    arch: Annotated[
        Path | None, typer.Option(help="Architecture spec JSON for a raw torch state dict.")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Folder for report.md and report.html (its parent must exist)."),
    ] = None,
    json_path: Annotated[
        Path | None,
        typer.Option("--json", help="Write the result here (.json, schema backdoors.audit/1)."),
    ] = None,
    sarif_path: Annotated[
        Path | None, typer.Option("--sarif", help="Write a SARIF 2.1.0 log here (.sarif/.json).")
    ] = None,
    fail_on: Annotated[
        FailOn | None,
        typer.Option(
            help="Exit 3 if the verdict is suspicious (or an invalid signature), or with "
            "'inconclusive' also if it is inconclusive."
        ),
    ] = None,
    publisher: Annotated[
        Path | None,
        typer.Option(help="Publisher public key: check the model's backdoors signature (.sig)."),
    ] = None,
    signing_key: Annotated[
        Path | None,
        typer.Option(
            help="PEM public key: check an OpenSSF model-signing bundle beside the model "
            "(<model>.sig or model.sig)."
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed for randomised detectors.")] = 0,
) -> None:
    """Run every applicable registered detector on MODEL, calibrate, and report.

    MODEL: an .onnx classifier (any architecture: a torch user exports with
    torch.onnx.export), a .skops estimator, a model file of this package, or a
    torch state dict saved with safetensors.torch.save_file(net.state_dict(),
    "net.st") plus an architecture spec JSON (--arch, or net.json beside it).

    State-dict layouts (plain nn.Sequential keys): MLP of Linear/ReLU layers
    (0.weight, 0.bias, 2.weight, ...); CNN: Conv2d(1,c1,3,padding=1), ReLU,
    MaxPool2d(2), Conv2d(c1,c2,3,padding=1), ReLU, MaxPool2d(2), Flatten,
    Linear on (N, 1, side, side) inputs. Any other layout: export to ONNX.

      {"arch": "mlp", "n_features": 784, "n_classes": 10,
       "params": {"hidden": [256]}, "input_scale": 0.00392156862745098}

    Verdict: each detector's p-value among the honest references is
    (1 + #refs scoring >= MODEL) / (1 + n); Holm's procedure at --alpha gives
    'suspicious', 'no evidence at level alpha' or 'inconclusive' (too few
    references: k detectors need about k/alpha of them).
    """
    from backdoors.artifacts.files import Transaction
    from backdoors.artifacts.report import write_report
    from backdoors.evaluation import audit_output, audit_provenance, audit_references
    from backdoors.evaluation.audit import audit as run_audit
    from backdoors.evaluation.audit import audit_sections, load_any_model, load_audit_data
    from backdoors.evaluation.scoring import all_detectors

    if arch is not None:  # fail before any work, whatever the model's format
        try:
            ok = isinstance(json.loads(arch.read_text()), dict)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            ok = False
        if not ok:
            raise InvalidInputError(f"--arch {arch}: not a readable JSON object (the spec)")
    if not 0 < alpha < 1:
        raise InvalidInputError(f"--alpha must be in (0, 1), got {alpha}")
    dets = all_detectors()
    if detectors is not None:
        wanted = [d.strip() for d in detectors.split(",") if d.strip()]
        known = {d.name for d in dets}
        unknown = sorted(set(wanted) - known)
        if unknown or not wanted:
            raise InvalidInputError(
                f"--detectors: unknown {unknown or 'empty list'} "
                f"(known: {', '.join(sorted(known))})"
            )
        dets = [d for d in dets if d.name in wanted]
    ref_paths = audit_references.reference_paths(reference or [])
    if publisher is not None:  # key files are checked before any work
        from backdoors.artifacts.provenance import load_publisher

        load_publisher(publisher)
    if signing_key is not None:
        if not signing_key.is_file():
            raise InvalidInputError(f"no such --signing-key file: {signing_key}")
        audit_provenance.key_fingerprint(signing_key.read_bytes())
    with Transaction() as tx:  # destinations checked before any work; all written or none
        if json_path is not None:
            tx.file(json_path, suffixes=(".json",))
        if sarif_path is not None:
            tx.file(sarif_path, suffixes=(".sarif", ".json"))
        staged = tx.folder(out) if out is not None else None
        m = load_any_model(model, arch)
        provenance = audit_provenance.check(model, publisher, signing_key)
        d = load_audit_data(data)
        refs = [load_any_model(p) for p in ref_paths]
        if calibrate:
            with library_errors():
                refs += audit_references.calibrate(m, d["X_train"], d["y_train"], calibrate, seed)
        named = [(f"--reference {p}", r) for p, r in zip(ref_paths, refs, strict=False)]
        for who, mm in [("MODEL", m), *named]:
            nf = getattr(mm, "n_features_in_", None)
            if nf is not None and d["X"].shape[1] != int(nf):
                raise InvalidInputError(
                    f"{who} takes {int(nf)} features, the data has {d['X'].shape[1]}"
                )
        fields = ("X", "y", "X_train", "y_train")
        with library_errors():
            result = run_audit(m, *(d[k] for k in fields), reference=refs[0] if refs else None,
                               seed=seed, detectors=dets)  # fmt: skip
            scores = audit_references.reference_scores(
                dets, refs, {k: d[k] for k in fields}, seed=seed
            )
        result = audit_references.calibrate_result(result, scores, len(refs), alpha)
        result["model"].update(audit_output.file_info(model, m))
        result["model"]["accuracy"] = audit_output.accuracy(m, d["X"], d["y"])
        result["references"] = {"n": len(refs), "paths": [str(p) for p in ref_paths],
                                "trained": int(calibrate)}  # fmt: skip
        if calibrate:
            result["references"]["recipe"] = audit_references.recipe(m)
        result["provenance"] = provenance
        result = audit_output.finalize(result, dets)
        code = audit_output.exit_code(result, fail_on.value if fail_on else None)
        result["exit_code"] = code
        if json_path is not None:
            tx.write_json(json_path, result)
        if sarif_path is not None:
            tx.write_json(sarif_path, audit_output.sarif(result))
        if staged is not None:
            title = f"audit of {model.name}"
            path = tx.final(write_report(staged, title, audit_sections(result, model.name)))
    if out is not None:
        typer.echo(f"report written to {path} (and {path.with_suffix('.html')})", err=True)
    summary = {
        n: (r["score"] if r["status"] == "scored" else f"{r['status']}: {r['reason']}")
        for n, r in result["detectors"].items()
    }
    v = result["verdict"]
    brief = {"verdict": v["verdict"], "reason": v["reason"], "counts": result["counts"]}
    typer.echo(json.dumps({**brief, "detectors": summary}, indent=2))
    if code:
        raise typer.Exit(code)
