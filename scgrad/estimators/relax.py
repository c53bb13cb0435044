"""REBAR and RELAX: score functions whose control variate is a function of a continuous
relaxation of the discrete sample, corrected so that the gradient stays unbiased.

For a discrete node with logits φ, draw the relaxation z (Gumbel-perturbed logits; for a
Bernoulli, φ + logistic noise), take b = H(z) (the hard sample: z > 0, or argmax z) and draw a
second relaxation z̃ ~ p(z | b) from fresh noise. With a control variate c of the relaxed
sample,

    ĝ = (f(b) − c(z̃))·∇log p(b) + ∇c(z) − ∇c(z̃)

is unbiased for ∇E[f(b)] (Tucker et al. 2017; Grathwohl et al. 2018). z̃ depends on φ both
directly and through the probabilities that condition it: dropping the second dependence (a
known bug of one implementation) biases ĝ.

- ``REBAR(temperature, eta)``: c(z) = η·f(σ_λ(z)), the model's own cost at the relaxed sample
  σ_λ(z) (a sigmoid, or a softmax, at temperature λ). The model is evaluated at three points
  — b, σ_λ(z), σ_λ(z̃) — laid along a point dimension (weights 1, 0, 0), so the cost must be a
  differentiable function of the value (and, for a Categorical, the value is one-hot).
- ``RELAX(control_variate)``: c = a module of the relaxed sample, with a learnable
  temperature; the model runs once, at b, so f may be a black box. The module is trained to
  minimise ĝ's variance by ``relax.backward(loss, params)`` in place of ``loss.backward()``.

Both support ``Bernoulli``, ``Independent(Bernoulli)`` and ``Categorical``; both are unbiased
for the first derivative.
"""
from __future__ import annotations

import math
import warnings
from typing import Callable, Iterable, List, NamedTuple, Optional

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Bernoulli, Categorical, Distribution, Independent

from ..errors import GraphError
from ..nodes import Points, StochasticNode
from ..protocol import Credit, Draw, DrawContext, Estimator, Terms


class Relaxations(NamedTuple):
    """A discrete sample and its two relaxations (see the module docstring).

    b: the hard sample (Bernoulli: 0/1 floats [*batch, *event]; Categorical: indices [*batch]).
    z, z_tilde: relaxations, differentiable in the logits ([*batch, *event], or [*batch, K]).
    log_prob: log p(b) [*batch].
    """

    b: torch.Tensor
    z: torch.Tensor
    z_tilde: torch.Tensor
    log_prob: torch.Tensor


def _kind(dist: Distribution) -> Optional[str]:
    base = dist
    while isinstance(base, Independent):
        base = base.base_dist
    if type(base) is Bernoulli:
        return "bernoulli"
    if type(base) is Categorical and base is dist:
        return "categorical"
    return None


def _logits(dist: Distribution) -> torch.Tensor:
    base = dist
    while isinstance(base, Independent):
        base = base.base_dist
    return base.logits


def relax(dist: Distribution, conditional_on_detached_probs: bool = False) -> Relaxations:
    """Draw b, z and z̃ ~ p(z | b) for a Bernoulli, ``Independent(Bernoulli)`` or Categorical.

    ``conditional_on_detached_probs`` reproduces the known bug (z̃ without its dependence on the
    probabilities) for negative-control tests; never set it otherwise.
    """
    logits = _logits(dist)
    if _kind(dist) == "bernoulli":
        u, v = _uniform(logits), _uniform(logits)
        z = logits + torch.log(u) - torch.log1p(-u)                       # φ + logistic noise
        b = (z > 0).to(logits.dtype)
        # u | b is uniform on b's side of 1 − p: (1 − p) + v·p if b = 1, v·(1 − p) if b = 0; its
        # logit in log space, so that no p near 0 or 1 rounds u to 0 or 1 (an infinite z̃).
        phi = logits.detach() if conditional_on_detached_probs else logits
        log_p, log_q = F.logsigmoid(phi), F.logsigmoid(-phi)              # log p, log(1 − p)
        log_v, log_1mv = torch.log(v), torch.log1p(-v)
        log_u = torch.where(b > 0, torch.logaddexp(log_q, log_v + log_p), log_v + log_q)
        log_1mu = torch.where(b > 0, log_p + log_1mv, torch.logaddexp(log_p, log_1mv + log_q))
        z_tilde = logits + log_u - log_1mu
        return Relaxations(b, z, z_tilde, dist.log_prob(b))
    log_p = F.log_softmax(logits, -1)                                     # Σ exp = 1
    u, v = _uniform(log_p), _uniform(log_p)
    z = log_p - torch.log(-torch.log(u))                                  # + Gumbel noise
    b = z.argmax(-1)
    conditioning = log_p.detach() if conditional_on_detached_probs else log_p
    top = -torch.log(-torch.log(v.gather(-1, b.unsqueeze(-1))))           # the max of the Gumbels: [*batch, 1]
    # −log(−log v · exp(−log p) + exp(−top)), in log space (exp(−log p) overflows for tiny p)
    others = -torch.logaddexp(torch.log(-torch.log(v)) - conditioning, -top)
    chosen = F.one_hot(b, log_p.shape[-1]).bool()
    z_tilde = torch.where(chosen, top, others)
    return Relaxations(b, z, z_tilde, dist.log_prob(b))


