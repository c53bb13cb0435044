"""Exceptions raised by scgrad. Every message names the node(s), the shapes and a fix."""


class GraphError(ValueError):
    """A stochastic computation graph was built or used incorrectly."""


class ShapeError(GraphError):
    """Tensor shapes of nodes, costs or baselines do not line up."""


class NonFiniteCostError(GraphError, FloatingPointError):
    """A cost or a node's log-probability contains NaN or an infinity, so no meaningful
    gradient exists (an infinite or out-of-support ``value=``, NaN distribution parameters)."""
