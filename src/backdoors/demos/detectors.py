"""Demo section: the classic detectors catch BadNets and miss the signature backdoor."""

from __future__ import annotations

from backdoors.attacks import ATTACKS
from backdoors.demos import DemoContext, section
from backdoors.detectors import DETECTORS
from backdoors.experiments._detectors_report import STRIP_TEXT, WHITE_BOX_TEXT, plot_heatmap
from backdoors.experiments.detectors import run_table
from backdoors.report import Section

#: Detectors fast enough for the demo (seconds per model); the experiment runs them all.
DEMO_DETECTORS = (
    "weight_stats",
    "strip",
    "strip_model",
    "disagreement_search",
    "spectral_signatures",
    "key_aware",
    "architecture_inspection",
)


@section("detectors", order=40)
def run(ctx: DemoContext) -> Section:
    """Small populations of honest, BadNets and signature-backdoored MNIST MLPs, scored by
    the fast detectors of the suite (AUROC with bootstrap CI)."""
    attacks = [ATTACKS.get(a)() for a in ("badnets", "signature")]
    detectors = [DETECTORS.get(d)() for d in DEMO_DETECTORS]
    n = 3 if ctx.quick else 6
    rec = run_table(
        attacks, detectors, True, ctx.seed, None, n=n, n_jobs=2, timing=False, budget=None
    )
    m = rec["metrics"]
    figures: dict[str, object] = {
        "models per population (honest + backdoored)": 2 * n,
        "BadNets clean-accuracy drop": m["badnets_clean_accuracy_drop"],
        "BadNets attack success": m["badnets_attack_success"],
        "signature attack success": m["attack_success"]["signature"],
    }
    for d in DEMO_DETECTORS:
        for a in ("badnets", "signature"):
            if a in m["auroc"].get(d, {}):
                lo, hi = m["auroc_ci"][d][a]
                figures[f"AUROC {d} / {a}"] = f"{m['auroc'][d][a]:.2f} [{lo:.2f}, {hi:.2f}]"
    below = [
        f"`{d}` on {a} ({m['auroc'][d][a]:.2f})"
        for d in DEMO_DETECTORS
        for a in ("badnets", "signature")
        if a in m["auroc"].get(d, {}) and m["auroc_ci"][d][a][1] < 0.5
    ]
    zero = [
        f"{d}/{a}"
        for d in DEMO_DETECTORS
        for a in ("badnets", "signature")
        if a in m["auroc"].get(d, {}) and m["auroc_ci"][d][a][0] == m["auroc_ci"][d][a][1]
    ]
    title = f"AUROC [95% bootstrap CI] over {n} honest + {n} backdoored models per attack" + (
        " (quick run: intervals are wide)" if ctx.quick else ""
    )
    img = plot_heatmap(
        m["auroc"], m["auroc_ci"], ctx.out_dir / "detectors_heatmap.png", title=title
    )
    text = (
        f"{n} honest and {n} backdoored small MNIST MLPs per attack (BadNets: 4x4 white patch, "
        "all-to-one, poisoned training; signature: the honest net wrapped with an Ed25519 "
        "verifier). Model-level detectors compare honest vs backdoored members; STRIP compares "
        "clean vs activated inputs. The classic detectors were built for BadNets and catch it; "
        "on the signature backdoor every key-oblivious detector sits at chance, only the "
        "key-aware control and the white-box architecture inspection see it. With this few "
        "models the CIs are wide: `backdoors experiment detectors` runs every detector on "
        ">= 20 models per side and adds the RFF and ReLU populations.\n\n"
        "Reading an AUROC: 0.5 is chance, 1 means every backdoored model scored above every "
        "honest one, and 0 that every backdoored model scored *below*: a score well under 0.5 "
        "is not worse than chance but a signal pointing the other way (the detector's "
        "'suspicious' direction is reversed for this attack)."
        + (
            f" Here: {', '.join(below)}, whose whole interval lies below 0.5: the backdoored "
            "models look *less* suspicious to it than the honest ones"
            + (
                " (`strip_model` scores minus the 5th percentile of the blend entropy: the "
                "poisoned models are *less* confident on blended clean inputs than honest ones)"
                if any(b.startswith("`strip_model`") for b in below)
                else ""
            )
            + "."
            if below
            else ""
        )
        + (
            f" An interval of zero width ({', '.join(zero)}) comes from resampling {n} + {n} "
            "scores that separate (or tie) completely; it does not mean certainty: with this "
            "few models the CI is too optimistic."
            if zero
            else ""
        )
        + f"\n\n{STRIP_TEXT}\n\n{WHITE_BOX_TEXT}"
    )
    return Section(
        "Detectors: BadNets vs the signature backdoor",
        text=text,
        metrics=figures,
        images=[img.name],
    )
