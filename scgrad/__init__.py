"""scgrad: gradients of expectations through stochastic computation graphs in PyTorch.

Build a graph while the model runs (``g.sample``, ``g.cost``), then call ``g.surrogate()``:
one scalar whose gradient, of any order, estimates the gradient of the expected total cost.
"""
from . import baselines, distributions, estimators, protocol
from .distributions import Delta, DiagNormal, TanhNormal
from .errors import GraphError, NonFiniteCostError, ShapeError
from .graph import Graph

__version__ = "0.1.0"
__all__ = ["Delta", "DiagNormal", "Graph", "GraphError", "NonFiniteCostError", "ShapeError", "TanhNormal", "baselines",
           "distributions", "estimators", "protocol"]
