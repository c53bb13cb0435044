"""Records of the nodes of a stochastic computation graph: plain data, no behaviour."""
from .cost import CostNode
from .stochastic import Points, StochasticNode

__all__ = ["CostNode", "Points", "StochasticNode"]
