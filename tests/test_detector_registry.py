"""One statistic, one detector: the registry refuses a second detector declaring a registered
statistic, and no two registered weight detectors give the same scores on fixed models."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import pytest

from backdoors import relu
from backdoors.detectors import DETECTORS, Detector, Evidence, register, statistic_id
from backdoors.evaluation.scoring import run_detector
from backdoors.experiments.relu_scale import WeightModel
from backdoors.hazmat.sampling import Coins


def test_register_refuses_a_duplicate_statistic():
    before = DETECTORS.names()

    class Again(Detector):
        name = "spectral_bbp_again"
        statistic = statistic_id(DETECTORS.get("spectral_bbp"))

        def score(self, model, evidence):
            return 0.0

    with pytest.raises(ValueError, match="already registered as 'spectral_bbp'"):
        register(Again)
    assert DETECTORS.names() == before
    assert "covariance_spectrum" not in before  # merged into spectral_bbp


@dataclass(frozen=True)
class _StudentCoins(Coins):
    df: float = 4.0

    def sample(self, m, d, rng):
        return rng.standard_t(self.df, size=(m, d)) / np.sqrt(self.df / (self.df - 2))


def _fixed_models():
    rng = np.random.default_rng(2024)
    out = []
    for i in range(4):
        out.append(WeightModel(rng.standard_normal((40, 80))))
        sup, val = relu.draw_secret(80, 8, i)
        out.append(WeightModel(relu.spiked_coins(sup, val, 1.0 + 2 * i).sample(40, 80, rng)))
        out.append(WeightModel(_StudentCoins(3.0 + i).sample(40, 80, rng)))
        out.append(WeightModel(rng.standard_normal((20 + 10 * i, 80)) * (1 + 0.1 * i)))
    return out


def test_no_two_weight_detectors_give_the_same_scores_on_fixed_models():
    models = _fixed_models()
    scores = {}
    for name, cls in DETECTORS.items():
        if not cls.needs <= {"weights"}:
            continue
        det = cls()
        outs = [run_detector(det, m, Evidence(seed=0)) for m in models]
        if all(o.ok for o in outs):
            scores[name] = np.array([o.score for o in outs])
    assert {"spectral_bbp", "sphericity", "sdp_sparse_pca", "weight_moments"} <= set(scores)
    for a, b in itertools.combinations(sorted(scores), 2):
        sa, sb = scores[a], scores[b]
        if sa.std() == 0 or sb.std() == 0:
            assert not np.allclose(sa, sb), (a, b)
            continue
        r = np.corrcoef(sa, sb)[0, 1]
        assert abs(r) < 1 - 1e-9, f"{a} and {b} give the same scores (up to an affine map)"