def _uniform(like: torch.Tensor) -> torch.Tensor:
    """U(0, 1) noise shaped like ``like``, never exactly 0 (``torch.rand`` can return 0, whose
    log is −inf; it is replaced by the smallest positive float, a change of probability 2⁻²⁴)."""
    return torch.rand_like(like).clamp_(min=torch.finfo(like.dtype).tiny)


def relaxed(z: torch.Tensor, kind: str, temperature: torch.Tensor) -> torch.Tensor:
    """σ_λ(z): sigmoid(z/λ) for bits, softmax(z/λ) over categories."""
    return torch.sigmoid(z / temperature) if kind == "bernoulli" else torch.softmax(z / temperature, -1)


def _check(estimator: Estimator, dist: Distribution, ctx: DrawContext) -> str:
    kind = _kind(dist)
    if kind is None:
        raise GraphError(f"node '{ctx.name}': {type(estimator).__name__} supports Bernoulli, "
                         f"Independent(Bernoulli) and Categorical, not {type(dist).__name__}")
    if ctx.value is not None:
        raise GraphError(f"node '{ctx.name}': {type(estimator).__name__} draws its own relaxations and "
                         "cannot score a given value (value=)")
    return kind


class REBAR(Estimator):
    """REBAR (Tucker et al. 2017): control variate η·f(σ_λ(z)). Unbiased (first derivative).

    ``Bernoulli``, ``Independent(Bernoulli)``, ``Categorical`` nodes; the value holds three
    points along a point dimension — the hard sample, σ_λ(z), σ_λ(z̃) — one-hot for a
    Categorical, so write the model for any leading dimensions and for relaxed inputs; the
    surrogate's value is the cost at the hard sample. The costs downstream must be
    differentiable in the value (no stochastic node between).

    Args:
        temperature: λ > 0 of the relaxation.
        eta: η, the control variate's scale.
    """

    unbiased = True
    needs_credit = True
    needs_differentiable_credit = True

    def __init__(self, temperature: float = 0.5, eta: float = 1.0) -> None:
        if temperature <= 0:
            raise ValueError(f"REBAR: temperature must be > 0, got {temperature}")
        self.temperature, self.eta = temperature, eta

    def relaxations(self, dist: Distribution) -> Relaxations:
        """b, z and z̃ for a draw (``relax``)."""
        return relax(dist)

    def draw(self, dist: Distribution, ctx: DrawContext) -> Draw:
        kind = _check(self, dist, ctx)
        r = self.relaxations(dist)
        t = torch.as_tensor(self.temperature, dtype=r.z.dtype)
        hard = r.b if kind == "bernoulli" else F.one_hot(r.b, r.z.shape[-1]).to(r.z.dtype)
        points = torch.stack([hard, relaxed(r.z, kind, t), relaxed(r.z_tilde, kind, t)])  # [3, *batch, *event]
        dim = ctx.new_point_dim(len(dist.batch_shape))
        lead = (3,) + (1,) * (-dim - 1 - len(dist.batch_shape))
        value = points.reshape(lead + points.shape[1:])
        log_prob = r.log_prob.reshape((1,) + lead[1:] + r.log_prob.shape).expand(lead + r.log_prob.shape)
        weights = torch.tensor([0.0, -math.inf, -math.inf], dtype=r.z.dtype).reshape((3,) + (1,) * (-dim - 1))
        return Draw(value, log_prob, points=Points(dim, weights))

    def terms(self, node: StochasticNode, credit: Credit) -> Terms:
        dim = node.points.dim
        f = credit.value.movedim(dim, 0)                                   # [3, 1s, *batch]
        baseline = torch.stack([self.eta * f[2], torch.zeros_like(f[2]), torch.zeros_like(f[2])]).movedim(0, dim)
        # ∂f/∂value at the relaxed points, then η·(∇f(σ(z)) − ∇f(σ(z̃))) through the value alone
        (slope,) = torch.autograd.grad(credit.differentiable.sum(), node.value, retain_graph=True, allow_unused=True)
        if slope is None:
            raise GraphError(f"node '{node.name}': REBAR needs costs that are differentiable in the node's value")
        event = node.value.dim() - len(node.shape)
        value, slope = node.value.movedim(dim - event, 0), slope.detach().movedim(dim - event, 0)
        pathwise = slope[1] * (value[1] - value[1].detach()) - slope[2] * (value[2] - value[2].detach())
        if event:
            pathwise = pathwise.sum(list(range(-event, 0)))
        return Terms(score=node.log_prob, baseline=baseline, control_variate=self.eta * pathwise)

    def __repr__(self) -> str:
        return f"REBAR(temperature={self.temperature}, eta={self.eta})"


