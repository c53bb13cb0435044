"""Running mean / standard deviation of observations, for observation normalisation."""
from __future__ import annotations

from typing import Dict

import torch


class RunningNormalizer:
    """Normalises x to (x − mean) / sqrt(var + eps), clipped to ±clip, with running statistics.

    Statistics are merged batch by batch (Chan et al.'s parallel variance), kept in float64 so
    millions of updates do not drift. Save them with the checkpoint (``state_dict``): a policy
    trained on normalised observations is meaningless without them.

    Args:
        shape: the shape of one observation, e.g. ``(obs_dim,)``.
        clip: bound on normalised values (10, as in SB3's VecNormalize).
        eps: added to the variance.
    """

    def __init__(self, shape: tuple, clip: float = 10.0, eps: float = 1e-8) -> None:
        self.mean = torch.zeros(shape, dtype=torch.float64)
        self.var = torch.ones(shape, dtype=torch.float64)
        self.count = torch.zeros((), dtype=torch.float64)
        self.clip, self.eps = clip, eps
        #: (count, mean, var) of the batches seen since the statistics were last shared with
        #: the other processes of a data-parallel run (``share``), and the statistics then;
        #: kept only with ``keep_pending`` (a run on several processes sets it: a single process
        #: would pay for it at every environment step)
        self.pending = (self.count.clone(), self.mean.clone(), self.var.clone())
        self.shared = self.pending
        self.keep_pending = False

    def update(self, x: torch.Tensor) -> None:
        """Merge a batch ``x`` of shape [N, *shape] into the statistics."""
        x = x.detach().to(torch.float64).reshape(-1, *self.mean.shape)
        batch = (torch.tensor(float(x.shape[0]), dtype=torch.float64), x.mean(0), x.var(0, unbiased=False))
        self.count, self.mean, self.var = merge((self.count, self.mean, self.var), batch)
        if self.keep_pending:
            self.pending = merge(self.pending, batch)

    def share(self, pendings: list) -> None:
        """Become the statistics shared last merged with every process's pending batches
        (``pendings``: their ``pending``, in rank order, this process's included), as every
        process of the run does at the same point: their statistics are then equal again."""
        merged = self.shared
        for moments in pendings:
            merged = merge(merged, moments)
        self.count, self.mean, self.var = (t.clone() for t in merged)
        self.shared = merged
        self.pending = (torch.zeros((), dtype=torch.float64), torch.zeros_like(self.mean), torch.ones_like(self.var))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised ``x`` (any leading dims), in ``x``'s dtype."""
        std = torch.sqrt(self.var + self.eps)
        return ((x - self.mean) / std).clamp(-self.clip, self.clip).to(x.dtype)

    def state_dict(self) -> Dict[str, torch.Tensor]:
        """Copies of the running mean, variance and count."""
        return {"mean": self.mean.clone(), "var": self.var.clone(), "count": self.count.clone()}

    def load_state_dict(self, state: Dict[str, torch.Tensor]) -> None:
        """Restore ``state_dict``'s output; a ``ValueError`` if its shape is not this normaliser's."""
        if state["mean"].shape != self.mean.shape:
            raise ValueError(f"normaliser state has shape {tuple(state['mean'].shape)}, "
                             f"expected {tuple(self.mean.shape)}")
        self.mean, self.var, self.count = (state[k].clone() for k in ("mean", "var", "count"))
        self.shared = (self.count.clone(), self.mean.clone(), self.var.clone())  # checkpoints follow a share
        self.pending = (torch.zeros((), dtype=torch.float64), torch.zeros_like(self.mean), torch.ones_like(self.var))


def merge(a: tuple, b: tuple) -> tuple:
    """(count, mean, var) of the union of two sets of observations given as (count, mean, var)
    (population variances; Chan et al.'s parallel update). Either may be empty (count 0)."""
    count_a, mean_a, var_a = a
    count_b, mean_b, var_b = b
    total = count_a + count_b
    if float(total) == 0:
        return a
    delta = mean_b - mean_a
    mean = mean_a + delta * (count_b / total)
    var = (var_a * count_a + var_b * count_b + delta.square() * (count_a * count_b / total)) / total
    return total, mean, var
