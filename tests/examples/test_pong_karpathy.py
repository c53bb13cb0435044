"""examples/pong/karpathy.py: the blog's pieces, and a few real games with exact resume."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("ale_py")
from scgrad.rl.run.checkpoint import read_checkpoint  # noqa: E402
from scgrad.rl.run.folder import read_progress  # noqa: E402

SCRIPT = Path(__file__).parents[2] / "examples" / "pong" / "karpathy.py"


@pytest.fixture(scope="module")
def karpathy():
    spec = importlib.util.spec_from_file_location("karpathy", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["karpathy"] = module
    spec.loader.exec_module(module)
    return module


def test_the_return_restarts_at_every_point(karpathy):
    r = np.array([0.0, 0.0, 1.0, 0.0, -1.0])
    np.testing.assert_allclose(karpathy.discounted(r, 0.5), [0.25, 0.5, 1.0, -0.5, -1.0])
    z = karpathy.standardised(np.array([1.0, 2.0, 3.0]))
    assert abs(z.mean()) < 1e-12 and abs(z.std() - 1.0) < 1e-6


def test_preprocessing_erases_the_background_and_keeps_the_paddles(karpathy):
    frame = np.full((210, 160, 3), 144, np.uint8)
    frame[100:110, 140:142] = (92, 186, 92)   # a paddle
    frame[50, 20] = (109, 118, 43)            # the other background colour
    x = karpathy.preprocess(frame).reshape(80, 80)
    assert x.dtype == np.int8 and x.sum() == 5 and x[(101 - 35) // 2, 70] == 1  # rows 101, 103, ..., 109 kept


def test_the_surrogate_is_the_blogs_summed_policy_gradient(karpathy):
    """Its gradient equals Σ_t ∇ log π(a_t | x_t) · (−A_t), the hand-written REINFORCE sum."""
    torch.manual_seed(0)
    policy = karpathy.Policy(8)
    x = torch.randint(-1, 2, (6, 6400), dtype=torch.int8)
    games = karpathy.Games(x, torch.tensor([1.0, 0, 1, 1, 0, 0]), torch.randn(6), [0.0], [6])
    karpathy.surrogate(policy, games).backward()
    ours = [p.grad.clone() for p in policy.parameters()]
    policy.zero_grad()
    logits = policy(x.float())
    logp = -torch.nn.functional.binary_cross_entropy_with_logits(logits, games.up, reduction="none")
    (-(logp * games.returns).sum()).backward()
    for a, p in zip(ours, policy.parameters()):
        torch.testing.assert_close(a, p.grad)


def test_games_train_and_resume_exactly(karpathy, tmp_path):
    """Six real games, two at a time: a run cut after the first update and resumed ends with
    the weights, optimiser state and statistics of an uninterrupted one."""
    torch.set_num_threads(1)
    s = karpathy.Settings(seed=5, episodes=6, batch=2, hidden=16, checkpoint_every=1)
    whole = karpathy.train(s, str(tmp_path / "whole"), progress=False)
    karpathy.train(karpathy.Settings(**{**s.to_dict(), "episodes": 2}), str(tmp_path / "cut"), progress=False)
    resumed = karpathy.train(s, str(tmp_path / "cut"), resume=True, progress=False)
    a, b = read_checkpoint(tmp_path / "whole")[1], read_checkpoint(tmp_path / "cut")[1]
    assert all(torch.equal(a["policy"][k], b["policy"][k]) for k in a["policy"])
    assert a["tally"] == b["tally"] and whole.env_steps == resumed.env_steps > 6 * 500
    rows = read_progress(tmp_path / "cut")
    assert [r["Episodes"] for r in rows] == ["2", "4", "6"] and all(-21 <= float(r["AverageEpRet"]) <= 21 for r in rows)


def test_the_command_line_prints_its_last_line(karpathy, tmp_path, capsys):
    assert karpathy.main(["--out", str(tmp_path / "r"), "--episodes", "1", "--batch", "1", "--hidden", "4"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("episodes=1 running_reward=-") and "env_steps=" in last
    assert karpathy.main(["--resume", str(tmp_path / "nowhere")]) == 2


def test_eval_and_export_play_a_run_with_the_weights_it_trained(karpathy, tmp_path, capsys):
    """The run folder is one the command line's eval plays (on Karpathy/Pong-v0, the library's
    network) and exports; a policy's first move shows the weights are the trained ones."""
    from scgrad.rl.agents import load_agent
    from scgrad.rl.cli import main
    from scgrad.rl.nets.karpathy import KarpathyPolicy

    assert karpathy.Policy is KarpathyPolicy  # one network, trained by the example, played by eval
    run = tmp_path / "r"
    assert karpathy.main(["--out", str(run), "--episodes", "1", "--batch", "1", "--hidden", "4"]) == 0
    trained = read_checkpoint(run)[1]["policy"]
    agent = load_agent(run)
    assert agent.config.env == "Karpathy/Pong-v0"
    assert all(torch.equal(agent.model.state_dict()[k], v) for k, v in trained.items())
    assert main(["export", str(run), "--out", str(tmp_path / "small")]) == 0
    capsys.readouterr()
    assert main(["eval", str(tmp_path / "small"), "--episodes", "1", "--stochastic"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("env=Karpathy/Pong-v0 protocol=karpathy")
    assert -21 <= float(lines[-1].split()[0].split("=")[1]) <= 21


def test_a_reused_emulator_plays_a_seed_as_a_fresh_one_does(karpathy):
    """Emulators are reset, not rebuilt, between games: a game must depend only on its seed."""
    def trace(game, seed):
        game.reset(np.random.SeedSequence(seed))
        return [(game.step(karpathy.UP if t % 7 < 3 else karpathy.DOWN), int(game.observe().sum())) for t in range(300)]

    used = karpathy.Game(0.25)
    trace(used, 1)
    assert trace(used, 2) == trace(karpathy.Game(0.25), 2)
    assert trace(used, 2) != trace(used, 3)  # negative control: the seed matters (sticky frames, skips)


def test_the_sparse_player_computes_the_dense_policy(karpathy):
    torch.manual_seed(1)
    policy = karpathy.Policy(32)
    x = np.random.default_rng(0).choice([-1, 0, 1], p=[0.02, 0.96, 0.02], size=(7, 6400)).astype(np.int8)
    x[3] = 0  # a frame where nothing moved
    dense = torch.sigmoid(policy(torch.from_numpy(x).float())).detach().numpy()
    np.testing.assert_allclose(policy.player()(x), dense, rtol=1e-5, atol=1e-6)


def test_the_numpy_reference_runs(tmp_path):
    """examples/pong/karpathy_numpy.py: one game, its last line."""
    import subprocess

    out = subprocess.run([sys.executable, str(SCRIPT.with_name("karpathy_numpy.py")), "--episodes", "1",
                          "--batch", "1", "--hidden", "8"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1].startswith("episodes=1 seconds=")


def test_the_numpy_reference_has_the_same_gradient(karpathy):
    """The hand-written backward of karpathy_numpy.py is the negative of the surrogate's gradient."""
    sys.path.insert(0, str(SCRIPT.parent))
    import karpathy_numpy

    torch.manual_seed(2)
    policy = karpathy.Policy(16)
    x = torch.randint(-1, 2, (9, 6400), dtype=torch.int8)
    up, adv = torch.tensor([1.0, 0, 0, 1, 1, 0, 1, 0, 1]), torch.randn(9)
    karpathy.surrogate(policy, karpathy.Games(x, up, adv, [0.0], [9])).backward()
    reference = karpathy_numpy.NumpyPolicy(16, np.random.default_rng(0))
    reference.w1, reference.w2 = policy.hidden.weight.detach().double().numpy(), policy.out.weight.detach().double().numpy()[0]
    xs = x.double().numpy()
    p_h = [reference.forward(row) for row in xs]
    dlogits = np.array([(u - p) * a for (p, _), u, a in zip(p_h, up.numpy(), adv.numpy())])
    d_w1, d_w2 = reference.backward(xs, np.stack([h for _, h in p_h]), dlogits)
    np.testing.assert_allclose(-d_w1, policy.hidden.weight.grad.double().numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(-d_w2, policy.out.weight.grad.double().numpy()[0], rtol=1e-4, atol=1e-5)
