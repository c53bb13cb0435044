"""Work that ``tests/rl/test_distributed.py`` runs on several processes under ``torchrun``.

    torchrun --standalone --nproc_per_node=2 tests/rl/distributed_worker.py JOB OUT

JOB is one of:
- ``updates``: one update of each on-policy algorithm on a fixed global batch, each process
  holding an equal share (``update_results``), and the collectives on shares of fixed data
  (``collective_results``); rank r saves the results to OUT/rank{r}.pt.
- ``resume``: a PPO run (observations and minibatch advantages normalised, KL early stop)
  stopped after 2 epochs and resumed, and the same run uninterrupted, in OUT/stopped and
  OUT/straight.
- ``kill``: a PPO run in OUT/run whose rank 1 is killed (SIGKILL) in its third epoch.
"""
from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Dict, Optional

import torch

from scgrad.rl import distributed
from scgrad.rl.algos import ppo, trpo, vpg
from scgrad.rl.data.batch import Batch
from scgrad.rl.nets.actor_critic import ActorCritic

import gymnasium as gym

OBS, ACTIONS, SAMPLES = 4, 3, 64
#: the runs' settings: two CartPole environments in all, short epochs
RUN = dict(num_envs=2, steps_per_epoch=256, minibatch_size=64, update_epochs=2, progress=False)


def global_batch(model: ActorCritic) -> Batch:
    """A fixed batch of SAMPLES transitions (the behaviour log-probabilities are the model's)."""
    g = torch.Generator().manual_seed(0)
    obs = torch.randn(SAMPLES, OBS, generator=g)
    act = torch.randint(ACTIONS, (SAMPLES,), generator=g)
    with torch.no_grad():
        logp = model.pi.distribution(obs).log_prob(act)
    adv, ret, v = (torch.randn(SAMPLES, generator=g) for _ in range(3))
    return Batch(obs, act, logp, adv, ret, v)


def update_results(share: Optional[slice] = None) -> Dict[str, Dict[str, torch.Tensor]]:
    """Each algorithm's parameters after one update (``share``: this process's rows of the batch)."""
    results = {}
    algorithms = {"ppo": (ppo.PPO, ppo.PPOConfig(update_epochs=6, pi_lr=3e-3, target_kl=3e-4, ent_coef=0.01)),
                  "vpg": (vpg.VPG, vpg.VPGConfig(train_v_iters=5)),
                  "trpo": (trpo.TRPO, trpo.TRPOConfig(train_v_iters=5))}
    space_obs = gym.spaces.Box(-1.0, 1.0, (OBS,))
    for name, (algo_class, config) in algorithms.items():
        torch.manual_seed(1)
        model = ActorCritic(space_obs, gym.spaces.Discrete(ACTIONS), (16,), "tanh")
        batch = global_batch(model)
        algo = algo_class(config)
        optimizers = algo.optimizers(model)
        info = algo.update(model, optimizers, batch if share is None else batch[share])
        results[name] = {**{k: v.detach().clone() for k, v in model.state_dict().items()},
                         **{f"info.{k}": torch.tensor(float(v)) for k, v in info.items()}}
    return results


#: collective_results' data: every rank's share of RUNS elements in runs of RUN_SIZE
RUNS, RUN_SIZE = 40, 16


def collective_results(rank: int) -> Dict[str, torch.Tensor]:
    """``standardize_chunks`` of this rank's share of a fixed [2, RUNS] array, and
    ``average_`` of rank-valued gradients carrying two scalars."""
    shares = torch.randn(2, RUNS, generator=torch.Generator().manual_seed(3)) * 5 + 2
    grads = [torch.full((3,), float(rank)), torch.full((2,), 4.0 * rank)]
    scalars = distributed.average_(grads, torch.tensor(1.5 * rank), 10.0)
    return {"chunks": distributed.standardize_chunks(shares[rank], RUN_SIZE), "grad0": grads[0],
            "grad1": grads[1], "scalars": torch.tensor(scalars)}


def killer(obs_space: gym.Space, act_space: gym.Space) -> ActorCritic:
    """The default model, except that rank 1 dies (SIGKILL) at its 600th rollout step (its
    fifth epoch of 128 vector steps)."""
    model = ActorCritic(obs_space, act_space, (64, 64), "tanh")
    make_actor, calls = model.pi.numpy_actor, [0]

    def numpy_actor():
        actor = make_actor()

        def act(obs):
            calls[0] += 1
            if distributed.world().rank == 1 and calls[0] == 600:
                os.kill(os.getpid(), signal.SIGKILL)
            return actor(obs)
        return act

    model.pi.numpy_actor = numpy_actor
    return model


def main(job: str, out: Path) -> None:
    here = distributed.start()
    if job == "updates":
        per = SAMPLES // here.size
        torch.save({**update_results(slice(here.rank * per, (here.rank + 1) * per)),
                    "collectives": collective_results(here.rank)}, out / f"rank{here.rank}.pt")
    elif job == "resume":
        # the processes share their observation statistics, minibatch moments and KL
        settings = {**RUN, "normalize_obs": True, "normalize_minibatch_advantages": True, "target_kl": 0.005}
        ppo.ppo("CartPole-v1", str(out / "stopped"), steps=1024, stop_after=2, **settings)
        ppo.ppo("CartPole-v1", str(out / "stopped"), steps=1024, resume=True, **settings)
        ppo.ppo("CartPole-v1", str(out / "straight"), steps=1024, **settings)
    elif job == "kill":
        ppo.ppo("CartPole-v1", str(out / "run"), steps=2048, checkpoint_every=1, actor_critic=killer, **RUN)
    distributed.finish(0)


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
