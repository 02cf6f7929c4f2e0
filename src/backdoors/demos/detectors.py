"""Demo section: the classic detectors catch BadNets and miss the signature backdoor."""

from __future__ import annotations

from backdoors.artifacts.report import Section
from backdoors.demos import DemoContext, section
from backdoors.detectors import DETECTORS
from backdoors.evaluation.recipes import ATTACKS
from backdoors.experiments.detectors import run_table
from backdoors.experiments.detectors_report import STRIP_TEXT, WHITE_BOX_TEXT, plot_heatmap

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
        ">= 20 models per side and adds the RFF, ReLU and conditional populations. The "
        "conditional backdoors (a model honest in float32 and backdoored once quantized to int8, "
        "or once onnxruntime optimises its graph; `backdoors experiment conditional`) escape "
        "every detector that reads the float model alone; the `differential` detector, which "
        "builds the deployment forms itself and compares them, separates them.\n\n"
        + reading_aurocs(m["auroc"], m["auroc_ci"], n)
        + f"\n\n{STRIP_TEXT}\n\n{WHITE_BOX_TEXT}"
    )
    return Section(
        "Detectors: BadNets vs the signature backdoor",
        text=text,
        metrics=figures,
        images=[img.name],
    )


def reading_aurocs(auroc: dict, ci: dict, n: int) -> str:
    """How to read the table: chance, AUROCs well below 0.5 (the score points the other way,
    or chance if the interval reaches 0.5) and zero-width bootstrap intervals."""
    cells = [(d, a) for d in sorted(auroc) for a in sorted(auroc[d])]
    low = []
    for d, a in cells:
        if auroc[d][a] < 0.4:
            lo, hi = ci[d][a]
            why = "the whole interval is below 0.5" if hi < 0.5 else "its interval reaches 0.5"
            low.append(f"`{d}` on {a}: {auroc[d][a]:.2f} [{lo:.2f}, {hi:.2f}], {why}")
    zero = [f"{d}/{a}" for d, a in cells if ci[d][a][0] == ci[d][a][1]]
    text = (
        "Reading an AUROC: 0.5 is chance, 1 means every backdoored model scored above every "
        "honest one, and 0 that every backdoored model scored *below*: a value well under 0.5 "
        "is not worse than chance but a signal pointing the other way (the detector's "
        "'suspicious' direction is reversed for this attack)."
    )
    if low:
        text += (
            " Here: " + "; ".join(low) + ". Below 0.5 means the backdoored models looked "
            "*less* suspicious to that detector than the honest ones"
        )
        if any(x.startswith("`strip_model`") for x in low):
            text += (
                " (`strip_model` scores minus the 5th percentile of the blend entropy: lower "
                "means the model is less confident on blended clean inputs)"
            )
        text += "; an interval that reaches 0.5 leaves it compatible with chance."
    if zero:
        text += (
            f" An interval of zero width ({', '.join(zero)}) comes from resampling {n} + {n} "
            "scores that separate (or tie) completely; it does not mean certainty: with this "
            "few models the bootstrap interval is too optimistic."
        )
    return text
