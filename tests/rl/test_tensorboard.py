"""TensorBoard events beside progress.csv, under CleanRL's names (when the package is installed)."""
from __future__ import annotations

import pytest

from scgrad.rl.algos.ppo import ppo

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402


def test_progress_rows_become_tensorboard_scalars(tmp_path, cpu_threads):
    result = ppo("CartPole-v1", str(tmp_path / "on"), steps=400, steps_per_epoch=200, update_epochs=2, progress=False)
    events = EventAccumulator(str(tmp_path / "on" / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"charts/episodic_return", "losses/approx_kl", "losses/value_loss", "charts/SPS"} <= tags
    kl = events.Scalars("losses/approx_kl")
    assert [e.step for e in kl] == [200, 400]
    assert kl[-1].value == pytest.approx(float(result.progress[-1]["KL"]), rel=1e-5)


def test_tensorboard_off_writes_no_events(tmp_path, cpu_threads):
    ppo("CartPole-v1", str(tmp_path / "off"), steps=200, steps_per_epoch=200, update_epochs=1, tensorboard=False,
        progress=False)
    assert not (tmp_path / "off" / "tensorboard").exists()
