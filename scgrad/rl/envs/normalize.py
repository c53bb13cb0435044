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

    def update(self, x: torch.Tensor) -> None:
        """Merge a batch ``x`` of shape [N, *shape] into the statistics."""
        x = x.detach().to(torch.float64).reshape(-1, *self.mean.shape)
        n = x.shape[0]
        batch_mean, batch_var = x.mean(0), x.var(0, unbiased=False)
        total = self.count + n
        delta = batch_mean - self.mean
        self.mean = self.mean + delta * (n / total)
        self.var = (self.var * self.count + batch_var * n + delta.square() * (self.count * n / total)) / total
        self.count = total

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
