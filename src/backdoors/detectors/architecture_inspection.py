"""White-box architecture inspection: does the model contain anything but an ordinary network?

The signature backdoor (paper §5.2) is black-box undetectable, but it is realised as an honest
classifier *plus* a separate verifier. An auditor with the object in hand walks its components
and flags anything that is not an ordinary learned network: callables named like verifiers
(``verify``, ``check``), public/verification keys (byte strings or attributes named ``*key*``),
signature carriers. Generic: no isinstance test on this package's classes. Score = number of
such findings (0 for a bare network or scikit-learn estimator), returned as its findings.
An inference runtime's handle on the model (an onnxruntime session, which holds the graph's
bytes) is not a component: the ONNX graph itself is what ``onnx_graph_inspection`` reads.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from backdoors.detectors import Control, Detector, Evidence, Report, register

SUSPICIOUS_METHODS = ("verify", "verify_signature", "check_signature", "extract")
SUSPICIOUS_WORDS = ("key", "verif", "signature", "carrier", "trigger")
#: modules of inference runtimes whose objects hold the model, not a component of it
RUNTIMES = ("onnxruntime",)


def _is_network(obj: Any) -> bool:
    try:
        from torch import nn

        if isinstance(obj, nn.Module):
            return True
    except ImportError:  # pragma: no cover
        pass
    return hasattr(obj, "coef_") or (hasattr(obj, "module_") and hasattr(obj, "predict"))


def inspect_model(model: Any, max_depth: int = 3) -> list[str]:
    """Findings about non-network components of ``model`` (recursing into ``base``-like parts)."""
    findings: list[str] = []
    seen: set[int] = set()

    def walk(obj: Any, path: str, depth: int) -> None:
        if id(obj) in seen or depth > max_depth or obj is None:
            return
        if type(obj).__module__.split(".")[0] in RUNTIMES:
            return
        seen.add(id(obj))
        if _is_network(obj) and path != "model":
            return
        for m in SUSPICIOUS_METHODS:
            if callable(getattr(type(obj), m, None)):
                findings.append(f"{path}.{m}() (a verification routine, not a network)")
        attrs = getattr(obj, "__dict__", {})
        for name, val in attrs.items():
            low = name.lower()
            if any(w in low for w in SUSPICIOUS_WORDS) and val is not None:
                findings.append(f"{path}.{name}: {type(val).__name__}")
            if isinstance(val, bytes | bytearray) and len(val) >= 16:
                findings.append(f"{path}.{name}: {len(val)} raw bytes")
            if not isinstance(val, str | bytes | int | float | np.ndarray | list | dict | tuple):
                walk(val, f"{path}.{name}", depth + 1)

    walk(model, "model", 0)
    return sorted(set(findings))


@register
class ArchitectureInspection(Detector):
    name = "architecture_inspection"
    needs = frozenset({"weights"})

    def score(self, model: Any, evidence: Evidence) -> Report:
        findings = inspect_model(model)
        return Report(float(len(findings)), {"findings": findings})

    @classmethod
    def positive_control(cls) -> Control | None:
        from backdoors.detectors import _controls as controls

        return controls.signature_pair()
