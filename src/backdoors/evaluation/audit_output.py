"""What ``backdoors audit`` hands to a pipeline: a versioned JSON document, SARIF 2.1.0, exit codes.

The JSON document (``--json``) follows the JSON Schema shipped with the package
(``backdoors/schemas/audit-1.schema.json``, :func:`json_schema`); its ``schema`` field names the
version (:data:`SCHEMA_ID`), bumped on any incompatible change. Per detector (``detectors``,
keyed by the detector id): ``applicable`` or the ``reason`` it is not, the ``score`` on the
detector's own scale, and with honest references the audited model's ``reference_percentile``
and ``p_value`` (:mod:`backdoors.evaluation.calibration`), and ``findings`` (one string each). The
model
file is identified by ``sha256``, ``size``, ``format`` and ``io_ports`` (inputs and outputs as the
ONNX model hub's manifest writes them: ``name``, ``shape``, ``type``).

SARIF (``--sarif``, OASIS SARIF 2.1.0): one rule per detector (rule id ``backdoors/<detector>``,
stable across versions) plus ``backdoors/verdict`` and ``backdoors/provenance``; the model file is
the run's one artifact with its SHA-256. Levels: ``error`` for a detector Holm rejects (and the
verdict ``suspicious``, and a signature that fails), ``warning`` for an ``inconclusive`` verdict;
everything else is a result of kind ``pass`` (checked against references, or a valid signature),
``informational`` or ``notApplicable``, level ``none``.

Exit codes (:data:`EXIT_FINDINGS`): 0 no finding at the ``--fail-on`` level, 3 findings at that
level, 2 a user error, 1 an internal error.
"""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path
from typing import Any

from backdoors import __version__
from backdoors.evaluation.calibration import INCONCLUSIVE, SUSPICIOUS

SCHEMA_ID = "backdoors.audit/1"
SARIF_SCHEMA_URI = "https://json.schemastore.org/sarif-2.1.0.json"
INFO_URI = "https://github.com/backdoors/backdoors"
EXIT_FINDINGS = 3
#: --fail-on levels -> the SARIF levels that count as a finding
FAIL_ON = {"suspicious": ("error",), "inconclusive": ("error", "warning")}


