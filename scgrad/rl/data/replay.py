"""Experience replay for off-policy algorithms: a preallocated ring of transitions, inserted a
vector step at a time and sampled uniformly in one gather."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict

import numpy as np
import torch


@dataclass
class Transitions:
    """A sampled minibatch of B transitions (views into one gathered [B, width] tensor).

    ==========  =============  ===================================================
    obs         [B, obs_dim]   s
    act         [B, A]         a, in the policy's [−1, 1] units
    rew         [B]            r
    next_obs    [B, obs_dim]   s′: the true last observation where the episode ended
    terminated  [B]            1.0 where s′ is terminal (no bootstrap), else 0.0;
                               a time-limit truncation is 0.0: it bootstraps from s′
    ==========  =============  ===================================================
    """

    obs: torch.Tensor
    act: torch.Tensor
    rew: torch.Tensor
    next_obs: torch.Tensor
    terminated: torch.Tensor


class ReplayBuffer:
    """The last ``capacity`` transitions, oldest overwritten first.

    All fields live side by side in one float32 tensor of shape [capacity, width] (columns: s,
    a, r, s′, terminated), so sampling a minibatch is a single ``index_select``; inserts write
    through a NumPy view of the same memory (a memcpy per field, no torch dispatch).

    Args:
        capacity: transitions kept.
        obs_dim, act_dim: sizes of a flattened observation and of an action.
        seed: seeds the buffer's own ``torch.Generator``, which draws the minibatch indices
            (so the sampling stream does not shift when, say, the exploration noise changes).
        save_data: include the transitions in ``state_dict`` (else only the sampling stream:
            a buffer restored from it starts empty).
    """

    def __init__(self, capacity: int, obs_dim: int, act_dim: int, seed: int = 0, save_data: bool = True) -> None:
        if capacity < 1:
            raise ValueError(f"ReplayBuffer: capacity must be >= 1, got {capacity}")
        o, a = obs_dim, act_dim
        self.capacity, self.obs_dim, self.act_dim, self.save_data = capacity, obs_dim, act_dim, save_data
        self._cols = {"obs": slice(0, o), "act": slice(o, o + a), "rew": o + a,
                      "next_obs": slice(o + a + 1, 2 * o + a + 1), "terminated": 2 * o + a + 1}
        self.data = torch.zeros(capacity, 2 * o + a + 2)
        self._np = self.data.numpy()
        self.ptr, self.size = 0, 0
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return self.size

    def add(self, obs: np.ndarray, act: np.ndarray, rew: np.ndarray, next_obs: np.ndarray,
            terminated: np.ndarray) -> None:
        """Append N transitions: obs, next_obs [N, obs_dim]; act [N, A]; rew, terminated [N]
        (NumPy arrays or CPU tensors). O(N), wrapping around at the end."""
        n = len(rew)
        if n > self.capacity:
            raise ValueError(f"ReplayBuffer: cannot add {n} transitions to a buffer of capacity {self.capacity}")
        first = min(n, self.capacity - self.ptr)
        self._write(self.ptr, slice(0, first), obs, act, rew, next_obs, terminated)
        if first < n:  # the rest wraps around to the start
            self._write(0, slice(first, n), obs, act, rew, next_obs, terminated)
        self.ptr = (self.ptr + n) % self.capacity
        self.size = min(self.size + n, self.capacity)

    def _write(self, start: int, part: slice, *fields) -> None:
        rows = self._np[start:start + part.stop - part.start]
        for name, value in zip(("obs", "act", "rew", "next_obs", "terminated"), fields):
            rows[:, self._cols[name]] = value[part]

    def sample(self, batch_size: int) -> Transitions:
        """``batch_size`` transitions drawn uniformly with replacement from those stored."""
        if self.size == 0:
            raise ValueError("ReplayBuffer: cannot sample from an empty buffer")
        index = torch.randint(self.size, (batch_size,), generator=self.generator)
        rows = self.data.index_select(0, index)
        c = self._cols
        return Transitions(rows[:, c["obs"]], rows[:, c["act"]], rows[:, c["rew"]], rows[:, c["next_obs"]],
                           rows[:, c["terminated"]])

    # -------------------------------------------------------------- resume
    def state_dict(self) -> Dict[str, Any]:
        """The stored transitions (only the filled rows, so a young buffer saves small), the
        write position and the sampling stream; without the transitions if ``save_data`` is
        off."""
        state: Dict[str, Any] = {"generator": self.generator.get_state(), "capacity": self.capacity,
                                 "width": self.data.shape[1], "ptr": 0, "size": 0, "data": None}
        if self.save_data:
            # clone a partial view: torch.save would otherwise write the whole preallocated storage
            data = self.data if self.size == self.capacity else self.data[:self.size].clone()
            state.update(ptr=self.ptr, size=self.size, data=data)
        return state

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """Restore ``state_dict``'s output (a state saved without data empties the buffer)."""
        if state["capacity"] != self.capacity or state["width"] != self.data.shape[1]:
            raise ValueError(f"replay buffer state has capacity {state['capacity']} and width {state['width']}, "
                             f"expected {self.capacity} and {self.data.shape[1]}")
        ptr, size, data = int(state["ptr"]), int(state["size"]), state["data"]
        if not (0 <= size <= self.capacity and 0 <= ptr < self.capacity) or \
                (data is not None and not (isinstance(data, torch.Tensor) and data.dtype == self.data.dtype
                                           and data.shape[0] >= size and data.shape[1:] == self.data.shape[1:])):
            raise ValueError(f"replay buffer state has a bad position ({ptr}), size ({size}) or data")
        self.generator.set_state(state["generator"])
        self.ptr, self.size = ptr, size
        if data is not None:
            self.data[:self.size].copy_(data[:self.size])