class RELAX(Estimator):
    """RELAX (Grathwohl et al. 2018): a learned control variate c_ψ of the relaxed sample.
    Unbiased (first derivative), for any cost, differentiable or not (the model runs once, at
    the hard sample: 0/1 floats for bits, indices for a Categorical).

    ``Bernoulli``, ``Independent(Bernoulli)``, ``Categorical`` nodes. ``control_variate`` maps
    the relaxed sample σ_λ(z) ([*batch, *event] for bits, [*batch, K] for categories) to a
    prediction of the node's credit, [*batch] (or [*batch, 1]). Pass an ``nn.Module`` to have it
    trained: a plain function (a lambda around a network included) has no parameters that
    ``parameters()`` can see, so only λ would learn. Train it, and the temperature λ, by calling
    ``relax.backward(loss, model_parameters)`` instead of ``loss.backward()``: the model's
    parameters receive the gradient estimate ĝ, the control variate's ``relax.parameters()``
    the gradient of Σ ĝ² (whose expectation, E ĝ fixed, is the variance plus a constant), and
    neither gets the other's.

    Args:
        control_variate: the module c_ψ.
        temperature: the initial λ > 0 (learned in log space).
    """

    unbiased = True
    needs_credit = True

    def __init__(self, control_variate: Callable[[torch.Tensor], torch.Tensor], temperature: float = 0.5) -> None:
        if temperature <= 0:
            raise ValueError(f"RELAX: temperature must be > 0, got {temperature}")
        self.control_variate = control_variate
        self.log_temperature = nn.Parameter(torch.tensor(math.log(temperature)))

    def parameters(self) -> List[nn.Parameter]:
        """The control variate's parameters and the log-temperature: what ``backward`` trains."""
        own = self.control_variate.parameters() if isinstance(self.control_variate, nn.Module) else []
        return list(own) + [self.log_temperature]

    def relaxations(self, dist: Distribution) -> Relaxations:
        """b, z and z̃ for a draw (``relax``)."""
        return relax(dist)

    def draw(self, dist: Distribution, ctx: DrawContext) -> Draw:
        _check(self, dist, ctx)
        r = self.relaxations(dist)
        return Draw(r.b, r.log_prob, noise=r)

    def terms(self, node: StochasticNode, credit: Credit) -> Terms:
        r: Relaxations = node.noise
        kind = _kind(node.dist)
        t = self.log_temperature.exp().to(r.z.dtype)
        c_z = self._predict(relaxed(r.z, kind, t), node)
        c_tilde = self._predict(relaxed(r.z_tilde, kind, t), node)
        correction = c_z - c_tilde
        # The baseline stays attached to ψ: its term (1 − box)·c has value and ψ-gradient zero,
        # but ĝ = ∂L/∂θ then depends on ψ through it, which the variance training needs.
        return Terms(score=node.log_prob, baseline=c_tilde, control_variate=correction - correction.detach())

    def _predict(self, sample: torch.Tensor, node: StochasticNode) -> torch.Tensor:
        out = self.control_variate(sample)
        if out.shape == node.shape + (1,):
            out = out.squeeze(-1)
        if out.shape != node.shape:
            raise GraphError(f"node '{node.name}': RELAX's control variate returned shape {tuple(out.shape)}, "
                             f"expected the node's shape {tuple(node.shape)}")
        return out

    def backward(self, loss: torch.Tensor, params: Iterable[torch.Tensor]) -> None:
        """``loss.backward()`` for RELAX: ``params`` (the model's, not the control variate's)
        accumulate ĝ in ``.grad``; ``self.parameters()`` accumulate ∂(Σ ĝ²)/∂ψ."""
        if not isinstance(self.control_variate, nn.Module):
            warnings.warn("RELAX.backward: the control variate is a plain function, so only the temperature "
                          "is trained; pass the nn.Module itself to train its parameters", stacklevel=2)
        params = [p for p in params if p.requires_grad]
        own = {id(p) for p in self.parameters()}
        if any(id(p) in own for p in params):
            raise GraphError("RELAX.backward: params must not include the control variate's parameters "
                             "(they are trained on the variance, through relax.parameters())")
        grads = torch.autograd.grad(loss, params, create_graph=True, allow_unused=True)
        squared = [(g ** 2).sum() for g in grads if g is not None and g.requires_grad]
        cv_grads = (torch.autograd.grad(sum(squared), self.parameters(), allow_unused=True) if squared
                    else [None] * len(self.parameters()))
        for p, g in [*zip(params, grads), *zip(self.parameters(), cv_grads)]:
            if g is not None:
                p.grad = g.detach().clone() if p.grad is None else p.grad + g.detach()

    def __repr__(self) -> str:
        return f"RELAX({type(self.control_variate).__name__})"
