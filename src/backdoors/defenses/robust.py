"""The robustness corollary (paper §7): an undetectable backdoor in a *robust* model.

:class:`PGDTrainedClassifier` is a :class:`~backdoors.models.torch_models.TorchClassifier` trained
on
l_inf PGD adversarial examples (Madry et al. 2018) in pixel units: inputs are raw grey levels
0..255, ``eps`` is given in [0, 1] units (``eps = 0.1`` = 25.5 grey levels) and every iterate
is clipped to the valid pixel range. Planting the signature backdoor on it (paper §5.2) gives
a model that

* PGD attacks exactly as often as the robust model: PGD follows gradients of the
  differentiable base network; the signature verifier is a non-differentiable branch that
  only fires on inputs carrying a valid Ed25519 signature in their LSBs, which gradient steps
  (and the rounding back to uint8) never produce; so on every PGD iterate the backdoored
  model equals the robust one;
* has an adversarial example for *every* input, found by the key holder: Activate changes
  <= 520 pixels by one grey level (l_inf = 1/255), far inside any eps the robust model
  was trained for.
Hence no complete and sound robustness certifier can exist for such learners (it would
distinguish h from h-tilde).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from backdoors.models.adapters import as_classifier
from backdoors.models.torch_models import TorchClassifier, to_tensor
from backdoors.validation import NONNEGATIVE_INT, NONNEGATIVE_REAL


def pgd(
    module: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    steps: int = 10,
    step_size: float | None = None,
    gen: torch.Generator | None = None,
) -> torch.Tensor:
    """Untargeted l_inf PGD with a random start; ``x`` in grey levels, ``eps`` in [0, 1] units.

    ``x_{t+1} = clip_{[0,255] and ||x' - x||_inf <= 255 eps}(x_t + alpha sign grad CE)``.
    """
    e = 255.0 * eps
    a = 2.5 * e / steps if step_size is None else 255.0 * step_size
    delta = (torch.rand(x.shape, generator=gen) * 2 - 1) * e
    xa = (x + delta).clamp(0, 255).detach()
    was_training = module.training
    module.eval()
    for _ in range(steps):
        xa.requires_grad_(True)
        loss = nn.functional.cross_entropy(module(xa), y)
        (g,) = torch.autograd.grad(loss, xa)
        xa = xa.detach() + a * g.sign()
        xa = torch.min(torch.max(xa, x - e), x + e).clamp(0, 255).detach()
    module.train(was_training)
    return xa


class PGDTrainedClassifier(TorchClassifier):
    """TorchClassifier trained on PGD examples (``_loss`` overridden); same artifact format."""

    artifact_kind = "torch_classifier"
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        **TorchClassifier._parameter_constraints,
        "eps": [NONNEGATIVE_REAL],
        "pgd_steps": [NONNEGATIVE_INT],
    }

    def __init__(
        self,
        *,
        arch: str = "mlp",
        arch_params: dict[str, Any] | None = None,
        input_scale: float = 1 / 255,
        epochs: int = 3,
        batch_size: int = 128,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        random_state: int = 0,
        eps: float = 0.1,
        pgd_steps: int = 5,
    ) -> None:
        super().__init__(
            arch=arch, arch_params=arch_params, input_scale=input_scale, epochs=epochs,
            batch_size=batch_size, lr=lr, weight_decay=weight_decay, random_state=random_state,
        )  # fmt: skip
        self.eps = eps
        self.pgd_steps = pgd_steps

    def _loss(self, module: nn.Module, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        xa = pgd(module, xb, yb, self.eps, self.pgd_steps)
        return nn.functional.cross_entropy(module(xa), yb)

    def _to_artifact(self):
        tensors, meta = super()._to_artifact()
        p = dict(meta["params"])
        p.pop("eps"), p.pop("pgd_steps")  # loads as a plain TorchClassifier (same network)
        meta["params"] = p
        return tensors, meta


def torch_module(model: Any) -> nn.Module:
    """The differentiable network under ``model`` (a TorchClassifier, or a wrapper's ``base``)."""
    m = model
    while not hasattr(m, "module_") and hasattr(m, "base"):
        m = m.base
    if not hasattr(m, "module_"):
        raise TypeError(f"{type(model).__name__} has no differentiable torch network")
    return m.module_


def pgd_attack_success(
    model: Any, X: np.ndarray, y: np.ndarray, eps: float, steps: int = 20, seed: int = 0
) -> dict[str, Any]:
    """Run PGD through ``model``'s differentiable network, round to uint8, and evaluate the
    *whole* model (verifier included) on the result. Success = misclassified among inputs the
    model gets right. Returns counts, the rate and its 95% Clopper-Pearson interval."""
    from scipy.stats import beta as beta_dist

    clf = as_classifier(model)
    ok = np.asarray(clf.predict(X)) == y
    Xc, yc = X[ok], y[ok]
    gen = torch.Generator().manual_seed(seed)
    module = torch_module(model)
    idx = torch.from_numpy(np.searchsorted(clf.classes_, yc).astype(np.int64))
    xa = pgd(module, to_tensor(Xc), idx, eps, steps, gen=gen).numpy()
    Xa = np.clip(np.rint(xa), 0, 255).astype(np.uint8)
    k, n = int((np.asarray(clf.predict(Xa)) != yc).sum()), int(len(yc))
    lo = float(beta_dist.ppf(0.025, k, n - k + 1)) if k > 0 else 0.0
    hi = float(beta_dist.ppf(0.975, k + 1, n - k)) if k < n else 1.0
    return {"success": k / max(n, 1), "ci": (lo, hi), "k": k, "n": n, "X_adv": Xa}
