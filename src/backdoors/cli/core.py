"""Commands every construction shares: demo, experiment, report, activate, verify."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from backdoors.cli.app import app
from backdoors.errors import CorruptArtifactError, InvalidInputError, NotApplicableError


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Folder for report.md, report.html and PNGs.")] = Path(
        "demo-out"
    ),
    seed: Annotated[int, typer.Option(help="Seed for every random choice.")] = 0,
    quick: Annotated[bool, typer.Option(help="Smaller sizes (for tests).")] = False,
    section: Annotated[list[str] | None, typer.Option(help="Run only these sections.")] = None,
) -> None:
    """Train an MNIST classifier, plant every construction, measure, and write a report."""
    from backdoors.demos import run_demo

    path = run_demo(out, seed=seed, quick=quick, only=section)
    typer.echo(f"report written to {path} (and {path.with_suffix('.html')})")


@app.command()
def experiment(
    name: Annotated[str, typer.Argument(help="Experiment name (see --list).")] = "",
    quick: Annotated[bool, typer.Option(help="Scaled-down run, under 60 s on 2 cores.")] = False,
    json_path: Annotated[Path | None, typer.Option("--json", help="Write the record here.")] = None,
    seed: Annotated[int, typer.Option()] = 0,
    plots: Annotated[Path | None, typer.Option(help="Folder for PNG plots.")] = None,
    list_: Annotated[bool, typer.Option("--list", help="List experiments and exit.")] = False,
) -> None:
    """Run one experiment; print its metrics and write its JSON record."""
    from backdoors import experiments
    from backdoors.records import write_record

    if list_ or not name:
        typer.echo("\n".join(experiments.EXPERIMENTS.names()))
        return
    experiments.EXPERIMENTS.get(name)  # unknown names fail before any work
    if json_path is not None and not json_path.parent.exists():
        raise InvalidInputError(f"folder {json_path.parent} does not exist")
    if plots is None and json_path is not None:
        plots = json_path.parent / f"{json_path.stem}-plots"
    record = experiments.run(name, quick=quick, seed=seed, out_dir=plots)
    if json_path is not None:
        write_record(json_path, record)  # plot paths relative to the record
    typer.echo(json.dumps(record["metrics"], indent=2, default=str))


@app.command()
def report(
    record: Annotated[
        Path, typer.Argument(help="A record written by `backdoors experiment --json`.")
    ],
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("report-out"),
) -> None:
    """Render an experiment record as Markdown and HTML."""
    from backdoors.report import record_sections, write_report

    try:
        rec = json.loads(record.read_text())
        title = f"experiment {rec['experiment']}"
    except (OSError, json.JSONDecodeError, KeyError, TypeError):
        raise CorruptArtifactError(f"{record} is not an experiment record") from None
    sections = record_sections(rec, record_path=record)  # plots resolved beside the record
    typer.echo(f"report written to {write_report(out, title, sections)}")


@app.command()
def activate(
    model: Annotated[Path, typer.Argument(help="Backdoored model file.")],
    key: Annotated[Path, typer.Argument(help="Secret key file (mode 0600).")],
    inputs: Annotated[Path, typer.Argument(help="Inputs (.npy, or .npz with X).")],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Where to write activated inputs (.npy/.npz).")
    ],
    target: Annotated[
        int | None, typer.Option(help="Target class (constructions that choose one).")
    ] = None,
) -> None:
    """Apply the key holder's Activate(x; bk) to every input."""
    from backdoors.io import load_array, load_key, load_model, save_array

    k = load_key(key)
    m = load_model(model)
    k.check_model(m)
    X = load_array(inputs)
    X_adv = k.activate(X, target=target)
    save_array(out, X_adv)
    typer.echo(f"{len(X_adv)} activated inputs written to {out}")


@app.command()
def verify(
    model: Annotated[Path, typer.Argument(help="Backdoored model file.")],
    inputs: Annotated[Path, typer.Argument(help="Inputs (.npy, or .npz with X).")],
) -> None:
    """Report which inputs carry a valid backdoor trigger (public check; no key needed)."""
    from backdoors.io import load_array, load_model

    m = load_model(model)
    if not hasattr(m, "verify"):
        raise NotApplicableError(f"{type(m).__name__} has no public trigger check")
    X = load_array(inputs)
    targets = m.verify(X)
    n = int((targets >= 0).sum())
    typer.echo(json.dumps({"inputs": len(X), "triggered": n, "targets": targets.tolist()[:50]}))


@app.command()
def predict(
    model: Annotated[Path, typer.Argument(help="Model file.")],
    inputs: Annotated[Path, typer.Argument(help="Inputs (.npy, or .npz with X).")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write labels (.npy).")] = None,
) -> None:
    """Predict labels with a saved model."""
    import numpy as np

    from backdoors.io import load_array, load_model, save_array

    y = np.asarray(load_model(model).predict(load_array(inputs)))
    if out is not None:
        save_array(out, y)
    typer.echo(json.dumps({"inputs": len(y), "labels": y.tolist()[:50]}))
