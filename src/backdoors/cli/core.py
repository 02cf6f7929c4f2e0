"""Commands every construction shares: demo, experiment, report, activate, verify, predict.

Every command writes its outputs as one :class:`backdoors.artifacts.files.Transaction`: the
destinations
are checked and reserved before any work, and the files appear together at the end or not
at all (see ``backdoors --help`` for the rules)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from backdoors.cli._common import (
    ARRAY_SUFFIXES,
    PUBLISHER_HELP,
    library_errors,
    load_inputs,
    load_key,
    load_model,
)
from backdoors.cli.app import EPILOG, app
from backdoors.errors import CorruptArtifactError, InvalidInputError, NotApplicableError


@app.command(epilog=EPILOG)
def demo(
    out: Annotated[
        Path, typer.Option(help="Folder for report.md, report.html and PNGs (parent must exist).")
    ] = Path("demo-out"),
    seed: Annotated[int, typer.Option(help="Seed for every random choice.")] = 0,
    quick: Annotated[bool, typer.Option(help="Smaller sizes (for tests).")] = False,
    section: Annotated[list[str] | None, typer.Option(help="Run only these sections.")] = None,
) -> None:
    """Train an MNIST classifier, plant every construction, measure, and write a report."""
    from backdoors.artifacts.files import Transaction
    from backdoors.demos import SECTIONS, run_demo

    for name in section or ():
        SECTIONS.get(name)  # unknown names fail before any work
    with Transaction() as tx:
        staged = tx.folder(out)
        path = tx.final(run_demo(staged, seed=seed, quick=quick, only=section))
    typer.echo(f"report written to {path} (and {path.with_suffix('.html')})")


def _final_plot_paths(record: dict[str, Any], tx: Any) -> dict[str, Any]:
    """Artifact paths (plots, report) of a record written into a staging folder, renamed to
    their final place."""
    from backdoors.artifacts.records import PATH_ARTIFACTS

    arts = dict(record.get("artifacts") or {})
    for k in PATH_ARTIFACTS:
        if isinstance(arts.get(k), list):
            arts[k] = [str(tx.final(p)) for p in arts[k]]
        elif isinstance(arts.get(k), str):
            arts[k] = str(tx.final(arts[k]))
    return {**record, "artifacts": arts}


@app.command(epilog=EPILOG)
def experiment(
    name: Annotated[str, typer.Argument(help="Experiment name (see --list).")] = "",
    quick: Annotated[bool, typer.Option(help="Scaled-down run, under 60 s on 2 cores.")] = False,
    json_path: Annotated[
        Path | None,
        typer.Option("--json", help="Write the record here (.json; its folder must exist)."),
    ] = None,
    seed: Annotated[int, typer.Option()] = 0,
    plots: Annotated[
        Path | None,
        typer.Option(help="Folder for PNG plots (default: <json stem>-plots beside the record)."),
    ] = None,
    list_: Annotated[bool, typer.Option("--list", help="List experiments and exit.")] = False,
) -> None:
    """Run one experiment; print its metrics and write its JSON record."""
    from backdoors import experiments
    from backdoors.artifacts.files import Transaction
    from backdoors.artifacts.records import relative_to_record

    if list_ or not name:
        typer.echo("\n".join(experiments.EXPERIMENTS.names()))
        return
    experiments.EXPERIMENTS.get(name)  # unknown names fail before any work
    if plots is None and json_path is not None:
        plots = json_path.parent / f"{json_path.stem}-plots"
    with Transaction() as tx:
        if json_path is not None:
            tx.file(json_path, suffixes=(".json",))
        staged = tx.folder(plots) if plots is not None else None
        record = experiments.run(name, quick=quick, seed=seed, out_dir=staged)
        if staged is not None and not any(staged.iterdir()):
            tx.discard(plots)  # no plots: no empty folder
        record = _final_plot_paths(record, tx)
        if json_path is not None:
            tx.write_json(json_path, relative_to_record(record, json_path))
    typer.echo(json.dumps(record["metrics"], indent=2, default=str))


@app.command(epilog=EPILOG)
def report(
    record: Annotated[
        Path, typer.Argument(help="A record written by `backdoors experiment --json`.")
    ],
    out: Annotated[Path, typer.Option(help="Output folder (its parent must exist).")] = Path(
        "report-out"
    ),
) -> None:
    """Render an experiment record as Markdown and HTML."""
    from backdoors.artifacts.files import Transaction
    from backdoors.artifacts.report import record_sections, write_report

    if not record.is_file():
        raise InvalidInputError(f"no such record file: {record}")
    try:
        rec = json.loads(record.read_text())
        title = f"experiment {rec['experiment']}"
        sections = record_sections(rec, record_path=record)  # plots resolved beside the record
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, AttributeError):
        raise CorruptArtifactError(f"{record} is not an experiment record") from None
    with Transaction() as tx:
        path = tx.final(write_report(tx.folder(out), title, sections))
    typer.echo(f"report written to {path}")


@app.command(epilog=EPILOG)
def activate(
    model: Annotated[Path, typer.Argument(help="Backdoored model file.")],
    key: Annotated[Path, typer.Argument(help="Secret key file (mode 0600).")],
    inputs: Annotated[Path, typer.Argument(help="Inputs (.npy, or .npz with X).")],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Where to write activated inputs (.npy/.npz).")
    ],
    target: Annotated[
        int | None,
        typer.Option(
            help="Target class index, 0 .. n_classes - 1 (for a model with named labels, the "
            "label's position in its classes): required by targeted backdoors (signature, "
            "checksum-net); flip backdoors (rff, relu) take none."
        ),
    ] = None,
    publisher: Annotated[Path | None, typer.Option(help=PUBLISHER_HELP)] = None,
) -> None:
    """Apply the key holder's Activate(x; bk) to every input."""
    from backdoors.artifacts.files import Transaction

    with Transaction() as tx:
        tx.file(out, suffixes=ARRAY_SUFFIXES)
        k = load_key(key)
        m = load_model(model, publisher)
        k.check_model(m)
        X = load_inputs(inputs)
        X_adv = k.activate(X, target=target)  # validates --target (contract.check_target)
        tx.save_array(out, X_adv)
    typer.echo(f"{len(X_adv)} activated inputs written to {out}")


