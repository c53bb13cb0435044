"""MuJoCo video on a machine without a display: a working headless OpenGL backend is picked
(egl, then osmesa), or one line says which variable to set."""
import os
import subprocess
import sys

import pytest

from scgrad.rl.errors import EnvError
from scgrad.rl.run.evaluate import _gl_backend_works, choose_mujoco_gl


def test_the_first_working_headless_backend_is_chosen():
    environ = {}
    assert choose_mujoco_gl(environ, works=lambda backend: backend == "osmesa") == "osmesa"
    assert environ == {"MUJOCO_GL": "osmesa", "PYOPENGL_PLATFORM": "osmesa"}


def test_a_set_backend_or_a_display_is_left_alone():
    tried = []
    assert choose_mujoco_gl({"MUJOCO_GL": "glfw"}, works=tried.append) == "glfw"
    assert choose_mujoco_gl({"DISPLAY": ":0"}, works=tried.append) is None
    assert tried == []


def test_no_working_backend_says_which_variable_to_set():
    with pytest.raises(EnvError, match="set MUJOCO_GL=egl, or OSMesa .* MUJOCO_GL=osmesa"):
        choose_mujoco_gl({}, works=lambda backend: False)


def test_headless_mujoco_video_is_recorded(tmp_path):
    if not any(_gl_backend_works(b) for b in ("egl", "osmesa")):
        pytest.skip("no headless OpenGL on this machine (the error case is tested above)")
    env = {k: v for k, v in os.environ.items() if k not in ("MUJOCO_GL", "DISPLAY", "WAYLAND_DISPLAY",
                                                           "PYOPENGL_PLATFORM")}
    run = tmp_path / "run"

    def scgrad_rl(*args):
        return subprocess.run([sys.executable, "-m", "scgrad.rl", *map(str, args)], env=env, capture_output=True,
                              text=True, timeout=300)

    trained = scgrad_rl("train", "ppo", "--env", "InvertedPendulum-v5", "--steps", "64", "--steps_per_epoch", "64",
                        "--out", run, "--no-progress")
    assert trained.returncode == 0, trained.stderr
    shown = scgrad_rl("eval", run, "--episodes", "1", "--video", run / "episode.mp4")
    assert shown.returncode == 0 and "GLFW" not in shown.stderr, shown.stderr  # failed with GLFWError before
    assert (run / "episode.mp4").stat().st_size > 0
