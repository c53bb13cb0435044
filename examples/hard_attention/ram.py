"""The recurrent attention model (Mnih, Heess, Graves, Kavukcuoglu 2014) as a stochastic
computation graph.

At each of T steps the model takes a glimpse — k square patches centred at a location, the first
g×g, each next twice as wide, all shrunk to g×g — updates a recurrent state, and samples where to
look next from a Gaussian around a learned mean; after the last glimpse it classifies. The
locations are not differentiable: each is a score-function node of one ``sg.Graph`` per batch,
credited with the outcome and centred by a learned baseline, while the classifier, the core and
the glimpse network train by backprop through the same surrogate.

Coordinates: a location is (x, y) in [−1, 1]², (0, 0) the image centre, (−1, −1) its top-left
corner. Samples outside the square are clamped for the sensor only; the log-probability is
that of the sample itself (clamping it there would bias the estimator).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

import scgrad as sg
from scgrad.baselines import Learned
from scgrad.estimators import ScoreFunction

CREDITS = ("hit", "xent")  # what the location nodes are credited with: 0/1 correct, or the cross-entropy
CORES = ("rnn", "lstm")  # the recurrent core: the paper's ReLU network, or an LSTM
FIRST = ("random", "centre")  # where the first glimpse is taken


# ------------------------------------------------------------------ the sensor
def glimpse(images: torch.Tensor, loc: torch.Tensor, size: int, scales: int) -> torch.Tensor:
    """The glimpses of images [B, H, W] at locations loc [B, 2] (x, y in [−1, 1]):
    [B, scales, size, size].

    Patch i (0-based) is size·2^i pixels wide, centred at the location (rounded to the nearest
    pixel corner), zero outside the image, and shrunk to size×size by averaging 2^i×2^i blocks.
    (The model reads several glimpses of one batch from one ``Sensor``.)
    """
    return Sensor(images, size, scales)(loc)


class Sensor:
    """The glimpse sensor over a batch of images [B, H, W], for any number of glimpses.

    Built once per batch: a summed-area table of the images (float64, so block sums are exact
    to ~1e-12), from which every block mean of every scale is four lookups. Zero padding is free:
    the table is constant beyond the image, so lookups are clamped to its edge. A glimpse then
    costs 4·k·g² values per image, whatever the scale, instead of reading every pixel of its
    widest patch (``benchmarks/hard_attention.py --part sensor`` times it).
    """

    def __init__(self, images: torch.Tensor, size: int, scales: int) -> None:
        _, self.height, self.width = images.shape
        self.size, self.scales, self.dtype = size, scales, images.dtype
        # table[b, y, x] = sum of images[b, :y, :x]: one more zero row and column at the top left
        table = F.pad(images.detach().double(), (1, 0, 1, 0)).cumsum(1).cumsum(2)
        self.table = table.flatten(1)                    # [B, (H + 1) · (W + 1)], read by flat index

    def __call__(self, loc: torch.Tensor) -> torch.Tensor:
        """The glimpses at loc [B, 2]: [B, scales, size, size]."""
        centre = (loc.detach().clamp(-1, 1) + 1) / 2 * torch.tensor([self.width, self.height], dtype=loc.dtype)
        edges = torch.arange(self.size + 1)
        patches = []
        for scale in range(self.scales):
            k = 2 ** scale
            corner = torch.round(centre - self.size * k / 2).long()             # [B, 2] top-left pixel (x, y)
            xs = (corner[:, 0, None] + k * edges).clamp(0, self.width)          # [B, g + 1] block edges, clamped
            ys = (corner[:, 1, None] + k * edges).clamp(0, self.height)
            at = self.table.gather(1, (ys[:, :, None] * (self.width + 1) + xs[:, None, :]).flatten(1))
            at = at.view(-1, self.size + 1, self.size + 1)                    # the table at every block corner
            sums = at[:, 1:, 1:] - at[:, :-1, 1:] - at[:, 1:, :-1] + at[:, :-1, :-1]
            patches.append(sums / (k * k))
        return torch.stack(patches, 1).to(self.dtype)


def glimpse_boxes(loc: torch.Tensor, size: int, scales: int, image_size: int) -> torch.Tensor:
    """The squares the sensor reads at loc [B, 2], in pixels: [B, scales, 4] as (x0, y0, x1, y1)
    (for drawing glimpse paths)."""
    centre = (loc.clamp(-1, 1) + 1) / 2 * image_size
    boxes = []
    for scale in range(scales):
        side = size * 2 ** scale
        corner = torch.round(centre - side / 2)
        boxes.append(torch.cat([corner, corner + side], -1))
    return torch.stack(boxes, 1)


# ------------------------------------------------------------------ the model
@dataclass
class ModelSettings:
    """The model's shape (recorded with a run).

    Attributes:
        glimpses: T, glimpses per image (T − 1 sampled locations after the first).
        size: g, side of each patch after shrinking.
        scales: k, patches per glimpse.
        std: standard deviation of the location Gaussian (fixed, as the paper's).
        hidden: units of the recurrent core.
        core: ``rnn`` (the paper's: h_t = ReLU(W_h h_{t−1} + W_g g_t)) or ``lstm``.
        first: where the first glimpse is taken: ``random`` (uniform on the square) or ``centre``
            (where its widest patch sees most of the image).
        learned_locations: sample locations from the learned Gaussian (else uniform at random:
            the random-glimpse ablation, trained by cross-entropy alone).
    """

    glimpses: int = 6
    size: int = 8
    scales: int = 1
    std: float = 0.17
    hidden: int = 256
    core: str = "rnn"
    first: str = "random"
    learned_locations: bool = True

    def __post_init__(self) -> None:
        if self.core not in CORES:
            raise ValueError(f"core must be one of {CORES}, got {self.core!r}")
        if self.first not in FIRST:
            raise ValueError(f"first must be one of {FIRST}, got {self.first!r}")


class RAM(nn.Module):
    """Glimpse network, recurrent core, location network, classifier and baseline.

    Args:
        s: the model's settings.
        classes: number of labels.
    """

    def __init__(self, s: ModelSettings, classes: int = 10) -> None:
        super().__init__()
        self.s = s
        pixels = s.scales * s.size * s.size
        self.what, self.where = nn.Linear(pixels, 128), nn.Linear(2, 128)              # glimpse network
        self.what_out, self.where_out = nn.Linear(128, s.hidden), nn.Linear(128, s.hidden)
        if s.core == "lstm":
            self.lstm = nn.LSTMCell(s.hidden, s.hidden)
        else:
            self.core_in, self.core_h = nn.Linear(s.hidden, s.hidden), nn.Linear(s.hidden, s.hidden)
        self.locator = nn.Linear(s.hidden, 2)                                           # mean of the next location
        self.classifier = nn.Linear(s.hidden, classes)
        self.baseline = nn.Sequential(nn.Linear(s.hidden, 1))                           # predicts the credit

    def glimpse_features(self, sensor: "Sensor", loc: torch.Tensor) -> torch.Tensor:
        """g_t [B, hidden] from the glimpse at loc [B, 2]."""
        x = sensor(loc).flatten(1)
        return F.relu(self.what_out(F.relu(self.what(x))) + self.where_out(F.relu(self.where(loc.detach()))))

    def step(self, state: Tuple[torch.Tensor, torch.Tensor], g: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """The core: (h_t, c_t) from (h_{t−1}, c_{t−1}) and g_t, each [B, hidden] (the ReLU
        network's c is unused)."""
        h, c = state
        if self.s.core == "lstm":
            return self.lstm(g, (h, c))
        return F.relu(self.core_h(h) + self.core_in(g)), c

    def forward(self, images: torch.Tensor, graph: Optional[sg.Graph], generator: torch.Generator,
                greedy: bool = False) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        """(class logits [B, classes], locations: T tensors [B, 2]) for images [B, H, W].

        With ``graph``, each learned location is recorded in it (``sample_location``: nodes
        ``loc1x``, ``loc1y``, …) with a learned baseline of the state it was sampled from; the first
        location (unless ``first="centre"``), and every one in the random-glimpse ablation, is
        uniform on [−1, 1]² (from ``generator``, no parameters). Without a graph, learned locations are sampled, or with
        ``greedy`` taken at the Gaussian's mean (evaluation).
        """
        batch = len(images)
        state = (images.new_zeros(batch, self.s.hidden), images.new_zeros(batch, self.s.hidden))
        loc = torch.rand(batch, 2, generator=generator) * 2 - 1
        if self.s.first == "centre":
            loc = torch.zeros_like(loc)  # the random draw still made: one stream for both settings
        path = [loc]
        sensor = Sensor(images, self.s.size, self.s.scales)
        for t in range(self.s.glimpses):
            state = self.step(state, self.glimpse_features(sensor, loc))
            h = state[0]
            if t == self.s.glimpses - 1:
                break
            loc = self._next_location(h, graph, t + 1, generator, greedy)
            path.append(loc)
        return self.classifier(h), path

    def _next_location(self, h: torch.Tensor, graph: Optional[sg.Graph], t: int, generator: torch.Generator,
                       greedy: bool) -> torch.Tensor:
        if not self.s.learned_locations:
            return torch.rand(len(h), 2, generator=generator) * 2 - 1
        state = h.detach()  # the paper's location network: trained by REINFORCE alone, not through the core
        mean = torch.tanh(self.locator(state))
        if greedy and graph is None:
            return mean
        if graph is None:
            return torch.normal(mean, self.s.std)
        return sample_location(graph, f"loc{t}", mean, self.s.std, self.baseline, state)


def sample_location(graph: sg.Graph, name: str, mean: torch.Tensor, std: float, baseline: nn.Module,
                    state: torch.Tensor) -> torch.Tensor:
    """Record a location ~ N(mean [B, 2], std² I) on ``graph`` and return it [B, 2].

    Its two coordinates are the score-function nodes ``{name}x`` and ``{name}y`` (independent
    Normals: their log-probabilities sum to the 2-D Gaussian's), each centred by a learned
    baseline, ``baseline(state)`` [B, 1], trained in the same backward. Plain ``Normal`` nodes
    also let ``scgrad.testing`` integrate them exactly (Gauss–Hermite).
    """
    coordinates = [graph.sample(f"{name}{axis}", torch.distributions.Normal(mean[:, i], std),
                                estimator=ScoreFunction(baseline=Learned(baseline, state)))
                   for i, axis in enumerate("xy")]
    return torch.stack(torch.broadcast_tensors(*coordinates), -1)  # any leading dims (exact enumeration adds some)


def loss(model: RAM, images: torch.Tensor, labels: torch.Tensor, credit: str, generator: torch.Generator
         ) -> Tuple[torch.Tensor, torch.Tensor]:
    """(the batch's surrogate loss, its number of errors) for images [B, H, W], labels [B].

    One graph: the locations are its score-function nodes. ``credit="hit"`` (the paper) credits
    them with 1 − correct (a 0/1 cost the classifier cannot differentiate) and trains the rest by
    the mean cross-entropy added beside the graph; ``credit="xent"`` (the stochastic-computation-
    graph view) makes the cross-entropy itself the graph's cost, so one cost both backprops into
    the networks and credits the locations.
    """
    if credit not in CREDITS:
        raise ValueError(f"credit must be one of {CREDITS}, got {credit!r}")
    # Untracked: the one cost, recorded last, is credited to every location, as data flow would
    # find (the classification depends on every glimpse), without following each tensor operation.
    g = sg.Graph()
    logits, _ = model(images, g, generator)
    xent = F.cross_entropy(logits, labels, reduction="none")
    wrong = logits.argmax(-1) != labels
    if credit == "xent":
        g.cost("xent", xent)
    else:
        g.cost("misclassified", wrong.float())
    total = g.surrogate()  # the mean cost, plus the score terms of the locations
    if credit == "hit":
        total = total + xent.mean()
    return total, wrong.sum()