def json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of the ``--json`` document."""
    text = resources.files("backdoors").joinpath("schemas/audit-1.schema.json").read_text()
    return json.loads(text)


def file_info(path: str | Path, model: Any) -> dict[str, Any]:
    """``path``, ``sha256``, ``size`` (bytes), ``format`` and ``io_ports`` of a model file."""
    path = Path(path)
    data = path.read_bytes()
    return {
        "path": str(path),
        "sha256": hashlib.sha256(data).hexdigest(),
        "size": len(data),
        "format": file_format(path, data),
        "io_ports": io_ports(model),
    }


def file_format(path: Path, data: bytes) -> str:
    """``onnx``, ``skops``, ``safetensors`` (a model of this package) or ``torch-state-dict``."""
    suffix = path.suffix.lower()
    if suffix in (".onnx", ".skops"):
        return suffix[1:]
    return "safetensors" if b"backdoors.format" in data[:65536] else "torch-state-dict"


def _port(name: str, shape: list[Any], type_: str) -> dict[str, Any]:
    return {"name": name, "shape": shape, "type": type_}


def io_ports(model: Any) -> dict[str, list[dict[str, Any]]]:
    """Inputs and outputs, ONNX hub manifest style: ``{"inputs": [{name, shape, type}], ...}``.
    ONNX graphs: their declared inputs and outputs (symbolic dimensions by name); other models:
    one input ``X`` of ``n_features_in_`` features and one output of labels."""
    proto = getattr(model, "onnx_model", None)
    if proto is not None:
        import onnx

        inits = {t.name for t in proto.graph.initializer}

        def ports(values: Any) -> list[dict[str, Any]]:
            out = []
            for v in values:
                if v.name in inits:
                    continue
                t = v.type
                if t.HasField("tensor_type"):
                    dims = [d.dim_param if d.dim_param else d.dim_value
                            for d in t.tensor_type.shape.dim]  # fmt: skip
                    elem = onnx.helper.tensor_dtype_to_string(t.tensor_type.elem_type)
                    typ = "tensor(" + elem.removeprefix("TensorProto.").lower() + ")"
                    typ = typ.replace("(float32)", "(float)")
                    out.append(_port(v.name, dims, typ))
                else:
                    out.append(_port(v.name, [], onnx.helper.printable_type(t)))
            return out

        return {"inputs": ports(proto.graph.input), "outputs": ports(proto.graph.output)}
    nf = getattr(model, "n_features_in_", None)
    return {
        "inputs": [_port("X", ["N", None if nf is None else int(nf)], "tensor(float)")],
        "outputs": [_port("label", ["N"], "tensor(label)")],
    }


def findings(row: dict[str, Any]) -> list[str]:
    """A detector's findings as strings: its ``findings`` list if it reports one, else its
    scalar details (``key=value``)."""
    d = dict(row.get("details") or {})
    listed = d.get("findings")
    if isinstance(listed, list):
        return [str(f) for f in listed]
    flat = {k: v for k, v in d.items() if isinstance(v, int | float | str) and k != "seed"}
    flat.update(d.get("variants") or {})
    return [f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in flat.items()]


def meaning(det: Any) -> str:
    """What a detector's score means: the first paragraph of its class (or module) docstring."""
    import inspect
    import sys

    def first(doc: str | None) -> str:  # the first paragraph, and the second if it is short
        paras = [" ".join(p.split()) for p in (doc or "").split("\n\n")]
        return " ".join(paras[:2]) if len(paras[0]) < 120 else paras[0]

    mod = first(inspect.getdoc(sys.modules[type(det).__module__]))
    cls = first(inspect.getdoc(type(det)))
    if cls.startswith("Base class") or cls in mod:
        cls = ""
    return " ".join(p for p in (mod, cls) if p)[:800]


def accuracy(model: Any, X: Any, y: Any) -> float | None:
    """Share of ``X`` the model labels as ``y`` (None without labels)."""
    import numpy as np

    if y is None:
        return None
    pred = np.asarray(model.predict(X))
    y = np.asarray(y)
    if pred.dtype.kind != y.dtype.kind and pred.dtype.kind in "US":
        y = y.astype(pred.dtype)
    return float(np.mean(pred == y))


def finalize(result: dict[str, Any], detectors: list[Any] = ()) -> dict[str, Any]:
    """Add the schema id, tool, and per-detector ``id`` / ``applicable`` / ``findings`` /
    ``meaning`` fields."""
    result = {"schema": SCHEMA_ID, "tool": {"name": "backdoors", "version": __version__},
              **result}  # fmt: skip
    means = {d.name: meaning(d) for d in detectors}
    for name, row in result["detectors"].items():
        row["id"] = name
        if name in means:
            row["meaning"] = means[name]
        row["applicable"] = row["status"] != "not_applicable"
        row.setdefault("reference_percentile", None)
        row.setdefault("p_value", None)
        row["findings"] = findings(row)
    result.setdefault("provenance", [])
    return result


def detector_level(result: dict[str, Any], name: str) -> str:
    """SARIF level of one detector's result: ``error`` if Holm rejects its H0, else ``note``."""
    v = result.get("verdict") or {}
    return "error" if name in (v.get("rejected") or []) else "note"


def verdict_level(result: dict[str, Any]) -> str:
    v = (result.get("verdict") or {}).get("verdict")
    return {SUSPICIOUS: "error", INCONCLUSIVE: "warning"}.get(v, "note")


def _message(row: dict[str, Any]) -> str:
    if row["status"] != "scored":
        return f"{row['status'].replace('_', ' ')}: {row['reason']}"
    text = f"score {row['score']:.6g}"
    if row.get("p_value") is not None:
        n = len(row["reference_scores"])
        pct, pv = row["reference_percentile"], row["p_value"]
        text += f"; {pct:.1f}th percentile of {n} honest references, p = {pv:.4g}"
    found = row.get("findings") or []
    return text + (f"; findings: {'; '.join(found)}" if found else "")


