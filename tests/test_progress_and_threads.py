"""Off a terminal a long step says when it starts; training uses the cores it may use."""

from __future__ import annotations

from backdoors import progress


def test_step_prints_a_line_when_it_starts_and_when_it_ends(capsys, monkeypatch):
    monkeypatch.delenv("BACKDOORS_PROGRESS", raising=False)
    with progress.step("training the thing"):
        started = capsys.readouterr().err
    ended = capsys.readouterr().err
    assert started == "backdoors: training the thing ...\n"
    assert ended.startswith("backdoors: training the thing done in ")


def test_training_respects_omp_num_threads_and_restores_the_count(monkeypatch):
    import numpy as np
    import torch

    from backdoors.models.torch_models import TorchClassifier

    seen: set[int] = set()

    class Recording(TorchClassifier):
        def _loss(self, module, xb, yb):
            seen.add(torch.get_num_threads())
            return super()._loss(module, xb, yb)

    old = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        monkeypatch.delenv("BACKDOORS_TORCH_THREADS", raising=False)
        rng = np.random.default_rng(0)
        Recording(arch_params={"hidden": (4,)}, epochs=1).fit(
            rng.normal(size=(64, 5)), np.arange(64) % 2
        )
        assert seen == {1} and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(old)
