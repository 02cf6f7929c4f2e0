"""Differential detector: compare a model with its own deployment forms.

A conditional backdoor (:mod:`backdoors.conditional`) is honest in the form an auditor
inspects and backdoored in the form a user deploys: after int8 post-training quantization
(Egashira et al., arXiv 2405.18137; QuRA, arXiv 2510.09647) or after graph optimisation
(Chen et al., arXiv 2509.11173). This detector builds the forms itself with the standard
tools (:data:`backdoors.conditional.forms.FORMS`: onnxruntime at ``ORT_DISABLE_ALL`` and
``ORT_ENABLE_ALL``, int8 by ``quantize_dynamic`` and by ``quantize_static`` QDQ calibrated on
the auditor's queries) and measures where they disagree with the model as given (PyTorch for
a torch model, onnxruntime's default session for an ONNX file):

* on clean queries, the rate ``d_clean(F) = P[F(x) != f(x)]``;
* on small-margin queries (the quarter of queries with the smallest top-2 probability gap
  under ``f``), the same rate (reported, not scored: honest int8 forms flip there too);
* a search maximising the difference between forms over a family of universal
  perturbations, every square patch of side 3, 4 or 5 at every position at the inputs' top
  value: stage 1 stamps every patch on ``n_probe`` queries and ranks patches by the L1
  distance between the form's and the model's class probabilities; stage 2 stamps the
  ``top_k`` best on ``n_base`` other queries:
  ``d_patch(F) = max_patch P_base[F(x + patch) != f(x + patch)]``.

Score = ``max_F d_patch(F) - d_clean(F)`` over the forms that can be built (an int8 graph
cannot be quantized again: for it only the ``ort`` forms remain, listed in
``findings["not_built"]``): a perturbation that makes a deployed form disagree
with the inspected model on most inputs is the behaviour a conditional trigger has and honest
rounding noise lacks. Limits: a trigger outside the patch family (a blend, a pattern at
another value) is not searched; forms agree bit for bit on the signature backdoor and agree on
BadNets (both forms carry the trigger), so neither shows (expected AUROC 0.5).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from backdoors.conditional import forms as _forms
from backdoors.detectors import Detector, Evidence, register
from backdoors.detectors._access import proba, value_range
from backdoors.errors import NotApplicableError

FORMS = ("ort:disable", "ort:all", "int8:dynamic", "int8:static")


def patch_family(side: int, sizes: tuple[int, ...]) -> list[tuple[int, int, int]]:
    """Every ``(size, row, col)`` square patch inside a ``side x side`` image."""
    return [(s, r, c) for s in sizes for r in range(side - s + 1) for c in range(side - s + 1)]


def stamp_all(base: np.ndarray, patches: list[tuple[int, int, int]], value: float) -> np.ndarray:
    """``base`` (B, side*side) stamped with every patch: shape (P*B, side*side), patch-major."""
    B, d = base.shape
    side = int(round(np.sqrt(d)))
    out = np.repeat(base[None], len(patches), axis=0).reshape(len(patches), B, side, side)
    for i, (s, r, c) in enumerate(patches):
        out[i, :, r : r + s, c : c + s] = value
    return out.reshape(len(patches) * B, d)


@register
class DifferentialDetector(Detector):
    """Disagreement between a model and its deployment forms (see the module docstring)."""

    name = "differential"
    needs = frozenset({"queries"})
    no_control = (
        "its control, a quantization-conditioned MLP and its honest twin, takes tens of "
        "seconds to plant; tests/test_conditional.py scores that pair"
    )

    def __init__(
        self,
        forms: tuple[str, ...] = FORMS,
        n_probe: int = 2,
        top_k: int = 24,
        n_base: int = 16,
        sizes: tuple[int, ...] = (3, 4, 5),
        n_calib: int = 64,
    ) -> None:
        self.forms = forms
        self.n_probe = n_probe
        self.top_k = top_k
        self.n_base = n_base
        self.sizes = sizes
        self.n_calib = n_calib

    def applies_to(self, model: Any) -> bool:
        """Torch classifiers, ONNX classifiers and signature-backdoored wrappers of them (the
        models :func:`backdoors.signature.onnx.export.export` turns into ONNX)."""
        base = getattr(model, "base", None)
        wrapped = hasattr(model, "spec") and base is not None and self.applies_to(base)
        return hasattr(model, "module_") or hasattr(model, "onnx_model") or wrapped

    def findings(self, model: Any, evidence: Evidence) -> dict[str, Any]:
        """Every measured rate per form, the best patch per form, and the score."""
        if evidence.X is None:
            raise NotApplicableError("differential needs queries")
        X = np.asarray(evidence.X)
        proto = _forms.onnx_of(model)
        Xf = X.astype(np.float32)
        built, not_built = {}, {}
        for f in self.forms:  # an int8 graph cannot be quantized again: its float forms remain
            try:
                built[f] = _forms.FORMS.get(f)(proto, Xf[: self.n_calib])
            except NotApplicableError as exc:
                not_built[f] = str(exc)[:200]
        if not built:
            raise NotApplicableError("no deployment form of this model could be built: "
                                     + "; ".join(not_built.values()))  # fmt: skip
        p = proba(model, X)
        ref_clean = np.asarray(model.predict(X))
        top2 = np.sort(p, axis=1)[:, -2:]
        small = np.argsort(top2[:, 1] - top2[:, 0])[: max(1, len(X) // 4)]
        side = int(round(np.sqrt(X.shape[1])))
        out: dict[str, Any] = {"forms": {}, "not_built": not_built}
        best = 0.0
        square = side * side == X.shape[1] and side > max(self.sizes)
        if square:
            _, top = value_range(X)
            rng = np.random.default_rng(evidence.seed)
            order = rng.permutation(len(X))
            patches = patch_family(side, self.sizes)
            probe = stamp_all(X[order[: self.n_probe]], patches, top)
            base = X[order[self.n_probe : self.n_probe + self.n_base]]
            ref_probe = proba(model, probe)
        for name, form in built.items():
            pred = np.asarray(form.predict(Xf))
            rec = {
                "clean": float(np.mean(pred != ref_clean)),
                "small_margin": float(np.mean(pred[small] != ref_clean[small])),
            }
            if square:
                # stage 1: every patch on n_probe inputs, ranked by the L1 distance of the
                # form's probabilities from the model's; stage 2: the top_k on n_base others
                gap = np.abs(proba(form, probe.astype(np.float32)) - ref_probe).sum(axis=1)
                rank = np.argsort(-gap.reshape(len(patches), -1).mean(axis=1))[: self.top_k]
                cand = [patches[i] for i in rank]
                sw = stamp_all(base, cand, top)
                ref = np.asarray(model.predict(sw)).reshape(len(cand), len(base))
                got = np.asarray(form.predict(sw.astype(np.float32))).reshape(ref.shape)
                rates = np.mean(got != ref, axis=1)
                i = int(np.argmax(rates))
                rec["patch"] = float(rates[i])
                rec["best_patch"] = [int(v) for v in cand[i]]
                best = max(best, rec["patch"] - rec["clean"])
            out["forms"][name] = rec
        out["score"] = float(best)
        return out

    def score(self, model: Any, evidence: Evidence) -> float:
        """``max_F d_patch(F) - d_clean(F)`` over the deployment forms."""
        return float(self.findings(model, evidence)["score"])
