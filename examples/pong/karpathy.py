"""Karpathy's "Pong from Pixels" (2016) on scgrad: a policy gradient from raw frames.

The blog's algorithm, setting for setting: the network sees the difference of two 80×80
preprocessed frames, has 200 ReLU units and one sigmoid output, P(UP); it samples UP or DOWN;
after each game the rewards become a discounted return that restarts at every point and is
standardised over the game; every 10 games RMSProp (lr 1e-4, decay 0.99) takes one step on the
summed gradient. Pong is played as the blog's ``Pong-v0`` plays it: a frame skip drawn uniformly
from 2–4 at every step and sticky actions 0.25.

What scgrad does here: the 10 games of an update are played at once (the policy evaluated on the
batch of live games) and the update is one ``sg.Graph`` whose single node holds every action of
the batch as a score-function sample (``value=``: the actions played), credited with its step's
standardised return. The run folder, exact resume, progress bar and progress.csv are scgrad.rl's;
the policy network and the preprocessing are ``scgrad.rl.nets.karpathy`` and ``envs.atari``'s, so
``eval`` plays a trained one on ``Karpathy/Pong-v0`` (the same game, frames and network).

    python examples/pong/karpathy.py --out runs/karpathy            # train (Ctrl-C, then:)
    python examples/pong/karpathy.py --resume runs/karpathy         # continue exactly
    python -m scgrad.rl plot runs/karpathy --x Episodes --value RunningReward --out pong.png
    python -m scgrad.rl eval runs/karpathy --episodes 3 --video pong.mp4

The last line printed is ``episodes=<int> running_reward=<float> env_steps=<int>``.
"""
from __future__ import annotations

import dataclasses
import sys
import numpy as np
import torch
from torch.distributions import Bernoulli

import scgrad as sg
from scgrad.rl.envs.atari import karpathy_frame
from scgrad.rl.errors import RLError
from scgrad.rl.nets.karpathy import DOWN, FRAME_PIXELS, UP
from scgrad.rl.nets.karpathy import KarpathyPolicy as Policy
from scgrad.rl.run.checkpoint import seed_everything
from scgrad.rl.run.commandline import settings_from, settings_parser
from scgrad.rl.run.loop import Training, run


@dataclasses.dataclass
class Settings:
    """The run's settings (recorded in config.json; a resume must keep them).

    Attributes:
        seed: seeds the policy's initialisation and every game (sticky actions, frame skips, actions).
        episodes: games in the whole run.
        batch: games per update, played at once.
        hidden: hidden ReLU units.
        lr: RMSProp learning rate.
        decay: RMSProp's decay of the mean squared gradient.
        gamma: discount of the return, which restarts at every point.
        sticky: probability that the emulator repeats the previous action (Pong-v0: 0.25).
        checkpoint_every: write a checkpoint every this many updates (and after the last).
    """

    seed: int = 0
    episodes: int = 20_000
    batch: int = 10
    hidden: int = 200
    lr: float = 1e-4
    decay: float = 0.99
    gamma: float = 0.99
    sticky: float = 0.25
    checkpoint_every: int = 10

    def to_dict(self) -> dict:
        """JSON-ready settings."""
        return dataclasses.asdict(self)


