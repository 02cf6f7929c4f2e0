"""Experiment records: one JSON-able dict per run with ``experiment``, ``params``, ``seed``,
``versions``, ``metrics``, ``timings`` (DESIGN.md, Contracts: Records)."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

_PACKAGES = (
    "backdoors",
    "numpy",
    "scipy",
    "scikit-learn",
    "torch",
    "pynacl",
    "safetensors",
    "skops",
    "fpylll",
)


def versions() -> dict[str, str]:
    """Versions of Python, the platform and the packages that shape results."""
    out = {"python": platform.python_version(), "platform": platform.platform()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


#: What a figure means when its name alone does not say (unit, scale): metric or detector name
#: (the last part of a dotted key) -> note shown beside it in reports. A record can add its own
#: in ``record["units"]``.
UNITS: dict[str, str] = {
    "perturbation_linf": "largest |x' - x| over all features, in the input's own units "
    "(MNIST: grey levels of 0..255)",
    "perturbation_linf_levels": "perturbation_linf / carrier_bound_linf: in carrier steps "
    "(1 = one grey level for the lsb carrier, one quantisation step for the float carrier)",
    "perturbation_linf_grey_levels": "largest |x' - x| over all pixels, in grey levels of 0..255",
    "perturbation_linf_over_feature_scale": "perturbation_linf / median |feature|",
    "carrier_bound_linf": "largest change the carrier may make to one feature, input units",
    "carrier_bound_l0": "most features the carrier may change",
    "perturbation_l0": "number of features (pixels) changed",
    "perturbation_l2_over_x": "||x' - x||_2 / ||x||_2 (no unit)",
    "perturbation_l2": "||x' - x||_2 in input units",
    "architecture_inspection": "count of non-network components found in the model object "
    "(verification routines, attributes named like keys/verifiers/carriers, raw key bytes); "
    "0 for a bare network, not a probability",
}


class Timer:
    """Collects named wall-clock timings: ``with timer("fit"): ...``."""

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - t0


def make_record(
    experiment: str,
    params: dict[str, Any],
    seed: int,
    metrics: dict[str, Any],
    timings: dict[str, float],
    artifacts: dict[str, Any] | None = None,
    notes: list[str] | None = None,
    units: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Assemble the record every experiment returns (``units``: notes for figures whose name
    does not give their unit, shown by reports beside :data:`UNITS`)."""
    extra = {"units": dict(units)} if units else {}
    return {
        "experiment": experiment,
        "params": params,
        "seed": seed,
        "versions": versions(),
        "metrics": metrics,
        "timings": timings,
        "artifacts": artifacts or {},
        "notes": notes or [],
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **extra,
    }


# --------------------------------------------------------------------------------------------
# files a record points to
# --------------------------------------------------------------------------------------------
#: ``artifacts`` entries that hold file paths (a path or a list of paths).
PATH_ARTIFACTS = ("plots", "report")


def _rel(p: str, base: Path) -> str:
    q = Path(p).absolute()
    try:
        return Path(os.path.relpath(q, base.absolute())).as_posix()
    except ValueError:  # another drive (Windows): keep it absolute
        return str(q)


def relative_to_record(record: dict[str, Any], record_path: str | os.PathLike) -> dict[str, Any]:
    """A copy of ``record`` whose artifact paths are relative to the folder of
    ``record_path`` (paths in the record are taken relative to the current directory, where
    the experiment ran), so the record and its plots can move together."""
    base = Path(record_path).parent
    arts = dict(record.get("artifacts") or {})
    for k in PATH_ARTIFACTS:
        v = arts.get(k)
        if isinstance(v, str | os.PathLike):
            arts[k] = _rel(os.fspath(v), base)
        elif isinstance(v, list | tuple):
            arts[k] = [_rel(os.fspath(p), base) for p in v]
    return {**record, "artifacts": arts}


def write_record(path: str | os.PathLike, record: dict[str, Any]) -> Path:
    """Write ``record`` as JSON at ``path`` with its plot paths relative to ``path``."""
    from backdoors.artifacts.files import write_json

    return write_json(path, relative_to_record(record, path))


def plot_files(
    record: dict[str, Any], record_path: str | os.PathLike | None = None
) -> tuple[list[Path], list[str]]:
    """The record's plots as existing files, and the entries that could not be found.

    A relative path is looked up beside the record first (how :func:`write_record` stores
    it), then in the current directory (records written before plots were relative to the
    record); an absolute path is used as it is, or else by its name beside the record.
    """
    base = Path(record_path).parent if record_path is not None else Path(".")
    found: list[Path] = []
    missing: list[str] = []
    for entry in (record.get("artifacts") or {}).get("plots") or []:
        p = Path(str(entry))
        tries = [p, base / p.name] if p.is_absolute() else [base / p, p]
        hit = next((t for t in tries if t.is_file()), None)
        if hit is None:
            missing.append(str(entry))
        else:
            found.append(hit)
    return found, missing