@app.command()
def verify(
    model: Annotated[Path, typer.Argument(help="Backdoored model file.")],
    inputs: Annotated[
        Path, typer.Argument(help="Inputs (.npy, or .npz with X): numeric, finite, non-empty.")
    ],
    publisher: Annotated[Path | None, typer.Option(help=PUBLISHER_HELP)] = None,
) -> None:
    """Report which inputs carry a valid backdoor trigger (public check; no key needed)."""
    m = load_model(model, publisher)
    if hasattr(m, "onnx_model"):
        raise NotApplicableError(
            f"{model} is an ONNX file: its trigger check runs inside the graph (use predict); "
            "the file holds no public trigger spec to check inputs against"
        )
    if not hasattr(m, "verify"):
        raise NotApplicableError(f"{type(m).__name__} has no public trigger check")
    X = load_inputs(inputs)  # the same input rules as predict and activate
    targets = m.verify(X)
    n = int((targets >= 0).sum())
    typer.echo(json.dumps({"inputs": len(X), "triggered": n, "targets": targets.tolist()[:50]}))


@app.command(epilog=EPILOG)
def predict(
    model: Annotated[Path, typer.Argument(help="Model file.")],
    inputs: Annotated[Path, typer.Argument(help="Inputs (.npy, or .npz with X).")],
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Write labels: .npy, or .npz holding y."),
    ] = None,
    publisher: Annotated[Path | None, typer.Option(help=PUBLISHER_HELP)] = None,
) -> None:
    """Predict labels with a saved model."""
    import io as _io

    import numpy as np

    from backdoors.artifacts.files import Transaction

    with Transaction() as tx:
        if out is not None:
            tx.file(out, suffixes=ARRAY_SUFFIXES)
        m = load_model(model, publisher)
        X = load_inputs(inputs)
        with library_errors():
            y = np.asarray(m.predict(X))
        if out is not None:
            buf = _io.BytesIO()
            np.savez(buf, y=y) if out.suffix == ".npz" else np.save(buf, y, allow_pickle=False)
            tx.write_bytes(out, buf.getvalue())
    typer.echo(json.dumps({"inputs": len(y), "labels": y.tolist()[:50]}))
