"""Fair populations, the seed-search distinguisher and the verifiable-coins defense: an honest
learner's coins are a deterministic stream of its ``random_state``; populations seed both sides
with 128-bit ``member_seed``s, so a search over small seeds finds neither side."""

from __future__ import annotations

import numpy as np
import pytest

from backdoors import metrics, relu, rff
from backdoors.artifacts import files
from backdoors.cli import main
from backdoors.contract import member_seed
from backdoors.defenses.verifiable_coins import verify_coins
from backdoors.detectors import Evidence
from backdoors.detectors.seed_search import SeedSearch, find_seed
from backdoors.errors import InvalidInputError, NotApplicableError
from backdoors.evaluation.recipes.relu import ReLUAttack, ReLUPoint
from backdoors.evaluation.recipes.rff import RFFAttack, RFFPoint

TINY = RFFPoint("planar", d=8, n_train=200, n_test=50, n_components=40, sparsity=3)
BUDGET = 64  # small seeds 0..63: the distinguisher's whole search, in well under a second


def _data(seed=0, n=200, d=8):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    return X, (X[:, 0] + X[:, 1] > 0).astype(int)


def test_member_seed_is_128_bit_deterministic_and_distinct():
    seeds = [member_seed(s) for s in range(50)]
    assert seeds == [member_seed(s) for s in range(50)] and len(set(seeds)) == 50
    assert all(2**64 < s < 2**128 for s in seeds)  # never a small, searchable seed
    with pytest.raises(InvalidInputError):
        member_seed(-1)


def test_verify_coins_passes_the_seeded_stream_and_rejects_planted_coins(tmp_path):
    X, y = _data()
    for seed in (5, member_seed(5)):
        honest = rff.RandomFourierFeaturesClassifier(n_components=40, random_state=seed).fit(X, y)
        path = tmp_path / f"h{seed % 7}.safetensors"
        files.save_model(honest, path)
        loaded = files.load_model(path)  # files store no seed: the user brings it
        assert verify_coins(loaded, seed).honest
        assert verify_coins(loaded, seed + 1).mismatched == ("frequencies", "phases")
        planted, _ = rff.plant({"n_components": 40, "random_state": seed}, X, y, sparsity=3)
        got = verify_coins(planted, seed)  # same phases, pancake frequencies from OS entropy
        assert not got.honest and got.mismatched == ("frequencies",)
    for head in ("threshold", "linear"):
        honest = relu.honest_model(head, 20, 9).fit(X, y)
        planted, _ = relu.plant(relu.honest_model(head, 20, 9), X, y, sparsity=3)
        assert verify_coins(honest, 9).honest and not verify_coins(honest, 10).honest
        assert verify_coins(planted, 9).mismatched == ("weights",)
    with pytest.raises(NotApplicableError):
        verify_coins(object(), 0)


def test_seed_search_finds_small_honest_seeds_only():
    X, y = _data()
    honest = rff.RandomFourierFeaturesClassifier(n_components=40, random_state=37).fit(X, y)
    assert find_seed(honest, BUDGET) == 37
    assert find_seed(honest, 37) is None  # outside the budget
    planted, _ = rff.plant({"n_components": 40, "random_state": 37}, X, y, sparsity=3)
    assert find_seed(planted, BUDGET) is None
    net = relu.RandomReLUClassifier(n_hidden=20, random_state=12).fit(X, y)
    assert find_seed(net, BUDGET) == 12


def _auroc(build, n: int) -> float:
    det = SeedSearch(budget=BUDGET)
    neg = [det.score(build(s, False), Evidence()) for s in range(n)]
    pos = [det.score(build(s, True), Evidence()) for s in range(n)]
    return metrics.auroc(np.array(neg), np.array(pos))


def test_seed_search_is_at_chance_on_fair_populations_and_separates_its_control():
    """Fair populations (the recipes: both sides seeded by ``member_seed``): AUROC 0.5. Its
    positive control, honest members seeded 0..5 against planted ones: AUROC 1.0."""
    X, y = TINY.data().X_train, TINY.data().y_train
    assert _auroc(lambda s, bd: RFFAttack(TINY).build(s, bd).model, 6) == 0.5
    small = RFFPoint("planar", d=8, n_train=200, n_test=50, n_components=40)

    def small_seed(s, bd):
        est = small.estimator(s)  # random_state = s: the old, searchable layout
        return rff.plant(est, X, y, sparsity=3)[0] if bd else est.fit(X, y)

    assert _auroc(small_seed, 6) == 1.0
    point = ReLUPoint(d=30, m=10, k=5, n_train=100, n_test=20)
    assert _auroc(lambda s, bd: ReLUAttack(point).build(s, bd).model, 6) == 0.5


def test_cli_verify_coins_exit_codes(tmp_path, capsys):
    X, y = _data()
    np.savez(tmp_path / "d.npz", X=X, y=y)
    d, h, p, k = (str(tmp_path / n) for n in ("d.npz", "h.safetensors", "p.safetensors", "k.key"))
    assert main(["train", "rff", d, "-o", h, "--n-components", "40", "--seed", "5"]) == 0
    assert main(["plant", "rff", d, "-o", p, "-k", k, "--n-components", "40", "--seed", "5"]) == 0
    capsys.readouterr()
    assert main(["verify-coins", h, "--seed", "5"]) == 0
    assert capsys.readouterr().out.startswith("honest:")
    assert main(["verify-coins", h, "--seed", "6"]) == 3
    assert main(["verify-coins", p, "--seed", "5"]) == 3
    assert capsys.readouterr().out.count("rejected:") == 2
    assert main(["verify-coins", k, "--seed", "5"]) == 2  # not a model file
