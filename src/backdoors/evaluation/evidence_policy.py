"""The evidence policy: what every detector is shown about one model, whoever asks.

One rule for every caller (the ``detectors`` experiment, the RFF/ReLU experiments, the demos,
the speed benchmark and ``backdoors audit``), so a member's score does not depend on which
table it lands in:

* **queries**: the first ``n_queries`` test inputs (with their labels): 500 (``--quick``: 100);
* **training data**: every row, or (``--quick``: ``n_train`` = 1,000) a uniformly random subset
  (sorted indices) drawn with ``numpy.random.default_rng(seed)`` where ``seed`` is the
  member's seed (the audit: its ``seed`` argument); all rows when there are fewer;
* **reference model** (for detectors that declare ``reference``, e.g. the disagreement
  search): an honest model of the same recipe built from :func:`reference_seed` of the member
  seed, an independent seed stream, never a member of the population being scored;
* **key**: only detectors that declare ``key`` (the key-aware positive controls) see it; the
  honest member of seed ``s`` is shown the key of the backdoored member of seed ``s``.

Then :func:`backdoors.evaluation.scoring.evidence_for` keeps only the fields a detector declares.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from backdoors.contract import evaluation_targets, target_labels
from backdoors.detectors import Detector, Evidence
from backdoors.evaluation.recipes import Built
from backdoors.evaluation.scoring import evidence_for

#: Spawn key of the seed stream reference models are built from (any fixed value works; it
#: only has to differ from the streams members use).
REFERENCE_STREAM = 0x5EFE


def reference_seed(seed: int) -> int:
    """Seed of the honest reference model for member seed ``seed``: the first word of
    ``SeedSequence(seed, spawn_key=(REFERENCE_STREAM,))``, shifted into [0, 2**30)."""
    ss = np.random.SeedSequence(int(seed), spawn_key=(REFERENCE_STREAM,))
    return int(ss.generate_state(1, np.uint32)[0] >> 2)


def target_of(member: Built) -> int | None:
    """The attack's one target class, when the recipe or an all-to-one key names one."""
    t = member.info.get("target")
    if t is None and member.key is not None and len(member.key.targets) == 1:
        t = member.key.targets[0]
    return None if t is None else int(t)


def triggered(
    member: Built, X: np.ndarray, y: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(clean inputs not already of their target class, their activated versions, the labels
    the backdoored model should then output).

    Targets come from the key's contract (:func:`backdoors.contract.evaluation_targets`):
    ``None`` for untargeted keys, else one class per kept input, compared as labels
    (:func:`backdoors.contract.target_labels`).
    """
    t = evaluation_targets(member.key, y, len(X), member.model)
    if t is None:
        return X, member.activate(X), None
    want = target_labels(member.key, t, member.model)
    keep = np.ones(len(X), dtype=bool) if y is None else np.asarray(y)[: len(X)] != want
    return X[keep], member.activate(X[keep], target=t[keep]), want[keep]


@dataclass(frozen=True)
class EvidencePolicy:
    """How much evidence a detector gets (``None``: everything there is)."""

    n_queries: int | None = 500
    n_train: int | None = None

    def queries(self, X: Any, y: Any) -> tuple[Any, Any]:
        """The first ``n_queries`` inputs and labels."""
        if X is None or self.n_queries is None:
            return X, y
        return X[: self.n_queries], None if y is None else y[: self.n_queries]

    def train_subset(self, X_train: Any, y_train: Any, seed: int) -> tuple[Any, Any]:
        """``n_train`` rows drawn without replacement with ``default_rng(seed)``, in order."""
        if X_train is None or self.n_train is None or len(X_train) <= self.n_train:
            return X_train, y_train
        rng = np.random.default_rng(int(seed))
        idx = np.sort(rng.choice(len(X_train), self.n_train, replace=False))
        return X_train[idx], None if y_train is None else y_train[idx]

    def evidence(
        self,
        det: Detector,
        *,
        X: Any = None,
        y: Any = None,
        X_train: Any = None,
        y_train: Any = None,
        key: Any = None,
        reference: Any = None,
        seed: int = 0,
    ) -> Evidence:
        """The evidence ``det`` gets about a model whose data are these arrays (the user's data
        in an audit, the member's in an experiment)."""
        Xq, yq = self.queries(X, y)
        Xt, yt = self.train_subset(X_train, y_train, seed)
        return evidence_for(det, X=Xq, y=yq, X_train=Xt, y_train=yt, key=key,
                            reference=reference, seed=seed)  # fmt: skip

    def member_evidence(self, det: Detector, member: Built, key: Any, reference: Any) -> Evidence:
        """The evidence ``det`` gets for one population member (its own data and seed)."""
        return self.evidence(det, X=member.X_test, y=member.y_test, X_train=member.X_train,
                             y_train=member.y_train, key=key, reference=reference,
                             seed=member.seed)  # fmt: skip

    def input_evidence(self, det: Detector, member: Built) -> tuple[Evidence, int]:
        """An input filter's evidence on a backdoored member: the policy's queries (those not
        already of their target class) followed by their activated versions; returns the
        evidence and the number of clean inputs (the negatives come first)."""
        Xq, yq = self.queries(member.X_test, member.y_test)
        Xc, Xa, _ = triggered(member, Xq, yq)
        Xt, yt = self.train_subset(member.X_train, member.y_train, member.seed)
        ev = evidence_for(det, X=np.concatenate([Xc, Xa]), X_train=Xt, y_train=yt,
                          seed=member.seed)  # fmt: skip
        return ev, len(Xc)

    @staticmethod
    def wants_reference(detectors: tuple[Detector, ...] | list[Detector]) -> bool:
        """Whether any of ``detectors`` declares the reference model."""
        return any("reference" in (d.needs | d.optional) for d in detectors)


#: The policy of every experiment, demo, benchmark and audit: 500 queries, every training row
#: (Activation Clustering needs them: on BadNets MLPs its best configuration reaches AUROC 0.92
#: on all 10,000 rows against 0.81 on 2,000, docs/detectors-experiment.md).
DEFAULT_POLICY = EvidencePolicy()
#: The same rule in ``--quick`` runs (members built with ``quick=True``): 100 queries and
#: 1,000 training rows, so that input filters fit the quick runs' time budget.
QUICK_POLICY = EvidencePolicy(n_queries=100, n_train=1000)


def policy_for(quick: bool) -> EvidencePolicy:
    """:data:`QUICK_POLICY` for members built with ``quick=True``, else :data:`DEFAULT_POLICY`."""
    return QUICK_POLICY if quick else DEFAULT_POLICY
