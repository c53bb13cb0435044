"""Gradient estimators: each turns one stochastic node into surrogate-loss terms.

Unbiased: ``ScoreFunction``, ``Reparam``, ``Enumerate``, ``ImportanceWeighted`` (without clip);
``ARM``, ``DisARM``, ``VIMCO``, ``MeasureValued``, ``REBAR`` and ``RELAX`` (first
derivative only).
Biased, labelled so (``unbiased = False``): ``ImportanceWeighted(clip=...)``, ``GumbelSoftmax``,
``StraightThrough``. Write your own by subclassing ``scgrad.protocol.Estimator`` (the extension
protocol: ``Draw``, ``Terms``, ``Credit``, ... live there, apart from the estimators users pick).
"""
from ..protocol import Estimator
from .arm import ARM, DisARM
from .enumerate import Enumerate
from .importance import ImportanceWeighted
from .measure_valued import MeasureValued
from .relax import RELAX, REBAR
from .relaxed import GumbelSoftmax, StraightThrough
from .reparam import Reparam
from .score_function import ScoreFunction
from .vimco import VIMCO

__all__ = [
    "ARM", "DisARM", "Enumerate", "GumbelSoftmax", "ImportanceWeighted", "MeasureValued", "REBAR", "RELAX", "Reparam", "ScoreFunction", "StraightThrough", "VIMCO",
    "default_estimator",
]


def default_estimator(dist, observed: bool) -> Estimator:
    """``Reparam()`` when the distribution has rsample and the value is drawn, else ``ScoreFunction()``."""
    return Reparam() if dist.has_rsample and not observed else ScoreFunction()
