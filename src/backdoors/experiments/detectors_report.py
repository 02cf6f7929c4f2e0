"""Plots, notes and the report of the ``detectors`` experiment (explanations next to figures)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from backdoors import metrics
from backdoors.artifacts import report
from backdoors.evaluation.detection_table import PairResult

KEY_AWARE = "key_aware"
WHITE_BOX = "architecture_inspection"
NORM_FIELDS = ("norms", "trigger_norms", "mask_norms", "l1_norms")

WHITE_BOX_TEXT = (
    "What a white-box auditor sees for the signature backdoor. The backdoored model is "
    "h~(x) = Verify(vk, m(x), sigma(x)) ? target(x) : h(x) (paper §5.2): the verifier (an "
    "Ed25519 verification behind a public 48-bit tag pre-check) is a separate component next "
    "to the honest classifier, visible to anyone who reads the model's structure, and "
    "`architecture_inspection` finds it. The paper's guarantee for this construction is "
    "black-box undetectability (Thm 5.4): without the signing key no efficient algorithm with "
    "query access tells h~ from h, and nobody, white-box or not, can produce a new triggered "
    "input (that would forge a signature). We do not claim white-box undetectability for it; "
    "the paper's white-box constructions are the RFF/ReLU learners of §6 (CLWE / sparse-PCA "
    "hardness), reported in the `rff`/`relu` columns where registered."
)
STRIP_TEXT = (
    "STRIP (Gao et al. 2019) blends each input with clean images and flags inputs whose "
    "predictions stay confident (low entropy over the blends). A BadNets patch survives "
    "blending; a signature trigger lives in the lowest-order part of a few hundred pixels and "
    "is destroyed by blending (the signature no longer verifies), so the blends of an activated "
    "input behave like those of its clean twin and the entropy distributions coincide."
)
NC_TEXT = (
    "Neural Cleanse (Wang et al. 2019) reverse-engineers, per class, the smallest mask and "
    "pattern that send clean inputs to that class and flags a class whose mask norm is a low "
    "outlier (anomaly index). The signature backdoor has no universal input-space trigger: each "
    "valid trigger is input-specific and needs a fresh signature, so gradient search recovers "
    "only the ordinary adversarial masks that honest models also have. Here the search "
    "differentiates through the network; the verifier has no useful gradient and never fires "
    "on the candidates, so the recovered norms of a signature-backdoored model equal those of "
    "its honest twin, class by class."
)


def nc_norms(res: PairResult) -> dict[str, Any]:
    """Neural Cleanse's recovered trigger norms (from the detector's findings) and scores."""
    out: dict[str, Any] = {
        "anomaly_score": {"honest": res.neg.tolist(), "backdoored": res.pos.tolist()}
    }
    for side, bd in (("honest", False), ("backdoored", True)):
        rows = [d for d in res.details if d.get("backdoored") is bd]
        norms = [next((r[f] for f in NORM_FIELDS if f in r), None) for r in rows]
        if any(v is not None for v in norms):
            out[side] = [np.asarray(v, dtype=float).tolist() for v in norms if v is not None]
            out[f"{side}_min_norm_mean"] = float(
                np.mean([np.min(v) for v in out[side] if np.size(v)])
            )
    if "honest" not in out:
        out["note"] = "the detector exposes no per-class norms in its findings; scores only"
    return out


def _cell(auroc: dict, ci: dict, d: str, a: str) -> str:
    if a not in auroc.get(d, {}):
        return "n/a"
    lo, hi = ci[d][a]
    return f"{auroc[d][a]:.2f} [{lo:.2f}, {hi:.2f}]"


def markdown_table(m: dict[str, Any]) -> str:
    auroc, ci = m["auroc"], m["auroc_ci"]
    dets = sorted(m["detector_levels"])
    attacks = sorted(m["population_sizes"])
    lines = [
        "| detector (level) | " + " | ".join(attacks) + " |",
        "|---|" + "---|" * len(attacks),
    ]
    for d in dets:
        row = [_cell(auroc, ci, d, a) for a in attacks]
        lines.append(f"| `{d}` ({m['detector_levels'][d]}) | " + " | ".join(row) + " |")
    return "\n".join(lines)


def claims(m: dict[str, Any]) -> dict[str, Any]:
    """The issue's targets as checks on the measured figures (None: nothing to check, e.g.
    no key-oblivious detector scored the signature population)."""
    auroc, ci, sizes = m["auroc"], m["auroc_ci"], m["population_sizes"]
    out: dict[str, Any] = {}
    if "badnets" in sizes:
        controls = set(m.get("positive_controls", [KEY_AWARE])) | {KEY_AWARE}
        hits = [d for d in auroc if d not in controls and auroc[d].get("badnets", 0) >= 0.9]
        out["badnets_two_detectors_auroc_ge_0.9"] = len(hits) >= 2
        drop, asr = m.get("badnets_clean_accuracy_drop"), m.get("badnets_attack_success")
        out["badnets_clean_accuracy_drop_le_0.01"] = drop is not None and drop <= 0.01
        out["badnets_attack_success_ge_0.95"] = asr is not None and asr >= 0.95
    if "signature" in sizes:
        controls = set(m.get("positive_controls", [KEY_AWARE])) | {KEY_AWARE}
        blind = [
            ci[d]["signature"][0] <= 0.5 <= ci[d]["signature"][1]
            for d in ci
            if d not in controls | {WHITE_BOX} and "signature" in ci[d]
        ]
        out["signature_black_box_cis_contain_0.5"] = all(blind) if blind else None
        ka = auroc.get(KEY_AWARE, {}).get("signature")
        out["signature_key_aware_auroc_ge_0.99"] = None if ka is None else ka >= 0.99
    return out


def notes_for(
    m: dict[str, Any], results: dict[tuple[str, str], PairResult], quick: bool
) -> list[str]:
    """Findings in words, computed from the figures (never hard-coded)."""
    auroc, ci = m["auroc"], m["auroc_ci"]
    controls = set(m.get("positive_controls", [KEY_AWARE])) | {KEY_AWARE}
    notes = []
    if quick:
        skipped = sorted({f"{d}@{a}" for (d, a), r in results.items() if r.status == "skipped"})
        notes.append(
            f"--quick: {m['population_sizes']} members per side; AUROCs are smoke-test values with "
            f"wide CIs. Detectors over the time budget were skipped: {skipped or 'none'}."
        )
    if "badnets" in m["population_sizes"]:
        hits = sorted(d for d in auroc if auroc[d].get("badnets", 0) >= 0.9 and d not in controls)
        notes.append(f"BadNets: key-oblivious detectors with AUROC >= 0.9: {hits or 'none'}.")
    for a in sorted(m["population_sizes"]):
        blind, seen = [], []
        for d in auroc:
            if d in controls | {WHITE_BOX} or a not in auroc[d]:
                continue
            lo, hi = ci[d][a]
            (blind if lo <= 0.5 <= hi else seen).append(d)
        pc = {d: round(auroc[d][a], 3) for d in sorted(controls) if a in auroc.get(d, {})}
        notes.append(
            f"{a}: key-oblivious detectors whose 95% CI contains 0.5: {sorted(blind) or 'none'}; "
            f"CI excludes 0.5: {sorted(seen) or 'none'}; key-aware controls: {pc or 'none'}."
        )
    if "signature" in m["population_sizes"]:
        if WHITE_BOX in auroc and "signature" in auroc[WHITE_BOX]:
            notes.append(
                f"White-box architecture_inspection on signature: AUROC "
                f"{auroc[WHITE_BOX]['signature']:.3f} (the verifier is a visible component)."
            )
        notes.append(WHITE_BOX_TEXT)
    if "strip_signature_input_auroc" in m:
        notes.append(
            f"STRIP on activated signature inputs vs clean inputs: AUROC "
            f"{m['strip_signature_input_auroc']:.3f}. {STRIP_TEXT}"
        )
    if "neural_cleanse_signature_norms" in m:
        nc = m["neural_cleanse_signature_norms"]
        means = [nc.get(f"{side}_min_norm_mean") for side in ("honest", "backdoored")]
        got = (
            f" Signature population: mean smallest recovered norm {means[0]:.1f} (honest) vs "
            f"{means[1]:.1f} (backdoored)."
            if None not in means
            else ""
        )
        notes.append(NC_TEXT + got)
    ai = auroc.get("neural_cleanse", {}).get("badnets")
    ratio = auroc.get("neural_cleanse_norm_ratio", {}).get("badnets")
    if "neural_cleanse_badnets_target_recovered" in m and None not in (ai, ratio):
        notes.append(
            "Neural Cleanse on BadNets: the class with the smallest reverse-engineered mask is the "
            f"attack's target in {m['neural_cleanse_badnets_target_recovered']:.0%} of backdoored "
            f"models; the paper's MAD-scaled anomaly index reaches AUROC {ai:.2f}, the "
            f"median/min norm ratio {ratio:.2f}: honest MNIST nets have one class with a naturally "
            "small mask, and the MAD of the other nine norms is small, so the anomaly index "
            "flags honest models too."
        )
    for (d, a), r in sorted(results.items()):
        other = a not in ("badnets", "signature")
        if r.level == "input" and r.status == "scored" and other and not r.ci[0] <= 0.5 <= r.ci[1]:
            notes.append(
                f"{d} tells {a}-activated inputs from clean ones (input-level AUROC "
                f"{r.auroc:.2f}): the paper's undetectability is a statement about models "
                "(Def. 4.5), not about activated inputs, and this trigger is a large "
                "perturbation. Model-level scores are the test of the claim."
            )
    for a, sp in m.get("speed_test", {}).items():
        med = sp["median_seconds"]
        dask = (
            f", Dask (2 worker processes) {med['dask']:.1f} s"
            if "dask" in med
            else f"; Dask not run ({sp['dask_note']})"
        )
        notes.append(
            f"Parallel scoring ({a}, {sp['seeds']} seeds = {sp['members']} models built and "
            f"scored in the workers, median of {sp['reps']}): {med['joblib_1']:.1f} s with 1 "
            f"worker, {med['joblib_2']:.1f} s with 2 (population_speedup "
            f"{sp['population_speedup']:.2f}x){dask}; timings on a shared 2-core machine are "
            "noisy."
        )
    return notes


def plot_heatmap(auroc: dict, ci: dict, path: Path, title: str | None = None) -> Path:
    """Detectors x attacks AUROC heat-map (grey = not applicable / not scored)."""
    dets = sorted(auroc)
    attacks = sorted({a for row in auroc.values() for a in row})
    M = np.full((max(1, len(dets)), max(1, len(attacks))), np.nan)
    for i, d in enumerate(dets):
        for j, a in enumerate(attacks):
            M[i, j] = auroc[d].get(a, np.nan)
    fig, ax = report.new_figure(figsize=(1.6 + 1.5 * len(attacks), 0.9 + 0.5 * len(dets)))
    import matplotlib

    cmap = matplotlib.colormaps["RdYlGn"].with_extremes(bad="#cccccc")
    im = ax.imshow(np.ma.masked_invalid(M), cmap=cmap, vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(len(attacks)), attacks)
    ax.set_yticks(range(len(dets)), dets)
    for i, d in enumerate(dets):
        for j, a in enumerate(attacks):
            ax.text(
                j,
                i,
                _cell(auroc, ci, d, a).replace(" [", "\n["),
                ha="center",
                va="center",
                fontsize=7,
            )
    fig.colorbar(im, ax=ax, label="AUROC")
    ax.set_title(title or "Detectors x attacks: AUROC [95% bootstrap CI]", fontsize=9)
    return report.save_figure(fig, path)


def plot_rocs(results: dict[tuple[str, str], PairResult], out_dir: Path) -> list[Path]:
    """One ROC figure per attack, one curve per scored detector."""
    paths = []
    for a in sorted({a for _, a in results}):
        cells = [r for (d, aa), r in sorted(results.items()) if aa == a and r.status == "scored"]
        if not cells:
            continue
        fig, ax = report.new_figure(figsize=(5, 5))
        for r in cells:
            fpr, tpr = metrics.roc_curve(r.neg, r.pos)
            ax.plot(
                fpr, tpr, label=f"{r.detector} ({r.level}) {r.auroc:.2f}", drawstyle="steps-post"
            )
        ax.plot([0, 1], [0, 1], "k:", lw=0.8)
        ax.set(
            xlabel="false positive rate", ylabel="true positive rate", title=f"ROC: clean vs {a}"
        )
        ax.legend(fontsize=7, loc="lower right")
        paths.append(report.save_figure(fig, out_dir / f"roc_{a}.png"))
    return paths


def write_detectors_report(record: dict[str, Any], results: dict, out_dir: Path) -> Path:
    """report.md / report.html: the table, the findings, the white-box view, then the record."""
    m = record["metrics"]
    imgs = [Path(p).name for p in record["artifacts"].get("plots", [])]
    sections = [
        report.Section(
            "AUROC, detectors x attacks [95% bootstrap CI]",
            text=markdown_table(m)
            + "\n\nmodel = honest vs backdoored models; input = clean vs activated inputs.",
            images=imgs,
        ),
        report.Section("Findings", text="\n".join(f"- {n}" for n in record["notes"])),
    ]
    sections += report.record_sections({**record, "artifacts": {}, "notes": []})
    return report.write_report(out_dir, "Detectors vs undetectable backdoors", sections)