# ------------------------------------------------------------------ the game
class Game:
    """One Pong emulator, reused from game to game, played as the blog's ``Pong-v0``: each agent
    step holds the action for 2, 3 or 4 frames (uniform), and at every frame the emulator
    repeats its previous action instead with probability ``sticky`` (ALE's sticky actions,
    drawn here from the game's own generator so that a game is a function of its seed).

    Args:
        sticky: the probability of repeating the previous action (Pong-v0: 0.25).
    """

    def __init__(self, sticky: float) -> None:
        from ale_py import ALEInterface, LoggerMode, roms

        ALEInterface.setLoggerMode(LoggerMode.Error)
        self.ale = ALEInterface()
        self.ale.setFloat("repeat_action_probability", 0.0)  # applied below, from our generator
        self.ale.setInt("max_num_frames_per_episode", 108_000)  # 30 minutes: no game runs forever
        self.ale.loadROM(roms.get_rom_path("pong"))
        self.moves = self.ale.getMinimalActionSet()  # UP is the joystick's RIGHT, DOWN its LEFT
        self.sticky = sticky
        self.screen = np.empty((210, 160, 3), np.uint8)

    def reset(self, seed: np.random.SeedSequence) -> None:
        """Start a new game whose random draws (frame skips, sticky frames, actions) come from ``seed``."""
        self.ale.reset_game()
        self.rng = np.random.default_rng(seed)
        self.held = self.moves[0]  # NOOP
        self.previous = np.zeros(FRAME_PIXELS, np.int8)

    def observe(self) -> np.ndarray:
        """The difference of this frame and the previous one, preprocessed: [6400] int8."""
        self.ale.getScreenRGB(self.screen)  # into the preallocated array
        frame = preprocess(self.screen)
        x, self.previous = frame - self.previous, frame
        return x

    def step(self, action: int) -> float:
        """Play ``action`` (an index into the minimal action set: ``UP`` or ``DOWN``) for one
        agent step; returns the points won minus lost."""
        reward = 0
        for _ in range(self.rng.integers(2, 5)):
            if self.rng.random() >= self.sticky:
                self.held = self.moves[action]
            reward += self.ale.act(self.held)
        return float(reward)

    @property
    def over(self) -> bool:
        """The game has ended (21 points, or the frame cap)."""
        return self.ale.game_over()


def preprocess(rgb: np.ndarray) -> np.ndarray:
    """A 210×160×3 frame → 6,400 int8 values in {0, 1} (``karpathy_frame``: the background
    erased, paddles and ball 1)."""
    return karpathy_frame(rgb).astype(np.int8).reshape(FRAME_PIXELS)


@dataclasses.dataclass
class Games:
    """The games of one update, concatenated in time within each game.

    Attributes:
        x: difference frames [T, 6400] int8 (T: agent steps of all games).
        up: 1.0 where the action was UP [T].
        returns: each step's discounted return, standardised over its game [T].
        scores: each game's final score (points won − lost) [G].
        lengths: each game's agent steps [G].
    """

    x: torch.Tensor
    up: torch.Tensor
    returns: torch.Tensor
    scores: list
    lengths: list


def play(policy: Policy, games: list, seeds: list, gamma: float) -> Games:
    """Play one game per seed to the end on the emulators ``games``, all at once: each step the
    policy sees the batch of games still running."""
    for game, seed in zip(games, seeds):
        game.reset(seed)
    decide = policy.player()
    xs, ups, rewards = ([[] for _ in seeds] for _ in range(3))
    live = list(range(len(seeds)))
    while live:
        x = np.stack([games[i].observe() for i in live])
        p_up = decide(x)
        for k, i in enumerate(live):
            up = games[i].rng.random() < p_up[k]
            xs[i].append(x[k])
            ups[i].append(up)
            rewards[i].append(games[i].step(UP if up else DOWN))
        live = [i for i in live if not games[i].over]
    returns = [standardised(discounted(np.array(r), gamma)) for r in rewards]
    return Games(torch.from_numpy(np.concatenate([np.stack(x) for x in xs])),
                 torch.tensor([u for game in ups for u in game], dtype=torch.float32),
                 torch.from_numpy(np.concatenate(returns)).float(),
                 [float(sum(r)) for r in rewards], [len(r) for r in rewards])


def discounted(rewards: np.ndarray, gamma: float) -> np.ndarray:
    """The discounted return of each step [T], restarting at every point (nonzero reward):
    a point ends a rally, and actions of the next rally are not credited with it."""
    out, running = np.zeros(len(rewards)), 0.0
    for t in reversed(range(len(rewards))):
        running = rewards[t] + gamma * (0.0 if rewards[t] != 0 else running)
        out[t] = running
    return out


