"""Every command-line error is one line: each bad input below exits with status 2 and prints
exactly one line on stderr, ``scgrad.rl: error: ...``, that names the flag and the fix, with no
traceback. Most cases run ``main(argv)`` in-process; a few run the real ``python -m scgrad.rl``
to show that nothing else reaches stderr. Positive controls show the accepted forms still work."""
import json
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest

from scgrad.rl import cli as cli_module
from scgrad.rl.cli import main, settings_parser
from scgrad.rl.algos.ppo import PPOConfig

from .test_cli import TINY, cli  # noqa: F401  (cli is a fixture)

HERE = Path(__file__).parent
MAX_SEED = 2**64 - 1
PROGRESS = "Epoch,TotalEnvInteracts,AverageEpRet\n1,400,10.5\n2,800,20.5\n"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny trained PPO run (for eval), trained with a negative flag value and the largest seed."""
    folder = tmp_path_factory.mktemp("cli-errors") / "ppo"
    assert main(["train", "ppo", "--env", "CartPole-v1", "--out", str(folder), "--threads", "1",
                 "--log_std_init", "-1.5", "--seed", str(MAX_SEED), *TINY]) == 0
    return folder


def plot_run(folder: Path, progress) -> Path:
    """A run folder as ``plot`` reads it: config.json and the given progress.csv (text or bytes)."""
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"algo": "ppo", "env": "CartPole-v1"}))
    write = (folder / "progress.csv").write_bytes if isinstance(progress, bytes) else \
        (folder / "progress.csv").write_text
    write(progress)
    return folder


def assert_one_line_error(status, err, pattern):
    """Status 2 and exactly one non-empty stderr line: ``scgrad.rl: error: ...`` matching ``pattern``."""
    assert status == 2, err
    assert "Traceback" not in err, err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].strip(), err
    assert lines[0].startswith("scgrad.rl: error: "), lines[0]
    assert re.search(pattern, lines[0]), lines[0]


SUBPROCESS = "subprocess"
CASES = [  # (id, arguments, key phrase of the message[, SUBPROCESS])
    # seeds: torch.manual_seed takes [0, 2**64); numpy gets seed % 2**32, gymnasium any seed >= 0
    ("seed-negative", ["train", "ppo", "--seed", "-1"], r"seed must be in \[0, 2\*\*64 - 1\] .*got -1$", SUBPROCESS),
    ("seed-2**64", ["train", "ppo", "--seed", str(2**64)],
     r"seed must be in \[0, 2\*\*64 - 1\] .*got 18446744073709551616"),
    ("seed-not-int", ["train", "ppo", "--seed", "1.5"], "--seed: expected an integer, got '1.5'"),
    ("eval-seed-negative", ["eval", "{run}", "--seed", "-1"],
     r"argument --seed: the seed must be in \[0, 2\*\*64 - 1\]"),
    ("threads-0", ["train", "ppo", "--threads", "0"], "argument --threads: expected an integer >= 1, got 0"),
    ("threads-negative", ["train", "ppo", "--threads", "-2"], "argument --threads: expected an integer >= 1, got -2"),
    ("env-no-module", ["train", "ppo", "--env", "nosuchmod:Foo-v0"],
     "cannot make environment 'nosuchmod:Foo-v0': No module named 'nosuchmod'", SUBPROCESS),
    # argparse: unknown flags (with the closest ones), prefixes, missing values, stray values
    ("unknown-flag", ["train", "ppo", "--pi_lrr", "3"], r"unknown flag --pi_lrr; did you mean --pi_lr\b", SUBPROCESS),
    ("unknown-flag-hyphen", ["train", "ppo", "--clip-ration", "0.1"], r"did you mean --clip_ratio\b"),
    ("prefix", ["train", "ppo", "--clip", "0.1"], r"unknown flag --clip; did you mean --clip_rewards or --clip_ratio\?"),
    ("prefix-of-several", ["train", "ppo", "--normalize", "true"],
     r"did you mean --normalize_obs or --normalize_advantages or --normalize_minibatch_advantages\?"),
    ("run-flag-suggested", ["train", "ppo", "--threadz", "2"], r"did you mean --threads\?"),
    ("nothing-close", ["train", "ppo", "--zzzz", "1"],
     r"unknown flag --zzzz \(see python -m scgrad.rl train ppo --help\)$"),
    ("missing-value", ["train", "ppo", "--pi_lr"], "argument --pi_lr/--pi-lr: expected one argument"),
    ("missing-run-flag-value", ["train", "ppo", "--resume"], "argument --resume: expected one argument"),
    ("stray-value", ["train", "ppo", "fast"], "unexpected argument 'fast'"),
    ("no-command", [], "the following arguments are required: command"),
    ("top-level-unknown-flag", ["--bogus"], "the following arguments are required: command"),
    ("unknown-command", ["trian"], r"invalid choice: 'trian' \(choose from .*train.*eval.*plot"),
    ("eval-unknown-flag", ["eval", "{run}", "--vidoe", "x.mp4"], r"unknown flag --vidoe; did you mean --video\?"),
    ("eval-prefix", ["eval", "{run}", "--epi", "3"], r"did you mean --episodes\?"),
    ("eval-no-dir", ["eval"], "the following arguments are required: DIR"),
    ("plot-unknown-flag", ["plot", "{plot_run}", "--vale", "Reward"], r"did you mean --value\?"),
    ("plot-no-dir", ["plot", "--out", "c.png"], "the following arguments are required: DIR"),
    # values of settings: the accepted form
    ("hidden-sizes", ["train", "ppo", "--hidden_sizes", "64x64"],
     r"--hidden_sizes: expected integers separated by commas \(such as 64,64\), got '64x64'"),
    ("float", ["train", "ppo", "--pi_lr", "fast"], "--pi_lr: expected a number, got 'fast'"),
    ("bool", ["train", "ppo", "--normalize_obs", "maybe"], "--normalize_obs: expected true or false, got 'maybe'"),
    ("optional", ["train", "ppo", "--target_kl", "off"], "--target_kl: expected a number or none, got 'off'"),
    # a negative value in exponent notation reaches the settings check (argparse alone reads it as a flag)
    ("negative-exponent", ["train", "ppo", "--log_std_init", "-1.5", "--pi_lr", "-1e-3"],
     r"pi_lr must be > 0, got -0\.001"),
    ("negative-inf", ["train", "sac", "--env", "Pendulum-v1", "--alpha", "-inf"],
     "alpha must be > 0 or none, got -inf"),
    # eval --video: checked before the episode runs
    ("video-no-folder", ["eval", "{run}", "--video", "/no/such/dir/x.mp4"],
     r"--video /no/such/dir/x\.mp4: the folder /no/such/dir does not exist"),
    ("video-extension", ["eval", "{run}", "--video", "{tmp}/x.txt"],
     r"--video .*x\.txt: cannot write a \.txt file; end the name with one of \.gif, \.mp4$"),
    ("video-is-folder", ["eval", "{run}", "--video", "{tmp}/folder.mp4"], "this is a folder; give a file name"),
    # plot --out: checked before the runs are read (the first DIR does not even exist)
    ("plot-out-no-folder", ["plot", "{tmp}/nowhere", "--out", "/no/such/dir/c.png"],
     "--out /no/such/dir/c.png: the folder /no/such/dir does not exist"),
    ("plot-out-extension", ["plot", "{tmp}/nowhere", "--out", "{tmp}/c.xyz"],
     r"cannot write a \.xyz file; end the name with one of .*\.pdf, .*\.png, .*\.svg", SUBPROCESS),
    ("plot-out-no-extension", ["plot", "{plot_run}", "--out", "{tmp}/curves"],
     "cannot write a file without an extension"),
    # plot: what progress.csv holds
    ("plot-value", ["plot", "{plot_run}", "--value", "Reward"],
     "progress.csv has no column 'Reward'; its columns: Epoch, TotalEnvInteracts, AverageEpRet$"),
    ("plot-not-a-number", ["plot", "{bad_cell_run}", "--out", "{tmp}/c.png"],
     "progress.csv, data row 2: AverageEpRet is 'abc', not a number"),
    ("plot-random-bytes", ["plot", "{bytes_run}", "--out", "{tmp}/c.png"], "progress.csv is not a readable CSV file"),
]


@pytest.mark.parametrize("args, pattern, how", [pytest.param(*case[1:3], case[3] if len(case) > 3 else "in-process",
                                                             id=case[0]) for case in CASES])
def test_bad_input_is_one_line(request, tmp_path, args, pattern, how):
    places = {"tmp": tmp_path}
    if any("{run}" in a for a in args):
        places["run"] = request.getfixturevalue("run")
    if any("{plot_run}" in a for a in args):
        places["plot_run"] = plot_run(tmp_path / "plotted", PROGRESS)
    if any("{bad_cell_run}" in a for a in args):
        places["bad_cell_run"] = plot_run(tmp_path / "bad-cell", PROGRESS.replace("20.5", "abc"))
    if any("{bytes_run}" in a for a in args):
        places["bytes_run"] = plot_run(tmp_path / "bytes", random.Random(0).randbytes(4000))
    (tmp_path / "folder.mp4").mkdir()
    argv = [a.format(**places) for a in args]
    if how == SUBPROCESS:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
        done = subprocess.run([sys.executable, "-m", "scgrad.rl", *argv], capture_output=True, text=True,
                              env=env, cwd=tmp_path, timeout=120)
        status, err = done.returncode, done.stderr
    else:
        cli = request.getfixturevalue("cli")
        status, _, err = cli(*argv)
    assert_one_line_error(status, err, pattern)
    assert not list(tmp_path.glob("c.*")) and not (tmp_path / "x.txt").exists()  # nothing drawn or recorded


def test_negative_values_and_the_largest_seed_are_accepted(run):
    """Positive controls: -1.5 and -1e-3 are values, not flags; 2**64 - 1 trains."""
    given = vars(settings_parser(PPOConfig, "ppo").parse_args(
        ["--log_std_init", "-1.5", "--target_kl", "-1e-3", "--hidden-sizes", "-64,64", "--pi_lr=-inf"]))
    assert given == {"log_std_init": "-1.5", "target_kl": "-1e-3", "hidden_sizes": "-64,64", "pi_lr": "-inf"}
    config = json.loads((run / "config.json").read_text())
    assert config["log_std_init"] == -1.5 and config["seed"] == MAX_SEED


def test_the_accepted_output_files_are_written(cli, run, tmp_path):  # noqa: F811
    """Positive controls for the file checks: a .gif video and an .svg plot."""
    gif = tmp_path / "episode.gif"
    status, _, err = cli("eval", run, "--episodes", "1", "--video", gif)
    assert status == 0 and gif.read_bytes()[:6] in (b"GIF87a", b"GIF89a"), err
    svg = tmp_path / "curves.svg"
    status, out, err = cli("plot", plot_run(tmp_path / "plotted", PROGRESS), "--out", svg)
    assert status == 0 and "<svg" in svg.read_text(), err


def test_the_video_path_is_checked_before_the_episode(cli, run, tmp_path, monkeypatch):  # noqa: F811
    from scgrad.rl.run import evaluate

    def no_rendering(env_id, render_mode=None):
        assert render_mode is None, "the episode started before the file name was checked"
        return make_env(env_id)

    make_env = evaluate.make_env
    monkeypatch.setattr(evaluate, "make_env", no_rendering)
    assert_one_line_error(*cli("eval", run, "--video", tmp_path / "x.avi")[::2], r"cannot write a \.avi file")


def test_a_bug_keeps_its_traceback(monkeypatch):
    """Only bad input becomes one line: any other exception propagates from ``main``."""
    def broken(args, rest):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(cli_module, "plot", broken)
    with pytest.raises(ZeroDivisionError):
        main(["plot", "anywhere"])
