"""Neural Cleanse (Wang et al., IEEE S&P 2019, §IV).

For every class t (§IV.B, Eq. 2-3) reverse-engineer the smallest trigger that sends clean
inputs to t: x' = (1 - m) * x + m * p with mask m in [0,1]^d and pattern p in [lo,hi]^d,
minimising CE(f(x'), t) + lambda * |m|_1 by Adam (m, p through a sigmoid). As in the paper's
optimisation, lambda is adjusted on the fly: multiplied by 1.5 while the candidate reaches the
attack-success threshold (99% of the inputs classified t), divided by 1.5 while it does not;
the class's norm is the smallest L1 mask norm seen among successful candidates (d if none).
§IV.C: the norms are compared with their median absolute deviation; the anomaly index of the
smallest is (median - min) / (1.4826 * MAD) (1.4826 makes MAD consistent for a normal
distribution; the paper flags a model when the index exceeds 2). The model score is that
anomaly index; the per-class norms are in ``findings["norms"]``, and the variant
``norm_ratio`` = median / min (the same outlier, scaled by the median instead of the MAD) is
reported beside it as its own table row (``findings["variants"]``).

The input range ``[lo, hi]`` is the clean queries' (``_access.value_range``: ``[0, 255]`` for
uint8 pixels, else their observed min and max) and the classes are the model's
(``len(model.classes_)``, else the width of the network's output).

Budget: ``steps`` Adam steps per class on ``n_inputs`` clean inputs (the paper runs to
convergence with early stopping).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from backdoors.detectors import Control, Detector, Evidence, Report, register
from backdoors.detectors._access import torch_module, value_range

MAD_CONSISTENCY = 1.4826


def anomaly_index(norms: np.ndarray) -> float:
    """(median - min) / (1.4826 * MAD) of the per-class norms (§IV.C)."""
    norms = np.asarray(norms, dtype=np.float64)
    med = np.median(norms)
    mad = np.median(np.abs(norms - med)) * MAD_CONSISTENCY
    return float((med - norms.min()) / max(mad, 1e-12))


@register
class NeuralCleanse(Detector):
    name = "neural_cleanse"
    needs = frozenset({"weights", "queries"})

    def __init__(
        self,
        steps: int = 200,
        n_inputs: int = 64,
        lam: float = 1e-3,
        lr: float = 0.1,
        success: float = 0.99,
        patience: int = 10,
    ) -> None:
        self.steps, self.n_inputs, self.lam, self.lr = steps, n_inputs, lam, lr
        self.success, self.patience = success, patience

    def reverse_trigger(
        self,
        module: Any,
        X: np.ndarray,
        target: int,
        seed: int,
        bounds: tuple[float, float] = (0.0, 255.0),
    ) -> float:
        """Smallest L1 norm of a successful reverse-engineered mask for ``target`` (Eq. 3),
        the pattern ranging over ``bounds``."""
        import torch

        lo, hi = bounds
        torch.manual_seed(seed)
        x = torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32))
        d = x.shape[1]
        m_raw = torch.full((d,), -3.0, requires_grad=True)
        p_raw = torch.zeros(d, requires_grad=True)
        opt = torch.optim.Adam([m_raw, p_raw], lr=self.lr)
        y = torch.full((len(x),), int(target), dtype=torch.long)
        lam, best = self.lam, float(d)
        for step in range(self.steps):
            m = torch.sigmoid(m_raw)
            p = lo + torch.sigmoid(p_raw) * (hi - lo)
            logits = module((1 - m) * x + m * p)
            loss = torch.nn.functional.cross_entropy(logits, y) + lam * m.sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
            hit = float((logits.argmax(1) == y).float().mean()) >= self.success
            if hit:
                best = min(best, float(m.sum().detach()))
            if (step + 1) % self.patience == 0:
                lam = lam * 1.5 if hit else lam / 1.5
        return best

    def check_model(self, model: Any) -> None:
        torch_module(model)

    def score(self, model: Any, evidence: Evidence) -> Report:
        module = torch_module(model)
        X = np.asarray(evidence.X)[: self.n_inputs]
        rng = value_range(X)
        with_grad = [p.requires_grad for p in module.parameters()]
        for p in module.parameters():
            p.requires_grad_(False)
        try:
            n_classes = n_outputs(model, module, X)
            norms = np.array(
                [self.reverse_trigger(module, X, t, evidence.seed, rng) for t in range(n_classes)]
            )
        finally:
            for p, g in zip(module.parameters(), with_grad, strict=True):
                p.requires_grad_(g)
        findings = {
            "norms": norms.tolist(),
            "flagged_class": int(np.argmin(norms)),
            "input_range": list(rng),
            "variants": {"norm_ratio": float(np.median(norms) / max(norms.min(), 1e-12))},
        }
        return Report(anomaly_index(norms), findings)

    @classmethod
    def positive_control(cls) -> Control | None:
        from backdoors.detectors import _controls as controls

        return controls.badnets_pair()


def n_outputs(model: Any, module: Any, X: np.ndarray) -> int:
    """The number of classes: ``len(model.classes_)``, else the network's output width."""
    import torch

    classes = getattr(model, "classes_", None)
    if classes is not None:
        return len(classes)
    with torch.no_grad():
        out = module(torch.from_numpy(np.ascontiguousarray(X[:1], dtype=np.float32)))
    return int(out.shape[-1])