def sarif(result: dict[str, Any]) -> dict[str, Any]:
    """The audit as a SARIF 2.1.0 log (one run, one artifact: the model file)."""
    model = result["model"]
    loc = [{"physicalLocation": {"artifactLocation": {"uri": Path(model["path"]).as_posix(),
                                                      "index": 0}}}]  # fmt: skip
    rules = [{"id": f"backdoors/{n}", "name": n,
              "shortDescription": {"text": f"backdoor detector {n}"},
              "fullDescription": {"text": row.get("meaning") or f"detector {n}"}}
             for n, row in result["detectors"].items()]  # fmt: skip
    rules += [
        {"id": "backdoors/verdict", "name": "verdict",
         "shortDescription": {"text": "calibrated verdict (Holm over detector p-values)"}},
        {"id": "backdoors/provenance", "name": "provenance",
         "shortDescription": {"text": "signature beside the model: who published it (not that "
                                      "it is clean)"}},
    ]  # fmt: skip
    results = []
    for i, (n, row) in enumerate(result["detectors"].items()):
        res: dict[str, Any] = {"ruleId": f"backdoors/{n}", "ruleIndex": i,
                               "message": {"text": _message(row)}, "locations": loc}  # fmt: skip
        if row["status"] != "scored":
            res["kind"], res["level"] = "notApplicable", "none"
        elif detector_level(result, n) == "error":
            res["level"] = "error"  # kind "fail"
        else:  # scored, not flagged: a pass against references, else information only
            res["kind"] = "pass" if row.get("p_value") is not None else "informational"
            res["level"] = "none"
        res["properties"] = {k: row.get(k) for k in
                             ("score", "p_value", "reference_percentile", "status")}  # fmt: skip
        results.append(res)
    v = result.get("verdict")
    if v is not None:
        lv = verdict_level(result)
        results.append({"ruleId": "backdoors/verdict", "ruleIndex": len(rules) - 2,
                        **({"level": lv} if lv != "note" else {"kind": "pass", "level": "none"}),
                        "message": {"text": f"{v['verdict']}: {v['reason']}"},
                        "locations": loc, "properties": {"alpha": v["alpha"]}})  # fmt: skip
    for p in result.get("provenance") or []:
        kind = {False: {"level": "error"}, True: {"kind": "pass", "level": "none"}}.get(
            p["valid"], {"kind": "informational", "level": "none"})  # fmt: skip
        results.append({"ruleId": "backdoors/provenance", "ruleIndex": len(rules) - 1, **kind,
                        "message": {"text": p["message"]}, "locations": loc})  # fmt: skip
    run = {
        "tool": {"driver": {"name": "backdoors", "version": __version__,
                            "informationUri": INFO_URI, "rules": rules}},
        "artifacts": [{"location": {"uri": Path(model["path"]).as_posix()},
                       "length": model["size"], "hashes": {"sha-256": model["sha256"]},
                       "roles": ["analysisTarget"]}],
        "invocations": [{"executionSuccessful": True,
                         "exitCode": result.get("exit_code", 0)}],
        "results": results,
    }  # fmt: skip
    return {"$schema": SARIF_SCHEMA_URI, "version": "2.1.0", "runs": [run]}


def exit_code(result: dict[str, Any], fail_on: str | None) -> int:
    """0, or :data:`EXIT_FINDINGS` when ``fail_on`` is given and a finding reaches its level
    (``suspicious``: a suspicious verdict or an invalid signature; ``inconclusive``: also an
    inconclusive verdict)."""
    if fail_on is None:
        return 0
    levels = FAIL_ON[fail_on]
    bad_sig = any(p["valid"] is False for p in result.get("provenance") or [])
    hit = verdict_level(result) in levels or ("error" in levels and bad_sig)
    return EXIT_FINDINGS if hit else 0