def standardised(returns: np.ndarray) -> np.ndarray:
    """Zero mean, unit standard deviation over one game, as the blog's script does."""
    return (returns - returns.mean()) / (returns.std() + 1e-8)


# ------------------------------------------------------------------ the update
def surrogate(policy: Policy, games: Games) -> torch.Tensor:
    """The update's loss: one graph, one node holding every action of the batch [T] as a
    score-function sample, each credited with its own step's return (elementwise: the leading
    dimension is independent samples). ×T: the blog sums the gradient over steps, and RMSProp's
    ε makes the scale matter."""
    with sg.Graph() as g:
        g.sample("action", Bernoulli(logits=policy.sparse(games.x)), value=games.up,
                 estimator=sg.estimators.ScoreFunction())
        g.cost("lost_points", -games.returns, depends_on=["action"])
    return g.surrogate() * len(games.up)


class Tally:
    """Statistics a resume must continue: the running reward and the agent steps so far."""

    def __init__(self) -> None:
        self.running_reward: float | None = None
        self.env_steps = 0

    def add(self, scores: list, lengths: list) -> None:
        """Fold in one update's games (the blog's running mean, 0.99 per game)."""
        for score in scores:
            self.running_reward = score if self.running_reward is None else 0.99 * self.running_reward + 0.01 * score
        self.env_steps += sum(lengths)

    def state_dict(self) -> dict:
        """For the checkpoint."""
        return {"running_reward": self.running_reward, "env_steps": self.env_steps}

    def load_state_dict(self, state: dict) -> None:
        """From the checkpoint."""
        self.running_reward, self.env_steps = state["running_reward"], int(state["env_steps"])


def train(s: Settings, out: str | None, resume: bool = False, progress: bool = True) -> Tally:
    """Train (or resume) into the run folder ``out``; returns the final tally."""
    seed_everything(s.seed)
    policy = Policy(s.hidden)
    optimizer = torch.optim.RMSprop(policy.parameters(), lr=s.lr, alpha=s.decay, eps=1e-5)
    tally = Tally()
    emulators = [Game(s.sticky) for _ in range(s.batch)]

    def update(i: int, start: int, stop: int) -> dict:
        seeds = [np.random.SeedSequence([s.seed, i, k]) for k in range(stop - start)]  # a resume replays them
        games = play(policy, emulators[:len(seeds)], seeds, s.gamma)
        optimizer.zero_grad()
        loss = surrogate(policy, games)
        loss.backward()
        optimizer.step()
        tally.add(games.scores, games.lengths)
        scores = np.array(games.scores)
        return {"AverageEpRet": scores.mean(), "StdEpRet": scores.std(), "MaxEpRet": scores.max(),
                "MinEpRet": scores.min(), "EpLen": float(np.mean(games.lengths)),
                "RunningReward": tally.running_reward, "TotalEnvInteracts": tally.env_steps}

    training = Training("karpathy", s, s.episodes, s.batch, policy,
                        {"policy": policy, "optimizer": optimizer, "tally": tally}, update,
                        count="Episodes", length="episodes")
    run(training, out, resume=resume, progress=progress)
    return tally


def main(argv: list | None = None) -> int:
    """The command line (see the module docstring)."""
    parser = settings_parser(Settings, __doc__.split("\n")[0], "episodes", "games in the whole run")
    args = parser.parse_args(argv)
    try:
        s = settings_from(Settings, args, "episodes")
        torch.set_num_threads(1)  # one BLAS thread: small matrices, a shared machine
        tally = train(s, args.resume or args.out, resume=bool(args.resume))
    except (RLError, TypeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"episodes={s.episodes} running_reward={tally.running_reward:.2f} env_steps={tally.env_steps}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
