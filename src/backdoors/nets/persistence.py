"""Persistence to gradient descent (paper Thm 2.3 / Def. "ℓ-persistent").

Definition (the paper's, via a verbatim restatement): for a loss ℓ, a network ``N_w`` is
*ℓ-persistent to gradient descent* if ``∇_w ℓ(w) = 0``. Theorem: every network N of size |N| and
depth d has an equivalent N' (``N'(x) = N(x)`` for all x) of size O(|N|) and depth d + 1 that is
ℓ-persistent for *every* loss. Proof idea: three copies of N and a final majority unit
``1[N_1 + N_2 + N_3 >= 3/2]``; the paper's N has Boolean outputs (threshold gates).

What we implement and can state precisely (see docs/networks.md):

* **Real-valued outputs cannot be persistent** in a network whose last layer is a trainable
  affine map: ``∂ out / ∂ bias = 1``. Persistence therefore needs Boolean outputs and a
  saturating final activation. We use ``SaturatedReLU(z) = min(max(z, 0), 1) = relu(z) - relu(z-1)``
  (``nn.Hardtanh(0, 1)``, no parameters), the ReLU analogue of the paper's threshold gate.
* :func:`decision_head` turns a logit network into a Boolean one (one-hot of the argmax):
  ``b_kj = sat(G (z_k - z_j))``, ``onehot_k = sat(2 sum_j b_kj - (2C - 3))``. Exact whenever
  every top-vs-other logit gap is ``>= 1/G`` (G = 2^16 by default), which we measure.
* :func:`make_persistent` returns three copies (each clamped to [0,1]) and a trainable
  combining ``Linear`` with weights 2 and bias -3 followed by ``sat``: pre-activations are
  ``{-3, -1, 1, 3}``, i.e. at distance >= 1 from the unsaturated band (0, 1). Guarantees, for every
  input on which N's outputs are Boolean:
  (a) ``N'(x) == N(x)`` bit for bit;
  (b) the gradient of *any* loss of the output w.r.t. *every* parameter is exactly 0 (the final
      saturated unit has derivative 0), so SGD / momentum / Adam without weight decay leave every
      parameter bit-identical for any number of steps, any data, any learning rate;
  (c) changing any single parameter inside one copy to *any* finite value leaves N' unchanged on
      every input (majority of copies whose outputs are clamped to [0, 1]);
  (d) the combining layer tolerates each weight in [0, inf) and each bias in [-5, 0] alone.
  It does NOT survive weight decay (the regulariser's gradient is not zero), noise on all copies,
  or re-initialising the combining layer; the experiment "persistence" measures each.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from backdoors.errors import InvalidInputError


class SaturatedReLU(nn.Hardtanh):
    """``min(max(z, 0), 1) = relu(z) - relu(z - 1)``: the ReLU form of a threshold gate."""

    def __init__(self) -> None:
        super().__init__(min_val=0.0, max_val=1.0)


def decision_head(logit_net: nn.Module, n_classes: int, gain: float = 2.0**16) -> nn.Sequential:
    """Boolean network ``x -> one-hot(argmax N(x))`` (depth +2 over ``logit_net``)."""
    C = int(n_classes)
    if C < 2:
        raise InvalidInputError("need at least two classes")
    pairs = [(k, j) for k in range(C) for j in range(C) if j != k]
    diff = nn.Linear(C, len(pairs))
    vote = nn.Linear(len(pairs), C)
    with torch.no_grad():
        diff.weight.zero_()
        diff.bias.zero_()
        vote.weight.zero_()
        for r, (k, j) in enumerate(pairs):
            diff.weight[r, k] = gain
            diff.weight[r, j] = -gain
            vote.weight[k, r] = 2.0
        vote.bias.fill_(-(2.0 * C - 3.0))
    return nn.Sequential(logit_net, diff, SaturatedReLU(), vote, SaturatedReLU())


class PersistentNetwork(nn.Module):
    """N' = sat(W [N_1(x); N_2(x); N_3(x)] + b): copies and combining layer all trainable."""

    def __init__(self, copies: list[nn.Module], n_outputs: int) -> None:
        super().__init__()
        self.copies = nn.ModuleList(copies)
        self.n_outputs = int(n_outputs)
        r = len(copies)
        self.combine = nn.Linear(r * self.n_outputs, self.n_outputs)
        with torch.no_grad():
            self.combine.weight.zero_()
            for i in range(r):
                for k in range(self.n_outputs):
                    self.combine.weight[k, i * self.n_outputs + k] = 2.0
            self.combine.bias.fill_(-float(r))  # 2 * majority - r: {-3,-1,1,3} for r = 3
        self.out = SaturatedReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.combine(torch.cat([c(x) for c in self.copies], dim=1)))


def make_persistent(net: nn.Module, n_outputs: int, n_copies: int = 3) -> PersistentNetwork:
    """Thm 2.3: ``n_copies`` (odd, >= 3) copies of a Boolean-output ``net`` and a majority layer.

    Each copy gets a trailing :class:`SaturatedReLU` unless ``net`` already ends with one
    (identity on Boolean outputs), so a copy's output is in [0, 1] whatever its weights.
    """
    if n_copies < 3 or n_copies % 2 == 0:
        raise InvalidInputError("the majority needs an odd number >= 3 of copies")
    ends_saturated = isinstance(net, nn.Sequential) and isinstance(net[-1], nn.Hardtanh)
    copies = []
    for _ in range(n_copies):
        c = copy.deepcopy(net)
        copies.append(c if ends_saturated else nn.Sequential(c, SaturatedReLU()))
    for p in (p for c in copies for p in c.parameters()):
        p.requires_grad_(True)
    return PersistentNetwork(copies, n_outputs)


def n_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def depth(module: nn.Module) -> int:
    """Number of Linear layers on the longest path (copies run in parallel)."""
    if isinstance(module, PersistentNetwork):
        return depth(module.copies[0]) + 1
    if isinstance(module, nn.Linear):
        return 1
    return sum(depth(m) for m in module.children())


def loss_gradients(
    module: nn.Module, X: torch.Tensor, y: torch.Tensor, n_classes: int
) -> dict[str, float]:
    """max |∂ℓ/∂θ| over every parameter θ for MSE (vs one-hot), cross-entropy and hinge losses.

    Raises if any parameter gets no gradient at all (``grad is None``): nothing may hide.
    """
    losses = {
        "mse": lambda o: nn.functional.mse_loss(o, nn.functional.one_hot(y, n_classes).float()),
        "cross_entropy": lambda o: nn.functional.cross_entropy(o, y),
        "hinge": lambda o: nn.functional.multi_margin_loss(o, y),
    }
    out = {}
    for name, fn in losses.items():
        module.zero_grad(set_to_none=True)
        fn(module(X)).backward()
        grads = [p.grad for p in module.parameters()]
        if any(g is None for g in grads):
            raise RuntimeError(f"{name}: some parameter received no gradient")
        out[name] = max(float(g.abs().max()) for g in grads)
    module.zero_grad(set_to_none=True)
    return out
