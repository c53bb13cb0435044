"""Karpathy's Pong policy ("Pong from Pixels", 2016): 200 ReLU units on a difference frame, one
sigmoid output, P(UP).

``examples/pong/karpathy.py`` trains it; here it lives so that ``eval`` and ``scgrad.rl.load``
can play a trained one on ``Karpathy/Pong-v0`` (``envs.atari``) like any other agent. Its
input is the difference of two consecutive 80×80 preprocessed frames, mostly zeros (only what
moved), so the first layer is computed sparsely: the sum of the weight rows of the nonzero
pixels (``embedding_bag``, differentiable), the same numbers as the dense product for a small
fraction of the work, in play as in the update.
"""
from __future__ import annotations

from typing import Callable, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Bernoulli

FRAME_PIXELS = 80 * 80
UP, DOWN = 2, 3  # indices in Pong's minimal action set: the joystick's RIGHT moves the paddle up


class KarpathyPolicy(nn.Module):
    """x [B, 6400] (difference frames, values in {−1, 0, 1}) → logit of P(UP) [B].

    Two layers without biases, each initialised with standard deviation 1/√(fan in) (the blog's
    Xavier-style init). ``pi`` is the policy on ``Karpathy/Pong-v0`` observations (the last two
    frames [B, 2, 80, 80] uint8), in the action contract ``eval`` uses (``mode``, ``sample``).

    Args:
        hidden: hidden ReLU units (the blog: 200).
    """

    def __init__(self, hidden: int = 200) -> None:
        super().__init__()
        self.hidden = nn.Linear(FRAME_PIXELS, hidden, bias=False)
        self.out = nn.Linear(hidden, 1, bias=False)
        for layer in (self.hidden, self.out):
            nn.init.normal_(layer.weight, std=layer.in_features ** -0.5)

    @property
    def pi(self) -> "KarpathyPolicy":
        """The policy on stacked frames (``mode``, ``sample``): the module itself."""
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits [B] of difference frames x [B, 6400] (dense)."""
        return self.out(torch.relu(self.hidden(x))).squeeze(-1)

    def sparse(self, x: torch.Tensor, rows_of_pixels: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The same logits [B] for difference frames x [B, 6400] int8, with the first layer summing
        the weight rows of the nonzero pixels. ``rows_of_pixels``: the first layer's weight as
        [6400, H] (default: a view of it; pass a contiguous copy when playing many steps)."""
        game, pixel = x.nonzero(as_tuple=True)
        starts = torch.searchsorted(game, torch.arange(len(x)))
        weights = self.hidden.weight.T if rows_of_pixels is None else rows_of_pixels
        h = F.embedding_bag(pixel, weights, starts, mode="sum", per_sample_weights=x[game, pixel].float())
        return self.out(torch.relu(h)).squeeze(-1)

    def player(self) -> Callable[[np.ndarray], np.ndarray]:
        """``p_up(x)``: P(UP) [B] for difference frames x [B, 6400] int8 (NumPy), for playing with
        the current weights (their [6400, H] layout made once)."""
        rows_of_pixels = self.hidden.weight.detach().T.contiguous()

        @torch.no_grad()
        def p_up(x: np.ndarray) -> np.ndarray:
            return torch.sigmoid(self.sparse(torch.from_numpy(x), rows_of_pixels)).numpy()

        return p_up

    # ------------------------------------------------------------ on stacked frames
    def mode(self, frames: torch.Tensor) -> torch.Tensor:
        """The likelier action [B] (``UP`` or ``DOWN``) for frames [B, 2, 80, 80] uint8."""
        return torch.where(self.sparse(difference(frames)) > 0, UP, DOWN)

    def sample(self, frames: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """(actions [B], their log-probabilities [B]) sampled for frames [B, 2, 80, 80] uint8."""
        up = Bernoulli(logits=self.sparse(difference(frames)))
        draw = up.sample()
        return torch.where(draw > 0, UP, DOWN), up.log_prob(draw)


def difference(frames: torch.Tensor) -> torch.Tensor:
    """Frames [B, 2, 80, 80] uint8 (0 = background) → the newest minus the older [B, 6400] int8."""
    on = (frames > 0).to(torch.int8).reshape(len(frames), 2, FRAME_PIXELS)
    return on[:, 1] - on[:, 0]
